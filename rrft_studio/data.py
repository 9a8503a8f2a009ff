"""Records in the Reason-RFT schema (id, image, problem, answer, cot) -> the datasets TRL's trainers read.

Real files are read by the task's loader; without them the task's synthetic generator writes a dataset
once into the cache (keyed by its settings) and the loader reads it back, so both go through one path.
The user turn holds the image(s) first, then the text; there is no custom system prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from types import ModuleType

from .config import Config, ConfigError

EVAL_SEED_OFFSET = 1_000_003  # the eval split is drawn from other seeds than the training split


def task_of(cfg: Config) -> ModuleType:
    from . import tasks

    return tasks.get(cfg.data.task)


def scene_spec(cfg: Config, split: str = "train"):
    """The task generator's settings for a split (the OOD splits shift them)."""
    task = task_of(cfg)
    return task.split_spec(task.SceneSpec(**vars(getattr(cfg.data, task.NAME))), split)


def synthetic(cfg: Config, split: str) -> Path:
    """Generate (once, atomically) and return the JSON file of a synthetic split ('train' or an eval split)."""
    task, d = task_of(cfg), cfg.data
    spec = scene_spec(cfg, split)
    offset = list(task.BENCHMARKS).index(split) + 1 if split != "train" else 0
    n, seed = (d.n_train, d.seed) if split == "train" else (d.n_eval, d.seed + offset * EVAL_SEED_OFFSET)
    key = hashlib.sha256(json.dumps([task.NAME, repr(spec), n, seed, split]).encode()).hexdigest()[:12]
    folder = Path(cfg.run.cache_dir).expanduser() / "data" / f"{task.NAME}-{split}-{key}"
    if not (folder / f"{split}.json").is_file():
        tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        task.generate(tmp, n=n, seed=seed, spec=spec, split=split)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process generated it first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / f"{split}.json"


def records(cfg: Config, split: str) -> list[dict]:
    """Training ('train') or evaluation (an eval split: 'id', 'ood', ...) records, from files or synthetic."""
    d = cfg.data
    splits = list(task_of(cfg).BENCHMARKS)
    if split == "train":
        path = d.train_file
    else:
        if split not in splits:
            raise ConfigError(f"'{split}' is not an evaluation split of {d.task}: use {', '.join(splits)}")
        index = splits.index(split)
        path = d.eval_files[index] if index < len(d.eval_files) else ""
    path = Path(path).expanduser() if path else synthetic(cfg, split)
    try:
        rows = task_of(cfg).load(path, Path(d.image_root).expanduser() if d.image_root else None)
    except ValueError as e:  # the loader's one-line message names the file, the record and the fix
        raise ConfigError(str(e)) from None
    if split == "train" and d.max_samples > 0:
        rows = rows[: d.max_samples]
    return rows


def stage_records(cfg: Config, stage: str) -> list[dict]:
    """With both stages, Stage 1 takes the first data.sft_samples records and Stage 2 the rest; a single
    stage (cot_sft, ans_sft, rft_zero) takes them all."""
    rows, n = records(cfg, "train"), cfg.data.sft_samples
    both = "sft" in cfg.run.stages and "grpo" in cfg.run.stages
    if not both or n <= 0 or n >= len(rows):
        return rows
    if stage == "sft":
        return rows[:n]
    return rows if cfg.data.grpo_all else rows[n:]


def images_of(record: dict) -> list[str]:
    image = record["image"]
    return list(image) if isinstance(image, (list, tuple)) else [image]


def user_turn(text: str, n_images: int) -> dict:
    return {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}


def sft_dataset(rows: list[dict], task: ModuleType, style: str):
    """prompt/completion conversations plus an `images` column: TRL supervises the completion only."""
    from datasets import Dataset, Image, List

    prompt_style = "cot" if style == "cot" else "ans"
    ds = Dataset.from_dict({
        "prompt": [[user_turn(task.prompt(r["problem"], prompt_style), len(images_of(r)))] for r in rows],
        "completion": [[{"role": "assistant", "content": [{"type": "text", "text": task.target(r, style)}]}]
                       for r in rows],
        "images": [images_of(r) for r in rows],
    })
    return ds.cast_column("images", List(Image()))


def grpo_dataset(rows: list[dict], task: ModuleType):
    """Prompts plus the columns the rewards read (answer) and the rollout log shows (id, image paths)."""
    from datasets import Dataset, Image, List

    ds = Dataset.from_dict({
        "prompt": [[user_turn(task.prompt(r["problem"], "cot"), len(images_of(r)))] for r in rows],
        "images": [images_of(r) for r in rows],
        "answer": [r["answer"] for r in rows],
        "task": [task.NAME] * len(rows),
        "id": [r["id"] for r in rows],
        "image_path": [images_of(r) for r in rows],
    })
    return ds.cast_column("images", List(Image()))


def corpus(cfg: Config, limit: int = 2000) -> list[str]:
    """Text the tiny model's tokenizer is trained on: the task's prompts and targets."""
    task = task_of(cfg)
    rows = records(cfg, "train")[:limit]
    texts = [task.prompt(r["problem"], "cot") + "\n" + task.target(r, "cot") for r in rows]
    texts += [task.prompt(r["problem"], s) for r in rows[:50] for s in ("bare", "ans")]
    return texts
