"""The monitor's plots: which metrics each stage shows, their series cut down to what a plot can draw, and
the Vega-Lite charts that carry them.

A series is a metric logged in metrics.jsonl, or one derived from its columns (seconds per step and tokens
per second from the rows' time and num_tokens), or one read from rollouts spread through samples.jsonl
(thinking vs answer tokens, the per-step reward bands). Each is cut to at most SERIES_POINTS: the minimum and
the maximum of each bucket of steps, so spikes survive. With smoothing on, the raw series stays, faint, under
its smoothed line (rl_series.smooth: TensorBoard's debiased moving average), computed on the raw steps, or on
bucket means with the weight per bucket that matches the weight per step when a series is longer than a plot.
The "run" view puts the stages one after the other on one step axis, a rule where each stage starts; a
resumed stage has a rule where it resumed (status.json's resumes). In GRPO plots every point links to that
step's rollouts: a click opens the Rollouts tab there (the page's script reads the link, see ui.py). The x
axis is the step, the minutes since the run started, or the tokens seen (AXES), each step placed between the
logged rows' time or num_tokens. Overlaid runs get a colour each and their metrics a dash each, in legends
under the plot that show whole run names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson
import pandas as pd
from gradio.components.plot import AltairPlotData

from . import logs, rl_series

BANDS = "reward_bands"  # the per-step quantiles of the rollouts' rewards, drawn as bands
# (title, metric keys, y title). "rewards/*" expands to every per-function reward mean.
SPEED = [
    ("Step time", ["seconds_per_step"], "seconds"),
    ("Throughput", ["tokens_per_second"], "tokens/s"),
    ("GPU memory (allocated, peak)", ["gpu_memory_gb", "gpu_memory_peak_gb"], "GiB"),
]
PLOTS = {
    "grpo": [
        ("Reward: total and per function", ["reward", "rewards/*"], "reward"),
        ("Rollout rewards: median, 25–75%, 10–90%", [BANDS], "reward"),
        ("Reward spread: std, share of zero-spread groups", ["reward_std", "frac_reward_zero_std"], ""),
        ("Dynamic sampling: prompts drawn and kept a step", ["dynamic_sampling/drawn", "dynamic_sampling/kept"],
         "prompts"),
        ("Completion length", ["completions/mean_length", "completions/min_length", "completions/max_length"],
         "tokens"),
        ("Thinking vs answer tokens (rollouts)", ["think_tokens", "answer_tokens"], "tokens"),
        ("Reasoning that leads to the answer (rollouts)", ["consistency"], "share"),
        ("Clipped ratio (cut at max length)", ["completions/clipped_ratio"], "share"),
        ("KL to the reference", ["kl"], "kl"),
        ("Sampling gap: trainer vs sampler log-probabilities", ["sampling/sampling_logp_difference/mean",
                                                              "sampling/sampling_logp_difference/max"], "nats"),
        ("Entropy", ["entropy"], "nats"),
        ("Loss", ["loss"], "loss"),
        ("Learning rate", ["learning_rate"], "lr"),
        *SPEED,
    ],
    "sft": [
        ("Loss", ["loss"], "loss"),
        ("Token accuracy", ["mean_token_accuracy"], "share"),
        ("Entropy", ["entropy"], "nats"),
        ("Learning rate", ["learning_rate"], "lr"),
        ("Gradient norm", ["grad_norm"], "norm"),
        *SPEED,
    ],
    "run": [
        ("Loss", ["loss"], "loss"),
        ("Learning rate", ["learning_rate"], "lr"),
        ("Gradient norm", ["grad_norm"], "norm"),
        ("Entropy", ["entropy"], "nats"),
        *SPEED,
    ],
}
NOTES = {
    "grpo": "A zero-spread group (all its completions scored the same) gives no learning signal. A GRPO loss "
            "near 0 is normal: advantages average to 0 within each group; watch reward and KL. Thinking vs "
            "answer tokens split each logged rollout's length by its characters. Click a point to see that "
            "step's rollouts.",
    "sft": "Loss and token accuracy are over the supervised (assistant) tokens only.",
    "run": "The stages one after the other on one step axis; a rule where each starts, and where a stage resumed.",
}
ROLLOUT_KEYS = ("think_tokens", "answer_tokens")
DERIVED = {"seconds_per_step": ("time",), "tokens_per_second": ("time", "num_tokens")}
SLOTS = max(len(p) for p in PLOTS.values())
TICK_POINTS = 16_000  # points sent across the visible plots, at most (about 0.3 MB of JSON)
SERIES_POINTS = 1_000  # at most, per series: a minimum and a maximum per pixel column of a 500-pixel plot
DIGITS = 5  # significant digits sent: more than a plot can show
PLOT_HEIGHT = 170
LINK = "#rrft-rollouts="  # a point's link: LINK + run + "@" + step
# The x axis a plot can take (wandb's choice): the logged step, the time since the run's first logged line, or
# the tokens the stage has trained on (TRL's cumulative num_tokens; in the run view, the stages' added up).
AXES = {"step": "step", "time": "minutes since the run started", "tokens": "tokens seen"}
# Overlaid runs: a colour per run, a dash per metric. One run: a colour per metric.
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569",
           "#ea580c"]
DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [1, 3], [12, 4]]
LEGEND_ROW = 16  # pixels a legend line adds to a plot's height


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


def smoothed(x: np.ndarray, y: np.ndarray, weight: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed series (rl_series.smooth) at most `points` long: over the raw values, or over the means of
    buckets of consecutive steps with weight**bucket per bucket (the same decay per step)."""
    n = len(y)
    if n <= points:
        return x, np.asarray(rl_series.smooth(y.tolist(), weight))
    size = math.ceil(n / points)
    full = n // size
    means = y[:full * size].reshape(full, size).mean(axis=1)  # (buckets,)
    ends = x[size - 1:full * size:size]
    if full * size < n:
        means, ends = np.append(means, y[full * size:].mean()), np.append(ends, x[-1])
    return ends, np.asarray(rl_series.smooth(means.tolist(), weight ** size))


def _rounded(y: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(y == 0, 1.0, 10.0 ** (DIGITS - 1 - np.floor(np.log10(np.abs(y)))))
        return np.where(np.isfinite(scale), np.round(y * scale) / scale, y)


def label(key: str) -> str:
    return key.removeprefix("rewards/").removesuffix("/mean").removesuffix("_reward").removeprefix("completions/")


def wanted(run: logs.RunLogs, stage: str, keys: list[str]) -> list[str]:
    """The metric keys a plot shows for a run: "rewards/*" becomes each reward function's mean."""
    out = [k for k in keys if not k.endswith("/*")]
    for prefix in [k[:-1] for k in keys if k.endswith("/*")]:
        out += sorted(k for k in run.metrics.keys(stage) if k.startswith(prefix) and k.endswith("/mean"))
    return out


def derived(metrics: logs.Metrics, stage: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per step (the time between logged rows over the steps between them) or tokens per second (the
    growth of TRL's cumulative num_tokens over that time)."""
    columns = metrics.stages.get(stage, {})
    if any(k not in columns for k in DERIVED[key]):
        return np.empty(0), np.empty(0)
    steps, times = columns["step"].values(), columns["time"].values()
    amount = steps if key == "seconds_per_step" else columns["num_tokens"].values()
    keep = ~np.isnan(times) & ~np.isnan(amount)
    steps, times, amount = steps[keep], times[keep], amount[keep]
    d_time, d_amount = np.diff(times), np.diff(amount)
    ok = (d_amount > 0) & (d_time > 0)
    values = d_time[ok] / d_amount[ok] if key == "seconds_per_step" else d_amount[ok] / d_time[ok]
    return steps[1:][ok], values


def series(run: logs.RunLogs, stage: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric of a stage ("run": the stages one after the other), derived or not, or of
    a rollout-derived one (thinking or answer tokens) from samples.jsonl."""
    if stage == "run":
        xs, ys = [], []
        for first, name in stage_starts(run):
            x, y = series(run, name, key)
            xs.append(x + first)
            ys.append(y)
        return (np.concatenate(xs), np.concatenate(ys)) if xs else (np.empty(0), np.empty(0))
    if key in DERIVED:
        return derived(run.metrics, stage, key)
    if key not in ROLLOUT_KEYS:
        return run.metrics.series(stage, key)
    rows = run.spread.think_answer(stage, SERIES_POINTS)
    x = np.array([r["step"] for r in rows], dtype=float)
    y = np.array([r[key] for r in rows], dtype=float)
    return x[~np.isnan(y)], y[~np.isnan(y)]


def stage_starts(run: logs.RunLogs) -> list[tuple[int, str]]:
    """(offset, stage) of each logged stage on the run's step axis: a stage starts where the one before ended."""
    out, offset = [], 0
    for name, columns in run.metrics.stages.items():
        out.append((offset, name))
        steps = columns["step"].values()
        offset += int(np.nanmax(steps)) if len(steps) else 0
    return out


class Part(NamedTuple):
    """One plotted series: its name ("<run> · <metric>" when overlaid, "<metric>" alone; "<name> (smoothed)" for
    a smoothed one), its steps and values, its run and metric, and its x values on the chosen axis (None: the
    steps)."""
    name: str
    steps: np.ndarray
    values: np.ndarray
    run: str
    metric: str
    x: np.ndarray | None = None

    @property
    def smoothed(self) -> bool:
        return self.name.endswith(" (smoothed)")


def axis_map(run: logs.RunLogs, stage: str, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, x) where the rows log the axis' column: minutes since the run's first logged time, or the tokens
    seen (cumulative). In the run view each stage follows the one before on both. Kept with the logs."""
    memo = run.memo.get(("axis", stage, axis))
    if memo is not None and memo[0] == run.metrics.version:
        return memo[1]
    if stage == "run":
        parts, tokens = [], 0.0
        for first, name in stage_starts(run):
            steps, x = axis_map(run, name, axis)
            parts.append((steps + first, x + tokens if axis == "tokens" else x))
            tokens += float(x.max()) if axis == "tokens" and len(x) else 0.0
        out = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])) if parts \
            else (np.empty(0), np.empty(0))
    else:
        steps, x = run.metrics.series(stage, "time" if axis == "time" else "num_tokens")
        steps, first = np.unique(steps, return_index=True)  # a step logged twice (a summary line): its first
        x = x[first]
        if axis == "time":
            starts = [np.nanmin(c["time"].values()) for c in run.metrics.stages.values() if "time" in c
                      and np.isfinite(c["time"].values()).any()]
            x = (x - min(starts)) / 60.0
        keep = np.isfinite(x)
        out = (steps[keep], x[keep])
    run.memo[("axis", stage, axis)] = (run.metrics.version, out)
    return out


def on_axis(run: logs.RunLogs, stage: str, axis: str, steps: np.ndarray) -> np.ndarray | None:
    """The steps' places on the axis (interpolated between logged rows); None where the run logs no such
    column."""
    known, x = axis_map(run, stage, axis)
    return _rounded(np.interp(steps, known, x)) if len(known) else None


def plotted(run_dirs: list[Path], stage: str, keys: list[str], points: int = TICK_POINTS,
            smoothing: float = 0.0, axis: str = "step") -> list[Part]:
    """The given keys' series for each run, named by run when overlaid, downsampled to at most `points` in all
    (and SERIES_POINTS a series); with smoothing, each followed by its smoothed series, named "<name>
    (smoothed)". On another axis than the step, each carries its x values; a run without that axis' column
    has none of its series. A run's series is kept with its logs until they change, so a tick with one run
    writing among several recomputes that run's only."""
    found = [(run_dir, run, key) for run_dir in run_dirs for run in [logs.CACHE.get(run_dir)]
             for key in wanted(run, stage, keys)]
    each = max(16, min(SERIES_POINTS, points // max(len(found) * (2 if smoothing else 1), 1)))
    out = []
    for run_dir, run, key in found:
        version = (run.spread.version if key in ROLLOUT_KEYS else run.metrics.version, smoothing)
        memo = run.memo.get((stage, key, each))
        if memo is None or memo[0] != version:
            if len(run.memo) > 64:  # budgets of overlays no longer shown
                run.memo.clear()
            x, y = series(run, stage, key)
            line = downsample(x, y, each)
            smooth = smoothed(x, y, smoothing, each // 2) if smoothing and len(y) else None
            memo = run.memo[(stage, key, each)] = (version, [(a.astype(np.int64), _rounded(b))
                                                            for a, b in [line, *([smooth] if smooth else [])]])
        if not len(memo[1][0][0]):
            continue
        name = f"{run_dir.name} · {label(key)}" if len(run_dirs) > 1 else label(key)
        for suffix, (steps, values) in zip(["", " (smoothed)"], memo[1]):
            x = None if axis == "step" else on_axis(run, stage, axis, steps)
            if axis == "step" or x is not None:
                out.append(Part(name + suffix, steps, values, run_dir.name, label(key), x))
    return out


def bands(run_dirs: list[Path], stage: str, axis: str = "step") -> list[dict]:
    """Per logged rollout step of each run (the lines spread through samples.jsonl): the quantiles of the sum
    of its rewards over the step's completions (rl_series.reward_bands); on another axis, each row's x."""
    out = []
    for run_dir in run_dirs:
        run = logs.CACHE.get(run_dir)
        memo = run.memo.get(("bands", stage))
        if memo is None or memo[0] != run.spread.version:
            memo = run.memo[("bands", stage)] = (run.spread.version, [
                {"run": run_dir.name, "step": row["step"],
                 **{k: round(row[k], 4) for k in ("mean", "q10", "q25", "q50", "q75", "q90")}}
                for row in run.spread.think_answer(stage, SERIES_POINTS) if "q50" in row])
        rows = memo[1]
        if rows and axis != "step":
            x = on_axis(run, stage, axis, np.array([r["step"] for r in rows], dtype=float))
            rows = [{**r, "x": float(v)} for r, v in zip(rows, x)] if x is not None else []
        out += rows
    return out


def frame(run_dirs: list[Path], stage: str, keys: list[str], points: int = TICK_POINTS) -> pd.DataFrame:
    """The plotted points in long format (step, value, series)."""
    parts = [pd.DataFrame({"step": p.steps, "value": p.values, "series": p.name})
             for p in plotted(run_dirs, stage, keys, points)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"step": [], "value": [], "series": []})


def markers(run_dirs: list[Path], stage: str, resumes: list[dict], axis: str = "step") -> list[dict]:
    """Vertical rules: where each stage starts (run view) and where a stage resumed, on the plot's x axis."""
    if len(run_dirs) != 1:
        return []
    run = logs.CACHE.get(run_dirs[0])
    starts = stage_starts(run)
    out = [{"x": first, "label": f"{name} starts"} for first, name in starts[1:]] if stage == "run" else []
    offsets = dict((name, first) for first, name in starts)
    for r in resumes:
        if stage == "run" and r.get("stage") in offsets:
            out.append({"x": offsets[r["stage"]] + r["step"], "label": f"resumed ({r['stage']})"})
        elif r.get("stage") == stage:
            out.append({"x": r["step"], "label": "resumed"})
    if out and axis != "step":
        x = on_axis(run, stage, axis, np.array([m["x"] for m in out], dtype=float))
        out = [{**m, "x": float(v)} for m, v in zip(out, x)] if x is not None else []
    return out


# ---------------------------------------------------------------- charts

def restamped(plot: AltairPlotData, stamp: int) -> AltairPlotData:
    """The same chart with a new stamp in its spec's usermeta: the page draws it again (it skips a spec it
    already drew)."""
    spec = orjson.loads(plot.plot)
    spec["usermeta"] = {"drawn": stamp}
    return AltairPlotData(chart=plot.chart, plot=orjson.dumps(spec).decode())


def _axis_x(title: str = "step", field: str = "step") -> dict:
    if field == "step":  # steps are whole: no more ticks than steps in the shown domain (zoomed too), as integers
        ticks = {"expr": "max(1, min(ceil(width / 40), span(domain('x'))))"}
        return {"field": "step", "type": "quantitative", "title": title, "axis": {"tickCount": ticks, "format": ",d"}}
    axis = {"format": "~s" if "tokens" in title else ",~r", "tickCount": {"expr": "ceil(width / 70)"}}
    return {"field": field, "type": "quantitative", "title": title, "axis": axis}


def _legend(columns: int, orient: str = "bottom") -> dict:
    """A legend under (or over) the plot, its names whole, wrapping into `columns`."""
    return {"orient": orient, "columns": columns, "labelLimit": 0, "symbolType": "stroke", "direction": "horizontal"}


def _scale(domain: list, colours: list) -> dict:
    return {"domain": domain, "range": [colours[i % len(colours)] for i in range(len(domain))]}


def _rules(rules: list[dict]) -> list[dict]:
    if not rules:
        return []
    data = {"values": rules}
    x = {"field": "x", "type": "quantitative"}
    return [{"data": data, "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#9a3412"}, "encoding": {"x": x}},
            {"data": data, "mark": {"type": "text", "align": "left", "baseline": "top", "dx": 3, "y": 2,
                                    "fontSize": 9, "color": "#9a3412"},
             "encoding": {"x": x, "text": {"field": "label"}}}]


def _links(runs: bool, x: dict) -> list[dict]:
    """Points that open the step's rollouts when clicked (their link is read by the page's script)."""
    return [{"transform": [{"filter": "datum.role === 'raw'"},
                           {"calculate": f"'{LINK}' + datum.run + '@' + datum.step", "as": "href"}],
             "mark": {"type": "point", "size": 50, "filled": True, "opacity": 0.01, "cursor": "pointer"},
             "encoding": {"x": {"field": x["field"], "type": "quantitative"}, "y": {"field": "value", "type": "quantitative"},
                          "href": {"field": "href"},
                          "tooltip": [{"field": "run"}, {"field": "metric"},
                                      {"field": "step", "title": "step (click: its rollouts)"}, {"field": "value"}]}}] \
        if runs else []


def chart(title: str, y_title: str, parts: list[Part], rules: list[dict] = (), links: bool = False,
          x_title: str = "step") -> AltairPlotData:
    """A Vega-Lite line chart of the series, drawn on a canvas; each series travels as two arrays (three on
    another axis than the step: its x too; flattened in the browser), and the x axis zooms (wheel) and pans
    (drag) with the mouse, a double click resetting it. One run: a colour per metric; overlaid runs: a colour
    per run (legend under the plot) and a dash per metric (legend over it), names whole. A "(smoothed)" series draws
    its raw series faint; `links` makes the points links to their step's rollouts."""
    smooth = any(p.smoothed for p in parts)
    on_x = any(p.x is not None for p in parts)
    runs = list(dict.fromkeys(p.run for p in parts))
    metrics = list(dict.fromkeys(p.metric for p in parts))
    values = [{"series": p.name.removesuffix(" (smoothed)"), "role": "smoothed" if p.smoothed else "raw",
               "run": p.run, "metric": p.metric, "step": p.steps, "value": p.values,
               **({"x": p.x} if on_x else {})} for p in parts]
    overlaid = len(runs) > 1
    by, names = ("run", runs) if overlaid else ("metric", metrics)
    encoding = {"color": {"field": by, "type": "nominal", "title": None, "scale": _scale(names, PALETTE),
                          "legend": _legend(1 if overlaid else 3) if len(names) > 1 else None}}
    legend_rows = math.ceil(len(names) / (1 if overlaid else 3)) if len(names) > 1 else 0
    if overlaid and len(metrics) > 1:
        encoding["strokeDash"] = {"field": "metric", "type": "nominal", "title": None, "scale": _scale(metrics, DASHES),
                                  "legend": _legend(3, "top")}  # over the plot: two legends under it sit side by side
        legend_rows += math.ceil(len(metrics) / 3)
    opacity = {"condition": {"test": "datum.role === 'smoothed'", "value": 1.0}, "value": 0.3 if smooth else 1.0}
    x = _axis_x(x_title, "x" if on_x else "step")
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json", "height": PLOT_HEIGHT + LEGEND_ROW * legend_rows,
        "title": title, "data": {"values": values},
        "transform": [{"flatten": ["step", "value", *(["x"] if on_x else [])]}],
        "layer": [{
            "mark": {"type": "line", "clip": True, "strokeWidth": 1.2},
            "params": [{"name": "zoom", "select": {"type": "interval", "encodings": ["x"]}, "bind": "scales"}],
            "encoding": {
                "x": x,
                "y": {"field": "value", "type": "quantitative", "title": y_title or None, "scale": {"zero": False},
                      "axis": {"format": ",~r"}},  # no trailing zeros (a constant series read 2.000000), no 1e+2
                **encoding, "opacity": opacity, "detail": {"field": "role"},
            },
        }, {  # a series of one point draws no line: a dot instead (a stage's first logged step, a short run)
            "transform": [{"joinaggregate": [{"op": "count", "as": "points"}], "groupby": ["series", "run", "role"]},
                          {"filter": "datum.points <= 1"}],
            "mark": {"type": "point", "filled": True, "size": 40, "clip": True},
            "encoding": {"x": x, "y": {"field": "value", "type": "quantitative"}, **encoding},
        }, *_rules(list(rules)), *_links(links, x)],
    }
    return AltairPlotData(chart="line", plot=orjson.dumps(spec, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def band_chart(title: str, y_title: str, rows: list[dict], rules: list[dict] = (), links: bool = True,
               x_title: str = "step") -> AltairPlotData:
    """Per-step quantile bands (10–90%, 25–75%) and the median of each run's rollout rewards, a colour per run;
    every point links to its step's rollouts."""
    names = list(dict.fromkeys(r["run"] for r in rows))
    color = {"field": "run", "type": "nominal", "title": None, "legend": _legend(1) if len(names) > 1 else None,
             "scale": _scale(names, PALETTE)}
    x = _axis_x(x_title, "x" if rows and "x" in rows[0] else "step")

    def area(low: str, high: str, opacity: float) -> dict:
        return {"mark": {"type": "area", "opacity": opacity, "clip": True},
                "encoding": {"x": x, "y": {"field": low, "type": "quantitative", "title": y_title},
                             "y2": {"field": high}, "color": color}}

    point_links = [{"transform": [{"calculate": f"'{LINK}' + datum.run + '@' + datum.step", "as": "href"}],
                    "mark": {"type": "point", "size": 50, "filled": True, "opacity": 0.01, "cursor": "pointer"},
                    "encoding": {"x": x, "y": {"field": "q50", "type": "quantitative"}, "href": {"field": "href"},
                                 "tooltip": [{"field": "run"}, {"field": "step", "title": "step (click: its rollouts)"},
                                             {"field": "q10"}, {"field": "q50"}, {"field": "q90"}, {"field": "mean"}]}}]
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": title, "data": {"values": rows},
        "height": PLOT_HEIGHT + (LEGEND_ROW * len(names) if len(names) > 1 else 0),
        "layer": [area("q10", "q90", 0.18), area("q25", "q75", 0.3),
                  {"mark": {"type": "line", "strokeWidth": 1.4, "clip": True},
                   "params": [{"name": "zoom", "select": {"type": "interval", "encodings": ["x"]}, "bind": "scales"}],
                   "encoding": {"x": x, "y": {"field": "q50", "type": "quantitative"}, "color": color}},
                  *_rules(list(rules)), *(point_links if links else [])],
    }
    return AltairPlotData(chart="line", plot=orjson.dumps(spec, option=orjson.OPT_SERIALIZE_NUMPY).decode())
