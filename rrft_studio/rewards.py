"""Reward functions for GRPO, with TRL's signature ``f(completions, **dataset_columns) -> list[float]``.

Reason-RFT trains with two rewards of weight 1 each (total in [0, 2]):

- ``format``: 1.0 when the whole completion, literal special tokens such as ``<|im_end|>`` removed and
  surrounding whitespace stripped, is a full match (DOTALL) of
  ``<think>.*?</think>\\s*<answer>.*?</answer>``; else 0.0 (``answers.format_ok``). Text before ``<think>``
  or after ``</answer>`` scores 0. As in the paper's regex, several or nested answer blocks inside that
  frame still score 1.
- ``format_strict`` (not the paper's): ``format`` with exactly one of each tag. A policy whose Stage 1
  was too short can learn to repeat ``<answer>`` inside the frame, which ``format`` still pays for.
- ``accuracy``: the task's own training reward, asked by the row's ``task`` column (``tasks.reward``):
  counting and structure compare the answer-tag text with the truth as strings, with math-verify only
  where the completion has no answer tag (``tasks/checks.py: match_answer``); spatial scores the set of
  calls with the duplicate penalty; a custom task uses the checker its preset names. math-verify's fallbacks
  stop being asked once they have taken 10 s of one call (the rest score 0); off the main thread a worker
  process answers them, killed past 10 s a completion (``tasks/verifier.py``).

Also offered:

- ``tolerance``: the paper's numeric cosine ramp for structure perception (its scripts train with
  ``accuracy``); letters and other non-numbers compare as strings (``checks.tolerance_score``).
- ``spatial_partial``: spatial transformation's hierarchical partial credit, duplicate-penalised.

Extra keyword arguments from TRL (``prompts``, ``completion_ids``, ``trainer_state``, ``log_extra``,
``log_metric``, other dataset columns) are accepted and ignored. ``resolve`` maps a config name to a
function: a ``REWARDS`` key or ``package.module:function``; ``call`` calls one as GRPOTrainer does and says in one
line when it raises or returns the wrong shape: on a sample row before training (``check_callable``, so not a
traceback after Stage 1), and on the workbench's completions.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from . import tasks
from .answers import answer_text, completion_text, compose, format_ok, format_ok_strict
from .tasks import checks, spatial


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 per completion shaped ``<think>...</think> <answer>...</answer>`` and nothing else, else 0.0."""
    return [1.0 if format_ok(completion_text(c)) else 0.0 for c in completions]


def format_strict_reward(completions: list, **kwargs: Any) -> list[float]:
    """``format_reward`` that also asks for exactly one ``<think>``, ``</think>``, ``<answer>``, ``</answer>``."""
    return [1.0 if format_ok_strict(completion_text(c)) else 0.0 for c in completions]


def accuracy_reward(completions: list, answer: list, task: list | None = None, checker: list | None = None,
                    **kwargs: Any) -> list[float]:
    """Accuracy as trained: each row's task scores its completion (counting and structure, or no ``task``
    column: the answer-tag string match; spatial: the exact-set score with the duplicate penalty; custom:
    the checker named in the row's ``checker`` column)."""
    names = task or [None] * len(completions)
    checkers = checker or [None] * len(completions)
    with checks.budget():  # math-verify fallbacks past MATH_VERIFY_BUDGET_S seconds in this call score 0
        return [tasks.reward(t, completion_text(c), a, k)
                for c, a, t, k in zip(completions, answer, names, checkers, strict=True)]


def spatial_partial_reward(completions: list, answer: list, **kwargs: Any) -> list[float]:
    """Spatial transformation, hierarchical partial credit (as the paper evaluates), duplicate-penalised."""
    return [spatial.partial_score(completion_text(c), a, duplicate_penalty=True)
            for c, a in zip(completions, answer, strict=True)]


def tolerance_reward(completions: list, answer: list, **kwargs: Any) -> list[float]:
    """Per completion, ``tolerance_score`` of its answer-tag text against the ``answer`` column, in [0, 1]."""
    return [checks.tolerance_score(completion_text(c), a) for c, a in zip(completions, answer, strict=True)]


def consistency_reward(completions: list, task: list | None = None, **kwargs: Any) -> list[float]:
    """1 where the reasoning in <think> leads to the answer given (tasks.consistent: counting's equations hold
    and end on the answer, ...), else 0; right or wrong, the accuracy reward says which."""
    names = task or [None] * len(completions)
    return [1.0 if tasks.consistent(t, completion_text(c)) else 0.0 for c, t in zip(completions, names, strict=True)]


REWARDS: dict[str, Callable[..., list[float]]] = {
    "format": format_reward,
    "format_strict": format_strict_reward,
    "accuracy": accuracy_reward,
    "tolerance": tolerance_reward,
    "spatial_partial": spatial_partial_reward,
    "consistency": consistency_reward,
}


def _ignore(*args: Any, **kwargs: Any) -> None:
    """log_extra / log_metric as GRPOTrainer passes them, for a reward called outside training."""


def call(fn: Callable, name: str, completions: list, columns: dict[str, list], **extra: Any) -> list:
    """A reward's scores, the reward called as GRPOTrainer calls it: the completions, the dataset columns (one value
    per completion), `extra` (prompts, completion_ids, trainer_state) and log_extra / log_metric. ValueError, one
    line naming the reward, when it raises, returns other than one score per completion, or a score that is not a
    finite number (None, "does not apply", is allowed as TRL allows it; numpy and torch scalars are numbers)."""
    n = len(completions)
    try:
        values = fn(completions=completions, **columns, **extra, log_extra=_ignore, log_metric=_ignore)
    except Exception as e:  # a user's reward: whatever it raises is theirs to fix, in one line
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        raise ValueError(f"reward {name!r} raised {reason}: fix it before training (it is called as "
                         f"f(completions, {', '.join(['prompts', *columns])}, ...) -> list[float])") from None
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"reward {name!r} returned {type(values).__name__}, not a list: return one float per "
                         f"completion") from None
    if len(values) != n:
        raise ValueError(f"reward {name!r} returned {len(values)} scores for {n} completion{'s' * (n != 1)}: return "
                         f"one float per completion")
    for i, value in enumerate(values):
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy / torch scalars
            try:
                values[i] = value = value.item()
            except (ValueError, RuntimeError):
                pass
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                  or not math.isfinite(value)):
            where = f" for completion {i}" if n > 1 else ""
            raise ValueError(f"reward {name!r} returned {value!r:.80}{where}, not a finite number: return floats "
                             f"(None where the reward does not apply to a row)")
    return values


def check_callable(fn: Callable, sample_columns: dict[str, Any], name: str | None = None) -> list:
    """Call a reward once (`call`), as GRPOTrainer calls it, on one made-up completion for one dataset row, before
    training: `sample_columns` is that row (``answer``, ``task``, ``checker``, ``prompt``, ...; one value each).
    The completion is the CoT layout around the row's answer, conversational where the prompt is."""
    prompt = sample_columns.get("prompt", "")
    text = compose("checking the reward before training", answer_text(sample_columns.get("answer", "")))
    completion = [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text
    columns = {key: [value] for key, value in sample_columns.items() if key != "prompt"}
    # the fields of TrainerState a reward may read, at step 0 (the real one needs torch imported)
    state = SimpleNamespace(global_step=0, max_steps=0, epoch=0.0, num_train_epochs=0, log_history=[])
    return call(fn, name or getattr(fn, "__name__", repr(fn)), [completion], columns, prompts=[prompt],
                completion_ids=[[0]], trainer_state=state)


def resolve(name: str) -> Callable[..., list[float]]:
    """A reward function by ``REWARDS`` key or ``package.module:function``; ValueError otherwise."""
    if name in REWARDS:
        return REWARDS[name]
    valid = ", ".join(sorted(REWARDS))
    if ":" not in name:
        close = difflib.get_close_matches(name, list(REWARDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown reward {name!r}: use one of {valid}, or 'package.module:function'{hint}")
    return tasks.import_callable(name, f"reward {name!r}", valid)
