"""Sweeps: one preset trained over axes (training seed, CPU thread count, training-set size, method), one
ordinary run per point, launched through the CLI in its own process (backends patch libraries on import), and
the spread of their results. Where a run lands moves with the seed and, on a CPU, with the thread count (sums
taken in another order give another model after a few hundred steps): a figure worth quoting is a spread.

    runs/<preset>-sweep-<time>/
      <preset>-s0-t2-<time>/ ...   one run directory per point
      sweep.json                   every finished run's accuracies and paired GRPO - SFT, and the spread over
                                   seeds and thread counts; rewritten after each run (a stopped sweep keeps
                                   what finished)
      sweep.md, sweep.png          the table and the plot

    rrft-studio sweep presets/demo.yaml --seeds 0 1 2 --threads 1 2      # how much a result moves
    rrft-studio sweep presets/demo.yaml --seeds 3 4 --into runs/demo-sweep-<time>   # more seeds, same table
    rrft-studio sweep presets/counting_2b.yaml --samples 3200 6400 12800  # data efficiency
    rrft-studio sweep presets/demo.yaml data.sft_samples=8000 sft.max_steps=-1 sft.stop_at_accuracy=0 grpo.max_steps=-1 --samples 8400 8800 --methods cot_sft rft

With several methods, each point is `method=M data.max_samples=N`: rft's Stage 1 keeps data.sft_samples and
Stage 2 gets the rest, cot_sft trains on all N (the paper's data-efficiency comparison). The spread groups the
runs that differ only in seed and thread count.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .. import runs
from ..config import Config, ConfigError

AXES = ("method", "samples", "seed", "threads")


def plan(methods: list[str], samples: list[int], seeds: list[int], threads: list[int]) -> list[dict]:
    """The points, in run order: every combination of the axes given ({} for an axis not swept)."""
    given = {"method": methods, "samples": samples, "seed": seeds, "threads": threads}
    axes = [(k, v) for k, v in given.items() if v]
    return [dict(zip([k for k, _ in axes], values)) for values in itertools.product(*[v for _, v in axes])]


def label(name: str, point: dict) -> str:
    parts = {"method": "{}", "samples": "n{}", "seed": "s{}", "threads": "t{}"}
    return "-".join([name, *(parts[k].format(point[k]) for k in AXES if k in point)])


def overrides_of(point: dict) -> list[str]:
    keys = {"method": "method", "samples": "data.max_samples", "seed": "run.seed"}  # threads: the environment
    return [f"{keys[k]}={point[k]}" for k in keys if k in point]


def run(cfg: Config, preset: str, overrides: list[str], points: list[dict], into: Path | None = None) -> Path:
    """Train one run per point; return the sweep directory. With `into`, an existing sweep of the same preset
    and overrides: its runs stay, the points it already has are skipped, the new ones join it."""
    name = cfg.run.name  # config.load defaults it to the preset's file name
    if into:
        root, record = Path(into), load(into)
        points = [p for p in points if p not in [_axes(q) for q in record["points"]]]
    else:
        root = Path(cfg.run.runs_dir).expanduser() / f"{name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
        root.mkdir(parents=True)
        record = {"preset": str(preset), "overrides": experiment(overrides), "points": [], "spread": []}
    for point in points:
        tag = label(name, point)
        if finished := _finished_run(root, tag):  # trained by an earlier or concurrent sweep into this folder
            print(f"sweep: {tag} ({points.index(point) + 1} of {len(points)}): finished in {finished}, taken as it is",
                  flush=True)
            _add(record, root, result(point, finished))
            continue
        args = [sys.executable, "-m", "rrft_studio.cli", "train", preset, *overrides, *overrides_of(point),
                f"run.runs_dir={root}", f"run.name={tag}"]
        env = {**os.environ, **({"OMP_NUM_THREADS": str(point["threads"])} if "threads" in point else {})}
        print(f"sweep: {tag} ({points.index(point) + 1} of {len(points)})", flush=True)
        done = subprocess.run(args, env=env)
        if done.returncode != 0:
            raise SystemExit(f"sweep: the run {tag} failed (exit {done.returncode}); the runs so far are in {root}")
        run_dir = max(p for p in root.iterdir() if p.is_dir() and p.name.startswith(f"{tag}-"))  # the latest
        _add(record, root, result(point, run_dir))
    plot(record, root / "sweep.png")
    return root


def _finished_run(root: Path, tag: str) -> Path | None:
    """The newest run directory of this point in the sweep's folder that finished with a report, if any."""
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(f"{tag}-") and runs.is_run(p)
            and runs.read_status(p).get("state") == "finished" and runs.report_path(p).is_file()]
    return max(done) if done else None


def _add(record: dict, root: Path, point: dict) -> None:
    """One more finished run: sweep.json and sweep.md rewritten (what finished stays if the sweep is cut off)."""
    record["points"].append(point)
    record["spread"] = spread(record["points"])
    runs.write_atomic(root / "sweep.json", json.dumps(record, indent=1))
    runs.write_atomic(root / "sweep.md", table(record) + "\n")


def joinable(root: Path, preset: str, overrides: list[str]) -> None:
    """`--into`: the sweep there trained the same preset with the same overrides, or the new runs would not be
    the same experiment."""
    if not is_sweep(root):
        raise ConfigError(f"--into {root}: no sweep.json there; give a sweep folder (runs/<preset>-sweep-<time>) "
                          "or leave --into out to start a new sweep")
    record = load(root)
    mine = {"preset": Path(str(preset)).resolve(), "overrides": experiment(overrides)}
    theirs = {"preset": Path(str(record.get("preset", ""))).resolve(),
              "overrides": experiment(record.get("overrides", []))}
    if mine != theirs:
        raise ConfigError(f"--into {root}: that sweep ran {record.get('preset')} with overrides "
                          f"{theirs['overrides']}, not {preset} with {mine['overrides']}; give the same preset and "
                          "overrides to add runs to it, or leave --into out to start a new sweep")


PLACEMENT = ("run.runs_dir=", "run.cache_dir=")  # where a run is written, not what it trains


def experiment(overrides: list[str]) -> list[str]:
    """The overrides that change what is trained (those that only place the runs left out)."""
    return [o for o in overrides if not o.startswith(PLACEMENT)]


def _axes(point: dict) -> dict:
    return {k: point[k] for k in AXES if k in point}


def result(point: dict, run_dir: Path) -> dict:
    """A finished run as a point: its accuracies ('<label>/<split>'), paired GRPO - SFT and time."""
    report = json.loads(runs.report_path(run_dir).read_text())
    accuracy = {key: json.loads(path.read_text())["accuracy"] for key, path in sorted(runs.evaluations(run_dir).items())}
    return {**point, "run_dir": str(run_dir), "accuracy": accuracy, "grpo_minus_sft": report.get("grpo_minus_sft"),
            "seconds": report.get("seconds")}


def _stats(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one run), min and max."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "runs": len(values)}


def spread(points: list[dict]) -> list[dict]:
    """One entry per group of runs that differ only in seed and thread count: each accuracy's and GRPO - SFT's
    spread over them."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p.get("method"), p.get("samples")), []).append(p)
    out = []
    for (method, samples), members in groups.items():
        keys = sorted({k for p in members for k in p["accuracy"]}, key=_order)
        entry = {**({"method": method} if method else {}), **({"samples": samples} if samples else {}),
                 "runs": len(members),
                 "accuracy": {k: _stats([p["accuracy"][k] for p in members if k in p["accuracy"]]) for k in keys}}
        diffs = [p["grpo_minus_sft"] for p in members if p.get("grpo_minus_sft")]
        if diffs:
            entry["grpo_minus_sft"] = {**_stats([d["diff"] for d in diffs]),
                                       "min_se_ratio": min(d["diff"] / d["se"] if d["se"] else float("inf")
                                                           for d in diffs)}
        out.append(entry)
    return out


def _order(key: str) -> tuple:
    stage, _, split = key.partition("/")
    return ({"base": 0, "sft": 1, "grpo": 2}.get(stage, 3), split)


def load(path: Path) -> dict:
    """A sweep.json (or the folder holding one); a sweep of an older version (a bare list of points) as well."""
    path = Path(path)
    record = json.loads((path / "sweep.json" if path.is_dir() else path).read_text())
    if isinstance(record, list):
        record = {"points": record, "spread": spread(record)}
    return record


def is_sweep(path: Path) -> bool:
    return (Path(path) / "sweep.json").is_file()


# ---------------------------------------------------------------- the table and the plot

def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _diff(d: dict | None) -> str:
    if not d:
        return ""
    ratio = f", {d['diff'] / d['se']:.1f} SE" if d["se"] else ""
    return f"{100 * d['diff']:+.1f} ({100 * d['se']:.1f}{ratio}): {d['gained']} gained, {d['lost']} lost"


def table(record: dict) -> str:
    """Markdown: one row per run (its axes, each accuracy, paired GRPO - SFT with its SE), then per group the
    mean ± standard deviation over its runs."""
    points = record["points"]
    if not points:
        return "no run has finished yet"
    axes = [k for k in AXES if any(k in p for p in points)]
    keys = sorted({k for p in points for k in p["accuracy"]}, key=_order)
    paired = any(p.get("grpo_minus_sft") for p in points)
    head = ["run", *axes, *keys] + ["GRPO - SFT, paired (SE)"] * paired
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for p in points:
        cells = [Path(p["run_dir"]).name.rsplit("-", 2)[0], *(str(p.get(k, "")) for k in axes),
                 *(_pct(p["accuracy"][k]) if k in p["accuracy"] else "" for k in keys)]
        lines.append("| " + " | ".join(cells + [_diff(p.get("grpo_minus_sft"))] * paired) + " |")
    for group in record["spread"]:
        what = ", ".join(f"{k} {group[k]}" for k in ("method", "samples") if k in group)
        cells = [f"**mean ± sd over {group['runs']} runs**" + (f" ({what})" if what else ""), *([""] * len(axes))]
        cells += [f"{_pct(s['mean'])} ± {_pct(s['sd'])}" if (s := group["accuracy"].get(k)) else "" for k in keys]
        if paired:
            d = group.get("grpo_minus_sft")
            cells.append(f"{100 * d['mean']:+.1f} ± {100 * d['sd']:.1f} (from {100 * d['min']:+.1f} to "
                         f"{100 * d['max']:+.1f}; each run ≥ {d['min_se_ratio']:.1f} SE)" if d else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(record: dict, path: Path) -> Path:
    """Accuracy against training samples (mean and spread over seeds) when samples were swept; else each run's
    accuracy after each stage, and GRPO - SFT with two paired standard errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = record["points"]
    if any("samples" in p for p in points):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        _samples_axes(ax, record, matplotlib)
    else:
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
        _runs_axes(ax, bx, points)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _samples_axes(ax, record: dict, matplotlib) -> None:
    for group_key in sorted({g.get("method") or "" for g in record["spread"]}):
        groups = sorted([g for g in record["spread"] if (g.get("method") or "") == group_key],
                        key=lambda g: g["samples"])
        for key in sorted({k for g in groups for k in g["accuracy"]}, key=_order):
            if group_key and key.startswith("base/"):
                continue  # the same untrained model in every run
            mine = [g for g in groups if key in g["accuracy"]]
            ax.errorbar([g["samples"] for g in mine], [100 * g["accuracy"][key]["mean"] for g in mine],
                        yerr=[100 * g["accuracy"][key]["sd"] for g in mine], marker="o", capsize=3,
                        label=f"{group_key}: {key}" if group_key else key)
    ax.set(xscale="log", xlabel="training samples", ylabel="accuracy (%)", title="data efficiency")
    ticks = sorted({g["samples"] for g in record["spread"]})
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # a narrow range gets labelled minor ticks
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _runs_axes(ax, bx, points: list[dict]) -> None:
    names = [Path(p["run_dir"]).name.rsplit("-", 2)[0].split("-", 1)[-1] for p in points]
    xs = range(len(points))
    for key in sorted({k for p in points for k in p["accuracy"]}, key=_order):
        if key.startswith("base/"):
            continue
        ax.plot(xs, [100 * p["accuracy"].get(key, float("nan")) for p in points], marker="o", label=key)
    ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="accuracy (%)", title="each run: accuracy after each stage")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    paired = [(i, p["grpo_minus_sft"]) for i, p in enumerate(points) if p.get("grpo_minus_sft")]
    if paired:
        bx.errorbar([i for i, _ in paired], [100 * d["diff"] for _, d in paired],
                    yerr=[200 * d["se"] for _, d in paired], fmt="o", capsize=4, color="C2")
        bx.axhline(0, color="0.5", linewidth=0.8)
        mean = statistics.fmean(d["diff"] for _, d in paired)
        bx.axhline(100 * mean, color="C2", linestyle="--", linewidth=0.8, label=f"mean {100 * mean:+.1f}")
        bx.legend(fontsize=8)
    bx.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=8)
    bx.set(ylabel="points", title="GRPO - SFT (± 2 paired SE)")
    bx.grid(alpha=0.3)
