"""Data efficiency: train the same preset on growing numbers of samples and plot accuracy against them
(the paper's data-efficiency figure). Each point is an ordinary run, launched through the CLI in its own
process (backends patch libraries on import), under one sweep directory:

    runs/<preset>-sweep-<time>/
      <preset>-n1600-<time>/ ...   one run directory per point
      sweep.json                   samples -> accuracy per stage and split
      sweep.png

    rrft-studio sweep presets/counting_2b.yaml --samples 3200 6400 12800
    rrft-studio sweep presets/demo.yaml data.sft_samples=8000 sft.max_steps=-1 grpo.max_steps=-1 --samples 8400 8800 --methods cot_sft rft

With several methods, each point is `method=M data.max_samples=N`: rft's Stage 1 keeps data.sft_samples and
Stage 2 gets the rest, cot_sft trains on all N (the paper's data-efficiency comparison).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from . import runs
from .config import Config


def run(cfg: Config, preset: str, overrides: list[str], samples: list[int], methods: list[str] = ()) -> Path:
    """Train one run per (method, sample count); return the sweep directory."""
    name = cfg.run.name  # config.load defaults it to the preset's file name
    root = Path(cfg.run.runs_dir).expanduser() / f"{name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True)
    points = []
    for method in methods or [None]:
        for n in samples:
            label = f"{name}-{method}-n{n}" if method else f"{name}-n{n}"
            extra = [f"method={method}"] if method else []
            args = [sys.executable, "-m", "rrft_studio.cli", "train", preset, *overrides, *extra,
                    f"data.max_samples={n}", f"run.runs_dir={root}", f"run.name={label}"]
            print(f"sweep: training {method or cfg.method} on {n} samples", flush=True)
            done = subprocess.run(args)
            if done.returncode != 0:
                raise SystemExit(f"sweep: the run on {n} samples failed (exit {done.returncode}); points so far in {root}")
            (run_dir,) = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(f"{label}-")]
            point = {"samples": n, "run_dir": str(run_dir), "accuracy": _accuracies(run_dir)}
            points.append({"method": method, **point} if method else point)
            runs.write_atomic(root / "sweep.json", json.dumps(points, indent=1))  # what finished, if cut off
    plot(points, root / "sweep.png")
    return root


def _accuracies(run_dir: Path) -> dict[str, float]:
    """'<label>/<split>' -> accuracy, for every evaluation the run wrote."""
    return {f"{p.parent.name}/{p.stem}": json.loads(p.read_text())["accuracy"]
            for p in sorted((run_dir / "eval").glob("*/*.json"))}


def plot(points: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    methods = sorted({p.get("method") or "" for p in points})
    for method in methods:
        mine = [p for p in points if (p.get("method") or "") == method]
        for key in sorted({k for p in mine for k in p["accuracy"]}):
            if method and key.startswith("base/"):
                continue  # the same untrained model in every run
            xs = [p["samples"] for p in mine if key in p["accuracy"]]
            ax.plot(xs, [100 * p["accuracy"][key] for p in mine if key in p["accuracy"]], marker="o",
                    label=f"{method}: {key}" if method else key)
    ax.set(xscale="log", xlabel="training samples", ylabel="accuracy (%)", title="data efficiency")
    ticks = sorted({p["samples"] for p in points})
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # a narrow range gets labelled minor ticks
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
