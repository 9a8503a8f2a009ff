"""Dynamic sampling (DAPO): train each GRPO step on groups whose rewards differ.

A group whose G completions all score the same has zero advantage and teaches nothing (beyond the KL term),
and as the policy sharpens most groups end that way. With `grpo.dynamic_sampling=true` each step's rollout
batch is scored as usual; the groups with zero reward spread are set aside and another batch of prompts, as many
as the step holds, is drawn, generated and scored, at most `grpo.dynamic_sampling_draws` times; the step then
trains on the first groups with a spread, in the order drawn, and only where those run out on the zero-spread
groups of its own batch (so the batch keeps its size). Logged each step:

    dynamic_sampling/drawn   prompts drawn, the step's own included
    dynamic_sampling/kept    prompts in the trained batch whose rewards differ
    dynamic_sampling/draws   extra batches drawn

`reward`, `frac_reward_zero_std` and the other reward metrics average over every drawn batch; samples.jsonl
holds the groups that trained. With a KL term (grpo.beta > 0) the reference model scores only the rows that
train, once the step's batch is chosen (TRL would score every drawn row: up to draws + 1 times the work, most of
it set aside with the groups); on Unsloth's trainer, which computes the reference its own way, TRL's path is
left as it is. The extra prompts are drawn from Stage 2's records with a generator seeded by (run.seed, step,
draw, process), so a resumed run draws what the uninterrupted run would; they do not advance the epoch. Works
with gradient accumulation (the selection is made on the whole step before TRL splits it) and with several
processes, each choosing among its own whole groups (so grpo.prompts_per_step must divide among them); every
process takes part in each extra draw while any of them is short. Off in the paper presets.
"""

from __future__ import annotations

import functools

import torch

# the keys of TRL's scored batch, by how a row of them is laid out
PROMPT = {"prompt_ids", "prompt_mask"}  # left-padded to the batch's longest prompt
COMPLETION = {"completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
              "sampling_per_token_logps", "importance_sampling_ratio", "tool_mask"}  # right-padded
SEQUENCE = {"token_type_ids", "mm_token_type_ids"}  # prompt then completion, each padded as above
ROW = {"advantages", "num_images", "num_tiles", "pixel_values", "image_grid_thw", "image_position_ids",
       "pixel_attention_mask", "spatial_shapes", "image_sizes"}  # one entry a row (the pixels split by image)
METRICS = ("dynamic_sampling/drawn", "dynamic_sampling/kept", "dynamic_sampling/draws")


def install(trainer, seed: int, draws: int, reference_after: bool = True) -> None:
    """Wrap a TRL GRPOTrainer's `_generate_and_score_completions` so that training batches are refilled;
    `reference_after`: the reference model scores the chosen batch only (TRL's own trainer; not Unsloth's)."""
    from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

    score_all, calculate = trainer._generate_and_score_completions, trainer._calculate_rewards
    G = trainer.num_generations
    last = {}
    beta = trainer.beta
    later = reference_after and beta != 0.0

    def score(rows):
        if not later:
            return score_all(rows)
        trainer.beta = 0.0  # TRL computes the reference's log-probabilities only where beta != 0
        try:
            return score_all(rows)
        finally:
            trainer.beta = beta

    @functools.wraps(calculate)
    def calculate_and_keep(*args, **kwargs):
        last["rewards"] = out = calculate(*args, **kwargs)  # (all processes' rows, reward functions)
        return out

    @functools.wraps(score_all)
    def score_and_refill(inputs):
        if not trainer.model.training:
            return score_all(inputs)
        acc = trainer.accelerator
        n, step = len(inputs), trainer.state.global_step
        batches, spread, logs = [], [], []
        for draw in range(draws + 1):
            rows = inputs if draw == 0 else _draw(trainer.train_dataset, n // G, G, seed, step, draw, acc.process_index)
            out = split_pixel_values_by_grid(score(rows))
            batches.append(out)
            spread.append(_spread(trainer, last.pop("rewards"), n, G))
            logs.append(_logs(trainer))
            short = sum(sum(s) for s in spread) < n // G  # this process still lacks groups with a spread
            if not bool(acc.reduce(torch.tensor(float(short), device=acc.device), reduction="sum").item()):
                break
        picked = _pick(spread, n // G)  # (draw, group) pairs, in the order they train
        rows = [(d, g * G + i) for d, g in picked for i in range(G)]
        merged = merge(batches, rows, trainer)
        merged["num_items_in_batch"] = acc.gather(_loss_tokens(merged).sum()).sum()
        _restore_logs(trainer, logs, rows, n)
        kept = sum(spread[d][g] for d, g in picked)
        counts = acc.gather(torch.tensor([n // G * len(batches), kept], dtype=torch.float32, device=acc.device))
        drawn_all, kept_all = counts.view(-1, 2).sum(0).tolist()
        metrics = trainer._metrics["train"]
        metrics[METRICS[0]].append(drawn_all)
        metrics[METRICS[1]].append(kept_all)
        metrics[METRICS[2]].append(float(len(batches) - 1))
        merged = unsplit_pixel_values_by_grid(merged)
        if later:
            merged["ref_per_token_logps"] = reference_logps(trainer, merged)
        return merged

    trainer._calculate_rewards = calculate_and_keep
    trainer._generate_and_score_completions = score_and_refill


# what TRL's loss passes to the model beside the tokens (GRPOTrainer._compute_loss)
FORWARD = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes", "num_tiles",
           "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")


def reference_logps(trainer, batch: dict) -> torch.Tensor:
    """The reference model's log-probabilities of `batch`'s completion tokens, as TRL computes them while scoring
    (the reference model, or the policy with its adapter off; no gradient; the trainer's micro-batch size), from the
    inputs its loss gives the policy."""
    from trl.models.utils import disable_gradient_checkpointing
    from trl.trainer.utils import use_adapter

    completion = batch["completion_ids"]
    args = (torch.cat([batch["prompt_ids"], completion], dim=1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1), completion.size(1))
    kwargs = {key: batch.get(key) for key in FORWARD}
    size = trainer.args.per_device_train_batch_size
    with torch.no_grad(), disable_gradient_checkpointing(trainer.model, trainer.args.gradient_checkpointing_kwargs):
        if trainer.ref_model is not None:
            return trainer._get_per_token_logps_and_entropies(trainer.ref_model, *args, batch_size=size, **kwargs)[0]
        model = trainer.accelerator.unwrap_model(trainer.model)
        with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
            return trainer._get_per_token_logps_and_entropies(trainer.model, *args, batch_size=size, **kwargs)[0]


def _draw(dataset, prompts: int, G: int, seed: int, step: int, draw: int, rank: int) -> list[dict]:
    """`prompts` records of the dataset, each G times in a row, from a generator fixed by (seed, step, draw, rank)."""
    gen = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + draw) * 1_013 + rank)
    order = torch.randperm(len(dataset), generator=gen).tolist()
    picks = [order[i % len(order)] for i in range(prompts)]  # round again when there are fewer records than prompts
    return [dataset[i] for i in picks for _ in range(G)]


def _spread(trainer, rewards_per_func: torch.Tensor, n: int, G: int) -> list[bool]:
    """For each of this process's groups: do its total rewards differ (TRL's own zero-std test)?"""
    start = trainer.accelerator.process_index * n
    weights = trainer.reward_weights.to(rewards_per_func.device)
    total = (rewards_per_func[start:start + n] * weights).nansum(dim=1).view(-1, G)
    std = total.std(dim=1)
    return [not bool(z) for z in torch.isclose(std, torch.zeros_like(std))]


def _pick(spread: list[list[bool]], groups: int) -> list[tuple[int, int]]:
    """The groups with a spread in the order drawn, then the step's own zero-spread groups, `groups` in all."""
    good = [(d, g) for d, s in enumerate(spread) for g, ok in enumerate(s) if ok]
    fill = [(0, g) for g, ok in enumerate(spread[0]) if not ok]
    return (good + fill)[:groups]


def merge(batches: list[dict], rows: list[tuple[int, int]], trainer=None) -> dict:
    """One batch of TRL's scored rows (pixels split by row) from `rows`, (batch, row) pairs: prompts left-padded
    and completions right-padded to the longest taken. A key this module does not know is refused: a TRL that
    adds one must be read before its batches are cut and joined."""
    keys = [k for k in batches[0] if k != "num_items_in_batch"]
    unknown = [k for k in keys if k not in PROMPT | COMPLETION | SEQUENCE | ROW]
    if unknown:
        raise RuntimeError(f"grpo.dynamic_sampling: TRL's scored batch has keys this version of rrft-studio does "
                           f"not know how to join ({', '.join(unknown)}): set grpo.dynamic_sampling=false")
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class) if trainer else None
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    P = max(batches[d]["prompt_ids"].size(1) for d, _ in rows)
    C = max(batches[d]["completion_ids"].size(1) for d, _ in rows)
    out = {}
    for key in keys:
        values = [batch[key] for batch in batches]
        if any(v is None for v in values):
            out[key] = None
            continue
        if key in ROW:
            picked = [values[d][r] for d, r in rows]
            out[key] = torch.stack(picked) if isinstance(values[0], torch.Tensor) and values[0].ndim == 1 else picked
            continue
        pad = pad_id if key in ("prompt_ids", "completion_ids") else 0
        parts = []
        for d, r in rows:
            row = values[d][r]
            p = batches[d]["prompt_ids"].size(1)
            if key in PROMPT:
                row = _pad(row, P, pad, left=True)
            elif key in COMPLETION:  # (importance_sampling_ratio may hold one ratio a sequence)
                per_token = values[d].size(1) == batches[d]["completion_ids"].size(1)
                row = _pad(row, C, pad, left=False) if per_token else row
            else:  # SEQUENCE
                row = torch.cat([_pad(row[:p], P, 0, left=True), _pad(row[p:], C, 0, left=False)])
            parts.append(row)
        out[key] = torch.stack(parts)
    return out


def _pad(row: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    extra = width - row.size(0)
    if extra <= 0:
        return row
    filler = row.new_full((extra, *row.shape[1:]), value)
    return torch.cat([filler, row] if left else [row, filler])


def _loss_tokens(batch: dict) -> torch.Tensor:
    mask = batch["completion_mask"]
    return mask * batch["tool_mask"] if batch.get("tool_mask") is not None else mask


# ---------------------------------------------------------------- samples.jsonl: the groups that trained

def _logs(trainer) -> dict:
    """A copy of what the last scoring call added to the trainer's rollout log (all processes' rows)."""
    logs = trainer._logs
    return {"prompt": list(logs["prompt"]), "completion": list(logs["completion"]),
            "advantages": list(logs["advantages"]), "images": list(logs["images"]),
            "rewards": {k: list(v) for k, v in logs["rewards"].items()},
            "extra": {k: list(v) for k, v in logs["extra"].items()}}


def _restore_logs(trainer, logs: list[dict], rows: list[tuple[int, int]], n: int) -> None:
    """Leave in the rollout log the rows that train, every process's (as TRL logs them), not the last draw's."""
    from accelerate.utils import gather_object

    everyone = gather_object([rows])  # each process's (draw, local row) list, in process order
    logs_len = len(logs[0]["completion"])
    width = logs_len // max(len(everyone), 1)  # rows each process put into the log per draw
    taken = [(d, rank * width + r) for rank, mine in enumerate(everyone) for d, r in mine]

    def pick(column_of):
        return [column_of(logs[d])[i] for d, i in taken if i < len(column_of(logs[d]))]

    target = trainer._logs
    for name in ("prompt", "completion", "advantages", "images"):
        values = pick(lambda lg, name=name: lg[name])
        target[name].clear()
        target[name].extend(values)
    for group in ("rewards", "extra"):
        for key in logs[-1][group]:
            values = pick(lambda lg, key=key, group=group: lg[group].get(key, []))
            target[group][key].clear()
            target[group][key].extend(values)
