"""Stage 2: GRPO ("reasoning enhancement") through TRL's GRPOTrainer.

Starts from Stage 1's final checkpoint when the run has one, and that checkpoint is the KL reference
(TRL rebuilds the reference from the path the policy was loaded from; with LoRA it disables the adapter).
Rewards are format + accuracy (weights 1, 1); the loss is TRL's `grpo` (per-sequence token mean, then
mean over sequences), beta 0.04 with the k3 estimator, one policy update per rollout batch, as in the paper.
G completions x grpo.prompts_per_step prompts make one optimizer step (the paper: 8 x 14 = 112).

    rrft-studio train presets/demo.yaml run.stages=[grpo]
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from .. import data, models, ranks, rewards, runs, tasks
from ..answers import completion_text
from ..config import Config
from . import dynamic_sampling, invariants, preflight, progress, rollout_server, trackers


def trainer_args(cfg: Config, output_dir: Path, use_cpu: bool, suppress_tokens: list[int] = ()):
    """Our config -> TRL's GRPOConfig, in one place."""
    from trl import GRPOConfig

    g, vllm = cfg.grpo, rollout_server.trainer_args(cfg)
    split = ranks.split(cfg, "grpo")  # the step's completions over the processes
    if suppress_tokens:  # vLLM's SamplingParams has no suppress_tokens: a -100 logit bias does the same
        generation_kwargs = {"logit_bias": {i: -100.0 for i in suppress_tokens}} if vllm["use_vllm"] \
            else {"suppress_tokens": list(suppress_tokens)}
    else:
        generation_kwargs = None
    return GRPOConfig(
        output_dir=str(output_dir), num_train_epochs=g.epochs, max_steps=g.max_steps,
        learning_rate=g.lr, lr_scheduler_type=g.scheduler, warmup_steps=g.warmup_steps,
        weight_decay=g.weight_decay, per_device_train_batch_size=split.per_device,
        gradient_accumulation_steps=split.accumulation, num_generations=g.num_generations,
        beta=g.beta, loss_type=g.loss_type, epsilon=g.epsilon, scale_rewards=g.scale_rewards,
        num_iterations=1, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
        max_completion_length=g.max_completion_length, reward_weights=g.reward_weights,
        gradient_checkpointing=g.gradient_checkpointing, logging_steps=g.logging_steps,
        save_steps=g.save_steps, save_total_limit=2, **models.precision_args(cfg), use_cpu=use_cpu,
        seed=cfg.run.seed, data_seed=cfg.run.seed, **trackers.report_args(cfg, output_dir), disable_tqdm=True,
        logging_nan_inf_filter=False,  # a diverged loss must reach the callback, not be averaged away
        remove_unused_columns=False, log_completions=False, dataloader_num_workers=0,
        generation_kwargs=generation_kwargs, model_init_kwargs=reference_init(cfg),
        shuffle_dataset=not cfg.data.longest_first,  # longest_first: the dataset comes ordered; keep that order
        # model.fast_inference: Unsloth hands its own vLLM engine (model.vllm_engine) to the trainer;
        # grpo.vllm_mode=server: TRL's client of a trl vllm-serve server
        **vllm,
    )


def reference_init(cfg: Config) -> dict | None:
    """How TRL builds the KL reference of a full fine-tune (from the policy's starting checkpoint): in the
    policy's compute dtype. TRL's default is float32, twice the memory and, where Unsloth switches autocast
    off, an fp32 forward each step. With LoRA there is no copy: TRL disables the adapters instead."""
    if cfg.grpo.beta == 0 or cfg.model.finetune != "full":
        return None
    return {"dtype": str(models.dtype_of(cfg)).removeprefix("torch.")}


class _FalseWarning(logging.Filter):
    """TRL warns that model_init_kwargs 'will be ignored' when the policy is passed loaded, and then builds the
    reference model with them: that warning stays off the user's screen."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "model_init_kwargs" not in record.getMessage()


_FALSE_WARNING = _FalseWarning()


def reward_funcs(cfg: Config) -> list:
    """The configured rewards; the first also records each rollout's id, image and answer for samples.jsonl."""
    funcs = [rewards.resolve(name) for name in cfg.grpo.rewards]
    first = funcs[0]

    @functools.wraps(first)
    def first_with_columns(completions, log_extra=None, log_metric=None, **kwargs):
        if log_extra is not None:
            for column, key in (("id", "id"), ("image", "image_path"), ("answer", "answer")):
                if key in kwargs:
                    log_extra(column, list(kwargs[key]))
            # does each completion's reasoning lead to its answer (tasks.consistent; None: nothing to check)
            task = kwargs.get("task") or [None] * len(completions)
            agree = [tasks.consistent(t, completion_text(c)) for c, t in zip(completions, task)]
            log_extra("consistent", agree)
            if kwargs.get("completion_ids") is not None:  # the sampled tokens (the text re-tokenised may differ)
                log_extra("tokens", [len(ids) for ids in kwargs["completion_ids"]])
            if log_metric is not None:
                log_metric("consistency", sum(a is True for a in agree) / max(len(agree), 1))
        return first(completions, log_extra=log_extra, log_metric=log_metric, **kwargs)

    return [first_with_columns, *funcs[1:]]


def run(cfg: Config, run_dir: Path, source: str, backend: str) -> Path | None:
    """Train Stage 2 from `source`; return final/grpo, or None when a stop was requested (checkpoint saved)."""
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    # run dir
    out = runs.final_dir(run_dir, "grpo")
    ckpt_dir = runs.checkpoints_dir(run_dir, "grpo")
    resume = ranks.share(lambda: runs.resume_point(run_dir, "grpo"))  # the main process rewinds the run

    # model
    model, processor, peft_config = models.load_for_training(cfg, cfg.grpo, source, backend)

    # data
    rows = data.stage_records(cfg, "grpo")
    train = preflight.prepare(cfg, "grpo", data.grpo_dataset(rows, data.task_of(cfg), cfg), rows, processor, model, backend)

    # rewards, trainer
    logging.getLogger("trl.trainer.grpo_trainer").addFilter(_FALSE_WARNING)  # once: the same filter
    tracker = progress.RunTracker(run_dir, "grpo", samples_every=cfg.grpo.samples_every)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs(cfg),
                          args=trainer_args(cfg, ckpt_dir, not models.cuda_available(cfg),
                                            models.vision_token_ids(processor)),
                          train_dataset=train, processing_class=processor, peft_config=peft_config,
                          callbacks=[tracker])
    trainer.remove_callback(PrinterCallback)
    trackers.attach(trainer, cfg, run_dir, "grpo")
    runs.record_trainer(run_dir, "grpo", trainer)
    models.check_trainers(cfg, backend, {"grpo": type(trainer).__name__})
    tracker.trainer = trainer
    if backend == "transformers":  # Unsloth's trainer computes its loss its own way: not measured there yet
        invariants.watch(trainer)
    if cfg.grpo.dynamic_sampling:
        dynamic_sampling.install(trainer, cfg.run.seed, cfg.grpo.dynamic_sampling_draws,
                                reference_after=backend == "transformers")

    # train
    if progress.fit(trainer, tracker, resume, cfg.grpo.max_steps):
        return None  # stopped: resumable from the checkpoint just saved

    # save
    return models.save_stage(trainer, processor, out, cfg, source, backend)
