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
  calls with the duplicate penalty; a custom task uses the checker its preset names.

Also offered:

- ``tolerance``: the paper's numeric cosine ramp for structure perception (its scripts train with
  ``accuracy``); letters and other non-numbers compare as strings (``checks.tolerance_score``).
- ``spatial_partial``: spatial transformation's hierarchical partial credit, duplicate-penalised.

Extra keyword arguments from TRL (``prompts``, ``completion_ids``, ``trainer_state``, ``log_extra``,
``log_metric``, other dataset columns) are accepted and ignored. ``resolve`` maps a config name to a
function: a ``REWARDS`` key or ``package.module:function``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from . import tasks
from .answers import completion_text, format_ok, format_ok_strict
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
    return [tasks.reward(t, completion_text(c), a, k)
            for c, a, t, k in zip(completions, answer, names, checkers, strict=True)]


def spatial_partial_reward(completions: list, answer: list, **kwargs: Any) -> list[float]:
    """Spatial transformation, hierarchical partial credit (as the paper evaluates), duplicate-penalised."""
    return [spatial.partial_score(completion_text(c), a, duplicate_penalty=True)
            for c, a in zip(completions, answer, strict=True)]


def tolerance_reward(completions: list, answer: list, **kwargs: Any) -> list[float]:
    """Per completion, ``tolerance_score`` of its answer-tag text against the ``answer`` column, in [0, 1]."""
    return [checks.tolerance_score(completion_text(c), a) for c, a in zip(completions, answer, strict=True)]


REWARDS: dict[str, Callable[..., list[float]]] = {
    "format": format_reward,
    "format_strict": format_strict_reward,
    "accuracy": accuracy_reward,
    "tolerance": tolerance_reward,
    "spatial_partial": spatial_partial_reward,
}


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
