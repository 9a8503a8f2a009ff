"""`rrft-studio train`: check the run before anything is written, make its run directory (or take over the one
it resumes), evaluate the starting model, run the preset's stages in order (each starting from the previous
stage's final checkpoint), evaluate after each, then write report.json and the plots.

    rrft-studio train presets/demo.yaml [key=value ...]
    rrft-studio train --resume runs/<run> [key=value ...]

`command` runs it one of three ways: here, in this process; through accelerate (several processes, or a named
strategy: this process checks and makes the run directory, then launch.py starts the ranks with `train --resume
RUN`); or as one rank of such a launch (or of `accelerate launch -m rrft_studio.cli train PRESET`), where the
main process checks and makes or takes over the run directory and tells the others (`prepare_run`).

A stopped or killed run resumes where its last checkpoint left it: finished stages and evaluations are
skipped, the current stage continues from its newest checkpoint. How a run ends is written to status.json
as one line a user can act on: stopped (resumable), or failed with the cause (a diverged stage with its last
finite checkpoint, a full disk, an unreadable image), and `failure` says what kind it was.

On several processes (ranks.py) every rank runs the stages and only the main one writes: status, evaluations
(sharded: each rank scores a share), the report. The main process also keeps a heartbeat in status.json, so a
studio on another machine sharing the runs folder sees the run alive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from .. import data, models, ranks, rewards, runs, settings
from ..config import Config, ConfigError
from ..eval import evaluate, report
from . import launch, preflight, rollout_server, trackers


# ---------------------------------------------------------------- the three ways to run

def command(preset: str | None, overrides: list[str], resume: Path | None, processes: int | None = None,
            accelerate_config: str = "", launcher: str = "auto", rewards_dir: str | None = None) -> int:
    """Train here (one process), start the ranks through accelerate (launch.py), or be one of them; the exit
    status: 0 finished, 128 + the signal when stopped, 1 failed."""
    if rewards_dir:  # searched last: a module there never shadows an installed one
        sys.path.append(str(Path(rewards_dir).expanduser().resolve()))
    if ranks.launched():
        return _as_rank(preset, overrides, resume, processes, accelerate_config, launcher)
    given = [f"run.processes={processes}"] * (processes is not None) + \
            [f"run.accelerate_config={accelerate_config}"] * bool(accelerate_config)
    cfg = _config(preset, resume, [*overrides, *given], "rrft-studio train presets/demo.yaml [key=value ...]",
                  " (key=value overrides are allowed)")
    if resume:
        recorded = runs.load_config(resume)
        ranks.check_count(recorded, resume, cfg.run.processes)
        if cfg.run.accelerate_config != recorded.run.accelerate_config:
            raise ConfigError(f"run '{resume}' trained with run.accelerate_config={recorded.run.accelerate_config or 'none'}: "
                              "resume it the same way (its checkpoints are in that layout)")
        runs.may_resume(resume)
    accelerate = ranks.wanted(cfg) or launcher == "accelerate"
    if accelerate and not cfg.run.accelerate_config:
        cfg.run.accelerate_config = "ddp"  # recorded, so that a resume launches the same way
    if accelerate and launcher == "none":
        raise ConfigError(f"run.processes={cfg.run.processes}, run.accelerate_config={cfg.run.accelerate_config or 'none'} "
                          "needs accelerate: drop --launcher none, or run under accelerate launch -m rrft_studio.cli train")
    backend, why = _backend(cfg)
    run_dir = prepare_run(cfg, resume, overrides, accelerate=accelerate)
    if resume and overrides:  # resumed with a changed setting (a lower learning rate after a divergence, say)
        print(f"resuming with {' '.join(overrides)} (written to {runs.config_path(run_dir)})")
    if accelerate:
        return launch.run(cfg, run_dir, rewards_dir)
    return _here(cfg, run_dir, backend, why)


def _as_rank(preset: str | None, overrides: list[str], resume: Path | None, processes: int | None,
             accelerate_config: str, launcher: str) -> int:
    """One rank of an accelerate launch: the main process checks and makes (or takes over) the run directory and
    tells the others; then every rank trains and the main one writes."""
    if processes is not None or accelerate_config or launcher == "accelerate":
        raise ConfigError("under accelerate launch the launch sets the processes: drop --processes, "
                          "--accelerate-config and --launcher")
    cfg = _config(preset, resume, overrides, "accelerate launch ... -m rrft_studio.cli train presets/demo.yaml")
    if resume:
        ranks.check_count(cfg, resume, ranks.world_size())
    else:
        ranks.adopt(cfg)
    cuda = models.cuda_available(cfg)
    if not cuda and ranks.strategy() != "ddp":
        raise ConfigError(f"this launch uses {ranks.strategy()}, which shards over CUDA GPUs, and the run has none "
                          "(accelerate would quietly run plain DDP): launch with configs/accelerate/ddp.yaml")
    ranks.init(cuda)
    backend, why = _backend(cfg)
    own = tuple(pid for pid in [ranks.launcher_pid()] if pid)  # our launcher made the run and checked it
    run_dir = ranks.share(lambda: prepare_run(cfg, resume, overrides, own=own))
    if not ranks.is_main():
        sys.stdout = open(os.devnull, "w")  # one copy of the run's output: the main process's
    return _here(cfg, run_dir, backend, why)


def _config(preset: str | None, resume: Path | None, overrides: list[str], usage: str, note: str = "") -> Config:
    """The run's config: a preset's, or with --resume the run's own; key=value overrides apply to either."""
    if resume:
        if preset:
            raise ConfigError(f"--resume continues with the run's own config: drop '{preset}'{note}")
        return settings.load_run(resume, overrides)
    if not preset:
        raise ConfigError(f"train needs a preset: {usage}")
    return settings.load(preset, overrides)


def _backend(cfg: Config) -> tuple[str, str]:
    """(backend, why), chosen before transformers or trl is imported; refused where the device cannot train the
    model or Unsloth could not patch the trainers."""
    preflight.check_training_device(cfg)
    backend, why = models.choose_backend(cfg)
    models.check_trainers(cfg, backend, models.trainer_classes(cfg.run.stages) if backend == "unsloth" else {})
    return backend, why


def prepare_run(cfg: Config, resume: Path | None, overrides: list[str], accelerate: bool = False,
                own: tuple[int, ...] = ()) -> Path:
    """Before anything is written, what the run needs, each refused in one line: the vLLM server, the trackers, the
    model, the machine for an accelerate launch, the data; then its run directory: a new one, or the resumed run
    (not finished nor running; `own` are this launch's pids), its config rewritten with the overrides. A launch
    our launcher made (`own`) was checked there."""
    if resume:
        runs.may_resume(resume, own)
    if not own:
        rollout_server.check(cfg, models.cuda_available(cfg))
        trackers.check(cfg)
        models.check_source(cfg)
        if accelerate:
            launch.check_environment(cfg)
        check_data(cfg)
    if not resume:
        return runs.create(cfg)
    if overrides:
        runs.save_config(resume, cfg)
    return resume


def check_data(cfg: Config) -> None:
    """Read the records, and open the images of real files, before a run directory exists: a bad file costs
    nothing (generated data is written by this project and checked as it is read); then call each GRPO reward
    once on a sample, so a broken user reward fails now and not after all of Stage 1 has trained."""
    reference = Path(cfg.run.compare_to).expanduser()
    if cfg.run.compare_to and not (reference.is_file() or (reference / "sweep.json").is_file()):
        raise ConfigError(f"run.compare_to: '{reference}' is not a sweep (no sweep.json there): give a sweep's "
                          "folder or its sweep.json, or leave run.compare_to empty")
    for split in (["train"] if cfg.run.stages else []) + (cfg.eval.splits if cfg.eval.enabled else []):
        rows = data.records(cfg, split)
        path, _ = data.source(cfg, split)
        if not rows:
            raise ConfigError(f"{data.source_key(cfg, split)}: '{path}' holds no records: give a file with some")
        if path is not None:
            data.check_images(rows, str(path))
        if split == "train" and models.uses_fast_inference(cfg):
            most = max(len(data.images_of(row)) for row in rows)
            if most > 1:
                raise ConfigError(f"model.fast_inference=true: Unsloth's vLLM engine takes one image per prompt and "
                                  f"records of '{path}' have {most}: set model.fast_inference=false (rollouts "
                                  "through generate)")
        if split == "train" and "grpo" in cfg.run.stages:
            row = data.grpo_row(rows[0], data.task_of(cfg), cfg)
            for name in cfg.grpo.rewards:
                try:
                    rewards.check_callable(rewards.resolve(name), row, name)
                except ValueError as e:
                    raise ConfigError(f"grpo.rewards: {e}") from None


def _here(cfg: Config, run_dir: Path, backend: str, why: str) -> int:
    """Train the run in this process (or this rank), then print the report; the exit status."""
    from . import progress  # transformers only now: the backend (and Unsloth's patches) came first

    progress.StopRequested.install()
    try:
        result = train(cfg, run_dir, backend, why)
    except (progress.Diverged, runs.DiskFull, OSError) as e:
        if not ranks.is_main() and isinstance(e, (progress.Diverged, runs.DiskFull)):
            return 1  # the main process says why
        status = runs.read_status(run_dir)
        if status.get("failure") in (None, "error"):
            raise  # not a failure the run can explain in one line: show the traceback
        print(f"\nerror: {status['error']}", file=sys.stderr)  # below the progress bar the failure left open
        return 1
    if result is None:
        print(f"stopped; resume with: rrft-studio train --resume {run_dir}")
        if ranks.launched():
            return 0  # torchrun reads any other status as a crash; the launcher returns 128+signal
        return 128 + (progress.StopRequested.signum or signal.SIGINT)  # as a process a signal ended
    if ranks.is_main():
        print(report.text(result))
        trackers.log_report(cfg, run_dir, result)
    return 0


# ---------------------------------------------------------------- the stages

def launch_status(cfg: Config) -> dict:
    """What status.json records of the processes: their count, strategy and launcher, each stage's batch split."""
    fields = dict(processes=cfg.run.processes,
                  batch_split={stage: ranks.split(cfg, stage).as_dict() for stage in cfg.run.stages})
    if ranks.launched():
        fields.update(accelerate=cfg.run.accelerate_config or ranks.strategy(),
                      launcher_pid=ranks.launcher_pid() or os.getppid())
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

    main = ranks.is_main()
    started, before = time.time(), runs.read_status(run_dir).get("seconds", 0.0)
    if main:
        runs.keep_reserve(run_dir)
        import torch

        runs.write_status(run_dir, state="running", backend=backend, backend_why=why, drop=("error", "failure"),
                          threads=torch.get_num_threads(), **launch_status(cfg))
        print(f"run directory: {run_dir}\nbackend: {backend} ({why})", flush=True)
        for stage in cfg.run.stages if cfg.run.processes > 1 else []:
            b = ranks.split(cfg, stage)
            print(f"{stage}: global batch {b.global_batch} = {b.per_device} per process x {b.processes} processes "
                  f"x {b.accumulation} accumulation", flush=True)
    with runs.Heartbeat(run_dir) if main else contextlib.nullcontext():
        return _stages(cfg, run_dir, backend, started, before)


def _stages(cfg: Config, run_dir: Path, backend: str, started: float, before: float) -> dict | None:
    from . import grpo, progress, sft  # import trl only now: the backend (and Unsloth's patches) came first

    main = ranks.is_main()
    stop = progress.StopRequested.check_all  # every rank stops at the same point
    try:
        import transformers

        transformers.set_seed(cfg.run.seed)
        with ranks.main_first():  # the main process of each machine builds the tiny model, the others load it
            current = models.source(cfg, data.corpus(cfg) if cfg.model.name == "tiny" else None)
        if main:
            runs.write_status(run_dir, base_model=current)
        evaluate.evaluate_splits(cfg, run_dir, current, "base", stop)
        for stage in cfg.run.stages:
            if runs.is_done(run_dir, stage):
                current = str(runs.final_dir(run_dir, stage))
            else:
                stop()
                out = (sft if stage == "sft" else grpo).run(cfg, run_dir, current, backend)
                if out is None:
                    raise progress.Stopped()
                current = str(out)
            evaluate.evaluate_splits(cfg, run_dir, current, stage, stop)
    except progress.Stopped:
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
    from . import progress

    if isinstance(e, progress.Diverged):
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
