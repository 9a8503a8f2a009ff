"""The Runs / monitor tab: every run with its state, stage, step and the whole run's ETA (eta.py); stop, resume,
rename and delete (a run that is not live, after a confirmation); live plots of metrics.jsonl (and of
samples.jsonl: thinking vs answer tokens, per-step reward bands) that stream while a run trains and stay after
it, with a smoothing control that keeps the raw series; several runs overlaid; a warning banner over a live
GRPO run whose groups stopped teaching anything (rl_series.banner_markdown); the metrics exported as CSV.
A run launched from the Train tab is selected as soon as its directory exists.

Built for long runs (100,000 logged steps, 50 runs in the folder): the runs table is its own event, read from
the status files only; the plots come from logs.py, which reads only what a file gained since the last look,
cut down by charts.py to what a plot about 450 pixels wide can show, and a timer tick sends an output only
when it changed since this page last got it, so an idle tick sends almost nothing; a live run's plots are
redrawn every LIVE_REDRAW_S seconds, not on every tick. The plots are Vega-Lite
charts drawn on a canvas (gr.Plot): gr.LinePlot adds an SVG hover point for every data point, which takes
the browser about half a millisecond each. The export writes every logged step, not the plotted ones. The
timer only ticks while this tab is open.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import gradio as gr
import numpy as np
import orjson
import pandas as pd

from .. import runs, workbench
from ..config import ConfigError
from . import catalog, eta, logs, rl_series
from .charts import (AXES, BANDS, NOTES, PLOTS, ROLLOUT_KEYS, SERIES_POINTS, SLOTS, TICK_POINTS, AltairPlotData,
                     band_chart, bands, chart, downsample, frame, markers, plotted, restamped)
from .launcher import Launcher, tail

__all__ = ["PLOTS", "downsample", "frame", "plotted", "build"]  # the plots' helpers live in charts.py
COLUMNS = 3
BANNER_THRESHOLD, BANNER_STEPS = 0.9, 10  # zero-spread share, for this many logged GRPO steps in a row
# A live run's new lines redraw its plots at most this often (the summary line follows every tick): redrawing a
# dozen Vega charts of four overlaid runs kept a 2-core machine's browser busy for most of each 1-second tick,
# and a click on another tab waited behind it (benchmarks/studio_load.py). A change of run, stage, overlay or
# smoothing redraws at once.
LIVE_REDRAW_S = 5.0
# A Vega chart drawn while its tab is hidden (the answer to a tick that arrived after a switch to Rollouts) gets
# no width, and Gradio's resize observer does not draw it again. When the monitor shows again, this script looks
# for a plot whose canvas is much narrower than its box and, if it finds one, asks for every plot again through
# the hidden redraw box (its change redraws them, see redraw()).
REDRAW_JS = """() => {
  const collapsed = () => Array.from(document.querySelectorAll('.rrft-plot')).some((plot) => {
    const box = plot.querySelector('.altair'), canvas = plot.querySelector('canvas');
    return plot.offsetParent && box && canvas && canvas.getBoundingClientRect().width < box.offsetWidth / 2;
  });
  let tries = 0;
  const look = () => {
    const tab = document.querySelector('#tab-monitor');
    if (!tab || !tab.offsetParent) { if (++tries < 40) setTimeout(look, 50); return; }
    if (!collapsed()) return;
    const box = document.querySelector('#monitor-redraw textarea, #monitor-redraw input');
    if (!box) return;
    box.value = String(Date.now());
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  setTimeout(look, 100);
}"""


def think_answer_rows(run_dir: Path, stage: str = "grpo") -> list[dict]:
    """Mean tokens inside <think> and in the answer for rollout steps spread through the run (at most
    SERIES_POINTS of them, and the last)."""
    return logs.CACHE.get(run_dir).spread.think_answer(stage, SERIES_POINTS)


def current_stage(run_dir: Path) -> str:
    return logs.CACHE.get(run_dir).metrics.last_stage or "sft"


def eval_frame(run_dirs: list[Path]) -> pd.DataFrame:
    """One bar per evaluation and run: with several runs each bar's label names its run, and the bars of one
    evaluation stand side by side (one x value shared by several runs would stack their accuracies). Each label
    ends with its accuracy: a bar of 0% (the untrained base model's) has no height to see."""
    found = [(label.replace("/", " · "), result["accuracy"], run_dir.name) for run_dir in run_dirs
             for label, result in catalog.eval_results(run_dir).items()]
    labels = list(dict.fromkeys(label for label, _, _ in found))  # base, then each stage, as the runs made them
    found.sort(key=lambda row: labels.index(row[0]))  # stable: the runs in their order within an evaluation
    rows = [(f"{label} · {run}" if len(run_dirs) > 1 else label, accuracy, run) for label, accuracy, run in found]
    rows = [(f"{label} ({100 * accuracy:.0f}%)", accuracy, run) for label, accuracy, run in rows]
    return pd.DataFrame(rows, columns=["evaluated", "accuracy", "run"])


def run_row(info: catalog.RunInfo) -> list:
    """One row of the runs table: run, tags, state, stage, step, ETA, accuracy per evaluation, backend, updated."""
    s = info.status
    step = f"{s.get('step', 0)}/{s['max_steps']}" if s.get("max_steps") else str(s.get("step", ""))
    evals = catalog.eval_results(info.path)
    first_split = next((k.split("/")[1] for k in evals), None)  # one split keeps the row short
    accuracy = " → ".join(f"{k.split('/')[0]} {100 * v['accuracy']:.0f}%" for k, v in evals.items()
                          if k.split("/")[1] == first_split)
    updated = time.strftime("%m-%d %H:%M:%S", time.localtime(s["updated"])) if s.get("updated") else ""
    return [info.name, " ".join(runs.read_notes(info.path)["tags"]), info.state, s.get("stage") or "", step,
            eta_text(info), accuracy, s.get("backend", ""), updated]


def eta_text(info: catalog.RunInfo) -> str:
    """The whole run's time left, for a live run (eta.py); empty otherwise."""
    if info.state not in ("running", "stopping"):
        return ""
    estimate = eta.estimate(info.path, info.status)
    return estimate.text() if estimate else ""


RUN_HEADERS = ["run", "tags", "state", "stage", "step", "ETA", "accuracy", "backend", "updated"]


def summary(run_dir: Path | None) -> str:
    if run_dir is None or not runs.is_run(run_dir):
        return "No run selected. Launch one from the **Train** tab, or pick one above."
    status = runs.read_status(run_dir)
    info = catalog.RunInfo(run_dir, status, runs.effective_state(status))
    row = dict(zip(RUN_HEADERS, run_row(info)))
    stage = status.get("stage") or "-"
    points = logs.CACHE.get(run_dir).metrics.count
    left = f" · ETA <span id='monitor-eta'>{row['ETA']}</span> (the whole run)" if row["ETA"] else ""
    error = f"\n\n✗ {status['error']}" if status.get("error") else ""
    return (f"**{run_dir.name}** · <span class='rrft-state-{row['state']}'>{row['state']}</span> · stage {stage} · "
            f"step {row['step']}{left} · <span id='monitor-points'>{points}</span> logged steps{error}")


def banner(run_dir: Path | None) -> str:
    """The warning banner of a live run: its last BANNER_STEPS logged GRPO rows, judged by rl_series."""
    if run_dir is None or not runs.is_alive(runs.read_status(run_dir)):
        return ""
    metrics = logs.CACHE.get(run_dir).metrics
    memo = logs.CACHE.get(run_dir).memo.get("banner")
    if memo and memo[0] == metrics.version:
        return memo[1]
    columns = metrics.stages.get("grpo", {})
    keys = [k for k in columns if k in ("frac_reward_zero_std", f"{workbench.SAMPLING_GAP}/mean")
            or (k.startswith("rewards/") and k.endswith(("/mean", "/std")))]
    last = {k: columns[k].values()[-BANNER_STEPS:] for k in ["step", *keys]} if columns else {"step": []}
    rows = [{"stage": "grpo", "step": int(step), **{k: float(last[k][i]) for k in keys if not np.isnan(last[k][i])}}
            for i, step in enumerate(last["step"])]
    text = rl_series.banner_markdown(rows, BANNER_THRESHOLD, BANNER_STEPS)
    logs.CACHE.get(run_dir).memo["banner"] = (metrics.version, text)
    return text


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
    paths = [(n, runs.metrics_path(launcher.runs_dir / n)) for n in names or [] if (launcher.runs_dir / n).is_dir()]
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


def ask(launcher: Launcher, name: str | None, action: str, new_name: str = "") -> tuple:
    """(confirmation row, its question, the pending action, note): refused at once when it cannot be done."""
    hidden = gr.update(visible=False)
    if not name:
        return hidden, "", None, "Pick a run first."
    try:
        run_dir = launcher.inside(launcher.runs_dir / name)
        status = runs.read_status(run_dir)
        if runs.is_alive(status):
            raise ConfigError(f"{name} is {runs.effective_state(status)}: stop it before you {action} it")
        if action == "rename" and not runs.RUN_NAME.match(new_name.strip()):
            raise ConfigError(f"new name {new_name.strip()!r}: use letters, digits, '-', '_' or '.', starting with "
                              "a letter or digit")
    except ConfigError as e:
        return hidden, "", None, f"✗ {e}"
    question = (f"Delete **{name}** and every file in it (checkpoints, logs, evaluations)? This cannot be undone."
                if action == "delete" else f"Rename **{name}** to **{new_name.strip()}**?")
    return gr.update(visible=True), question, {"action": action, "run": name, "to": new_name.strip()}, ""


RENAMED: dict[str, str] = {}  # old name -> new: a tick that left with the old name finds the run again


def confirmed(launcher: Launcher, pending: dict | None) -> tuple:
    """Do the confirmed action: (confirmation row, note, the run picker, the overlay picker, table state reset)."""
    hidden = gr.update(visible=False)
    if not pending:
        return hidden, "", gr.skip(), gr.skip(), {}
    try:
        run_dir = launcher.inside(launcher.runs_dir / pending["run"])
        if pending["action"] == "delete":
            runs.delete(run_dir)
            note, value = f"Deleted {pending['run']}.", None
        else:
            value = runs.rename(run_dir, pending["to"]).name
            RENAMED[pending["run"]] = value
            note = f"Renamed {pending['run']} to {value}."
    except (ConfigError, OSError) as e:
        return hidden, f"✗ {e}", gr.skip(), gr.skip(), {}
    names = [i.name for i in runs.list_runs(launcher.runs_dir)]
    value = value or (names[0] if names else None)
    # A picker takes only a value among its choices, and the page's events that left before this answer arrives
    # still carry the old name: it stays a choice until the page has moved off it (refresh_table drops it).
    kept = [*names, pending["run"]]
    return (hidden, note, gr.Dropdown(choices=kept, value=value),
            gr.Dropdown(choices=kept, value=[value] if value else []), {})


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


def launched_run(infos: list[catalog.RunInfo], pid: int | None) -> str | None:
    """The run the Train tab's last launch (its pid) created, once its directory exists."""
    if not pid:
        return None
    return next((i.name for i in infos if pid in (i.status.get("pid"), i.status.get("launcher_pid"))), None)


def _follow(infos: list[catalog.RunInfo], name: str | None, pid: int | None, sent: dict) -> tuple[str | None, bool]:
    """(the run to show, whether it changed): the run of a new launch, once, then the user's pick."""
    launched = launched_run(infos, pid)
    if launched and sent.get("followed") != pid:
        sent["followed"] = pid
        return launched, launched != name
    return name, False


def matches(info: catalog.RunInfo, text: str) -> bool:
    """Whether a run passes the table's filter: every word in its name, state, stage, tags or note."""
    words = (text or "").lower().split()
    if not words:
        return True
    notes = runs.read_notes(info.path)
    hay = f"{info.name} {info.state} {info.status.get('stage') or ''} {' '.join(notes['tags'])} {notes['note']}".lower()
    return all(w in hay for w in words)


def notes_of(launcher: Launcher, name: str | None) -> tuple[str, str]:
    """The selected run's tags (as typed: space-separated) and note, for the boxes that edit them."""
    if not name:
        return "", ""
    try:
        notes = runs.read_notes(launcher.inside(launcher.runs_dir / name))
    except ConfigError:
        return "", ""
    return " ".join(notes["tags"]), notes["note"]


def save_notes(launcher: Launcher, name: str | None, tags: str, note: str) -> str:
    """Write the selected run's tags and note; the line that says so, or what is wrong (nothing written)."""
    if not name:
        return "Pick a run first."
    try:
        saved = runs.write_notes(launcher.inside(launcher.runs_dir / name), runs.parse_tags(tags), note)
    except ConfigError as e:
        return f"✗ {e}"
    except OSError as e:
        return f"✗ could not write {name}'s notes: {e}"
    tagged = f"tags {', '.join(saved['tags'])}" if saved["tags"] else "no tags"
    return f"Saved {name}'s {tagged} and {'its note' if saved['note'] else 'no note'}."


def refresh_table(launcher: Launcher, name: str | None, chosen: list[str] | None, sent: dict | None,
                  follow: int | None = None, filter_text: str = "") -> list:
    """Run pickers, runs table, log, and the Stop and Resume buttons (off for a finished run): from the status
    files only, so it is quick with many long runs."""
    launcher.reap()
    sent = dict(sent or {})
    infos = catalog.list_runs(launcher.runs_dir)
    names, given = [i.name for i in infos], name
    name, moved = _follow(infos, RENAMED.get(name, name) if name not in names else name, follow, sent)
    # A value is sent only when it had to change: a tick must not undo what the user is picking. A run gone
    # (deleted, renamed) stays a choice in the answer that moves the page off it: events the page sent before
    # that answer arrived carry its name, and a picker takes only a value among its choices.
    if name == given and name in names and not moved:
        run_update = _changed(sent, "run", names, lambda: gr.Dropdown(choices=names))
    else:
        shown = [*names, *([given] if given and given not in names else [])]
        name = name if name in names else (names[0] if names else None)
        run_update = gr.skip() if name is None and sent.get("run") == shown else gr.Dropdown(choices=shown, value=name)
        sent["run"] = shown
    kept = [c for c in chosen or [] if c in names]
    if kept and kept == list(chosen) and not moved:
        overlay_update = _changed(sent, "overlay", names, lambda: gr.Dropdown(choices=names))
    else:
        shown = [*names, *(c for c in chosen or [] if c not in names)]
        value = [name] if moved else (kept or ([name] if name else []))
        overlay_update = gr.skip() if not value and sent.get("overlay") == shown else \
            gr.Dropdown(choices=shown, value=value)
        sent["overlay"] = shown
    rows = [run_row(i) for i in infos if matches(i, filter_text)]
    log = log_text(launcher, launcher.runs_dir / name) if name else ""
    finished = next((i.state == "finished" for i in infos if i.name == name), False)
    buttons = _changed(sent, "finished", finished, lambda: gr.update(interactive=not finished))
    return [run_update, _changed(sent, "rows", rows, rows), overlay_update, _changed(sent, "log", log, log),
            buttons, buttons, sent]


def refresh_plots(launcher: Launcher, name: str | None, chosen: list[str] | None, stage_choice: str,
                  sent: dict | None, smoothing: float = 0.0, follow: int | None = None, axis: str = "step") -> list:
    """Summary, banner, plot note, one update per plot slot and the eval bars: each only if it changed."""
    sent, now = dict(sent or {}), time.monotonic()
    infos = catalog.list_runs(launcher.runs_dir) if follow else []
    name, moved = _follow(infos, name, follow, sent)
    name = name or newest_run(launcher.runs_dir)  # the table's event, running beside this one, picks the same
    run_dir = launcher.runs_dir / name if name else None
    dirs = [launcher.runs_dir / c for c in ([name] if moved else chosen or ([name] if name else []))]
    dirs = [d for d in dirs if runs.is_run(d)]
    loaded = [logs.CACHE.get(d) for d in dirs]
    shown = stage_choice if stage_choice != "auto" else (loaded[0].metrics.last_stage or "sft") if loaded else "sft"
    smoothing, axis = float(smoothing or 0), axis if axis in AXES else "step"
    text, warning = summary(run_dir), banner(run_dir) if run_dir and runs.is_run(run_dir) else ""
    resumes = runs.read_status(dirs[0]).get("resumes", []) if len(dirs) == 1 else []
    updates = [_changed(sent, "summary", text, text),
               _changed(sent, "banner", warning, lambda: gr.update(value=warning, visible=bool(warning))),
               _changed(sent, "note", (shown, bool(dirs)), f"*{NOTES[shown]}*" if dirs else "")]
    specs = PLOTS[shown]
    for slot in range(SLOTS):
        spec = specs[slot] if slot < len(specs) and dirs else None
        if spec is None:
            updates.append(_changed(sent, f"plot{slot}", None, lambda: gr.update(visible=False)))
            continue
        reads_samples = any(k in ROLLOUT_KEYS or k == BANDS for k in spec[1])
        what = (spec[0], shown, tuple(d.name for d in dirs), smoothing, repr(resumes), axis)
        data = tuple((r.metrics.version, r.spread.version if reads_samples else None) for r in loaded)
        last = sent.get(f"plot{slot}")  # (what, data, when) this page was last sent
        if last and last[0] == what and (last[1] == data or now - last[2] < LIVE_REDRAW_S):
            updates.append(gr.skip())  # unchanged, or new lines of a live run drawn a moment ago
            continue
        sent[f"plot{slot}"] = (what, data, now)
        updates.append(_plot(dirs, shown, spec, smoothing, markers(dirs, shown, resumes, axis), len(specs), axis))
    evals = eval_frame(dirs)
    order = list(dict.fromkeys(evals["evaluated"]))  # base, then each stage, as the run made them
    updates.append(_changed(sent, "evals", evals.to_json(), lambda: gr.update(value=evals, sort=order,
                                                                                visible=bool(len(evals)))))
    return [*updates, sent]


def redraw(launcher: Launcher, name: str | None, chosen: list[str] | None, stage_choice: str, sent: dict | None,
           smoothing: float = 0.0, follow: int | None = None, axis: str = "step") -> list:
    """refresh_plots with every plot sent again, each spec made new (the page draws a plot again only when its
    spec changed): for the plots a hidden tab left without a width."""
    sent = {k: v for k, v in (sent or {}).items() if not k.startswith("plot")}
    out = refresh_plots(launcher, name, chosen, stage_choice, sent, smoothing, follow, axis)
    stamp = time.time_ns()
    for update in out[3:3 + SLOTS]:
        if isinstance(update, dict) and isinstance(update.get("value"), AltairPlotData):
            update["value"] = restamped(update["value"], stamp)
    return out


def _plot(dirs: list[Path], stage: str, spec: tuple, smoothing: float, rules: list[dict], count: int,
          axis: str = "step") -> dict:
    """One plot slot's update (gr.update: a plain dict; a component instance per update costs Gradio a
    signature inspection or two)."""
    title, keys, y_title = spec
    x_title = "step (stages one after the other)" if stage == "run" and axis == "step" else AXES[axis]
    if keys == [BANDS]:
        rows = bands(dirs, stage, axis)
        return gr.update(value=band_chart(title, y_title, rows, rules, x_title=x_title), visible=True) if rows \
            else gr.update(visible=False)
    parts = plotted(dirs, stage, keys, TICK_POINTS // count, smoothing, axis)
    # in GRPO plots a point opens its step's rollouts
    return gr.update(value=chart(title, y_title, parts, rules, stage == "grpo", x_title), visible=True) if parts \
        else gr.update(visible=False)


def build(launcher: Launcher, tab: gr.Tab, timer: gr.Timer, follow: gr.State | None = None) -> gr.Dropdown:
    """Lay out the tab; its plots and table follow `timer`, which the app switches on only while the tab is
    shown. follow: the Train tab's last launch (its pid), whose run is selected once it exists. Returns the run
    picker (the Rewards tab follows it)."""
    follow = follow if follow is not None else gr.State(0)
    with gr.Row():
        run = gr.Dropdown([], label="Run", scale=4, elem_id="monitor-run",
                          info="Stop saves a checkpoint at the end of the current step; Resume continues from it.")
        with gr.Column(scale=1, min_width=160):
            stop = gr.Button("■ Stop", variant="stop", size="md", elem_id="monitor-stop")
            resume = gr.Button("▶ Resume", size="md", elem_id="monitor-resume")
    warning = gr.Markdown(visible=False, elem_id="monitor-banner", elem_classes=["rrft-banner"])
    note = gr.Markdown(elem_id="monitor-note")
    status_line = gr.Markdown(summary(None), elem_id="monitor-summary")
    with gr.Row(equal_height=True):
        filter_text = gr.Textbox(label="Filter runs", placeholder="words of the name, state, stage, tags or note",
                                 scale=3, elem_id="monitor-filter")
        new_name = gr.Textbox(label="New name for the selected run", scale=3, elem_id="monitor-new-name")
        with gr.Column(scale=1, min_width=150):
            rename = gr.Button("Rename", size="md", elem_id="monitor-rename")
            delete = gr.Button("Delete…", size="md", variant="stop", elem_id="monitor-delete")
    with gr.Row(visible=False, elem_id="monitor-confirm") as confirm_row:
        question = gr.Markdown(elem_id="monitor-question")
        yes = gr.Button("Yes, do it", variant="stop", scale=0, min_width=120, elem_id="monitor-yes")
        cancel = gr.Button("Cancel", scale=0, min_width=100, elem_id="monitor-cancel")
    table = gr.Dataframe(headers=RUN_HEADERS, interactive=False, max_height=220, elem_id="monitor-runs")
    with gr.Accordion("Tags and note of the selected run", open=False, elem_id="monitor-notes"):
        with gr.Row(equal_height=True):
            tags = gr.Textbox(label="Tags", placeholder="e.g. baseline lr-sweep (commas or spaces between)", scale=2,
                              elem_id="monitor-tags")
            note_text = gr.Textbox(label="Note", placeholder="what this run tried, what it showed", lines=2, scale=4,
                                   max_length=runs.MAX_NOTE, elem_id="monitor-note-text")
            save = gr.Button("Save", size="md", scale=0, min_width=100, elem_id="monitor-notes-save")
    with gr.Row():
        overlay = gr.Dropdown([], multiselect=True, label="Plot these runs (overlay)", scale=4,
                              elem_id="monitor-overlay")
        stage = gr.Radio(["auto", "sft", "grpo", "run"], value="auto", label="Stage (run: the whole run)", scale=2,
                         elem_id="monitor-stage")
        smoothing = gr.Slider(0, 0.99, value=0, step=0.01, label="Smoothing (raw kept, faint)", scale=2,
                              elem_id="monitor-smoothing")
        axis = gr.Radio(list(AXES), value="step", label="X axis (wheel: zoom, drag: pan, double click: reset)",
                        scale=2, elem_id="monitor-axis")
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
    redraw_box = gr.Textbox(visible="hidden", elem_id="monitor-redraw")  # REDRAW_JS writes it
    table_sent, plots_sent = gr.State({}), gr.State({})  # what this page was last sent
    pending = gr.State(None)  # the rename or delete waiting for its confirmation

    # Each in one queue, whatever starts it (a tick, the tab, a pick, a rename or delete): in the order sent.
    table_io = dict(fn=lambda n, c, s, f, t: refresh_table(launcher, n, c, s, f, t),
                    inputs=[run, overlay, table_sent, follow, filter_text],
                    outputs=[run, table, overlay, log, stop, resume, table_sent], show_progress="hidden",
                    concurrency_id="monitor-table")
    plots_io = dict(fn=lambda n, c, st, s, sm, f, a: refresh_plots(launcher, n, c, st, s, sm, f, a),
                    inputs=[run, overlay, stage, plots_sent, smoothing, follow, axis],
                    outputs=[status_line, warning, note_plots, *plots, accuracy, plots_sent], show_progress="hidden",
                    concurrency_id="monitor-plots")
    # Two events side by side: the table is quick, the plots may first read a large file.
    for trigger in (tab.select, timer.tick):  # on the tab's opening at once, not at the timer's first tick
        trigger(**table_io)
        trigger(**plots_io)
    tab.select(None, None, None, js=REDRAW_JS)
    redraw_box.change(**{**plots_io, "fn": lambda n, c, st, s, sm, f, a: redraw(launcher, n, c, st, s, sm, f, a)})
    run.input(lambda n: [n], run, overlay).then(**plots_io).then(**table_io)
    for control in (stage, smoothing, axis):  # quick changes one after another: the last counts
        control.change(**plots_io, trigger_mode="always_last")
    overlay.input(**plots_io, trigger_mode="always_last")
    filter_text.change(**table_io, trigger_mode="always_last")
    stop.click(lambda n: _act(launcher, n, "stop"), run, note)
    resume.click(lambda n: _act(launcher, n, "resume"), run, note)
    rename.click(lambda n, to: ask(launcher, n, "rename", to or ""), [run, new_name], [confirm_row, question, pending, note])
    delete.click(lambda n: ask(launcher, n, "delete"), run, [confirm_row, question, pending, note])
    cancel.click(lambda: (gr.update(visible=False), None), None, [confirm_row, pending])
    # The plots first: a tick that left with the old name is answered before the table's answer drops it.
    yes.click(lambda p: confirmed(launcher, p), pending, [confirm_row, note, run, overlay, table_sent]).then(
        **plots_io).then(**table_io)
    export.click(lambda names: gr.File(value=export_csv(launcher, names), visible=True), overlay, exported)
    run.change(lambda n: notes_of(launcher, n), run, [tags, note_text], show_progress="hidden")
    def saved(name, typed_tags, typed_note):
        """The line that says what was saved and, once saved, the boxes as saved (the tags as parsed)."""
        said = save_notes(launcher, name, typed_tags, typed_note)
        return said, *(notes_of(launcher, name) if said.startswith("Saved ") else (gr.skip(), gr.skip()))

    save.click(saved, [run, tags, note_text], [note, tags, note_text], api_name="save_notes").then(**table_io)
    return run
