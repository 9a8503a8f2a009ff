"""A Stage 1 that ends where the model is, not after a fixed count of steps: with sft.stop_at_accuracy, SFT stops
at the first check (every sft.stop_every steps) where greedy accuracy on sft.stop_samples held-out training
records reaches the target. How fast a small model learns moves with the seed and the thread count, so a fixed
step count lands Stage 1 anywhere from near chance to near its ceiling; GRPO then starts from wherever that was.

The records checked are the last sft.stop_samples of Stage 2's records (never Stage 1's, never an evaluation
split): held out from what SFT trains on, decoded greedily (eval.max_new_tokens) and scored as the evaluator
scores (eval.scorer). Each check is logged to metrics.jsonl (`stop_check/accuracy`); the step and accuracy where
Stage 1 stopped go to status.json (`sft_stopped`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from transformers import TrainerCallback

from .. import data, runs
from ..config import Config
from ..eval import evaluate


def held_out(cfg: Config) -> list[dict]:
    """The records the check reads: the last sft.stop_samples of Stage 2's."""
    return data.stage_records(cfg, "grpo")[-cfg.sft.stop_samples:]


def accuracy(model, processor, cfg: Config, rows: list[dict]) -> float:
    """Accuracy of the in-training model on `rows`, decoded and scored as the evaluator does."""
    predictions = evaluate.predict(model, processor, cfg, rows, "train")
    return sum(p["correct"] for p in predictions) / max(len(predictions), 1)


class AccuracyStop(TrainerCallback):
    """Every sft.stop_every steps: the held-out accuracy, logged; at or above the target, the stage ends there
    (the trainer's own stop: the final checkpoint is saved as at the last step)."""

    def __init__(self, cfg: Config, run_dir: Path, processor):
        # greedy, with the training prompt: a check, not a sample (no RNG drawn), of what Stage 2 will be asked
        greedy = dataclasses.replace(cfg.eval, temperature=0.0, style="cot")
        self.cfg, self.run_dir, self.processor = dataclasses.replace(cfg, eval=greedy), Path(run_dir), processor
        self.rows = held_out(cfg)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        s = self.cfg.sft
        if state.global_step % s.stop_every or state.global_step >= state.max_steps:
            return control
        was_training = model.training
        model.eval()
        padding, self.processor.tokenizer.padding_side = self.processor.tokenizer.padding_side, "left"
        try:
            score = accuracy(model, self.processor, self.cfg, self.rows)
        finally:
            self.processor.tokenizer.padding_side = padding
            model.train(was_training)
        runs.append_jsonl(runs.metrics_path(self.run_dir),
                          {"stage": "sft", "step": state.global_step, "stop_check/accuracy": score})
        if score >= s.stop_at_accuracy:
            control.should_training_stop = True
            runs.write_status(self.run_dir, sft_stopped={"step": state.global_step, "accuracy": score,
                                                         "target": s.stop_at_accuracy})
        return control
