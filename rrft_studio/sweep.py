"""Data efficiency: train the same preset on growing numbers of samples and plot accuracy against them
(the paper's data-efficiency figure). Each point is an ordinary run, launched through the CLI in its own
process (backends patch libraries on import), under one sweep directory:

    runs/<preset>-sweep-<time>/
      <preset>-n1600-<time>/ ...   one run directory per point
      sweep.json                   samples -> accuracy per stage and split
      sweep.png

    rrft-studio sweep presets/counting_2b.yaml --samples 1600 3200 6400
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from . import runs
from .config import Config


def run(cfg: Config, preset: str, overrides: list[str], samples: list[int]) -> Path:
    """Train one run per sample count; return the sweep directory."""
    name = cfg.run.name  # config.load defaults it to the preset's file name
    root = Path(cfg.run.runs_dir).expanduser() / f"{name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True)
    points = []
    for n in samples:
        args = [sys.executable, "-m", "rrft_studio.cli", "train", preset, *overrides, f"data.max_samples={n}",
                f"run.runs_dir={root}", f"run.name={name}-n{n}"]
        print(f"sweep: training on {n} samples", flush=True)
        done = subprocess.run(args)
        if done.returncode != 0:
            raise SystemExit(f"sweep: the run on {n} samples failed (exit {done.returncode}); points so far in {root}")
        (run_dir,) = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(f"{name}-n{n}-")]
        points.append({"samples": n, "run_dir": str(run_dir), "accuracy": _accuracies(run_dir)})
    runs.write_atomic(root / "sweep.json", json.dumps(points, indent=1))
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
    for key in sorted({k for p in points for k in p["accuracy"]}):
        xs = [p["samples"] for p in points if key in p["accuracy"]]
        ax.plot(xs, [100 * p["accuracy"][key] for p in points if key in p["accuracy"]], marker="o", label=key)
    ax.set(xscale="log", xlabel="training samples", ylabel="accuracy (%)", title="data efficiency")
    ax.set_xticks([p["samples"] for p in points], [str(p["samples"]) for p in points])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
