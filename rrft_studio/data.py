"""Records in the Reason-RFT schema (id, image, problem, answer, cot) -> the datasets TRL's trainers read.

Where records come from, per split ('train' or an evaluation split): the file given (data.train_file,
data.eval_files), else the task's file in the public dataset under data.root (train_jsons/, test_jsons/),
else the task's synthetic generator, which writes a dataset once into the cache (keyed by its settings).
All of them are read by one loader (tasks/schema.py), which finds each file's images (data.image_root,
data.eval_image_root, or the dataset's layout). The user turn holds the image(s) first, then the text;
there is no custom system prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import socket
import sys
from pathlib import Path

from . import tasks
from .config import Config, ConfigError
from .tasks.family import TaskFamily

EVAL_SEED_OFFSET = 1_000_003  # the eval split is drawn from other seeds than the training split


def task_of(cfg: Config) -> TaskFamily:
    return tasks.get(cfg.data.task)


def scene_spec(cfg: Config, split: str = "train"):
    """The task generator's settings for a split (the OOD splits shift them)."""
    task = task_of(cfg)
    return task.split_spec(task.spec(**vars(getattr(cfg.data, task.name))), split)


def synthetic(cfg: Config, split: str) -> Path:
    """Generate (once, atomically) and return the JSON file of a synthetic split ('train' or an eval split)."""
    task, d = task_of(cfg), cfg.data
    spec = scene_spec(cfg, split)
    offset = list(task.benchmarks).index(split) + 1 if split != "train" else 0
    n, seed = (d.n_train, d.seed) if split == "train" else (d.n_eval, d.seed + offset * EVAL_SEED_OFFSET)
    key = hashlib.sha256(json.dumps([task.name, repr(spec), n, seed, split]).encode()).hexdigest()[:12]
    folder = Path(cfg.run.cache_dir).expanduser() / "data" / f"{task.name}-{split}-{key}"
    if not (folder / f"{split}.json").is_file():
        print(f"generating {n} synthetic {task.name} samples ({split} split, seed {seed}) into {folder} "
              f"(once: later runs reuse them)", file=sys.stderr, flush=True)
        tmp = folder.with_name(f".{folder.name}.tmp{socket.gethostname()}-{os.getpid()}")  # a cache shared by hosts
        shutil.rmtree(tmp, ignore_errors=True)
        task.generate(tmp, n=n, seed=seed, spec=spec, split=split)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process generated it first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / f"{split}.json"


def source_key(cfg: Config, split: str) -> str:
    """The config key that names a split's file, for messages."""
    return "data.train_file" if split == "train" else "data.eval_files"


def source(cfg: Config, split: str) -> tuple[Path | None, str]:
    """(file, image root given for it) of a split; None: synthetic. The file given wins, then data.root's."""
    d, task = cfg.data, task_of(cfg)
    if split == "train":
        given, root = d.train_file, d.image_root
    else:
        splits = list(task.benchmarks)
        if split not in splits:
            raise ConfigError(f"'{split}' is not an evaluation split of {d.task}: use {', '.join(splits)}")
        index = splits.index(split)
        given, root = (d.eval_files[index] if index < len(d.eval_files) else ""), d.eval_image_root
    if given:
        return Path(given).expanduser(), root
    if d.root and split in task.dataset:
        folder = "train_jsons" if split == "train" else "test_jsons"
        return Path(d.root).expanduser() / folder / task.dataset[split], root
    return None, root


def records(cfg: Config, split: str) -> list[dict]:
    """Training ('train') or evaluation (an eval split: 'id', 'ood', ...) records, from files or synthetic."""
    from .tasks import schema

    path, root = source(cfg, split)
    custom = cfg.data.task == "custom"
    if path is None and task_of(cfg).generate is None:
        raise ConfigError(f"{source_key(cfg, split)}: data.task={cfg.data.task} has no synthetic data: give your "
                          f"file(s) (JSON, JSONL, parquet or a saved datasets folder)")
    extract = Path(cfg.run.cache_dir).expanduser() / "data" / "embedded-images"
    file = path or synthetic(cfg, split)
    try:
        rows = schema.load(file, root or None, aliases=custom, extract_dir=extract)
    except ValueError as e:  # the loader's one-line message names the file, the record and the fix
        if path is None:  # our own generated data, damaged since: the fix is to generate it again
            raise ConfigError(f"{e.args[0].split('; ')[0]}; the generated data in {file.parent} is damaged: delete "
                              f"that folder and run again (it is generated anew)") from None
        raise ConfigError(str(e)) from None
    if split == "train" and cfg.data.max_samples > 0:
        rows = rows[: cfg.data.max_samples]
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


def prompt_of(task: TaskFamily, record: dict, style: str, cfg: Config | None = None, split: str = "train") -> str:
    """The user-turn text of a record: the task's prompt for the style, the split and the config's prompt set
    (structure picks its instruction by the record's answer; a custom task fills its templates)."""
    d = cfg.data if cfg is not None else None
    return task.prompt(record["problem"], style, answer=record.get("answer"), split=split,
                       prompts=d.prompts if d else "reason_rft", options=getattr(d, task.name, None) if d else None)


def sft_dataset(rows: list[dict], task: TaskFamily, style: str, cfg: Config | None = None):
    """prompt/completion conversations plus an `images` column: TRL supervises the completion only."""
    from datasets import Dataset, Image, List

    from .tasks import schema

    prompt_style = "cot" if style == "cot" else "ans"
    ds = Dataset.from_dict({
        "prompt": [[user_turn(prompt_of(task, r, prompt_style, cfg), len(images_of(r)))] for r in rows],
        "completion": [[{"role": "assistant", "content": [{"type": "text", "text": schema.target(r, style, task.name)}]}]
                       for r in rows],
        "images": [images_of(r) for r in rows],
    })
    return ds.cast_column("images", List(Image()))


def grpo_row(record: dict, task: TaskFamily, cfg: Config | None = None) -> dict:
    """One GRPO prompt: the conversation, plus the columns the rewards read (answer, task, checker) and the
    rollout log shows (id, image paths)."""
    reward_checker, _ = task.checker_names(getattr(cfg.data, task.name, None) if cfg else None)
    return {"prompt": [user_turn(prompt_of(task, record, "cot", cfg), len(images_of(record)))],
            "answer": record["answer"], "task": task.name, "checker": reward_checker, "id": record["id"],
            "image_path": images_of(record)}


def grpo_dataset(rows: list[dict], task: TaskFamily, cfg: Config | None = None):
    """grpo_row of each record, and the images themselves in an `images` column."""
    from datasets import Dataset, Image, List

    ds = Dataset.from_list([{**grpo_row(r, task, cfg), "images": images_of(r)} for r in rows])
    return ds.cast_column("images", List(Image()))


def corpus(cfg: Config, limit: int = 2000) -> list[str]:
    """Text the tiny model's tokenizer is trained on: the task's prompts and targets."""
    from .tasks import schema

    task = task_of(cfg)
    rows = records(cfg, "train")[:limit]
    texts = [prompt_of(task, r, "cot", cfg) + "\n" + (schema.target(r, "cot") if r.get("cot") else r["answer"])
             for r in rows]
    texts += [prompt_of(task, r, s, cfg) for r in rows[:50] for s in ("bare", "ans")]
    return texts


# ---------------------------------------------------------------- tokens of a sample, and the order of a stage's

TEMPLATE_TOKENS = 20  # the chat template's tokens around a sample's text


def image_tokens(height: int, width: int, max_pixels: int) -> int:
    """Merged visual tokens of one image after Qwen's resize (multiples of 28, at most max_pixels)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(height, width, factor=28, min_pixels=min(56 * 56, max_pixels), max_pixels=max_pixels)
    return h * w // (14 * 14 * 4)


def sample_tokens(dataset, rows: list[dict], tokenizer, max_pixels: int) -> list[tuple[int, int]]:
    """(image tokens, text tokens) of each sample: image sizes from the files' headers, text through the
    tokenizer over the dataset's prompt (and completion) messages."""
    from PIL import Image

    columns = [c for c in ("prompt", "completion") if c in dataset.column_names]
    texts = ["".join(part["text"] for column in columns for message in row[column]
                     for part in message["content"] if part.get("type") == "text")
             for row in dataset.select_columns(columns)]
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    out = []
    for record, n_text in zip(rows, lengths):
        n_image = 0
        for path in images_of(record):
            with Image.open(path) as image:
                width, height = image.size
            n_image += image_tokens(height, width, max_pixels)
        out.append((n_image, n_text + TEMPLATE_TOKENS))
    return out


def longest_first(tokens: list[tuple[int, int]], first: int, seed: int) -> list[int]:
    """Indices: the `first` longest samples (longest first), then the rest in a seeded shuffle."""
    total = [a + b for a, b in tokens]
    top = sorted(range(len(total)), key=lambda i: -total[i])[:first]
    chosen = set(top)
    rest = [i for i in range(len(total)) if i not in chosen]
    random.Random(seed).shuffle(rest)
    return top + rest


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def check_images(rows: list[dict], what: str) -> None:
    """Open every image of the records (not only look them up: a truncated file fails here, before the run
    directory exists, instead of mid-training); ConfigError naming the first bad one, the count and the fix."""
    from PIL import Image

    from .tasks import schema

    paths = [p for r in rows for p in images_of(r)]
    bad = []
    for i in schema.progress(len(paths), f"checking the images of {what}"):
        try:
            with Image.open(paths[i]) as image:
                image.verify()  # reads the whole file and checks its structure, without decoding pixels
        except Exception as e:  # PIL raises many kinds for damaged files
            bad.append(f"{paths[i]} ({type(e).__name__}: {' '.join(str(e).split())[:80]})")
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise ConfigError(f"{what}: unreadable image {bad[0]}{more}: restore the file(s) (re-extract the dataset's "
                          f"images) or drop their records")


def unreadable_image(e: BaseException, cfg: Config) -> str | None:
    """One line naming the image behind an exception raised mid-run (a file deleted or damaged after the
    run started), with its fix; None when the exception is not about an image."""
    from PIL import UnidentifiedImageError

    chain, seen = [], e
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    path = None
    for err in chain:
        name = getattr(err, "filename", None)
        if isinstance(err, FileNotFoundError) and str(name or "").lower().endswith(IMAGE_SUFFIXES):
            path = str(name)
        elif isinstance(err, UnidentifiedImageError) or (isinstance(err, OSError) and "image file" in str(err)):
            path = next((p for p in _image_paths(cfg) if _broken(p)), None) or "(not found again: it reads now)"
        if path:
            break
    if path is None:
        return None
    cache = str(Path(cfg.run.cache_dir).expanduser() / "data")
    fix = (f"it belongs to the generated data under {cache}: delete its folder and resume (it is generated again)"
           if path.startswith(cache) else "restore the file (re-extract the dataset's images) or drop its record, "
           "then resume")
    return f"image unreadable mid-run: {path}: {fix}"


def _image_paths(cfg: Config) -> list[str]:
    paths = []
    for split in ["train", *(cfg.eval.splits if cfg.eval.enabled else [])]:
        try:
            paths += [p for r in records(cfg, split) for p in images_of(r)]
        except ConfigError as err:  # a file gone: the loader names it
            return [str(err).split("image not found: ")[-1].split("; ")[0]] if "image not found" in str(err) else []
    return paths


def _broken(path: str) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
        return False
    except Exception:
        return True
