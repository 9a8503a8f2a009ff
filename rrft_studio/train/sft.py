"""Stage 1: CoT-SFT ("reasoning activation"), or ANS-SFT with sft.style=ans, through TRL's SFTTrainer.

Targets are `<think>\\n{cot}\\n</think>\\n<answer>\\n{answer}\\n</answer>`; the loss covers the assistant turn
only (prompt/completion dataset); images go through the processor with sft.max_pixels applied. The paper
fine-tunes the language model with the vision tower frozen (sft.freeze_vision); LoRA is an option, merged
into the stage's final checkpoint.

    rrft-studio train presets/demo.yaml run.stages=[sft]
"""

from __future__ import annotations

from pathlib import Path

from .. import data, models, ranks, runs
from ..config import Config
from . import preflight, progress, stopping, trackers


def trainer_args(cfg: Config, output_dir: Path, use_cpu: bool):
    """Our config -> TRL's SFTConfig, in one place."""
    from trl import SFTConfig

    s, split = cfg.sft, ranks.split(cfg, "sft")  # the global batch over the processes
    return SFTConfig(
        output_dir=str(output_dir), num_train_epochs=s.epochs, max_steps=s.max_steps,
        learning_rate=s.lr, lr_scheduler_type=s.scheduler, warmup_steps=s.warmup_steps,
        weight_decay=s.weight_decay, per_device_train_batch_size=split.per_device,
        gradient_accumulation_steps=split.accumulation, gradient_checkpointing=s.gradient_checkpointing,
        max_length=s.max_length, logging_steps=s.logging_steps, save_steps=s.save_steps,
        save_total_limit=2, **models.precision_args(cfg),
        use_cpu=use_cpu, seed=cfg.run.seed, data_seed=cfg.run.seed, **trackers.report_args(cfg, output_dir), disable_tqdm=True,
        logging_nan_inf_filter=False,  # a diverged loss must reach the callback, not be averaged away
        dataloader_num_workers=0, remove_unused_columns=False,
        # data.longest_first: the dataset comes ordered (seeded shuffle, longest first); keep that order
        train_sampling_strategy="sequential" if cfg.data.longest_first else "random",
    )


def run(cfg: Config, run_dir: Path, source: str, backend: str) -> Path | None:
    """Train Stage 1 from `source`; return final/sft, or None when a stop was requested (checkpoint saved)."""
    from transformers import PrinterCallback
    from trl import SFTTrainer

    # run dir
    out = runs.final_dir(run_dir, "sft")
    ckpt_dir = runs.checkpoints_dir(run_dir, "sft")
    resume = ranks.share(lambda: runs.resume_point(run_dir, "sft"))  # the main process rewinds the run

    # model
    model, processor, peft_config = models.load_for_training(cfg, cfg.sft, source, backend)

    # data
    task = data.task_of(cfg)
    rows = data.stage_records(cfg, "sft")
    train = preflight.prepare(cfg, "sft", data.sft_dataset(rows, task, cfg.sft.style, cfg), rows, processor, model, backend)

    # trainer
    tracker = progress.RunTracker(run_dir, "sft")
    stop = [stopping.AccuracyStop(cfg, run_dir, processor)] if cfg.sft.stop_at_accuracy > 0 else []
    trainer = SFTTrainer(model=model, args=trainer_args(cfg, ckpt_dir, not models.cuda_available(cfg)),
                         train_dataset=train, processing_class=processor, peft_config=peft_config,
                         callbacks=[tracker, *stop])
    trainer.remove_callback(PrinterCallback)
    trackers.attach(trainer, cfg, run_dir, "sft")
    runs.record_trainer(run_dir, "sft", trainer)
    models.check_trainers(cfg, backend, {"sft": type(trainer).__name__})

    # train
    if progress.fit(trainer, tracker, resume, cfg.sft.max_steps):
        return None  # stopped: resumable from the checkpoint just saved

    # save
    return models.save_stage(trainer, processor, out, cfg, source, backend)
