"""The Runs / monitor tab: every run with its state, stage, step and ETA; stop and resume; live plots of
metrics.jsonl (and of samples.jsonl for thinking vs answer tokens) that stream while a run trains and stay
after it; several runs overlaid; the metrics exported as CSV.

Plots are polled by a gr.Timer that only ticks while this tab is open; metrics files are re-read only when
they changed.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import inference, runs
from ..config import ConfigError
from . import catalog
from .launcher import Launcher, tail

# (title, metric keys, y title). "rewards/*" expands to every per-function reward mean.
PLOTS = {
    "grpo": [
        ("Reward: total and per function", ["reward", "rewards/*"], "reward"),
        ("Reward spread: std, share of zero-spread groups", ["reward_std", "frac_reward_zero_std"], ""),
        ("Completion length", ["completions/mean_length", "completions/min_length", "completions/max_length"],
         "tokens"),
        ("Thinking vs answer tokens (rollouts)", ["think_tokens", "answer_tokens"], "tokens"),
        ("Clipped ratio (cut at max length)", ["completions/clipped_ratio"], "share"),
        ("KL to the reference", ["kl"], "kl"),
        ("Entropy", ["entropy"], "nats"),
        ("Loss", ["loss"], "loss"),
        ("Learning rate", ["learning_rate"], "lr"),
    ],
    "sft": [
        ("Loss", ["loss"], "loss"),
        ("Token accuracy", ["mean_token_accuracy"], "share"),
        ("Entropy", ["entropy"], "nats"),
        ("Learning rate", ["learning_rate"], "lr"),
        ("Gradient norm", ["grad_norm"], "norm"),
    ],
}
NOTES = {
    "grpo": "A zero-spread group (all its completions scored the same) gives no learning signal. A GRPO loss "
            "near 0 is normal: advantages average to 0 within each group; watch reward and KL. Thinking vs "
            "answer tokens split each logged rollout's length by its characters.",
    "sft": "Loss and token accuracy are over the supervised (assistant) tokens only.",
}
SLOTS = max(len(p) for p in PLOTS.values())
COLUMNS = 3
_cache: dict[Path, tuple[tuple, list]] = {}


def _read(path: Path, parse) -> list:
    """parse(path), cached until the file's size or mtime changes."""
    try:
        stat = path.stat()
    except OSError:
        return []
    key = (stat.st_size, stat.st_mtime_ns)
    if path not in _cache or _cache[path][0] != key:
        _cache[path] = (key, parse(path))
    return _cache[path][1]


def metric_rows(run_dir: Path) -> list[dict]:
    """Logged steps of metrics.jsonl, without the end-of-training summary rows."""
    return [r for r in _read(Path(run_dir) / "metrics.jsonl", runs.read_jsonl) if "train_runtime" not in r]


def think_answer_rows(run_dir: Path) -> list[dict]:
    """Per logged rollout step, mean tokens inside <think> and in the answer (share of each completion's
    length by characters: the app loads no tokenizer)."""
    def parse(path):
        out = []
        for record in runs.read_jsonl(path):
            think = answer = 0.0
            for c in record["completions"]:
                parsed = inference.split_think(c["completion"])
                chars = max(len(c["completion"]), 1)
                think_chars = len(parsed.think or "")
                think += c["length"] * think_chars / chars
                answer += c["length"] * (chars - think_chars) / chars if parsed.think is not None else c["length"]
            n = max(len(record["completions"]), 1)
            out.append({"stage": record["stage"], "step": record["step"],
                        "think_tokens": think / n, "answer_tokens": answer / n})
        return out
    return _read(Path(run_dir) / "samples.jsonl", parse)


def current_stage(run_dir: Path) -> str:
    rows = metric_rows(run_dir)
    return rows[-1]["stage"] if rows else "sft"


def frame(run_dirs: list[Path], stage: str, keys: list[str]) -> pd.DataFrame:
    """Long-format points (step, value, series) of the given keys for each run, series named by run when overlaid."""
    points = []
    for run_dir in run_dirs:
        rows = [r for r in metric_rows(run_dir) + think_answer_rows(run_dir) if r.get("stage") == stage]
        wanted = [k for k in keys if not k.endswith("/*")]
        for prefix in [k[:-1] for k in keys if k.endswith("/*")]:
            wanted += sorted({k for r in rows for k in r if k.startswith(prefix) and k.endswith("/mean")})
        for key in wanted:
            label = key.removeprefix("rewards/").removesuffix("/mean").removesuffix("_reward") \
                .removeprefix("completions/")
            series = f"{run_dir.name} · {label}" if len(run_dirs) > 1 else label
            points += [(r["step"], float(r[key]), series) for r in rows if key in r]
    return pd.DataFrame(points, columns=["step", "value", "series"])


def eval_frame(run_dirs: list[Path]) -> pd.DataFrame:
    rows = [(label.replace("/", " · "), result["accuracy"], run_dir.name) for run_dir in run_dirs
            for label, result in catalog.eval_results(run_dir).items()]
    return pd.DataFrame(rows, columns=["evaluated", "accuracy", "run"])


def summary(run_dir: Path | None) -> str:
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        return "No run selected. Launch one from the **Train** tab, or pick one above."
    status = runs.read_status(run_dir)
    info = catalog.RunInfo(run_dir, status, catalog.effective_state(status))
    row = dict(zip(catalog.RUN_HEADERS, catalog.run_row(info)))
    stage = status.get("stage") or "-"
    points = len(metric_rows(run_dir))
    eta = f" · ETA {row['ETA']}" if row["ETA"] else ""
    error = f"\n\n✗ {status['error']}" if status.get("error") else ""
    return (f"**{run_dir.name}** · <span class='rrft-state-{row['state']}'>{row['state']}</span> · stage {stage} · "
            f"step {row['step']}{eta} · <span id='monitor-points'>{points}</span> logged steps{error}")


def export_csv(launcher: Launcher, names: list[str]) -> str | None:
    """All metrics of the chosen runs in one CSV (a column per metric), written under RUNS/.studio/exports."""
    rows = [{"run": n, **r} for n in names or [] for r in metric_rows(launcher.runs_dir / n)]
    if not rows:
        return None
    keys = list(dict.fromkeys(k for r in rows for k in r))
    folder = launcher.studio_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _act(launcher: Launcher, name: str, action: str) -> str:
    if not name:
        return "Pick a run first."
    try:
        if action == "stop":
            return launcher.stop(launcher.runs_dir / name)
        started = launcher.resume(launcher.runs_dir / name)
        return f"Resuming {name} (pid {started.pid}): it continues from its last checkpoint."
    except ConfigError as e:
        return f"✗ {e}"


def refresh(launcher: Launcher, name: str | None, chosen: list[str] | None, stage_choice: str) -> list:
    """Every output of the tab: run pickers, summary, runs table, plot note, one update per plot slot, eval
    bars, log."""
    launcher.reap()
    infos = catalog.list_runs(launcher.runs_dir)
    names = [i.name for i in infos]
    # A value is sent back only when it had to change: a tick must not undo what the user is picking.
    run_update = gr.Dropdown(choices=names) if name in names else \
        gr.Dropdown(choices=names, value=names[0] if names else None)
    name = name if name in names else (names[0] if names else None)
    kept = [c for c in chosen or [] if c in names]
    overlay_update = gr.Dropdown(choices=names) if kept and kept == list(chosen) else \
        gr.Dropdown(choices=names, value=kept or ([name] if name else []))
    dirs = [launcher.runs_dir / c for c in (kept or ([name] if name else []))]
    shown = stage_choice if stage_choice != "auto" else (current_stage(dirs[0]) if dirs else "sft")
    updates = [run_update, summary(launcher.runs_dir / name if name else None),
               [catalog.run_row(i) for i in infos], overlay_update, f"*{NOTES[shown]}*" if dirs else ""]
    for slot in range(SLOTS):
        spec = PLOTS[shown][slot] if slot < len(PLOTS[shown]) else None
        df = frame(dirs, shown, spec[1]) if spec else None
        updates.append(gr.LinePlot(value=df, title=spec[0], y_title=spec[2], visible=True)
                       if spec and len(df) else gr.LinePlot(visible=False))
    evals = eval_frame(dirs)
    order = list(dict.fromkeys(evals["evaluated"]))  # base, then each stage, as the run made them
    updates.append(gr.BarPlot(value=evals, sort=order, visible=bool(len(evals))))
    updates.append(log_text(launcher, launcher.runs_dir / name) if name else "")
    return updates


def log_text(launcher: Launcher, run_dir: Path) -> str:
    log = launcher.log_of(run_dir)
    if log is None:
        return "(not started from the studio: its output went to the terminal that started it)"
    return f"# {log}\n{tail(log)}"


def build(launcher: Launcher, tab: gr.Tab) -> gr.Timer:
    """Lay out the tab; returns its timer, which the app switches on only while the tab is shown."""
    with gr.Row():
        run = gr.Dropdown([], label="Run", scale=4, elem_id="monitor-run",
                          info="Stop saves a checkpoint at the end of the current step; Resume continues from it.")
        with gr.Column(scale=1, min_width=160):
            stop = gr.Button("■ Stop", variant="stop", size="md", elem_id="monitor-stop")
            resume = gr.Button("▶ Resume", size="md", elem_id="monitor-resume")
    note = gr.Markdown(elem_id="monitor-note")
    status_line = gr.Markdown(summary(None), elem_id="monitor-summary")
    table = gr.Dataframe(headers=catalog.RUN_HEADERS, interactive=False, max_height=220, elem_id="monitor-runs")
    with gr.Row():
        overlay = gr.Dropdown([], multiselect=True, label="Plot these runs (overlay)", scale=4,
                              elem_id="monitor-overlay")
        stage = gr.Radio(["auto", "sft", "grpo"], value="auto", label="Stage", scale=2, elem_id="monitor-stage")
        export = gr.Button("Export metrics (CSV)", size="md", scale=1)
    exported = gr.File(label="Metrics", visible=False)
    note_plots = gr.Markdown(elem_id="monitor-plot-note")
    plots = []
    for start in range(0, SLOTS, COLUMNS):
        with gr.Row():
            for i in range(start, min(start + COLUMNS, SLOTS)):
                plots.append(gr.LinePlot(x="step", y="value", color="series", height=230, visible=False,
                                         elem_id=f"monitor-plot-{i}", elem_classes=["rrft-plot"]))
    accuracy = gr.BarPlot(x="evaluated", y="accuracy", color="run", title="Eval accuracy", height=230,
                          y_lim=[0, 1], visible=False, elem_id="monitor-eval")
    with gr.Accordion("Log of the run's process", open=False):
        log = gr.Code(language=None, lines=14, max_lines=14, interactive=False, elem_id="monitor-log")
    timer = gr.Timer(1.0, active=False)

    outputs, inputs = [run, status_line, table, overlay, note_plots, *plots, accuracy, log], [run, overlay, stage]

    def update(*a):
        return refresh(launcher, *a)

    tab.select(update, inputs, outputs, show_progress="hidden")  # at once, not at the timer's first tick
    timer.tick(update, inputs, outputs, show_progress="hidden")
    run.input(lambda n: [n], run, overlay).then(update, inputs, outputs, show_progress="hidden")
    stage.change(update, inputs, outputs, show_progress="hidden")
    overlay.input(update, inputs, outputs, show_progress="hidden")
    stop.click(lambda n: _act(launcher, n, "stop"), run, note)
    resume.click(lambda n: _act(launcher, n, "resume"), run, note)
    export.click(lambda names: gr.File(value=export_csv(launcher, names), visible=True), overlay, exported)
    return timer
