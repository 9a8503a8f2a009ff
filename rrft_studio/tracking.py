"""What a training stage writes while it runs: metrics.jsonl, samples.jsonl, status.json, a progress bar.

One TrainerCallback serves both stages. SIGINT / SIGTERM ask for a stop: the trainer saves a checkpoint at
the end of the current step and returns, and the run is marked `stopped` (resume continues from there).
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

from . import runs


class StopRequested:
    """Set by SIGINT/SIGTERM; read by the callback at each step end."""

    flag = False

    @classmethod
    def install(cls) -> None:
        def handler(signum, frame):
            if cls.flag:  # a second Ctrl-C: leave now
                raise KeyboardInterrupt
            cls.flag = True
            tqdm.write("stop requested: saving a checkpoint at the end of this step (Ctrl-C again to abort)")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


class RunTracker(TrainerCallback):
    def __init__(self, run_dir: Path, stage: str, samples_every: int = 0):
        self.run_dir, self.stage, self.samples_every = Path(run_dir), stage, samples_every
        self.trainer = None  # set after the trainer exists: rollouts are read from it
        self.bar = None
        self.last = time.time()
        self.stopped = False
        self.samples_step = -1

    # -- lifecycle
    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.stage, unit="step",
                        dynamic_ncols=True)
        runs.write_status(self.run_dir, state="running", stage=self.stage, step=state.global_step,
                          max_steps=state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)
        if StopRequested.flag:
            control.should_save = True
            control.should_training_stop = True
            self.stopped = True
            runs.write_status(self.run_dir, state="stopping", stage=self.stage, step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()

    # -- metrics
    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        now = time.time()
        row = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch, "time": now}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float)) and not _nan(v)})
        row.setdefault("step_time", now - self.last)
        self.last = now
        runs.append_jsonl(self.run_dir / "metrics.jsonl", row)
        runs.write_status(self.run_dir, state="running", stage=self.stage, step=state.global_step,
                          max_steps=state.max_steps, eta_s=self._eta(state))
        self.bar.set_postfix(_postfix(row), refresh=False)
        step = state.global_step
        if self.samples_every and self.trainer is not None and step % self.samples_every == 0 \
                and step != self.samples_step:  # the end-of-training summary logs the last step again
            self.samples_step = step
            self._write_samples(step)

    def _eta(self, state) -> float | None:
        rate = self.bar.format_dict.get("rate") if self.bar else None
        return (state.max_steps - state.global_step) / rate if rate else None

    def _write_samples(self, step: int) -> None:
        """The last rollout batch of GRPOTrainer: prompt, image(s), completions, per-reward scores, advantages."""
        logs = self.trainer._logs
        completions = list(logs["completion"])
        if not completions:
            return
        extra = {k: list(v) for k, v in logs["extra"].items()}
        rewards = {k: list(v) for k, v in logs["rewards"].items()}
        tokenizer = getattr(self.trainer.processing_class, "tokenizer", self.trainer.processing_class)
        rows = []
        for i, text in enumerate(completions):
            rows.append({
                "prompt": logs["prompt"][i], "completion": text,
                "rewards": {k: v[i] for k, v in rewards.items()},
                "advantage": logs["advantages"][i],
                "length": len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                **{k: v[i] for k, v in extra.items() if i < len(v)},
            })
        runs.append_jsonl(self.run_dir / "samples.jsonl", {"stage": self.stage, "step": step, "time": time.time(),
                                                           "completions": rows})


def _nan(v: float) -> bool:
    return isinstance(v, float) and (math.isnan(v) or math.isinf(v))


def _postfix(row: dict) -> dict:
    keys = {"reward": "reward", "loss": "loss", "completions/mean_length": "len", "learning_rate": "lr"}
    return {short: f"{row[k]:.3g}" for k, short in keys.items() if k in row}
