"""What a training stage writes while it runs: metrics.jsonl, samples.jsonl, status.json, a progress bar; and
what stops it: a stop request, or weights that stopped being finite.

One TrainerCallback serves both stages. SIGINT / SIGTERM ask for a stop: the trainer saves a checkpoint at
the end of the current step and returns, and the run is marked `stopped` (resume continues from there); an
evaluation stops between two batches. A non-finite loss or gradient norm, or a trainable weight that is no
longer finite, stops the stage at that step without saving it (`Diverged`): the checkpoints on disk are all
finite, and resuming from the last one with a lower learning rate goes on from there.

With several processes every rank runs the callback: a stop request or a non-finite weight on any rank stops
all of them at the same step (one all-reduce per step), a non-finite logged loss is seen alike by all (the
trainer logs the mean over ranks), and only the main process writes and shows a progress bar.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

from .. import ranks, runs
from ..answers import completion_text


class Stopped(Exception):
    """A stop was requested where no checkpoint is needed (between evaluation batches, between stages)."""


class Diverged(Exception):
    """A stage's loss, gradient or weights stopped being finite at a step; nothing of that step was saved."""

    def __init__(self, stage: str, step: int, what: str):
        super().__init__(f"{stage} diverged at step {step}: {what}")
        self.stage, self.step, self.what = stage, step, what


class StopRequested:
    """Set by SIGINT/SIGTERM; read by the callback at each step end and by the evaluator between batches."""

    flag = False
    signum = 0
    at = 0.0

    @classmethod
    def install(cls) -> None:
        def handler(signum, frame):
            if cls.flag and ranks.launched() and time.monotonic() - cls.at < 2:
                return  # the same Ctrl-C again, passed on by torchrun: not a second request
            if cls.flag:  # a second Ctrl-C: leave now
                raise KeyboardInterrupt
            cls.flag, cls.signum, cls.at = True, signum, time.monotonic()
            if ranks.is_main():
                tqdm.write("stop requested: saving a checkpoint at the end of this step (Ctrl-C again to abort)")

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    @classmethod
    def check(cls) -> None:
        """Raise Stopped if a stop was requested (where stopping needs no checkpoint)."""
        if cls.flag:
            raise Stopped()

    @classmethod
    def check_all(cls) -> None:
        """check() with every rank deciding alike (call it at the same point on every rank)."""
        if ranks.any_rank(cls.flag)[0]:
            raise Stopped()


def fit(trainer, tracker: "RunTracker", resume: Path | None, max_steps: int) -> bool:
    """Train (from `resume` when given) and return whether a stop was requested; raise Diverged when the loss
    or the weights stopped being finite. A checkpoint that already reached the stage's last step (a kill
    between it and the final save) is loaded, not trained on: the trainer would take one step too many."""
    if resume is not None:
        load_weights_on_resume(trainer)
    if resume is not None and runs.checkpoint_step(resume) >= runs.planned_steps(resume, max_steps):
        trainer._load_from_checkpoint(str(resume))
    else:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if tracker.diverged is not None:
        raise tracker.diverged
    bad = None if tracker.stopped else nonfinite_weight(trainer.model)
    if ranks.any_rank(bad is not None)[0]:
        raise Diverged(tracker.stage, trainer.state.global_step,
                       f"the weight {bad or 'of another process'} is no longer finite")
    return tracker.stopped


def load_weights_on_resume(trainer) -> None:
    """Make the trainer's resume load a full model's checkpoint the way from_pretrained reads it. Its own loader
    reads the saved tensor names as they are, and for Qwen2-VL the saved names are not the module's
    (transformers renames them on save and load; huggingface/transformers#43701): every key is dropped with a
    warning and training silently goes on from the starting weights. Adapters (PEFT), FSDP and DeepSpeed
    checkpoints load through their own paths and are left to them."""
    from transformers.trainer import _is_peft_model

    if _is_peft_model(trainer.model) or trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        return

    def load(checkpoint: str, model=None) -> None:
        target = model if model is not None else trainer.model
        saved = type(target).from_pretrained(checkpoint, dtype=target.dtype, device_map="cpu")
        target.load_state_dict(saved.state_dict(), strict=True)

    trainer._load_from_checkpoint = load


def nonfinite_weight(model) -> str | None:
    """The first trainable parameter that holds NaN or inf, or None (frozen weights cannot diverge)."""
    import torch

    for name, p in model.named_parameters():
        local = p.to_local() if hasattr(p, "to_local") else p  # FSDP2: this rank's shard, no collective
        if p.requires_grad and not bool(torch.isfinite(local).all()):
            return name
    return None


class RunTracker(TrainerCallback):
    def __init__(self, run_dir: Path, stage: str, samples_every: int = 0):
        self.run_dir, self.stage, self.samples_every = Path(run_dir), stage, samples_every
        self.trainer = None  # set after the trainer exists: rollouts are read from it
        self.bar = None
        self.last = time.time()
        self.stopped = False
        self.diverged: Diverged | None = None
        self.samples_step = -1

    # -- lifecycle
    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.stage, unit="step",
                        dynamic_ncols=True, disable=not state.is_world_process_zero)
        if state.is_world_process_zero:  # eta_s: the last stage's left behind is not this one's
            runs.write_status(self.run_dir, state="running", stage=self.stage, step=state.global_step,
                              max_steps=state.max_steps, eta_s=None, **self._resumed(state))
        schedule = getattr(lr_scheduler, "scheduler", lr_scheduler)  # inside accelerate's wrapper
        if state.global_step and hasattr(schedule, "lr_lambdas"):
            # resumed: the scheduler came back with the checkpoint's peak learning rate; a resume with a changed
            # <stage>.lr (after a divergence, say) means the new one, from this step on
            schedule.base_lrs = [args.learning_rate] * len(schedule.base_lrs)
            for group, factor in zip(optimizer.param_groups, schedule.lr_lambdas):
                group["lr"] = args.learning_rate * factor(schedule.last_epoch)
            schedule._last_lr = [group["lr"] for group in optimizer.param_groups]  # what the next log reports

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.bar.update(state.global_step - self.bar.n)
        if state.global_step >= state.max_steps and args.logging_strategy == "steps":
            control.should_log = True  # the stage's last step is logged, whatever logging_steps says
        bad = nonfinite_weight(model) if model is not None else None
        diverged, stop = ranks.any_rank(bad is not None, StopRequested.flag)  # every rank alike
        if diverged:
            self._diverge(control, state.global_step, f"the weight {bad or 'of another process'} is no longer finite")
            return
        if stop:
            control.should_save = True
            control.should_training_stop = True
            self.stopped = True
            if state.is_world_process_zero:
                runs.write_status(self.run_dir, state="stopping", stage=self.stage, step=state.global_step)

    def _diverge(self, control, step: int, what: str) -> None:
        """Stop at this step without saving it (the checkpoints on disk stay finite)."""
        if self.diverged is None:
            self.diverged = Diverged(self.stage, step, what)
        control.should_save = False
        control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()

    # -- metrics
    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        bad = [f"{k}={v}" for k, v in logs.items() if k in ("loss", "grad_norm") and isinstance(v, float) and _nan(v)]
        if bad:  # on every rank: the logged loss and gradient norm are the same on all of them
            self._diverge(control, state.global_step, f"non-finite {', '.join(bad)}")
        if not state.is_world_process_zero:
            return
        now = time.time()
        row = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch, "time": now}
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float)) and not _nan(v)})
        row.update(_gpu_memory())
        row.setdefault("step_time", now - self.last)
        self.last = now
        runs.append_jsonl(runs.metrics_path(self.run_dir), row)
        runs.write_status(self.run_dir, state="running", stage=self.stage, step=state.global_step,
                          max_steps=state.max_steps, eta_s=self._eta(state), step_s=self._step_seconds())
        self.bar.set_postfix(_postfix(row), refresh=False)
        step = state.global_step
        if self.samples_every and self.trainer is not None and step % self.samples_every == 0 \
                and step != self.samples_step:  # the end-of-training summary logs the last step again
            self.samples_step = step
            self._write_samples(step)

    def _eta(self, state) -> float | None:
        rate = self.bar.format_dict.get("rate") if self.bar else None
        return (state.max_steps - state.global_step) / rate if rate else None

    def _step_seconds(self) -> dict:
        """Seconds per step of each stage so far (this one's from the progress bar): the studio's whole-run ETA
        reads them, here and in later runs of the same settings."""
        rate = self.bar.format_dict.get("rate") if self.bar else None
        known = runs.read_status(self.run_dir).get("step_s", {})
        return {**known, self.stage: 1 / rate} if rate else known

    def _resumed(self, state) -> dict:
        """A stage resumed from a checkpoint adds where to status.json's resumes: the monitor marks them."""
        if not state.global_step:
            return {}
        resumes = runs.read_status(self.run_dir).get("resumes", [])
        return {"resumes": [*resumes, {"stage": self.stage, "step": state.global_step, "time": time.time()}]}

    def _write_samples(self, step: int) -> None:
        """The last rollout batch of GRPOTrainer: prompt, image(s), completions, per-reward scores, advantages."""
        logs = self.trainer._logs
        completions = list(logs["completion"])
        if not completions:
            return
        extra = {k: list(v) for k, v in logs["extra"].items()}
        rewards = {k: list(v) for k, v in logs["rewards"].items()}
        processor = self.trainer.processing_class
        tokenizer = getattr(processor, "tokenizer", processor)
        prompts = [prompt_text(p, processor) for p in logs["prompt"]]
        rows = []
        tokens = extra.pop("tokens", [])
        for i, completion in enumerate(completions):
            text = completion_text(completion)
            rows.append({
                "prompt": prompts[i], "completion": text,
                "rewards": {k: v[i] for k, v in rewards.items()},
                "advantage": logs["advantages"][i],
                # the tokens sampled; re-tokenising the text counts a completion cut mid-word as longer
                "length": tokens[i] if i < len(tokens) else len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                **{k: v[i] for k, v in extra.items() if i < len(v)},
            })
        runs.append_jsonl(runs.samples_path(self.run_dir), {"stage": self.stage, "step": step, "time": time.time(),
                                                           "completions": rows})


def prompt_text(prompt, processor) -> str:
    """A rollout's prompt as text: the chat template applied, special tokens (the image's among them) dropped.
    TRL 1.14 logs it so; TRL 1.15 logs the messages themselves."""
    if isinstance(prompt, str):
        return prompt
    tokenizer = getattr(processor, "tokenizer", processor)
    templated = processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return tokenizer.decode(tokenizer(templated, add_special_tokens=False)["input_ids"], skip_special_tokens=True)


def _gpu_memory() -> dict:
    """This process's GPU memory in GiB, allocated now and its peak so far (the monitor plots them); nothing
    where CUDA is not in use."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {"gpu_memory_gb": torch.cuda.memory_allocated() / 2**30,
            "gpu_memory_peak_gb": torch.cuda.max_memory_allocated() / 2**30}


def _nan(v: float) -> bool:
    return isinstance(v, float) and (math.isnan(v) or math.isinf(v))


def _postfix(row: dict) -> dict:
    keys = {"reward": "reward", "loss": "loss", "completions/mean_length": "len", "learning_rate": "lr"}
    return {short: f"{row[k]:.3g}" for k, short in keys.items() if k in row}
