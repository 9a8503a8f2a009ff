"""`rrft-studio train`: evaluate the starting model, run the preset's stages in order (each starting from the
previous stage's final checkpoint), evaluate after each, then write report.json and the plots.

A stopped or killed run resumes where its last checkpoint left it: finished stages and evaluations are
skipped, the current stage continues from its newest checkpoint.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from . import data, evaluate, models, report, runs
from .config import Config


def evaluate_splits(cfg: Config, run_dir: Path, checkpoint: str, label: str) -> None:
    """Each configured split once (a resumed run skips what it has)."""
    for split in cfg.eval.splits if cfg.eval.enabled else []:
        if evaluate.load(run_dir, label, split) is not None:
            continue
        runs.write_status(run_dir, state="running", stage=f"eval:{label}:{split}")
        result = evaluate.evaluate(checkpoint, cfg, evaluate.eval_rows(cfg, split), label, split)
        evaluate.save(result, run_dir)
        print(evaluate.summary_line(result), flush=True)


def quiet() -> None:
    """Keep the terminal for our progress bar: no library progress bars or info chatter."""
    import datasets
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()


def train(cfg: Config, run_dir: Path, backend: str, why: str) -> dict | None:
    """Run every stage of the run; return the report, or None when the run was stopped (resumable)."""
    from . import grpo, sft  # import trl only now: the backend (and Unsloth's patches) came first

    quiet()

    started, before = time.time(), runs.read_status(run_dir).get("seconds", 0.0)
    runs.write_status(run_dir, state="running", backend=backend, backend_why=why)
    print(f"run directory: {run_dir}\nbackend: {backend} ({why})", flush=True)
    try:
        import transformers

        transformers.set_seed(cfg.run.seed)
        current = models.source(cfg, data.corpus(cfg) if cfg.model.name == "tiny" else None)
        runs.write_status(run_dir, base_model=current)
        evaluate_splits(cfg, run_dir, current, "base")
        for stage in cfg.run.stages:
            if runs.is_done(run_dir, stage):
                current = str(runs.stage_dir(run_dir, "final", stage))
            else:
                out = (sft if stage == "sft" else grpo).run(cfg, run_dir, current, backend)
                if out is None:
                    seconds = before + time.time() - started
                    runs.write_status(run_dir, state="stopped", seconds=seconds)
                    return None
                current = str(out)
            evaluate_splits(cfg, run_dir, current, stage)
    except BaseException as e:
        state = "stopped" if isinstance(e, KeyboardInterrupt) else "failed"
        runs.write_status(run_dir, state=state, seconds=before + time.time() - started,
                          error="".join(traceback.format_exception_only(type(e), e)).strip())
        raise
    seconds = before + time.time() - started
    result = report.build(run_dir, seconds)
    runs.write_status(run_dir, state="finished", stage=None, seconds=seconds)
    return result
