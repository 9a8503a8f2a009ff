"""Reward functions for GRPO, with TRL's signature ``f(completions, **dataset_columns) -> list[float]``.

Reason-RFT trains with two rewards of weight 1 each (total in [0, 2]):

- ``format``: 1.0 when the whole completion, literal special tokens such as ``<|im_end|>`` removed and
  surrounding whitespace stripped, is a full match (DOTALL) of
  ``<think>.*?</think>\\s*<answer>.*?</answer>``; else 0.0. Text before ``<think>`` or after ``</answer>``
  scores 0. As in the paper's regex, several or nested answer blocks inside that frame still score 1.
- ``format_strict`` (not the paper's): ``format`` with exactly one of each tag. A policy whose Stage 1
  was too short can learn to repeat ``<answer>`` inside the frame, which ``format`` still pays for.
- ``accuracy``: the stripped text inside the first ``<answer>...</answer>`` of the completion and of the
  solution (the whole stripped string where there is no tag), compared as strings. Only when the
  completion has no answer tag does it fall back to symbolic verification with ``math-verify``.

Also offered, as the paper describes for structure perception (its released scripts train with ``accuracy``):

- ``tolerance``: a numeric score in [0, 1] with a cosine ramp between 5% and 20% relative error; letters and
  other non-numbers compare as strings. See ``tolerance_score`` (including the choice made for a truth of 0).

Where this follows the paper's released code (R1-V style) and where it departs:

- The original tries math-verify first on every completion and the string match second; here, as in
  ``method.md``, the string match decides whenever the completion has an answer tag, so ``<answer>03``
  does not earn credit for ``3``.
- Tag contents may span lines (the original regex lacked DOTALL, so a multi-line answer fell back to the
  whole completion).
- An empty answer never matches (the original gave 1 when both sides were empty).
- math-verify gets the last ``MATH_VERIFY_MAX_CHARS`` characters of each side (final answers come last),
  uses the solution as gold (``verify(gold, target)``; the original swapped them), and any error or timeout
  scores 0. Its timeouts use ``signal.alarm``, which only works in the main thread, so off the main
  thread they are switched off and the length cap is the only guard.
- The format check is done without regex backtracking: the literal pattern is quadratic on adversarial
  inputs (6 s on 200k characters), while the equivalent decomposition here is linear.

Extra keyword arguments from TRL (``prompts``, ``completion_ids``, ``trainer_state``, ``log_extra``,
``log_metric``, other dataset columns) are accepted and ignored. ``resolve`` maps a config name to a
function: a ``REWARDS`` key or ``package.module:function``.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import math
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

FORMAT_PATTERN = r"<think>.*?</think>\s*<answer>.*?</answer>"  # the paper's regex, full match, DOTALL
SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]{1,64}\|>")  # Qwen-style literal tokens: <|im_end|>, <|endoftext|>
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_THINK_TO_ANSWER = re.compile(r"</think>\s*<answer>")  # linear: each try scans one whitespace run

MATH_VERIFY_MAX_CHARS = 2000  # math-verify sees only the tail; sympy can be slow on long inputs
MATH_VERIFY_TIMEOUT_S = 3  # per parse / comparison, main thread only (signal.alarm)
# Off the main thread we call math-verify without its signal-based timeout on purpose (the 2,000-character
# cap guards it instead); its warning about that would repeat for every scored completion.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def completion_text(completion: Any) -> str:
    """Text of one completion: a string, or a conversational list of messages (content str or parts)."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(message) for message in completion)
    return str(completion)


def _content_text(content: Any) -> str:
    """Message content: a string, or a list of parts of which only text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(
            part if isinstance(part, str) else str(part.get("text") or "")
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type", "text") == "text")
        )
    return str(content)


def _answer_span(text: str) -> tuple[int, int] | None:
    """Start and end of the first ``<answer>...</answer>`` body, like a lazy DOTALL regex search."""
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    end = text.find(ANSWER_CLOSE, start + len(ANSWER_OPEN))
    # No closing tag after the first opening one means none after any later opening one either.
    return None if end < 0 else (start + len(ANSWER_OPEN), end)


def has_answer_tag(text: str) -> bool:
    """Whether the text holds a complete ``<answer>...</answer>`` pair."""
    return _answer_span(text) is not None


def answer_text(text: str) -> str:
    """Stripped text inside the first ``<answer>...</answer>``, or the whole stripped text without one."""
    span = _answer_span(text)
    return (text if span is None else text[span[0] : span[1]]).strip()


def _as_str(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def match_answer(text: str, answer: str) -> float:
    """1.0 if the answer-tag texts are equal; without a tag in ``text``, math-verify decides. Never raises."""
    text, answer = _as_str(text), _as_str(answer)
    gold = answer_text(answer)
    if gold and answer_text(text) == gold:
        return 1.0
    if has_answer_tag(text) or not gold:
        return 0.0
    return 1.0 if _math_equal(text, gold) else 0.0


def _math_equal(text: str, gold: str) -> bool:
    """math-verify's verdict on ``text`` against ``gold``; False on any error or timeout."""
    from math_verify import parse, verify  # sympy is slow to import; only this fallback needs it
    from math_verify.errors import TimeoutException  # a BaseException, missed by `except Exception`

    # signal.alarm only works in the main thread; elsewhere math-verify raises unless timeouts are off.
    limit = MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    try:
        gold_parsed = parse(gold[-MATH_VERIFY_MAX_CHARS:], parsing_timeout=limit)
        pred_parsed = parse(text[-MATH_VERIFY_MAX_CHARS:], parsing_timeout=limit)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=limit))
    except (Exception, TimeoutException):
        return False


def format_ok(text: str) -> bool:
    """Full DOTALL match of ``FORMAT_PATTERN`` after removing special tokens and outer whitespace.

    ``<think>A</think>W<answer>B</answer>`` with A, B anything and W whitespace is exactly: starts with
    ``<think>``, ends with ``</answer>``, and ``</think>\\s*<answer>`` occurs in between.
    """
    text = SPECIAL_TOKEN.sub("", text).strip()
    if not (text.startswith(THINK_OPEN) and text.endswith(ANSWER_CLOSE)):
        return False
    middle = text[len(THINK_OPEN) : len(text) - len(ANSWER_CLOSE)]
    return len(text) >= len(THINK_OPEN) + len(ANSWER_CLOSE) and _THINK_TO_ANSWER.search(middle) is not None


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 per completion shaped ``<think>...</think> <answer>...</answer>`` and nothing else, else 0.0."""
    return [1.0 if format_ok(completion_text(c)) else 0.0 for c in completions]


def accuracy_reward(completions: list, answer: list, task: list | None = None, **kwargs: Any) -> list[float]:
    """Accuracy as trained. Counting and structure (or no ``task`` column): 1.0 where the answer matches
    (see ``match_answer``). Spatial: the exact-set score with the duplicate penalty (tasks/spatial.py)."""
    tasks = task or [None] * len(completions)
    scores = []
    for c, a, t in zip(completions, answer, tasks, strict=True):
        if t == "spatial":
            from .tasks import spatial  # imports this module: loaded on first use

            scores.append(spatial.exact_score(completion_text(c), a))
        else:
            scores.append(match_answer(completion_text(c), a))
    return scores


def spatial_partial_reward(completions: list, answer: list, **kwargs: Any) -> list[float]:
    """Spatial transformation, hierarchical partial credit (as the paper evaluates), duplicate-penalised."""
    from .tasks import spatial

    return [spatial.partial_score(completion_text(c), a, duplicate_penalty=True)
            for c, a in zip(completions, answer, strict=True)]


TOLERANCE_FULL = 0.05  # relative error below which the tolerance score is 1
TOLERANCE_ZERO = 0.20  # relative error above which it is 0; a cosine ramp in between
TOLERANCE_ZERO_GT_SCALE = 1.0  # when the truth is 0, errors are measured against this absolute scale
# A plain decimal number (sign, digits, optional fraction and exponent), optionally followed by a degree sign.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*°?")


def _as_number(text: str) -> float | None:
    """The value of a plain decimal number (``70``, ``-3.5``, ``1e3``, ``70°``), else None."""
    if len(text) > 100 or not _NUMBER.fullmatch(text):
        return None
    value = float(text.rstrip("°").strip())
    return value if math.isfinite(value) else None


def tolerance_score(pred: str, gt: str) -> float:
    """Numeric tolerance score of ``pred`` against ``gt`` (the paper's structure-perception reward).

    Both sides go through ``answer_text`` (first answer tag, stripped). With d = |pred - gt| and g = |gt|:
    d < 0.05 g gives 1, d > 0.20 g gives 0, and in between 0.5 (1 + cos(pi (d - 0.05 g) / (0.15 g))), a
    ramp continuous at both ends. The original divides by zero when gt = 0; here g = 0 is replaced by the
    absolute scale ``TOLERANCE_ZERO_GT_SCALE`` = 1, so an exact 0 scores 1, |pred| < 0.05 scores 1 and
    |pred| > 0.2 scores 0. When either side is not a plain number (letters A-D, expressions, words) the
    score is 1 for equal strings and 0 otherwise; there is no math-verify fallback. An empty truth scores 0.
    Never raises.
    """
    pred_text, gold_text = answer_text(_as_str(pred)), answer_text(_as_str(gt))
    if not gold_text:
        return 0.0
    p, g = _as_number(pred_text), _as_number(gold_text)
    if p is None or g is None:
        return 1.0 if pred_text == gold_text else 0.0
    d = abs(p - g)
    scale = abs(g) if g != 0 else TOLERANCE_ZERO_GT_SCALE
    full, zero = TOLERANCE_FULL * scale, TOLERANCE_ZERO * scale
    if d < full:
        return 1.0
    if d > zero:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (d - full) / (zero - full)))


def format_strict_reward(completions: list, **kwargs: Any) -> list[float]:
    """``format_reward`` that also asks for exactly one ``<think>``, ``</think>``, ``<answer>``, ``</answer>``."""
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    texts = [completion_text(c) for c in completions]
    return [1.0 if format_ok(t) and all(t.count(tag) == 1 for tag in tags) else 0.0 for t in texts]


def tolerance_reward(completions: list, answer: list, **kwargs: Any) -> list[float]:
    """Per completion, ``tolerance_score`` of its answer-tag text against the ``answer`` column, in [0, 1]."""
    return [tolerance_score(completion_text(c), a) for c, a in zip(completions, answer, strict=True)]


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
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ValueError(f"reward {name!r}: expected 'package.module:function' (or one of {valid})")
    try:
        if os.getcwd() not in sys.path:  # a user's rewards module beside their preset, as with `python -m`
            sys.path.append(os.getcwd())
        module = importlib.import_module(module_name)
    except ImportError as e:
        reason = " ".join(str(e).split())
        raise ValueError(f"reward {name!r}: cannot import module {module_name!r} ({reason})") from e
    func: Any = module
    for part in attr.split("."):
        if not hasattr(func, part):
            raise ValueError(f"reward {name!r}: module {module_name!r} has no attribute {attr!r}")
        func = getattr(func, part)
    if not callable(func):
        raise ValueError(f"reward {name!r}: {attr!r} in {module_name!r} is not callable")
    return func
