"""The reward workbench: score a preset's GRPO rewards before training, and say whether GRPO will learn.

GRPO learns only from groups whose rewards differ: a group of G completions that all score alike has zero
advantages and moves nothing. `check_model` loads the stage's starting model, samples G completions for N
training prompts with GRPO's decoding settings (grpo.temperature, top_p, top_k, max_completion_length,
num_generations), scores them with the configured rewards (the dataset columns as GRPO passes them) and
summarises each reward: mean, std, share of zeros, share of groups with zero spread; then the samples:
format-match rate, length, truncation, sampling entropy; then a verdict with its reason and fix.
`check_completions` scores given texts ({completion, answer[, task, group]} rows) the same way, a user's
own reward module included; a reward that raises, returns the wrong number of scores or a non-number is
one line (`ConfigError`). `banner` is the monitor's condition over a live run's metrics; `explain` says
why one pasted completion gets each score.

    rrft-studio rewards check presets/demo.yaml --checkpoint runs/demo-20261124-101500 --n 32
    rrft-studio rewards check presets/demo.yaml --completions mine.jsonl
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import answers, rewards, runs, tasks
from .config import Config, ConfigError

ZERO_SPREAD_WARN = 0.5  # share of zero-spread groups above which the verdict is "weak"
TRUNCATION_WARN = 0.2  # share of completions cut at max_completion_length worth a note
SPREAD_EPS = 1e-6  # rewards closer than this count as equal (TRL: torch.isclose(std, 0))
# The sampling gap (train/invariants.py): mean |log p sampled - log p scored| over a step's completion tokens,
# in nats. Float noise is about 1e-6 in fp32 and 1e-2 in bf16; above SAMPLING_GAP_WARN the batch the trainer
# scores is not the batch that was sampled (padding, images, truncation) or the sampler is another model.
SAMPLING_GAP = "sampling/sampling_logp_difference"
SAMPLING_GAP_WARN = 0.05


# ---------------------------------------------------------------- scoring

def score(cfg: Config, completions: list, columns: dict[str, list], extra: dict[str, Any]) -> dict[str, list]:
    """{reward name: one float (or nan where the reward abstains with None) per completion}; ConfigError
    naming the reward when one raises, returns the wrong number of scores, or a non-number (rewards.call)."""
    out = {}
    for name in cfg.grpo.rewards:
        try:
            func = rewards.resolve(name)
        except ValueError as e:
            raise ConfigError(f"grpo.rewards: {e}") from None
        try:
            values = rewards.call(func, name, completions, columns, **extra)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        out[name] = [math.nan if v is None else float(v) for v in values]
    return out


# ---------------------------------------------------------------- summary

@dataclass
class RewardStats:
    name: str
    mean: float
    std: float
    zeros: float  # share of scored completions at exactly 0
    zero_spread: float  # share of groups whose scored completions all score alike
    low: float
    high: float
    scored: int  # completions with a number (not None / nan)


@dataclass
class Summary:
    samples: int
    groups: int
    group_size: int
    rewards: list[RewardStats]
    total: RewardStats
    format_rate: float  # the paper's format regex, whatever the configured rewards are
    mean_length: float
    length_unit: str  # tokens (sampled) or characters (given completions)
    truncated: float | None  # share cut at max_completion_length (None: unknown)
    entropy: float | None  # mean sampling entropy, nats per generated token (None: not sampled)
    distinct_answers: float  # mean number of different answer texts per group
    solved_groups: float  # share of groups whose every completion scored the highest total seen
    failed_groups: float  # ... the lowest total seen (below the highest)
    prompts_ask_tags: bool | None  # whether the prompts ask for <think>/<answer> (None: no prompts given)
    source: str = ""
    notes: list[str] = field(default_factory=list)


def _stats(name: str, values: list[float], groups: list[list[int]]) -> RewardStats:
    scored = [v for v in values if not math.isnan(v)]
    mean = sum(scored) / len(scored) if scored else math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in scored) / len(scored)) if scored else math.nan
    flat = 0
    for members in groups:
        group = [values[i] for i in members if not math.isnan(values[i])]
        flat += len(group) < 2 or max(group) - min(group) <= SPREAD_EPS
    return RewardStats(name, mean, std, sum(v == 0 for v in scored) / max(len(scored), 1),
                       flat / max(len(groups), 1), min(scored, default=math.nan), max(scored, default=math.nan),
                       len(scored))


def group_indices(keys: list[Any]) -> list[list[int]]:
    """Indices of each group, groups in order of first appearance."""
    order: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    return list(order.values())


def summarize(cfg: Config, texts: list[str], keys: list[Any], scores: dict[str, list[float]],
              lengths: list[int], unit: str, truncated: list[bool] | None = None,
              entropy: float | None = None, prompts: list[str] | None = None) -> Summary:
    """Per-reward statistics and the samples' format, length and truncation, groups by `keys`."""
    groups = group_indices(keys)
    weights = cfg.grpo.reward_weights
    total = [sum(w * v for w, v in zip(weights, row) if not math.isnan(v)) for row in zip(*scores.values())]
    total_stats = _stats("total", total, groups)
    flat = [g for g in groups if max(total[i] for i in g) - min(total[i] for i in g) <= SPREAD_EPS]
    solved = sum(abs(total[g[0]] - total_stats.high) <= SPREAD_EPS for g in flat)
    failed = sum(abs(total[g[0]] - total_stats.low) <= SPREAD_EPS < total_stats.high - total_stats.low
                 for g in flat)
    distinct = [len({answers.answer_text(texts[i]) for i in g}) for g in groups]
    n = max(len(texts), 1)
    return Summary(
        samples=len(texts), groups=len(groups), group_size=max((len(g) for g in groups), default=0),
        rewards=[_stats(name, values, groups) for name, values in scores.items()], total=total_stats,
        format_rate=sum(answers.format_ok(t) for t in texts) / n, mean_length=sum(lengths) / n, length_unit=unit,
        truncated=None if truncated is None else sum(truncated) / n, entropy=entropy,
        distinct_answers=sum(distinct) / max(len(distinct), 1),
        solved_groups=solved / max(len(groups), 1), failed_groups=failed / max(len(groups), 1),
        prompts_ask_tags=None if not prompts else any(answers.ANSWER_OPEN in p for p in prompts))


# ---------------------------------------------------------------- verdict

@dataclass
class Verdict:
    level: str  # dead (GRPO will not move), weak (it learns from few prompts), ok
    reason: str
    notes: list[str] = field(default_factory=list)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _format_reason(s: Summary, cfg: Config) -> str:
    """Why no completion matched the format, from what the samples show."""
    if s.truncated is not None and s.truncated >= 0.5:
        return (f"{_pct(s.truncated)} of completions were cut at grpo.max_completion_length="
                f"{cfg.grpo.max_completion_length} before </answer>: raise it")
    if s.prompts_ask_tags is False:
        return "the prompt does not ask for the tags: use a prompt that asks for <think> and <answer> (data.prompts, data.custom.prompt)"
    if s.prompts_ask_tags:
        return ("the prompt asks for the tags but the model does not write them: train Stage 1 (CoT-SFT) first, or "
                "longer, or start from a model that follows the instruction")
    return "no completion is <think>...</think> <answer>...</answer> and nothing else"


def verdict(s: Summary, cfg: Config) -> Verdict:
    """The most important finding first; secondary findings as notes."""
    notes = []
    if s.truncated is not None and TRUNCATION_WARN <= s.truncated < 0.5:
        notes.append(f"{_pct(s.truncated)} of completions hit grpo.max_completion_length={cfg.grpo.max_completion_length}"
                     " without ending: raise it (a cut completion never closes </answer>)")
    always_zero = [r for r in s.rewards if r.scored and r.high == 0 == r.low]
    constant = [r for r in s.rewards if r.scored and r.high - r.low <= SPREAD_EPS and r not in always_zero]
    for r in constant:
        notes.append(f"{r.name} is {r.high:.2f} in all {r.scored} samples: it separates no completions")
    learn = f"GRPO will learn from {_pct(1 - s.total.zero_spread)} of prompts"
    dead = s.total.zero_spread >= 1.0
    if s.format_rate == 0:
        level = "dead" if dead else "weak"
        return Verdict(level, f"format never matched in {s.samples} samples: {_format_reason(s, cfg)}", notes)
    if dead and len(always_zero) == len(s.rewards):
        return Verdict("dead", f"every reward is 0 in all {s.samples} samples: GRPO has nothing to learn from; "
                       "check the rewards against the answers (rrft-studio rewards check --completions)", notes)
    if dead:
        what = ", ".join(f"{r.name} always {r.high:.2f}" for r in s.rewards if r.high - r.low <= SPREAD_EPS)
        why = f"the rewards are constant ({what})" if len(constant) + len(always_zero) == len(s.rewards) else \
            f"every group's completions score alike ({_why_flat(s)})"
        return Verdict("dead", f"all {s.groups} groups have zero spread: {why}; every advantage is zero and GRPO "
                       f"will not change the model; {_fix(s)}", notes)
    if always_zero:
        names = ", ".join(r.name for r in always_zero)
        return Verdict("weak", f"{names} is 0 in all {s.samples} samples: it gives GRPO no signal; "
                       f"{_zero_hint(always_zero)}", notes)
    if s.total.zero_spread >= ZERO_SPREAD_WARN:
        return Verdict("weak", f"{_pct(s.total.zero_spread)} of groups have zero spread ({_why_flat(s)}): {learn}; "
                       f"{_fix(s)}", notes)
    return Verdict("ok", f"{_pct(1 - s.total.zero_spread)} of groups have a spread: {learn}", notes)


def _why_flat(s: Summary) -> str:
    parts = []
    if s.solved_groups:
        parts.append(f"{_pct(s.solved_groups)} where every completion scored the top total {s.total.high:.2f}")
    if s.failed_groups:
        parts.append(f"{_pct(s.failed_groups)} where every completion scored {s.total.low:.2f}")
    return ", ".join(parts) or "groups at several levels"


def _fix(s: Summary) -> str:
    if s.failed_groups > s.solved_groups:
        return "the model rarely solves these prompts: train Stage 1 longer, or give easier prompts"
    return "raise grpo.temperature or grpo.num_generations, or stop Stage 1 earlier"


def _zero_hint(zero: list[RewardStats]) -> str:
    if any("accuracy" in r.name for r in zero):
        return "no answer equals the truth: compare the <answer> texts with the answer column"
    return "check that it can ever pay (rrft-studio rewards check --completions on texts you expect to score)"


# ---------------------------------------------------------------- report

def text(s: Summary, v: Verdict, cfg: Config) -> str:
    weights = ",".join(f"{w:g}" for w in cfg.grpo.reward_weights)
    width = max(len(f"total (weights {weights})"), *(len(r.name) for r in s.rewards)) + 2
    lines = [s.source, f"{'reward':<{width}}{'mean':>7}{'std':>7}{'zeros':>8}  zero-spread groups"]
    for r in [*s.rewards, s.total]:
        label = r.name if r is not s.total else f"total (weights {weights})"
        lines.append(f"{label:<{width}}{r.mean:7.2f}{r.std:7.2f}{_pct(r.zeros):>8}  {_pct(r.zero_spread):>6}")
    sample = [f"format matched {_pct(s.format_rate)}", f"mean length {s.mean_length:.1f} {s.length_unit}"]
    sample.append("truncated n/a" if s.truncated is None else f"truncated {_pct(s.truncated)}")
    if s.entropy is not None:
        sample.append(f"sampling entropy {s.entropy:.3f} nats/token")
    sample.append(f"{s.distinct_answers:.1f} distinct answers per group of {s.group_size}")
    lines.append(f"samples ({s.samples} in {s.groups} groups): " + ", ".join(sample))
    lines += [f"note: {n}" for n in [*s.notes, *v.notes]]
    lines.append(f"verdict: {v.level}: {v.reason}")
    return "\n".join(line for line in lines if line)


def to_json(s: Summary, v: Verdict, samples: list[dict]) -> str:
    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: clean(y) for k, y in x.items()}
        if isinstance(x, list):
            return [clean(y) for y in x]
        return x
    return json.dumps(clean({"summary": asdict(s), "verdict": asdict(v), "samples": samples}), indent=1)


# ---------------------------------------------------------------- given completions

def read_completions(path: Path, cfg: Config) -> list[dict]:
    """JSONL rows with `completion` and `answer` (optional `task`, `group`, other columns the rewards read)."""
    if not path.is_file():
        raise ConfigError(f"--completions '{path}' not found: give a JSONL file of {{\"completion\": ..., \"answer\": ...}}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} line {number} is not JSON ({e.msg}): write one object per line") from None
        if not isinstance(row, dict) or "completion" not in row or "answer" not in row:
            raise ConfigError(f"{path} line {number}: each row needs 'completion' and 'answer' keys")
        if row.get("task", cfg.data.task) not in tasks.TASKS:
            raise ConfigError(f"{path} line {number}: task {row['task']!r} is not one of {', '.join(tasks.TASKS)}")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path} holds no rows: write one {{\"completion\": ..., \"answer\": ...}} object per line")
    return rows


def _checker_of(task_name: str, cfg: Config) -> str:
    return tasks.get(task_name).checker_names(getattr(cfg.data, task_name, None))[0]


def check_completions(cfg: Config, path: Path) -> tuple[Summary, Verdict, list[dict]]:
    """Score the file's completions; groups: the rows' `group` key, else consecutive blocks of
    grpo.num_generations rows (the way GRPO lays a batch out)."""
    rows = read_completions(path, cfg)
    g = cfg.grpo.num_generations
    keys = [r.get("group", f"#{i // g}") for i, r in enumerate(rows)]
    task_names = [r.get("task", cfg.data.task) for r in rows]
    reserved = {"completion", "group", "prompt"}
    columns = {k: [r.get(k) for r in rows] for k in sorted({k for r in rows for k in r} - reserved)}
    columns.update(task=task_names, checker=[r.get("checker") or _checker_of(t, cfg) for r, t in zip(rows, task_names)],
                   id=[str(r.get("id", i)) for i, r in enumerate(rows)])
    texts = [answers.as_str(r["completion"]) for r in rows]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    prompts = [r["prompt"] for r in rows] if all("prompt" in r for r in rows) else None
    scores = score(cfg, completions, columns, {"prompts": prompts or [None] * len(rows), "trainer_state": None})
    summary = summarize(cfg, texts, keys, scores, [len(t) for t in texts], "characters",
                        prompts=[answers.completion_text(p) for p in prompts] if prompts else None)
    summary.source = f"rewards check: {len(rows)} completions from {path}"
    samples = [{"group": str(k), "id": columns["id"][i], "answer": answers.as_str(rows[i]["answer"]),
                "completion": texts[i], "rewards": {n: v[i] for n, v in scores.items()}}
               for i, k in enumerate(keys)]
    return summary, verdict(summary, cfg), samples


# ---------------------------------------------------------------- the model's own samples

def starting_model(cfg: Config, checkpoint: str | None) -> tuple[str, str]:
    """(weights to sample, what they are): a run's final/sft (what its GRPO starts from), a checkpoint folder,
    or the preset's model."""
    from . import data, models

    if checkpoint:
        path = Path(checkpoint).expanduser()
        if runs.is_run(path):
            if runs.is_done(path, "sft"):
                return str(runs.final_dir(path, "sft")), f"{path}'s Stage-1 checkpoint (final/sft)"
            base = runs.read_status(path).get("base_model")
            if "sft" not in runs.load_config(path).run.stages and base:
                return base, f"{path}'s base model (the run has no Stage 1)"
            raise ConfigError(f"run '{path}' has no final/sft yet: wait for Stage 1 to finish, or give a checkpoint "
                              f"folder (one with config.json)")
        if (path / "config.json").is_file():
            return str(path), str(path)
        raise ConfigError(f"--checkpoint '{checkpoint}' is neither a run directory nor a checkpoint (no config.yaml "
                          f"or config.json)")
    note = "the preset's model"
    if "sft" in cfg.run.stages:
        note += " (its GRPO starts from Stage 1's output: give --checkpoint RUN_DIR once Stage 1 has run)"
    source = models.source(cfg, data.corpus(cfg) if cfg.model.name == "tiny" else None)
    return source, note


def check_model(cfg: Config, checkpoint: str | None, n: int, batch: int = 64) -> tuple[Summary, Verdict, list[dict]]:
    """Sample grpo.num_generations completions for n Stage-2 prompts from the starting model and score them."""
    import torch

    from . import data, models

    path, what = starting_model(cfg, checkpoint)
    rows = data.stage_records(cfg, "grpo")
    picked = random.Random(cfg.run.seed).sample(rows, min(n, len(rows)))
    ds = data.grpo_dataset(picked, data.task_of(cfg), cfg)
    torch.manual_seed(cfg.run.seed)
    model, processor = models.load_for_inference(path, cfg, cfg.grpo.max_pixels)
    g = cfg.grpo.num_generations
    per_call = max(1, batch // g)
    texts, ids, lengths, truncated, entropies = [], [], [], [], []
    for start in range(0, len(ds), per_call):
        part = ds[start: start + per_call]
        out = _generate(model, processor, part["prompt"], part["images"], cfg)
        for key, values in zip((texts, ids, lengths, truncated, entropies), out):
            key.extend(values)
    columns = {k: [v for v in ds[k] for _ in range(g)] for k in ds.column_names if k != "prompt"}
    prompts = [p for p in ds["prompt"] for _ in range(g)]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    scores = score(cfg, completions, columns, {"prompts": prompts, "completion_ids": ids, "trainer_state": None})
    keys = [i // g for i in range(len(texts))]
    prompt_texts = [data.prompt_of(data.task_of(cfg), r, "cot", cfg) for r in picked]
    entropy = sum(e * n for e, n in zip(entropies, lengths)) / max(sum(lengths), 1)
    summary = summarize(cfg, texts, keys, scores, lengths, "tokens", truncated, entropy, prompt_texts)
    gr = cfg.grpo
    summary.source = (f"rewards check: {len(picked)} prompts x {g} completions = {len(texts)} samples from {what} "
                      f"(temperature {gr.temperature:g}, top-p {gr.top_p:g}, top-k {gr.top_k}, at most "
                      f"{gr.max_completion_length} new tokens)")
    samples = [{"group": keys[i], "id": columns["id"][i], "answer": answers.as_str(columns["answer"][i]),
                "completion": texts[i], "length": lengths[i], "truncated": truncated[i],
                "rewards": {name: v[i] for name, v in scores.items()}} for i in range(len(texts))]
    return summary, verdict(summary, cfg), samples


def _generate(model, processor, prompts: list, images: list, cfg: Config):
    """G samples per prompt as GRPOTrainer draws them (the prompt repeated G times, sampled with the stage's
    settings, vision tokens suppressed): texts, token ids, lengths, truncated flags, mean entropies."""
    import torch

    from . import models

    gr, g = cfg.grpo, cfg.grpo.num_generations
    texts = processor.apply_chat_template([p for p in prompts for _ in range(g)], add_generation_prompt=True,
                                          tokenize=False)
    flat = [img for group in images for _ in range(g) for img in group]
    inputs = processor(text=texts, images=flat or None, padding=True, return_tensors="pt").to(model.device)
    sampling = dict(do_sample=True, temperature=gr.temperature, top_p=gr.top_p, top_k=gr.top_k) \
        if gr.temperature > 0 else dict(do_sample=False)
    meter = _EntropyMeter(gr)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=gr.max_completion_length, repetition_penalty=1.0,
                             suppress_tokens=models.vision_token_ids(processor) or None,
                             logits_processor=[meter], **sampling)  # as TRL: no repetition penalty
    new = out[:, inputs["input_ids"].shape[1]:].tolist()  # (B*G, T)
    step_entropy = torch.stack(meter.steps, dim=1) if meter.steps else torch.zeros(len(new), 0)  # (B*G, T)
    eos = _eos_ids(model, processor)
    ids, lengths, truncated, entropy = [], [], [], []
    for row, ent in zip(new, step_entropy):
        stop = next((i for i, t in enumerate(row) if t in eos), None)
        length = len(row) if stop is None else stop + 1
        ids.append(row if stop is None else row[:stop])
        lengths.append(length)
        truncated.append(stop is None)
        entropy.append(ent[:length].mean().item() if length else 0.0)
    return processor.batch_decode(ids, skip_special_tokens=True), ids, lengths, truncated, entropy


class _EntropyMeter:
    """A logits processor that records, per step, the entropy of the distribution actually sampled from: it
    runs before generate's own warpers, so it applies the same ones (temperature, top-k, top-p) to a copy."""

    def __init__(self, gr):
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.steps: list = []
        self.warpers = [TemperatureLogitsWarper(gr.temperature)] if gr.temperature > 0 else []
        self.warpers += [TopKLogitsWarper(gr.top_k)] if gr.top_k else []
        self.warpers += [TopPLogitsWarper(gr.top_p)] if gr.top_p < 1.0 else []

    def __call__(self, input_ids, scores):
        import torch

        warped = scores.float()
        for warper in self.warpers:
            warped = warper(input_ids, warped)
        logp = torch.log_softmax(warped, dim=-1)  # (B*G, V)
        self.steps.append(-(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1).cpu())  # (B*G,)
        return scores


def _eos_ids(model, processor) -> set[int]:
    eos = model.generation_config.eos_token_id
    found = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found


# ---------------------------------------------------------------- one pasted completion

def explain(cfg: Config, completion: str, answer: str, task: str | None = None) -> list[dict]:
    """Each configured reward's score of one completion, with why: the missing tag, the answer texts compared."""
    task = task or cfg.data.task
    columns = {"answer": [answer], "task": [task], "checker": [_checker_of(task, cfg)], "id": ["pasted"]}
    scores = score(cfg, [[{"role": "assistant", "content": completion}]], columns,
                   {"prompts": [None], "trainer_state": None})
    return [{"reward": name, "score": values[0], "why": why(name, completion, answer)}
            for name, values in scores.items()]


def why(name: str, completion: str, answer: str) -> str:
    """Why a built-in reward scores a completion as it does."""
    if name.startswith("format"):
        return format_problem(completion, strict=name == "format_strict") or "the whole text is <think>...</think> <answer>...</answer>"
    if name in ("accuracy", "tolerance", "spatial_partial"):
        tagged = answers.has_answer_tag(completion)
        said = answers.answer_text(completion)
        where = "the <answer> text" if tagged else "no <answer> tag: the whole text (math-verify may decide)"
        return f"compared {where} {said[:80]!r} with the truth {answers.answer_text(answers.as_str(answer))!r}"
    return "your own reward"


def format_problem(text: str, strict: bool = False) -> str:
    """What keeps a text from the paper's format (empty when it matches)."""
    body = answers.SPECIAL_TOKEN.sub("", text).strip()
    for tag in answers.TAGS:
        if tag not in body:
            return f"no {tag} tag"
    if not body.startswith(answers.THINK_OPEN):
        return f"text before <think>: {body[:body.find(answers.THINK_OPEN)][:40]!r}"
    if not body.endswith(answers.ANSWER_CLOSE):
        return f"text after the last </answer>: {body[body.rfind(answers.ANSWER_CLOSE) + 9:][:40]!r}"
    if not answers.format_ok(body):
        return "something other than whitespace between </think> and <answer>"
    if strict and not answers.format_ok_strict(body):
        counts = {t: body.count(t) for t in answers.TAGS if body.count(t) != 1}
        return "format_strict wants exactly one of each tag: " + ", ".join(f"{t} x{c}" for t, c in counts.items())
    return ""


# ---------------------------------------------------------------- the monitor's banner

def banner(rows: list[dict], threshold: float = 0.9, steps: int = 10) -> list[tuple[str, str]]:
    """(level, message) warnings for a live GRPO run from its metrics.jsonl rows: a sampling gap above
    SAMPLING_GAP_WARN at the last step; the zero-spread share at or above `threshold` for the last `steps` logged steps, or a reward constant over each of those batches
    (warning when it is 0, info when it is saturated at another value). Empty when nothing is wrong."""
    out = []
    gaps = [r for r in rows if r.get("stage") == "grpo" and f"{SAMPLING_GAP}/mean" in r]
    if gaps and gaps[-1][f"{SAMPLING_GAP}/mean"] > SAMPLING_GAP_WARN:  # from the first step: a fault, not a trend
        out.append(("warning", f"the trainer's log-probabilities differ from the sampler's by "
                    f"{gaps[-1][f'{SAMPLING_GAP}/mean']:.3f} nats a token on average at step {gaps[-1]['step']} "
                    f"(float noise is below 0.02): the batch it scores is not the batch that was sampled; check the "
                    "padding side, the images per prompt and grpo.max_prompt_length (docs/training.md)"))
    grpo = [r for r in rows if r.get("stage") == "grpo" and "frac_reward_zero_std" in r][-steps:]
    if len(grpo) < steps:
        return out
    worst = min(r["frac_reward_zero_std"] for r in grpo)
    if worst >= threshold:
        share = "every group" if worst >= 1 else f"at least {_pct(worst)} of groups"
        out.append(("warning", f"{share} had zero spread in each of the last {steps} steps "
                    f"(to step {grpo[-1]['step']}): their advantages are zero and GRPO is barely learning; raise "
                    "grpo.temperature or grpo.num_generations, stop Stage 1 earlier (rrft-studio rewards check), or "
                    "set grpo.dynamic_sampling=true"))
    names = sorted({k[len("rewards/"):-len("/std")] for r in grpo for k in r
                    if k.startswith("rewards/") and k.endswith("/std")})
    for name in names:
        stds = [r.get(f"rewards/{name}/std") for r in grpo]
        means = [r.get(f"rewards/{name}/mean") for r in grpo]
        if any(s is None or s > SPREAD_EPS for s in stds) or any(m is None for m in means):
            continue
        if all(abs(m) <= SPREAD_EPS for m in means):
            out.append(("warning", f"{name} has been 0 for every completion for {steps} steps: it never pays"))
        elif max(means) - min(means) <= SPREAD_EPS:
            rest = ("saturated, the other rewards carry the signal" if len(names) > 1 else
                    "it is the only reward, so no completion is preferred to another")
            out.append(("info" if len(names) > 1 else "warning",
                        f"{name} has been {means[-1]:.2f} for every completion for {steps} steps: {rest}"))
    return out
