"""How long a live run has left: every stage still to train and every evaluation still to make, not only the
current stage.

Each part is measured where it can be: the current stage's seconds per step from status.json (the tracker
writes the progress bar's rate per stage, `step_s`), a stage not yet started from an earlier attempt of this
run or from the newest run in the folder that trained it with the same model and speed settings, and an
evaluation from how long this run's evaluations took (the time between the files it wrote). A part nothing
measures yet is named instead of guessed: the ETA then reads as a lower bound ("≥ 4m10s + grpo"), and before
the first step of the first stage as "estimating…". Reads run directories through `runs` and the studio's
catalog only: the runs table asks for it every second, so nothing here parses the logs.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from .. import config, runs
from . import catalog

# Settings that leave a step's duration unchanged: runs that differ only in these are timed alike.
NOT_SPEED = {"epochs", "max_steps", "lr", "scheduler", "warmup_steps", "weight_decay", "logging_steps", "save_steps",
             "samples_every", "rewards", "reward_weights", "beta", "epsilon", "loss_type", "scale_rewards", "style",
             "temperature", "top_p", "top_k", "vllm_server_timeout"}


@dataclasses.dataclass
class Estimate:
    seconds: float  # what is measured of the rest
    unknown: list[str]  # the parts nothing measures yet (a stage, "evaluations")

    def text(self) -> str:
        if self.unknown and not self.seconds:
            return "estimating…"
        shown = catalog.fmt_seconds(self.seconds)
        return f"≥ {shown} + {', '.join(self.unknown)}" if self.unknown else shown


def speed_key(cfg: config.Config, stage: str) -> tuple:
    """What decides a step's duration in a stage: the model, the processes and the stage's batch and lengths."""
    section = {k: v for k, v in dataclasses.asdict(getattr(cfg, stage)).items() if k not in NOT_SPEED}
    return (repr(dataclasses.asdict(cfg.model)), cfg.run.processes, cfg.run.device, repr(sorted(section.items())))


def similar_rate(runs_dir: Path, run_dir: Path, cfg: config.Config, stage: str) -> float | None:
    """Seconds per step of `stage` in the newest other run of the folder that trained it at the same speed."""
    key = speed_key(cfg, stage)
    for info in catalog.list_runs(runs_dir):
        rate = info.status.get("step_s", {}).get(stage)
        if info.path == run_dir or not rate:
            continue
        other = runs.read_config(info.path)
        if other is not None and stage in other.run.stages and speed_key(other, stage) == key:
            return float(rate)
    return None


def eval_seconds(run_dir: Path, cfg: config.Config) -> float | None:
    """The median time this run's evaluations took: each split's file written after the previous one, or after
    the checkpoint it evaluates (the starting model's first split, which also waited for the run's start, is
    left out when any other was timed)."""
    splits = cfg.eval.splits if cfg.eval.enabled else []
    durations, first = [], []
    for label in ["base", *cfg.run.stages]:
        start = _mtime(runs.final_dir(run_dir, label) / "config.json") if label != "base" else None
        for i, split in enumerate(splits):
            end = _mtime(runs.eval_path(run_dir, label, split))
            if end is None:
                break
            if start is not None and end >= start:
                durations.append(end - start)
            elif label == "base" and i == 0:
                start_of_run = _mtime(runs.config_path(run_dir))
                first += [end - start_of_run] if start_of_run and end >= start_of_run else []
            start = end
    durations = durations or first
    return statistics.median(durations) if durations else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def estimate(run_dir: Path, status: dict) -> Estimate | None:
    """The rest of a run: its current stage, the stages after it and the evaluations still to make."""
    cfg = runs.read_config(run_dir)
    if cfg is None:
        return None
    now, step_s = status.get("stage") or "", status.get("step_s") or {}
    seconds, unknown = 0.0, []
    for stage in cfg.run.stages:
        if runs.is_done(run_dir, stage):
            continue
        current = stage == now
        step = int(status.get("step") or 0) if current else _resumes_at(run_dir, stage)
        total = int(status.get("max_steps") or 0) if current else getattr(cfg, stage).max_steps
        if current and step > 0 and status.get("eta_s") is not None:  # the progress bar's own estimate
            seconds += float(status["eta_s"])
            continue
        rate = step_s.get(stage) or similar_rate(Path(run_dir).parent, Path(run_dir), cfg, stage)
        if rate is None or total <= 0:
            unknown.append(stage)
        else:
            seconds += max(total - step, 0) * float(rate)
    labels = ["base", *cfg.run.stages]
    left = [(label, split) for label in labels for split in (cfg.eval.splits if cfg.eval.enabled else [])
            if not runs.eval_path(run_dir, label, split).is_file()]
    if left:
        each = eval_seconds(Path(run_dir), cfg)
        if each is None:
            unknown.append("evaluations")
        else:
            seconds += len(left) * each
    return Estimate(seconds, unknown)


def _resumes_at(run_dir: Path, stage: str) -> int:
    """The step a stage not running now would go on from: its last checkpoint's, else 0."""
    checkpoint = runs.last_checkpoint(run_dir, stage)
    return runs.checkpoint_step(checkpoint) if checkpoint else 0
