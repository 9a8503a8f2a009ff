"""The Runs / monitor tab: every run with its state, stage, step and ETA; stop and resume; live plots of
metrics.jsonl (and of samples.jsonl for thinking vs answer tokens) that stream while a run trains and stay
after it; several runs overlaid; the metrics exported as CSV.

Built for long runs (100,000 logged steps, 50 runs in the folder): the runs table is its own event, read from
the status files only; the plots come from logs.py, which reads only what a file gained since the last look.
Each series is cut down to what a plot about 450 pixels wide can show: the minimum and the maximum of each of
500 buckets of steps (fewer when many series share a tick's 16,000 points), and a timer tick sends an output
only when it changed since this page last got it, so an idle tick sends almost nothing. The plots are Vega-Lite
line charts drawn on a canvas (gr.Plot): gr.LinePlot adds an SVG hover point for every data point, which
takes the browser about half a millisecond each. The export writes every logged step, not the plotted ones.
The timer only ticks while this tab is open.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import gradio as gr
import numpy as np
import orjson
import pandas as pd
from gradio.components.plot import AltairPlotData

from .. import runs
from ..config import ConfigError
from . import catalog, logs
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
ROLLOUT_KEYS = ("think_tokens", "answer_tokens")
SLOTS = max(len(p) for p in PLOTS.values())
COLUMNS = 3
TICK_POINTS = 16_000  # points sent across the visible plots, at most (about 0.3 MB of JSON)
SERIES_POINTS = 1_000  # at most, per series: a minimum and a maximum per pixel column of a 500-pixel plot
DIGITS = 5  # significant digits sent: more than a plot can show
PLOT_HEIGHT = 170


# ---------------------------------------------------------------- series

def downsample(x: np.ndarray, y: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `points` points: the minimum and the maximum of each of points/2 buckets of consecutive
    steps (spikes survive), in step order, the first and the last point always kept. y holds no NaN."""
    n = len(x)
    if n <= points:
        return x, y
    size = math.ceil(n / max(1, (points - 2) // 2))
    full = n // size
    grid = y[:full * size].reshape(full, size)  # (buckets, size): a view
    base = np.arange(full) * size
    low, high = base + grid.argmin(axis=1), base + grid.argmax(axis=1)
    if full * size < n:  # the last, partial bucket
        tail = y[full * size:]
        low = np.append(low, full * size + tail.argmin())
        high = np.append(high, full * size + tail.argmax())
    pairs = np.sort(np.stack([low, high], axis=1), axis=1).ravel()  # each bucket's two, in step order
    keep = np.concatenate([[0], pairs, [n - 1]])
    keep = keep[np.concatenate([[True], np.diff(keep) > 0])]
    return x[keep], y[keep]


def _rounded(y: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(y == 0, 1.0, 10.0 ** (DIGITS - 1 - np.floor(np.log10(np.abs(y)))))
        return np.where(np.isfinite(scale), np.round(y * scale) / scale, y)


def _label(key: str) -> str:
    return key.removeprefix("rewards/").removesuffix("/mean").removesuffix("_reward").removeprefix("completions/")


def wanted(run: logs.RunLogs, stage: str, keys: list[str]) -> list[str]:
    """The metric keys a plot shows for a run: "rewards/*" becomes each reward function's mean."""
    out = [k for k in keys if not k.endswith("/*")]
    for prefix in [k[:-1] for k in keys if k.endswith("/*")]:
        out += sorted(k for k in run.metrics.keys(stage) if k.startswith(prefix) and k.endswith("/mean"))
    return out


def series(run: logs.RunLogs, stage: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric, or of a rollout-derived one (thinking or answer tokens) from samples.jsonl."""
    if key not in ROLLOUT_KEYS:
        return run.metrics.series(stage, key)
    rows = run.spread.think_answer(stage, SERIES_POINTS)
    x = np.array([r["step"] for r in rows], dtype=float)
    y = np.array([r[key] for r in rows], dtype=float)
    return x[~np.isnan(y)], y[~np.isnan(y)]


def plotted(run_dirs: list[Path], stage: str, keys: list[str], points: int = TICK_POINTS) -> list[tuple]:
    """(series name, steps, values) of the given keys for each run, named by run when overlaid, downsampled
    to at most `points` in all (and SERIES_POINTS a series). A run's downsampled series is kept with its logs
    until they change, so a tick with one run writing among several recomputes that run's only."""
    found = [(run_dir, run, key) for run_dir in run_dirs for run in [logs.CACHE.get(run_dir)]
             for key in wanted(run, stage, keys)]
    each = max(16, min(SERIES_POINTS, points // max(len(found), 1)))
    out = []
    for run_dir, run, key in found:
        version = run.spread.version if key in ROLLOUT_KEYS else run.metrics.version
        memo = run.memo.get((stage, key, each))
        if memo is None or memo[0] != version:
            if len(run.memo) > 64:  # budgets of overlays no longer shown
                run.memo.clear()
            x, y = series(run, stage, key)
            x, y = downsample(x, y, each)
            memo = run.memo[(stage, key, each)] = (version, x.astype(np.int64), _rounded(y))
        if len(memo[1]):
            out.append((f"{run_dir.name} · {_label(key)}" if len(run_dirs) > 1 else _label(key), memo[1], memo[2]))
    return out


def frame(run_dirs: list[Path], stage: str, keys: list[str], points: int = TICK_POINTS) -> pd.DataFrame:
    """The plotted points in long format (step, value, series)."""
    parts = [pd.DataFrame({"step": x, "value": y, "series": name})
             for name, x, y in plotted(run_dirs, stage, keys, points)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"step": [], "value": [], "series": []})


def chart(title: str, y_title: str, parts: list[tuple]) -> AltairPlotData:
    """A Vega-Lite line chart of the series, drawn on a canvas; each series travels as two arrays (flattened
    in the browser), and the step axis zooms and pans with the mouse."""
    names = [name for name, _, _ in parts]
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json", "height": PLOT_HEIGHT, "title": title,
        "data": {"values": [{"series": name, "step": x, "value": y} for name, x, y in parts]},
        "transform": [{"flatten": ["step", "value"]}],
        "layer": [{
            "mark": {"type": "line", "clip": True, "strokeWidth": 1.2},
            "params": [{"name": "zoom", "select": {"type": "interval", "encodings": ["x"]}, "bind": "scales"}],
            "encoding": {
                "x": {"field": "step", "type": "quantitative", "title": "step", "axis": {"tickMinStep": 1, "format": ",d"}},
                "y": {"field": "value", "type": "quantitative", "title": y_title or None, "scale": {"zero": False}},
                "color": {"field": "series", "type": "nominal", "title": None,
                          "legend": {"orient": "bottom", "columns": 3, "labelLimit": 160},
                          "scale": {"domain": names, "range": names}},  # the theme replaces the range by its colours
            },
        }],
    }
    return AltairPlotData(chart="line", plot=orjson.dumps(spec, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def think_answer_rows(run_dir: Path, stage: str = "grpo") -> list[dict]:
    """Mean tokens inside <think> and in the answer for rollout steps spread through the run (at most
    SERIES_POINTS of them, and the last)."""
    return logs.CACHE.get(run_dir).spread.think_answer(stage, SERIES_POINTS)


def current_stage(run_dir: Path) -> str:
    return logs.CACHE.get(run_dir).metrics.last_stage or "sft"


def eval_frame(run_dirs: list[Path]) -> pd.DataFrame:
    rows = [(label.replace("/", " · "), result["accuracy"], run_dir.name) for run_dir in run_dirs
            for label, result in catalog.eval_results(run_dir).items()]
    return pd.DataFrame(rows, columns=["evaluated", "accuracy", "run"])


def summary(run_dir: Path | None) -> str:
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        return "No run selected. Launch one from the **Train** tab, or pick one above."
    status = runs.read_status(run_dir)
    info = catalog.RunInfo(run_dir, status, runs.effective_state(status))
    row = dict(zip(catalog.RUN_HEADERS, catalog.run_row(info)))
    stage = status.get("stage") or "-"
    points = logs.CACHE.get(run_dir).metrics.count
    eta = f" · ETA {row['ETA']}" if row["ETA"] else ""
    error = f"\n\n✗ {status['error']}" if status.get("error") else ""
    return (f"**{run_dir.name}** · <span class='rrft-state-{row['state']}'>{row['state']}</span> · stage {stage} · "
            f"step {row['step']}{eta} · <span id='monitor-points'>{points}</span> logged steps{error}")


# ---------------------------------------------------------------- export and actions

def _metric_lines(path: Path):
    """Every logged step of a metrics file, end-of-training summaries left out, read line by line."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for line in f:
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(row, dict) and "train_runtime" not in row:
                yield row


def export_csv(launcher: Launcher, names: list[str]) -> str | None:
    """All metrics of the chosen runs, every logged step, in one CSV (a column per metric), written under
    RUNS/.studio/exports. Streams: a first pass finds the columns, a second writes the rows."""
    paths = [(n, launcher.runs_dir / n / "metrics.jsonl") for n in names or [] if (launcher.runs_dir / n).is_dir()]
    keys = {"run": None}
    for _, path in paths:
        for row in _metric_lines(path):
            keys.update(dict.fromkeys(row))
    if len(keys) == 1:
        return None
    folder = launcher.studio_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(keys))
        writer.writeheader()
        for name, path in paths:
            for row in _metric_lines(path):
                writer.writerow({"run": name, **row})
    return str(out)


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


def log_text(launcher: Launcher, run_dir: Path) -> str:
    log = launcher.log_of(run_dir)
    if log is None:
        return "(not started from the studio: its output went to the terminal that started it)"
    return f"# {log}\n{tail(log)}"


# ---------------------------------------------------------------- the two events

def _changed(sent: dict, key: str, value, update):
    """The update when value differs from what this page was last sent (recorded in sent), else a skip."""
    if key in sent and sent[key] == value:
        return gr.skip()
    sent[key] = value
    return update() if callable(update) else update


def newest_run(runs_dir: Path) -> str | None:
    """The run the table lists first."""
    found = runs.list_runs(runs_dir)
    return found[0].name if found else None


def refresh_table(launcher: Launcher, name: str | None, chosen: list[str] | None, sent: dict | None) -> list:
    """Run pickers, runs table and log: from the status files only, so it is quick with many long runs."""
    launcher.reap()
    sent = dict(sent or {})
    infos = catalog.list_runs(launcher.runs_dir)
    names = [i.name for i in infos]
    # A value is sent only when it had to change: a tick must not undo what the user is picking.
    if name in names:
        run_update = _changed(sent, "run", names, lambda: gr.Dropdown(choices=names))
    else:
        name = names[0] if names else None
        run_update = gr.skip() if name is None and sent.get("run") == names else gr.Dropdown(choices=names, value=name)
        sent["run"] = names
    kept = [c for c in chosen or [] if c in names]
    if kept and kept == list(chosen):
        overlay_update = _changed(sent, "overlay", names, lambda: gr.Dropdown(choices=names))
    else:
        value = kept or ([name] if name else [])
        overlay_update = gr.skip() if not value and sent.get("overlay") == names else \
            gr.Dropdown(choices=names, value=value)
        sent["overlay"] = names
    rows = [catalog.run_row(i) for i in infos]
    log = log_text(launcher, launcher.runs_dir / name) if name else ""
    return [run_update, _changed(sent, "rows", rows, rows), overlay_update, _changed(sent, "log", log, log), sent]


def refresh_plots(launcher: Launcher, name: str | None, chosen: list[str] | None, stage_choice: str,
                  sent: dict | None) -> list:
    """Summary, plot note, one update per plot slot and the eval bars: each only if it changed."""
    sent = dict(sent or {})
    name = name or newest_run(launcher.runs_dir)  # the table's event, running beside this one, picks the same
    run_dir = launcher.runs_dir / name if name else None
    dirs = [launcher.runs_dir / c for c in (chosen or ([name] if name else []))]
    dirs = [d for d in dirs if runs.is_run(d)]
    loaded = [logs.CACHE.get(d) for d in dirs]
    shown = stage_choice if stage_choice != "auto" else (loaded[0].metrics.last_stage or "sft") if loaded else "sft"
    text = summary(run_dir)
    updates = [_changed(sent, "summary", text, text),
               _changed(sent, "note", (shown, bool(dirs)), f"*{NOTES[shown]}*" if dirs else "")]
    specs = PLOTS[shown]
    for slot in range(SLOTS):
        spec = specs[slot] if slot < len(specs) and dirs else None
        if spec is None:
            updates.append(_changed(sent, f"plot{slot}", None, lambda: gr.update(visible=False)))
            continue
        reads_samples = any(k in ROLLOUT_KEYS for k in spec[1])
        version = (spec[0], shown, tuple(d.name for d in dirs),
                   tuple((r.metrics.version, r.spread.version if reads_samples else None) for r in loaded))
        if sent.get(f"plot{slot}") == version:
            updates.append(gr.skip())
            continue
        parts = plotted(dirs, shown, spec[1], TICK_POINTS // len(specs))
        sent[f"plot{slot}"] = version
        # gr.update: a plain dict; a component instance per update costs Gradio a signature inspection or two
        updates.append(gr.update(value=chart(spec[0], spec[2], parts), visible=True) if parts
                       else gr.update(visible=False))
    evals = eval_frame(dirs)
    order = list(dict.fromkeys(evals["evaluated"]))  # base, then each stage, as the run made them
    updates.append(_changed(sent, "evals", evals.to_json(), lambda: gr.update(value=evals, sort=order,
                                                                                visible=bool(len(evals)))))
    return [*updates, sent]


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
                plots.append(gr.Plot(visible=False, show_label=False, elem_id=f"monitor-plot-{i}",
                                     elem_classes=["rrft-plot"]))
    accuracy = gr.BarPlot(x="evaluated", y="accuracy", color="run", title="Eval accuracy", height=230,
                          y_lim=[0, 1], visible=False, elem_id="monitor-eval")
    with gr.Accordion("Log of the run's process", open=False):
        log = gr.Code(language=None, lines=14, max_lines=14, interactive=False, elem_id="monitor-log")
    timer = gr.Timer(1.0, active=False)
    table_sent, plots_sent = gr.State({}), gr.State({})  # what this page was last sent

    table_io = dict(fn=lambda *a: refresh_table(launcher, *a), inputs=[run, overlay, table_sent],
                    outputs=[run, table, overlay, log, table_sent], show_progress="hidden")
    plots_io = dict(fn=lambda *a: refresh_plots(launcher, *a), inputs=[run, overlay, stage, plots_sent],
                    outputs=[status_line, note_plots, *plots, accuracy, plots_sent], show_progress="hidden")
    # Two events side by side: the table is quick, the plots may first read a large file.
    for trigger in (tab.select, timer.tick):  # on the tab's opening at once, not at the timer's first tick
        trigger(**table_io)
        trigger(**plots_io)
    run.input(lambda n: [n], run, overlay).then(**plots_io).then(**table_io)
    stage.change(**plots_io, trigger_mode="always_last")  # runs picked quickly one after another: the last counts
    overlay.input(**plots_io, trigger_mode="always_last")
    stop.click(lambda n: _act(launcher, n, "stop"), run, note)
    resume.click(lambda n: _act(launcher, n, "resume"), run, note)
    export.click(lambda names: gr.File(value=export_csv(launcher, names), visible=True), overlay, exported)
    return timer
