"""What the studio finds on disk: runs (from their status files), their checkpoints, presets, and images.

Everything here reads run directories through `runs` and nothing else: the studio is a reader of the
directories the CLI writes. Images are opened server-side and handed to Gradio as pictures, so the browser
is never given a path outside the runs and presets folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import config, data, runs

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
        stat = runs.status_path(run_dir).stat()
    except OSError:
        return {}
    key = (stat.st_mtime_ns, stat.st_size)
    if run_dir not in _statuses or _statuses[run_dir][0] != key:
        if len(_statuses) > 4096:
            _statuses.clear()
        _statuses[run_dir] = (key, runs.read_status(run_dir))
    return _statuses[run_dir][1]


def _eval_order(label: str) -> tuple:
    prefix = label.split("/")[0]
    return (STAGE_ORDER.index(prefix) if prefix in STAGE_ORDER else len(STAGE_ORDER), label)


def eval_results(run_dir: Path) -> dict[str, dict]:
    """'label/split' -> summary of eval/<label>/<split>.json (predictions dropped), base first, then each
    stage; older runs' eval/<label>.json count as split 'id'."""
    signature = _listing(runs.eval_dir(run_dir))
    if run_dir in _evals and _evals[run_dir][0] == signature:
        return _evals[run_dir][1]
    found = runs.evaluations(run_dir)
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


# ---------------------------------------------------------------- checkpoints

def checkpoints(run_dir: Path) -> list[tuple[str, str]]:
    """(label, value) of what a run can answer with: its starting model, each stage's output, each step."""
    run_dir = Path(run_dir)
    cfg = runs.read_config(run_dir)
    out = [(f"{run_dir.name} · base model", f"base:{run_dir}")]
    stages = cfg.run.stages if cfg else ("sft", "grpo")
    for stage in stages:
        if runs.is_done(run_dir, stage):
            out.append((f"{run_dir.name} · after {stage}", str(runs.final_dir(run_dir, stage))))
    for stage in stages:
        out += [(f"{run_dir.name} · {stage} step {runs.checkpoint_step(p)}", str(p)) for p in runs.checkpoints(run_dir, stage)]
    return out


def results(runs_dir: Path) -> list[tuple[str, str]]:
    """(label, path) of what has evaluation results: each sweep (one entry for its runs: `rrft-studio sweep`)
    and each run that evaluated something, newest first."""
    from ..eval import sweep

    root = Path(runs_dir)
    sweeps = sorted((d for d in root.iterdir() if d.is_dir() and sweep.is_sweep(d)),
                    key=lambda d: (d / "sweep.json").stat().st_mtime, reverse=True) if root.is_dir() else []
    out = [(f"sweep · {d.name} ({len(sweep.load(d)['points'])} runs)", str(d)) for d in sweeps]
    return out + [(info.name, str(info.path)) for info in list_runs(root) if eval_results(info.path)]


def all_checkpoints(runs_dir: Path) -> list[tuple[str, str]]:
    return [c for info in list_runs(runs_dir) for c in checkpoints(info.path)]


def default_checkpoints(runs_dir: Path, n: int = 2) -> list[str]:
    """The comparison one usually wants: a run's SFT and GRPO outputs where both stages finished (what GRPO
    added), else its base model and the output of its last finished stage (runs.last_finished_stage). The newest
    finished run's, else the newest run with any stage done: a run stopped after Stage 1 is not preferred over
    one that went through."""
    infos = list_runs(runs_dir)
    for info in sorted(infos, key=lambda i: i.state != "finished"):  # stable: newest first within each
        cfg = runs.read_config(info.path)
        stage = runs.last_finished_stage(info.path, list(cfg.run.stages) if cfg else ["sft", "grpo"])
        if stage is None:
            continue
        if stage == "grpo" and runs.is_done(info.path, "sft"):
            return [str(runs.final_dir(info.path, "sft")), str(runs.final_dir(info.path, "grpo"))][:n]
        return [f"base:{info.path}", str(runs.final_dir(info.path, stage))][:n]
    return []


def run_of(checkpoint: str) -> Path | None:
    """The run directory a checkpoint value belongs to (base:RUN or a path inside RUN)."""
    if checkpoint.startswith("base:"):
        return Path(checkpoint[5:])
    return runs.run_of(Path(checkpoint))


def first_config(checkpoints: list[str]) -> config.Config | None:
    """The config of the run the first chosen checkpoint (of a run) belongs to."""
    run_dir = next((run_of(c) for c in checkpoints or [] if run_of(c)), None)
    return runs.read_config(run_dir) if run_dir else None


def prompt_text(question: str, instruction: bool, checkpoints: list[str]) -> str:
    """The question with the task's instruction appended, in the run's evaluation style, when asked."""
    cfg = first_config(checkpoints) if instruction else None
    if cfg is None:
        return question
    return data.prompt_of(data.task_of(cfg), {"problem": question}, cfg.eval.style, cfg, (cfg.eval.splits or ["id"])[0])


# ---------------------------------------------------------------- presets and images

def benchmarks_with_data(cfg: config.Config) -> list[str]:
    """The config's task's evaluation splits that have data: all of a synthetic task's, those a file is given
    for otherwise."""
    task = data.task_of(cfg)
    return [s for s in task.benchmarks if task.generate is not None or data.source(cfg, s)[0]]


FIRST_WITHOUT_GPU = "demo"  # the preset offered first where there is no GPU: the others want one


def has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU that CUDA may use, asked of the driver's device list (importing
    torch to ask would cost the studio's process seconds and hundreds of MB)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return any(Path("/proc/driver/nvidia/gpus").glob("*")) or Path("/dev/nvidia0").exists()


def presets(presets_dir: Path, runs_dir: Path, gpu: bool | None = None) -> list[tuple[str, str]]:
    """(label, path) of the shipped presets (the demo first where there is no GPU), then the ones launched
    from the studio that differ from every shipped one."""
    shipped = sorted(Path(presets_dir).glob("*.yaml"), key=lambda p: p.stem)
    if not (has_gpu() if gpu is None else gpu):
        shipped.sort(key=lambda p: p.stem != FIRST_WITHOUT_GPU)
    texts = {_text(p) for p in shipped}
    edited = [p for p in sorted((Path(runs_dir) / ".studio" / "presets").glob("*.yaml")) if _text(p) not in texts]
    return [(p.stem, str(p)) for p in shipped] + [(f"{p.stem} (edited in the studio)", str(p)) for p in edited]


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


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
