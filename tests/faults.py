"""Run the real command line in this process with one fault injected at a precise point, for the reliability
tests: `python tests/faults.py FAULT -- train ARGS...`.

    kill-step:STAGE:N     SIGKILL at the end of optimizer step N of a stage (before its checkpoint)
    kill-save:STAGE:N     SIGKILL while checkpoint-N is written (its weights are on disk, trainer_state.json not)
    kill-final:STAGE      SIGKILL while the stage's final weights are written (its last checkpoint exists)
    kill-eval:LABEL       SIGKILL in the middle of evaluating a checkpoint (base, sft, grpo)
    term-eval:LABEL       SIGTERM (a stop request) in the middle of evaluating a checkpoint
    nan:STAGE:N           a trainable weight set to NaN at the end of step N (a divergence)
    enospc:STAGE:N        "No space left on device" when step N's metrics row is written
    delete-image:STAGE:N  the stage's training images deleted at the end of step N
    digest                each rank appends a digest of its weights after every step to $RRFT_TEST_DIGESTS/rank<R>.jsonl
    none                  no fault
Several, comma-separated, apply together; under `accelerate launch` every rank injects them.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def at_step_end(stage: str, step: int, action) -> None:
    from rrft_studio.train import progress

    original = progress.RunTracker.on_step_end

    def on_step_end(self, args, state, control, **kwargs):
        if self.stage == stage and state.global_step == step:
            action(kwargs.get("model"))
        return original(self, args, state, control, **kwargs)

    progress.RunTracker.on_step_end = on_step_end


def in_evaluation(label: str, action) -> None:
    """`action()` before the second batch of evaluating `label` (one batch done, one to go)."""
    from rrft_studio.eval import evaluate

    original = evaluate.evaluate

    def wrapped(checkpoint, cfg, rows, label_=None, split="id", between_batches=None):
        calls = []

        def hook():
            calls.append(1)
            if label_ == label and len(calls) == 2:
                action()
            if between_batches is not None:
                between_batches()

        return original(checkpoint, cfg, rows, label_, split, hook)

    evaluate.evaluate = wrapped


def weights_digest(model) -> str:
    """One hash of every parameter (name, shape, float32 bytes), in name order: equal weights, equal digests."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def record_digests() -> None:
    import json

    from rrft_studio.train import progress

    folder, original = Path(os.environ["RRFT_TEST_DIGESTS"]), progress.RunTracker.on_step_end

    def on_step_end(self, args, state, control, **kwargs):
        row = {"stage": self.stage, "step": state.global_step, "digest": weights_digest(kwargs["model"])}
        with open(folder / f"rank{os.environ.get('RANK', '0')}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return original(self, args, state, control, **kwargs)

    progress.RunTracker.on_step_end = on_step_end


def inject(fault: str) -> None:
    kind, _, where = fault.partition(":")
    if kind == "kill-step":
        stage, step = where.split(":")
        at_step_end(stage, int(step), lambda model: die())
    elif kind == "kill-save":
        from transformers import TrainerState

        stage, step = where.split(":")
        original = TrainerState.save_to_json

        def save_to_json(self, path):
            if f"/{stage}/checkpoint-{step}/" in str(path):
                die()
            return original(self, path)

        TrainerState.save_to_json = save_to_json
    elif kind == "kill-final":
        from rrft_studio import models

        original = models.save_final

        def save_final(model, processor, out_dir, backend, **kwargs):
            if Path(out_dir).name == where:
                die()
            return original(model, processor, out_dir, backend, **kwargs)

        models.save_final = save_final
    elif kind == "kill-eval":
        in_evaluation(where, die)
    elif kind == "term-eval":
        in_evaluation(where, lambda: os.kill(os.getpid(), signal.SIGTERM))
    elif kind == "nan":
        import torch

        stage, step = where.split(":")

        def poison(model):
            with torch.no_grad():
                next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))

        at_step_end(stage, int(step), poison)
    elif kind == "enospc":
        from rrft_studio import runs

        stage, step = where.split(":")
        original = runs.append_jsonl

        def append_jsonl(path, record):
            if Path(path).name == "metrics.jsonl" and record.get("stage") == stage and record.get("step") == int(step):
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(path, record)

        runs.append_jsonl = append_jsonl
    elif kind == "delete-image":
        from rrft_studio import data

        stage, step = where.split(":")
        images: list[str] = []
        original = data.stage_records

        def stage_records(cfg, name):
            rows = original(cfg, name)
            if name == stage:
                images.extend(p for r in rows for p in data.images_of(r))
            return rows

        data.stage_records = stage_records
        at_step_end(stage, int(step), lambda model: [os.unlink(p) for p in images if os.path.exists(p)])
    elif kind == "digest":
        record_digests()
    elif kind != "none":
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    fault, args = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    for one in fault.split(","):
        inject(one)
    from rrft_studio import cli

    sys.exit(cli.main(args))
