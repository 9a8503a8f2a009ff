"""What the studio finds on disk: runs (from their status files), their checkpoints, presets, and images.

Everything here reads run directories through `runs` and nothing else: the studio is a reader of the
directories the CLI writes. Images are opened server-side and handed to Gradio as pictures, so the browser
is never given a path outside the runs and presets folders.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import config, runs

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
STAGE_ORDER = ("base", "sft", "grpo")  # evaluations are shown in the order a run makes them


@dataclass
class RunInfo:
    path: Path
    status: dict
    state: str

    @property
    def name(self) -> str:
        return self.path.name


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run directory under runs_dir, newest first."""
    out = []
    for d in runs.list_runs(runs_dir):
        status = _status(d)
        out.append(RunInfo(d, status, runs.effective_state(status)))
    return out


_statuses: dict[Path, tuple[tuple, dict]] = {}  # the monitor lists every run each second: re-read what changed


def _status(run_dir: Path) -> dict:
    try:
        stat = (run_dir / "status.json").stat()
    except OSError:
        return {}
    key = (stat.st_mtime_ns, stat.st_size)
    if run_dir not in _statuses or _statuses[run_dir][0] != key:
        if len(_statuses) > 4096:
            _statuses.clear()
        _statuses[run_dir] = (key, runs.read_status(run_dir))
    return _statuses[run_dir][1]


def run_config(run_dir: Path) -> config.Config | None:
    """The run's resolved config, read without importing its `module:function` rewards (no user code runs in
    the studio's process)."""
    try:
        return config.from_dict(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()), import_rewards=False)
    except (config.ConfigError, OSError, ValueError, yaml.YAMLError):
        return None


def _eval_order(label: str) -> tuple:
    prefix = label.split("/")[0]
    return (STAGE_ORDER.index(prefix) if prefix in STAGE_ORDER else len(STAGE_ORDER), label)


def eval_results(run_dir: Path) -> dict[str, dict]:
    """'label/split' -> summary of eval/<label>/<split>.json (predictions dropped), base first, then each
    stage; older runs' eval/<label>.json count as split 'id'."""
    folder = Path(run_dir) / "eval"
    signature = _listing(folder)
    if run_dir in _evals and _evals[run_dir][0] == signature:
        return _evals[run_dir][1]
    found = {f"{p.parent.name}/{p.stem}": p for p in folder.glob("*/*.json")}
    found.update({f"{p.stem}/id": p for p in folder.glob("*.json") if f"{p.stem}/id" not in found})
    out = {}
    for key in sorted(found, key=_eval_order):
        summary = _eval_summary(found[key])
        if summary is not None:
            out[key] = summary
    if len(_evals) > 4096:
        _evals.clear()
    _evals[run_dir] = (signature, out)
    return out


_evals: dict[Path, tuple[tuple, dict]] = {}  # run -> (its eval folder's listing, results)


def _listing(folder: Path) -> tuple:
    """Names and modification times in the eval folder and its label folders: writing a result (a file
    renamed into place) changes them."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries))


_summaries: dict[Path, tuple[tuple, dict | None]] = {}  # eval file -> ((size, mtime), summary): the runs table
# reads every run's evaluations each second, and a file with every prediction can be megabytes


def _eval_summary(path: Path) -> dict | None:
    try:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
        if path not in _summaries or _summaries[path][0] != key:
            result = json.loads(path.read_text())
            summary = {k: v for k, v in result.items() if k != "predictions"} \
                if isinstance(result, dict) and "accuracy" in result else None
            if len(_summaries) > 4096:
                _summaries.clear()
            _summaries[path] = (key, summary)
    except (OSError, json.JSONDecodeError):
        return None
    return _summaries[path][1]


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def run_row(info: RunInfo) -> list:
    """One row of the runs table: run, state, stage, step, ETA, accuracy per evaluation, backend, updated."""
    s = info.status
    step = f"{s.get('step', 0)}/{s['max_steps']}" if s.get("max_steps") else str(s.get("step", ""))
    evals = eval_results(info.path)
    first_split = next((k.split("/")[1] for k in evals), None)  # one split keeps the row short
    accuracy = " → ".join(f"{k.split('/')[0]} {100 * v['accuracy']:.0f}%" for k, v in evals.items()
                          if k.split("/")[1] == first_split)
    live = info.state in ("running", "stopping")
    updated = time.strftime("%m-%d %H:%M:%S", time.localtime(s["updated"])) if s.get("updated") else ""
    return [info.name, info.state, s.get("stage") or "", step, fmt_seconds(s.get("eta_s")) if live else "",
            accuracy, s.get("backend", ""), updated]


RUN_HEADERS = ["run", "state", "stage", "step", "ETA", "accuracy", "backend", "updated"]


# ---------------------------------------------------------------- checkpoints

def checkpoints(run_dir: Path) -> list[tuple[str, str]]:
    """(label, value) of what a run can answer with: its starting model, each stage's output, each step."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    out = [(f"{run_dir.name} · base model", f"base:{run_dir}")]
    stages = cfg.run.stages if cfg else ("sft", "grpo")
    for stage in stages:
        if runs.is_done(run_dir, stage):
            out.append((f"{run_dir.name} · after {stage}", str(runs.stage_dir(run_dir, "final", stage))))
    for stage in stages:
        out += [(f"{run_dir.name} · {stage} step {runs.checkpoint_step(p)}", str(p)) for p in runs.checkpoints(run_dir, stage)]
    return out


def all_checkpoints(runs_dir: Path) -> list[tuple[str, str]]:
    return [c for info in list_runs(runs_dir) for c in checkpoints(info.path)]


def default_checkpoints(runs_dir: Path, n: int = 2) -> list[str]:
    """The newest run's base model and its last finished stage: the comparison one usually wants."""
    for info in list_runs(runs_dir):
        choices = [value for _, value in checkpoints(info.path)]
        finals = [v for v in choices if "/final/" in v]
        if finals:
            return [choices[0], finals[-1]][:n]
    return []


def run_of(checkpoint: str) -> Path | None:
    """The run directory a checkpoint value belongs to (base:RUN or a path inside RUN)."""
    if checkpoint.startswith("base:"):
        return Path(checkpoint[5:])
    return runs.run_of(Path(checkpoint))


# ---------------------------------------------------------------- presets and images

def eval_records(cfg: config.Config) -> list[dict]:
    """The records of the run's first evaluation split (the in-distribution one unless configured otherwise)."""
    from .. import data

    return data.records(cfg, cfg.eval.splits[0] if cfg.eval.splits else "id")


def presets(presets_dir: Path, runs_dir: Path) -> list[tuple[str, str]]:
    """(label, path) of the shipped presets, then the ones edited in the studio."""
    out = [(p.stem, str(p)) for p in sorted(Path(presets_dir).glob("*.yaml"))]
    edited = sorted((Path(runs_dir) / ".studio" / "presets").glob("*.yaml"))
    return out + [(f"{p.stem} (edited in the studio)", str(p)) for p in edited]


def open_image(path: str | Path, max_side: int = 1024):
    """A PIL image of an image file (by suffix), or None: never hands the browser a path."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    try:
        image = Image.open(path)
        image.load()
    except OSError:
        return None
    image.thumbnail((max_side, max_side))
    return image.convert("RGB")
