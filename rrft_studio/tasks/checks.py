"""Answer checks that several task families share: the training reward's string match, the paper's evaluation
scorer, and the numeric tolerance score. Each takes a completion (or its answer text) and the true answer and
returns a float in [0, 1]; none ever raises.

- ``match_answer`` (as trained, the ``accuracy`` reward): the answer-tag text equals the truth; only where the
  completion has no answer tag does math-verify decide. So ``<answer>03`` does not earn credit for ``3``.
- ``paper_match`` (as the released evaluation scores counting, GeoMath and Geometry3K): the answer text
  equals the truth, else ``verify(parse(answer), parse(truth))`` on the answer text, tagged or not. So
  ``7.0``, ``$7$``, ``\\boxed{7}``, ``7 objects`` and ``70°`` count for 7 and 70 there.
- ``tolerance_score``: the paper's numeric cosine ramp between 5% and 20% relative error.

Where these depart from the released code: an empty answer never matches (the original gave 1 when both sides
were empty); a non-string truth is read as text (the original raised); math-verify sees only the last
``MATH_VERIFY_MAX_CHARS`` characters of each side (final answers come last); ``match_answer`` passes the truth
as gold (the original training reward swapped them), ``paper_match`` keeps the evaluation's order.
math-verify's alarms (``MATH_VERIFY_TIMEOUT_S`` per parse and comparison) work only on a main thread; off it a
worker process answers (``verifier``), killed when a verdict is not back within ``verifier.KILL_AFTER_S``, where the
original ran for minutes on one nested fraction or power tower. Inside ``budget()`` (one reward call), verdicts stop
being asked once ``MATH_VERIFY_BUDGET_S`` seconds are spent.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time

from ..answers import answer_text, as_str, has_answer_tag
from . import verifier

MATH_VERIFY_MAX_CHARS = 2000  # math-verify sees only the tail; sympy can be slow on long inputs
MATH_VERIFY_TIMEOUT_S = verifier.OP_TIMEOUT_S  # per parse / comparison, on any thread (off it: in a worker)
MATH_VERIFY_BUDGET_S = verifier.BUDGET_S  # per reward call: later fallbacks score 0
budget = verifier.budget  # `with checks.budget():` around one reward call's scoring
# Where no worker can be started, math-verify runs here without its signal-based timeout off the main thread;
# its warning about that would repeat for every scored completion.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def match_answer(text: str, answer: str) -> float:
    """1.0 if the answer-tag texts are equal; without a tag in ``text``, math-verify decides. Never raises."""
    text, answer = as_str(text), as_str(answer)
    gold = answer_text(answer)
    if gold and answer_text(text) == gold:
        return 1.0
    if has_answer_tag(text) or not gold:
        return 0.0
    return 1.0 if math_equal(gold, text) else 0.0


def paper_match(text: str, answer: str) -> float:
    """The released evaluation's score: answer text equal to the truth, else math-verify on the answer text
    (the whole completion where it has no answer tag), the predicted side parsed as gold as there."""
    pred, gold = answer_text(as_str(text)), answer_text(as_str(answer))
    if not gold or not pred:
        return 0.0
    if pred == gold:
        return 1.0
    return 1.0 if math_equal(pred, gold) else 0.0


def math_equal(gold: str, target: str) -> bool:
    """math-verify's verdict ``verify(parse(gold), parse(target))``; False on any error or timeout, and once the
    caller's ``budget`` is spent. On the main thread math-verify runs here under its alarms; elsewhere a worker
    process answers (``verifier``)."""
    gold, target = gold[-MATH_VERIFY_MAX_CHARS:], target[-MATH_VERIFY_MAX_CHARS:]
    if verifier.spent():
        return False
    if threading.current_thread() is threading.main_thread():
        import math_verify  # noqa: F401  (sympy's import, once, is not charged to the budget)

        start = time.monotonic()
        try:
            return _math_equal_here(gold, target)
        finally:
            verifier.charge(time.monotonic() - start)
    verdict = verifier.equal(gold, target)
    return _math_equal_here(gold, target) if verdict is None else verdict


def _math_equal_here(gold: str, target: str) -> bool:
    """math-verify in this process: under its alarms on the main thread, unbounded elsewhere (where the worker
    could not be started)."""
    from math_verify import parse, verify  # sympy is slow to import; only these fallbacks need it
    from math_verify.errors import TimeoutException  # a BaseException, missed by `except Exception`

    # signal.alarm only works in the main thread; elsewhere math-verify raises unless timeouts are off.
    limit = MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    try:
        gold_parsed = parse(gold, parsing_timeout=limit)
        target_parsed = parse(target, parsing_timeout=limit)
        if not gold_parsed or not target_parsed:
            return False
        return bool(verify(gold_parsed, target_parsed, timeout_seconds=limit))
    except (Exception, TimeoutException):
        return False


def exact(text: str, answer: str) -> float:
    """1.0 when the answer texts are equal as strings, nothing else."""
    gold = answer_text(as_str(answer))
    return 1.0 if gold and answer_text(as_str(text)) == gold else 0.0


TOLERANCE_FULL = 0.05  # relative error below which the tolerance score is 1
TOLERANCE_ZERO = 0.20  # relative error above which it is 0; a cosine ramp in between
TOLERANCE_ZERO_GT_SCALE = 1.0  # when the truth is 0, errors are measured against this absolute scale
# A plain decimal number (sign, digits, optional fraction and exponent), optionally followed by a degree sign.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*°?")


def as_number(text: str) -> float | None:
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
    """
    pred_text, gold_text = answer_text(pred), answer_text(gt)
    if not gold_text:
        return 0.0
    p, g = as_number(pred_text), as_number(gold_text)
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
