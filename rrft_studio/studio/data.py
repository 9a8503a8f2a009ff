"""The Data tab: preview the samples a preset trains and evaluates on (images, problem, answer, CoT), check a
real data file or the whole dataset with the CLI's `data check`, and write a synthetic dataset with the CLI's
`data generate`.

A preview goes through the same `data.records` the training uses. For synthetic data it asks for only N
records (data.n_train / n_eval = N): the generators are sequential, so these are exactly the first N records
of the full split, and the few images land in the preset's cache like any generated data.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import data, settings, tasks
from ..config import ConfigError
from . import catalog
from .launcher import Launcher

COLUMNS, ROW_PX = 8, 150  # gallery thumbnails per row, and a row's height on a wide screen (1440 pixels)
THUMB_PX, BAND_PX = 224, 26  # a thumbnail's scene (longer side), and the band under it that holds its caption


def thumbnail(image, caption: str):
    """The whole scene, scaled to THUMB_PX on its longer side (a small synthetic scene in whole pixels, so its
    edges stay sharp), with `caption` in a band beneath it: Gradio lays a gallery's captions over the picture, where
    they hid the objects at its bottom edge (a record answering 2 showed one object)."""
    from PIL import Image, ImageDraw, ImageFont

    image = image.convert("RGB")
    scale = THUMB_PX / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = scale >= 1 and float(scale).is_integer()
    image = image.resize(size, Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS)
    out = Image.new("RGB", (image.width, image.height + BAND_PX), "white")
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=15)
    width = draw.textlength(caption, font=font)
    draw.text(((out.width - width) / 2, image.height + 4), caption, fill=(40, 40, 40), font=font)
    return out


def splits(preset: str | None) -> list[str]:
    """train plus the preset task's evaluation splits that have data: all of a synthetic task's, those a file
    is given for otherwise."""
    try:
        cfg = settings.load(preset, import_rewards=False) if preset else None
    except ConfigError:
        cfg = None
    if cfg is None:
        return ["train", *tasks.get(tasks.TASKS[0]).benchmarks]
    return ["train", *catalog.benchmarks_with_data(cfg)]


def preview_records(preset: str, split: str, n: int) -> tuple[list[dict], str]:
    """(first n records of the preset's split, a line saying where they come from)."""
    cfg = settings.load(preset, import_rewards=False)  # user code never runs in the studio's process
    path = data.source(cfg, split)[0] or ""
    if not path:  # synthetic: generate only the first n
        cfg = settings.load(preset, [f"data.n_train={n}", f"data.n_eval={n}"], import_rewards=False)
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
            pictures.append(thumbnail(image, f"{r['id'].rsplit('-', 1)[-1]} · answer {r['answer']}"))
    table = [[r["id"], r["problem"], r["answer"], r.get("cot", "")] for r in rows]
    height = ROW_PX * max(-(-len(pictures) // COLUMNS), 1) + 20  # Gradio's own leaves a blank half
    return gr.Gallery(value=pictures, height=height), f"{line} Under each image: its record number and answer.", table


def in_data_folder(launcher: Launcher, text: str, output: bool = False) -> str:
    """A path typed in the tab: a relative one names a place in the data folder (the only folder the tab reads
    and writes), unless it is an existing path from the studio's working directory that lies in it anyway."""
    value = (text or "").strip()
    if not value or Path(value).expanduser().is_absolute():
        return value
    inside = launcher.folders.data / value
    if output or inside.exists() or not (launcher.cwd / value).exists():
        return str(inside)
    return str(launcher.cwd / value)


def generate(launcher: Launcher, task: str, n: int, seed: int, split: str, out: str) -> str:
    """Run `rrft-studio data generate` into the studio's data folder and return the command with its output."""
    try:
        folder = launcher.folders.confine(in_data_folder(launcher, out, output=True) or str(launcher.folders.data / task),
                                          "Output folder", ("data",))
    except ConfigError as e:
        return f"✗ {e}"
    args = ["data", "generate", task, "--n", str(int(n)), "--out", str(folder), "--seed", str(int(seed)), "--split", split]
    done = launcher.run_cli(args)
    return f"$ rrft-studio {' '.join(args)}\n{done.stdout}{done.stderr}".strip()


def check(launcher: Launcher, path: str, task: str, preset: str | None) -> tuple[str, str]:
    """Run `rrft-studio data check` on a file or the dataset's folder in the data folder: (verdict, report)."""
    try:
        target = launcher.folders.confine(in_data_folder(launcher, path) or str(launcher.folders.data), "Data path",
                                          ("data",))
    except ConfigError as e:
        return f"✗ {e}", ""
    args = ["data", "check", str(target), *(["--task", task] if task != "auto" else []), *([preset] if preset else [])]
    done = launcher.run_cli(args, timeout=3600)
    errors = [line.removeprefix("error: ") for line in done.stderr.splitlines() if line.startswith("error: ")]
    if done.returncode == 0:
        verdict = "✓ no problems found"
    else:
        verdict = "✗ " + ("\n\n✗ ".join(errors) if errors else done.stderr.strip().splitlines()[-1])
    return verdict, f"$ rrft-studio {' '.join(args)}\n{done.stdout}".strip()


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
        # no label drawn: Gradio lays it over the first row's top edge
        gallery = gr.Gallery(label="Images", show_label=False, columns=COLUMNS, height=ROW_PX + 20, object_fit="contain",
                             elem_id="data-gallery")
        table = gr.Dataframe(headers=["id", "problem", "answer", "cot"], wrap=True, interactive=False,
                             max_height=380, column_widths=["16%", "34%", "8%", "42%"], elem_id="data-table")
    with gr.Tab("Check a data file"):
        gr.Markdown("Reads a data file (JSON, JSONL, parquet, a saved `datasets` folder) or the unpacked Reason-RFT "
                    "dataset folder as training would: records, missing or unreadable images, answer kinds, image "
                    "sizes, and token lengths with the preset's model against its limits.")
        with gr.Row():
            check_path = gr.Textbox(label="File or dataset folder (in the data folder; a relative path is taken there)", scale=3,
                                    placeholder=str(launcher.folders.data / "Reason-RFT-CoT-Dataset"),
                                    elem_id="check-path")
            check_task = gr.Dropdown(["auto", *tasks.TASKS], value="auto", label="Task", scale=1,
                                     info="auto: each task's files in the dataset; custom for a single file")
            check_preset = gr.Dropdown(choices, value=None, label="Preset (model and limits)", scale=2)
            check_go = gr.Button("Check", variant="primary", scale=1, elem_id="check-go")
        check_verdict = gr.Markdown(elem_id="check-verdict")
        check_report = gr.Textbox(label="Report", lines=12, max_lines=40, interactive=False, elem_id="check-report",
                                  elem_classes=["rrft-mono"])
    with gr.Tab("Generate a synthetic dataset"):
        gr.Markdown("Writes records in the Reason-RFT schema (`id`, `image`, `problem`, `answer`, `cot`) plus PNGs, "
                    "with the generator's default settings; point `data.train_file` (or `data.eval_files`) at it.")
        with gr.Row():
            task = gr.Dropdown(list(tasks.SYNTHETIC), value=tasks.SYNTHETIC[0], label="Task")
            count = gr.Number(500, label="Records", precision=0, minimum=1, elem_id="generate-count")
            seed = gr.Number(0, label="Seed", precision=0)
            gen_split = gr.Dropdown(["train", *tasks.get(tasks.SYNTHETIC[0]).benchmarks], value="train",
                                    label="Split", info="train, or an evaluation split of the task")
            out = gr.Textbox(str(launcher.folders.data / tasks.SYNTHETIC[0]), label="Output folder",
                             info=f"in the studio's data folder ({launcher.folders.data}; a relative path is taken there)",
                             elem_id="generate-out")
        go = gr.Button("Generate", variant="primary", elem_id="generate-go")
        result = gr.Code(language="shell", label="Output", interactive=False, lines=4, elem_id="generate-result")
    preset.change(lambda p: gr.Radio(choices=splits(p), value="train"), preset, split)
    task.change(lambda t: gr.Dropdown(choices=["train", *tasks.get(t).benchmarks], value="train"), task, gen_split)
    task.input(lambda t: str(launcher.folders.data / t), task, out)
    check_go.click(lambda *a: check(launcher, *a), [check_path, check_task, check_preset], [check_verdict, check_report],
                   api_name="check_data")
    show.click(preview, [preset, split, n], [gallery, line, table])
    go.click(lambda *a: generate(launcher, *a), [task, count, seed, gen_split, out], result, api_name="generate_data")
