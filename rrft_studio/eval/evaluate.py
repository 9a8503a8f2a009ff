"""Accuracy of a checkpoint on an evaluation split, pass@1, scored the way the paper's released evaluation
scores it (eval.scorer=paper: the answer text equal to the truth, else math-verify equal; spatial: hierarchical
partial credit) or the way training rewards it (strict). Each prediction records both scores, the format
reward and its length; the summary says which scorer gave its accuracy.

Decoding follows the paper (temperature 0.1, top-p 0.9, top-k 50, at most 768 new tokens); presets may
shorten max_new_tokens for small models. Chance is the accuracy of always giving the split's most frequent
answer. On several processes a split is sharded: each rank scores an equal share (the last shares padded with a
repeat that is dropped), and the main process gathers the predictions and writes one result.

    rrft-studio eval runs/demo-20261124-101500
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .. import data, models, ranks, rewards, runs, tasks
from ..config import Config


def chance(rows: list[dict]) -> float:
    counts = Counter(r["answer"] for r in rows)
    return counts.most_common(1)[0][1] / len(rows) if rows else 0.0


def eval_rows(cfg: Config, split: str = "id") -> list[dict]:
    rows = data.records(cfg, split)
    return rows[: cfg.eval.max_samples] if cfg.eval.max_samples > 0 else rows


def generate(model, processor, conversations: list[list[dict]], images: list[list],
             cfg: Config) -> tuple[list[str], list[int]]:
    """Batched generation; returns the decoded completions (special tokens stripped) and their lengths in
    generated tokens (up to and including the end-of-turn token)."""
    import torch

    e = cfg.eval
    texts = processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
    flat = [img for group in images for img in group]
    inputs = processor(text=texts, images=flat or None, padding=True, return_tensors="pt").to(model.device)
    sampling = dict(do_sample=True, temperature=e.temperature, top_p=e.top_p, top_k=e.top_k) \
        if e.temperature > 0 else dict(do_sample=False)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=e.max_new_tokens,  # (B, L + new)
                             suppress_tokens=models.vision_token_ids(processor) or None, **sampling)
    new = out[:, inputs["input_ids"].shape[1]:]  # (B, new)
    pad = processor.tokenizer.pad_token_id
    lengths = (new != pad).sum(dim=1).tolist() if pad is not None else [new.shape[1]] * len(new)
    return processor.batch_decode(new, skip_special_tokens=True), lengths


def evaluate(checkpoint: str, cfg: Config, rows: list[dict], label: str = "", split: str = "id",
             between_batches=None) -> dict:
    """Score `checkpoint` on `rows` with the task's checker; returns the summary with every prediction.
    `between_batches()` runs before each batch (a training run stops there when asked to)."""
    import torch

    torch.manual_seed(cfg.run.seed)
    model, processor = models.load_for_inference(checkpoint, cfg, cfg.grpo.max_pixels)
    return summarize(checkpoint, cfg, rows, predict(model, processor, cfg, rows, split, between_batches), label, split)


def predict(model, processor, cfg: Config, rows: list[dict], split: str = "id", between_batches=None) -> list[dict]:
    """A loaded model's prediction for each row, scored by every checker of the task (`correct`: eval.scorer's)."""
    from PIL import Image

    task = data.task_of(cfg)
    _, scorers = task.checker_names(getattr(cfg.data, task.name, None))
    score = {name: tasks.checker(check) for name, check in scorers.items()}
    predictions = []
    for start in range(0, len(rows), cfg.eval.batch_size):
        if between_batches is not None:
            between_batches()
        batch = rows[start: start + cfg.eval.batch_size]
        conversations = [[data.user_turn(data.prompt_of(task, r, cfg.eval.style, cfg, split), len(data.images_of(r)))]
                         for r in batch]
        images = [[Image.open(p).convert("RGB") for p in data.images_of(r)] for r in batch]
        texts, lengths = generate(model, processor, conversations, images, cfg)
        for r, text, length in zip(batch, texts, lengths):
            scores = {name: fn(text, r["answer"]) for name, fn in score.items()}
            predictions.append({
                "id": r["id"], "answer": r["answer"], "completion": text,
                "correct": scores[cfg.eval.scorer], "scores": scores,
                "format": rewards.format_reward([text])[0],
                "consistent": tasks.consistent(task.name, text),
                "claims_true": tasks.claims_true(task.name, text, r.get("cot")),
                "length": length,
            })
    return predictions


def summarize(checkpoint: str, cfg: Config, rows: list[dict], predictions: list[dict], label: str = "",
              split: str = "id") -> dict:
    """The result of a split from its predictions (one per row, in order; several processes' shares joined)."""
    task = data.task_of(cfg)
    _, scorers = task.checker_names(getattr(cfg.data, task.name, None))
    n = max(len(predictions), 1)
    return {
        "label": label, "split": split, "benchmark": task.benchmarks[split], "task": task.name,
        "checkpoint": str(checkpoint), "n": len(predictions), "chance": chance(rows),
        "scorer": cfg.eval.scorer, "scorers": dict(scorers),
        "accuracy": sum(p["correct"] for p in predictions) / n,
        "accuracy_by_scorer": {name: sum(p["scores"][name] for p in predictions) / n for name in scorers},
        "format": sum(p["format"] for p in predictions) / n,
        **consistency(predictions),
        "mean_length": sum(p["length"] for p in predictions) / n,
        "predictions": predictions,
    }


def consistency(predictions: list[dict]) -> dict:
    """Does the reasoning lead to the answer (tasks.consistent): the share of all predictions whose reasoning does,
    and of the right ones (a right answer after reasoning that does not reach it was not reasoned out)."""
    def agree(rows: list[dict]) -> float | None:
        return sum(p.get("consistent") is True for p in rows) / len(rows) if rows else None

    right = [p for p in predictions if p["correct"] >= 1]
    checked = [p for p in right if p.get("claims_true") is not None]  # records whose reasoning states the scene
    # of the right answers: reasoned out (leads to the answer) from counts true of the scene
    grounded = (sum(p.get("consistent") is True and p["claims_true"] for p in checked) / len(checked)
                if checked else None)
    return {"consistency": agree(predictions), "consistency_right": agree(right), "grounded_right": grounded}


def evaluate_sharded(checkpoint: str, cfg: Config, rows: list[dict], label: str, split_name: str,
                     between_batches=None) -> dict | None:
    """The split's result on the main process (None on the others): each rank evaluates every world_size-th
    record, padded to the same count so that every rank runs as many batches (and stop checks)."""
    if not ranks.active():
        return evaluate(checkpoint, cfg, rows, label, split_name, between_batches)
    n = ranks.world_size()
    mine: list[int | None] = list(range(ranks.rank(), len(rows), n))
    mine += [None] * (-(-len(rows) // n) - len(mine))  # a pad: rows[0] again, its prediction dropped
    part = evaluate(checkpoint, cfg, [rows[0 if i is None else i] for i in mine], label, split_name, between_batches)
    parts = ranks.gather((mine, part["predictions"]))
    if not ranks.is_main():
        return None
    by_index = {i: p for indices, predictions in parts for i, p in zip(indices, predictions) if i is not None}
    return summarize(checkpoint, cfg, rows, [by_index[i] for i in range(len(rows))], label, split_name)


def evaluate_splits(cfg: Config, run_dir: Path, checkpoint: str, label: str, between_batches=None) -> None:
    """Each configured split once (a resumed run skips what it has), on every rank, written by the main one."""
    todo = ranks.share(lambda: [split for split in (cfg.eval.splits if cfg.eval.enabled else [])
                                if load(run_dir, label, split) is None])
    for split in todo:
        if ranks.is_main():
            runs.write_status(run_dir, state="running", stage=f"eval:{label}:{split}")
        result = evaluate_sharded(checkpoint, cfg, eval_rows(cfg, split), label, split, between_batches)
        if result is not None:
            save(result, run_dir)
            print(summary_line(result), flush=True)


def save(result: dict, run_dir: Path) -> Path:
    """eval/<label>/<split>.json"""
    path = runs.eval_path(run_dir, result["label"], result["split"])
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_atomic(path, json.dumps(result, indent=1))
    return path


def load(run_dir: Path, label: str, split: str = "id") -> dict | None:
    path = runs.eval_path(run_dir, label, split)
    return json.loads(path.read_text()) if path.is_file() else None


def summary_line(result: dict) -> str:
    return (f"{result['label'] or result['checkpoint']} on {result['benchmark']} ({result['split']}): "
            f"accuracy {100 * result['accuracy']:.1f}% ({result.get('scorer', 'strict')} scorer) "
            f"(chance {100 * result['chance']:.1f}%), format {result['format']:.2f}, "
            f"mean length {result['mean_length']:.0f} tokens, n={result['n']}"
            + (f"; reasoning leads to the answer in {100 * result['consistency_right']:.0f}% of the right ones"
               if result.get("consistency_right") is not None else "")
            + (f", from facts true of the scene in {100 * result['grounded_right']:.0f}%"
               if result.get("grounded_right") is not None else ""))
