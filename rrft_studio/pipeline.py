"""`rrft-studio train`: evaluate the starting model, run the preset's stages in order (each starting from the
previous stage's final checkpoint), evaluate after each, then write report.json and the plots.

A stopped or killed run resumes where its last checkpoint left it: finished stages and evaluations are
skipped, the current stage continues from its newest checkpoint. How a run ends is written to status.json
as one line a user can act on: stopped (resumable), or failed with the cause (a diverged stage with its last
finite checkpoint, a full disk, an unreadable image), and `failure` says what kind it was.

On several processes (distributed.py) every rank runs this and only the main one writes: status, evaluations
(sharded: each rank scores a share), the report. The main process also keeps a heartbeat in status.json, so a
studio on another machine sharing the runs folder sees the run alive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import traceback
from pathlib import Path

from . import data, distributed, evaluate, models, report, runs
from .config import Config


def evaluate_splits(cfg: Config, run_dir: Path, checkpoint: str, label: str, between_batches=None) -> None:
    """Each configured split once (a resumed run skips what it has), on every rank, written by the main one."""
    todo = distributed.share(lambda: [split for split in (cfg.eval.splits if cfg.eval.enabled else [])
                                      if evaluate.load(run_dir, label, split) is None])
    for split in todo:
        if distributed.is_main():
            runs.write_status(run_dir, state="running", stage=f"eval:{label}:{split}")
        result = distributed.evaluate(checkpoint, cfg, evaluate.eval_rows(cfg, split), label, split, between_batches)
        if result is not None:
            evaluate.save(result, run_dir)
            print(evaluate.summary_line(result), flush=True)


def launch_status(cfg: Config) -> dict:
    """What status.json records of the processes: their count, strategy and launcher, each stage's batch split."""
    fields = dict(processes=cfg.run.processes,
                  batch_split={stage: distributed.split(cfg, stage).as_dict() for stage in cfg.run.stages})
    if distributed.launched():
        fields.update(accelerate=cfg.run.accelerate_config or distributed.strategy(),
                      launcher_pid=distributed.launcher_pid() or os.getppid())
    return fields


def quiet() -> None:
    """Keep the terminal for our progress bar: no library progress bars or info chatter."""
    import datasets
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()


def train(cfg: Config, run_dir: Path, backend: str, why: str) -> dict | None:
    """Run every stage of the run; return the report, or None when the run was stopped (resumable)."""
    quiet()  # transformers only now: the backend (and Unsloth's patches) came first

    main = distributed.is_main()
    started, before = time.time(), runs.read_status(run_dir).get("seconds", 0.0)
    if main:
        runs.keep_reserve(run_dir)
        import torch

        runs.write_status(run_dir, state="running", backend=backend, backend_why=why, drop=("error", "failure"),
                          threads=torch.get_num_threads(), **launch_status(cfg))
        print(f"run directory: {run_dir}\nbackend: {backend} ({why})", flush=True)
        for stage in cfg.run.stages if cfg.run.processes > 1 else []:
            b = distributed.split(cfg, stage)
            print(f"{stage}: global batch {b.global_batch} = {b.per_device} per process x {b.processes} processes "
                  f"x {b.accumulation} accumulation", flush=True)
    with runs.Heartbeat(run_dir) if main else contextlib.nullcontext():
        return _stages(cfg, run_dir, backend, started, before)


def _stages(cfg: Config, run_dir: Path, backend: str, started: float, before: float) -> dict | None:
    from . import grpo, sft, tracking  # import trl only now: the backend (and Unsloth's patches) came first

    main = distributed.is_main()
    stop = tracking.StopRequested.check_all  # every rank stops at the same point
    try:
        import transformers

        transformers.set_seed(cfg.run.seed)
        with distributed.main_first():  # the main process of each machine builds the tiny model, the others load it
            current = models.source(cfg, data.corpus(cfg) if cfg.model.name == "tiny" else None)
        if main:
            runs.write_status(run_dir, base_model=current)
        evaluate_splits(cfg, run_dir, current, "base", stop)
        for stage in cfg.run.stages:
            if runs.is_done(run_dir, stage):
                current = str(runs.stage_dir(run_dir, "final", stage))
            else:
                stop()
                out = (sft if stage == "sft" else grpo).run(cfg, run_dir, current, backend)
                if out is None:
                    raise tracking.Stopped()
                current = str(out)
            evaluate_splits(cfg, run_dir, current, stage, stop)
    except tracking.Stopped:
        if main:
            runs.write_status(run_dir, state="stopped", seconds=before + time.time() - started)
        return None
    except BaseException as e:
        if main:
            runs.release_reserve(run_dir)  # room for the last status on a full disk
            kind, message = failure(e, cfg, run_dir)
            state = "stopped" if isinstance(e, KeyboardInterrupt) else "failed"
            runs.write_status(run_dir, state=state, seconds=before + time.time() - started, error=message, failure=kind)
        raise
    seconds = before + time.time() - started
    if not main:
        return {}
    result = report.build(run_dir, seconds)
    runs.write_status(run_dir, state="finished", stage=None, seconds=seconds)
    runs.release_reserve(run_dir)
    return result


def failure(e: BaseException, cfg: Config, run_dir: Path) -> tuple[str, str]:
    """(kind, one line a user can act on) for what ended a run."""
    from . import tracking

    if isinstance(e, tracking.Diverged):
        checkpoint = runs.last_checkpoint(run_dir, e.stage)
        lr = getattr(cfg, e.stage).lr
        start = f"resume from {checkpoint.name}" if checkpoint else "the stage starts over (no checkpoint yet)"
        return "diverged", (f"{e}; nothing of that step was saved, {start}: rrft-studio train --resume {run_dir} "
                            f"{e.stage}.lr={lr / 10:g} (a lower learning rate)")
    if isinstance(e, runs.DiskFull) or (isinstance(e, OSError) and e.errno == errno.ENOSPC):
        return "disk_full", str(e if isinstance(e, runs.DiskFull) else runs.disk_full(run_dir))
    image = data.unreadable_image(e, cfg)
    if image is not None:
        return "image", image
    if isinstance(e, RuntimeError) and "inf" in str(e) and "nan" in str(e):  # sampling from diverged weights
        return "diverged", f"{' '.join(str(e).split())[:200]}: the weights stopped being finite; resume with a lower learning rate"
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", "interrupted before a checkpoint could be saved: resume goes back to the last one"
    return "error", "".join(traceback.format_exception_only(type(e), e)).strip()
