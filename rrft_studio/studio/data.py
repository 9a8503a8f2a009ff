"""The Data tab: preview the samples a preset trains and evaluates on (images, problem, answer, CoT), and
write a synthetic dataset with the CLI's `data generate`.

A preview goes through the same `data.records` the training uses. For synthetic data it asks for only N
records (data.n_train / n_eval = N): the generators are sequential, so these are exactly the first N records
of the full split, and the few images land in the preset's cache like any generated data.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import config, data, tasks
from ..config import ConfigError
from . import catalog
from .launcher import Launcher

COLUMNS, ROW_PX = 8, 165  # gallery thumbnails per row, and a row's height on a wide screen


def splits(preset: str | None) -> list[str]:
    """train plus the preset task's evaluation splits."""
    try:
        task = data.task_of(config.load(preset)) if preset else tasks.get(tasks.TASKS[0])
    except ConfigError:
        task = tasks.get(tasks.TASKS[0])
    return ["train", *task.BENCHMARKS]


def preview_records(preset: str, split: str, n: int) -> tuple[list[dict], str]:
    """(first n records of the preset's split, a line saying where they come from)."""
    cfg = config.load(preset)
    evals = list(data.task_of(cfg).BENCHMARKS)
    if split == "train":
        path = cfg.data.train_file
    else:
        index = evals.index(split)
        path = cfg.data.eval_files[index] if index < len(cfg.data.eval_files) else ""
    if not path:  # synthetic: generate only the first n
        cfg = config.load(preset, [f"data.n_train={n}", f"data.n_eval={n}"])
    rows = data.records(cfg, split)
    where = f"`{path}`" if path else f"the synthetic {cfg.data.task} generator (seed {cfg.data.seed})"
    return rows[:n], f"**{split}**: the first {min(n, len(rows))} records from {where}, as the preset reads them."


def preview(preset: str, split: str, n: int):
    try:
        rows, line = preview_records(preset, split, int(n))
    except (ConfigError, ValueError, KeyError) as e:
        return [], f"✗ {e}", []
    pictures = []
    for r in rows:
        image = catalog.open_image(data.images_of(r)[0])
        if image is not None:
            pictures.append((image, f"{r['id'].rsplit('-', 1)[-1]} · answer {r['answer']}"))
    table = [[r["id"], r["problem"], r["answer"], r.get("cot", "")] for r in rows]
    rows_of_pictures = -(-len(pictures) // COLUMNS)
    return gr.Gallery(value=pictures, height=ROW_PX * max(rows_of_pictures, 1) + 40), line, table


def generate(launcher: Launcher, task: str, n: int, seed: int, split: str, out: str) -> str:
    """Run `rrft-studio data generate` into the studio's data folder and return the command with its output."""
    try:
        folder = launcher.folders.confine(out.strip() or f"data/{task}", "Output folder", ("data",))
    except ConfigError as e:
        return f"✗ {e}"
    args = ["data", "generate", task, "--n", str(int(n)), "--out", str(folder), "--seed", str(int(seed)), "--split", split]
    done = launcher.run_cli(args)
    return f"$ rrft-studio {' '.join(args)}\n{done.stdout}{done.stderr}".strip()


def build(launcher: Launcher, presets_dir: Path) -> None:
    choices = catalog.presets(presets_dir, launcher.runs_dir)
    with gr.Tab("Preview a preset's data"):
        with gr.Row():
            preset = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Preset", scale=3,
                                 elem_id="data-preset")
            split = gr.Radio(splits(choices[0][1] if choices else None), value="train", label="Split", scale=1)
            n = gr.Slider(1, 48, value=12, step=1, label="Samples", scale=2)
            show = gr.Button("Preview", variant="primary", scale=1, elem_id="data-preview")
        line = gr.Markdown(elem_id="data-summary")
        gallery = gr.Gallery(label="Images (caption: record number · answer)", columns=COLUMNS, height=ROW_PX + 40,
                             object_fit="contain", elem_id="data-gallery")
        table = gr.Dataframe(headers=["id", "problem", "answer", "cot"], wrap=True, interactive=False,
                             max_height=380, column_widths=["16%", "34%", "8%", "42%"], elem_id="data-table")
    with gr.Tab("Generate a synthetic dataset"):
        gr.Markdown("Writes records in the Reason-RFT schema (`id`, `image`, `problem`, `answer`, `cot`) plus PNGs, "
                    "with the generator's default settings; point `data.train_file` (or `data.eval_files`) at it.")
        with gr.Row():
            task = gr.Dropdown(list(tasks.TASKS), value=tasks.TASKS[0], label="Task")
            count = gr.Number(500, label="Records", precision=0, minimum=1)
            seed = gr.Number(0, label="Seed", precision=0)
            gen_split = gr.Dropdown(["train", "id", "ood", "left", "right"], value="train", label="Split",
                                    info="train, or an evaluation split of the task")
            out = gr.Textbox("data/counting", label="Output folder")
        go = gr.Button("Generate", variant="primary")
        result = gr.Code(language="shell", label="Output", interactive=False, lines=4)
    preset.change(lambda p: gr.Radio(choices=splits(p), value="train"), preset, split)
    show.click(preview, [preset, split, n], [gallery, line, table])
    go.click(lambda *a: generate(launcher, *a), [task, count, seed, gen_split, out], result, api_name="generate_data")
