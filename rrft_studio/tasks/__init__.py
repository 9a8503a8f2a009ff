"""Task families: the registry, and the checkers that score answers.

A family is one module (or one package) that declares `FAMILY`, a TaskFamily (family.py): its name, evaluation
splits and benchmarks, settings, prompts, checkers, the text of the model card, the paper's results and, for
synthetic data, its generator. The registry holds the modules of this package that declare one, then the
families other packages register under the entry point group `rrft_studio.tasks` (`toy = mypackage.toy:FAMILY`),
ordered by their position, then by name. The config's sections, the data, the evaluation, the model card and the
paper's table read the families from here. Records are read by ``schema.load`` for every family.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .. import answers
from . import checks
from .family import Checker, TaskFamily

ENTRY_POINTS = "rrft_studio.tasks"


def _families() -> dict[str, TaskFamily]:
    """The families of this package, then the registered ones, by position and name."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        family = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FAMILY", None)
        if isinstance(family, TaskFamily):
            found.append(family)
    for entry in entry_points(group=ENTRY_POINTS):
        family = entry.load()
        if not isinstance(family, TaskFamily):
            raise TypeError(f"entry point {entry.name} = {entry.value} ({ENTRY_POINTS}) is not a TaskFamily")
        found.append(family)
    names = [f.name for f in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"task families registered twice: {', '.join(twice)}")
    return {f.name: f for f in sorted(found, key=lambda f: (f.position, f.name))}


FAMILIES = _families()
TASKS = tuple(FAMILIES)
SYNTHETIC = tuple(name for name, family in FAMILIES.items() if family.generate is not None)


def get(name: str) -> TaskFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown task '{name}': choose one of {', '.join(TASKS)}")
    return FAMILIES[name]


# Checkers by name: f(completion text, true answer) -> score in [0, 1]; never raise. The shared ones, then each
# family's own.
CHECKERS: dict[str, Checker] = {
    "exact": checks.exact,  # the answer texts are equal strings
    "match": checks.match_answer,  # as trained: equal strings; math-verify only without an answer tag
    "math_verify": checks.paper_match,  # as the paper evaluates: equal strings, else math-verify equal
    "tolerance": checks.tolerance_score,  # the paper's numeric cosine ramp (5% to 20% relative error)
    **{name: check for family in FAMILIES.values() for name, check in family.checkers.items()},
}
_resolved: dict[str, Checker] = {}


def checker(name: str) -> Checker:
    """A checker by ``CHECKERS`` key or ``package.module:function`` (called as f(text, answer))."""
    if name in CHECKERS:
        return CHECKERS[name]
    if name not in _resolved:
        _resolved[name] = import_callable(name, f"checker {name!r}", ", ".join(CHECKERS))
    return _resolved[name]


def reward(task: str | None, text: str, answer: str, name: str | None = None) -> float:
    """The training reward of a row: its named checker, else its task's reward (counting's by default)."""
    return checker(name or get(task or "counting").reward)(text, answer)


def consistent(task: str | None, text: str) -> bool | None:
    """Whether a completion's reasoning leads to its answer (the family's `consistency`); None where the family has
    no such check or the completion has no <think> or no answer to compare."""
    family = get(task or "counting")
    parsed = answers.split_think(text)
    if family.consistency is None or not (parsed.think or "").strip() or not answers.has_answer_tag(text):
        return None
    return family.consistency(parsed.think, answers.answer_text(text))


def claims_true(task: str | None, text: str, reference: str | None) -> bool | None:
    """Whether the facts a completion's reasoning states are those of its record's scene (the family's
    `claims_true`, against the record's own reasoning); None without a reference, a check or a <think>."""
    family = get(task or "counting")
    parsed = answers.split_think(text)
    if family.claims_true is None or not reference or not (parsed.think or "").strip():
        return None
    return family.claims_true(parsed.think, reference)


def import_callable(name: str, what: str, valid: str) -> Callable:
    """``package.module:function`` imported (a module beside the preset, in the working directory, included);
    ValueError with one line naming what is wrong otherwise. ``what`` names it in messages."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what}: expected 'package.module:function' (or one of {valid})")
    try:
        if os.getcwd() not in sys.path:  # a user's module beside their preset, as with `python -m`
            sys.path.append(os.getcwd())
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as e:  # a user's module may raise anything on import, a SyntaxError included
        reason = " ".join(str(e).split())[:300]
        raise ValueError(f"{what}: cannot import module {module_name!r} ({type(e).__name__}: {reason})") from e
    func: Any = module
    for part in attr.split("."):
        if not hasattr(func, part):
            raise ValueError(f"{what}: module {module_name!r} has no attribute {attr!r}")
        func = getattr(func, part)
    if not callable(func):
        raise ValueError(f"{what}: {attr!r} in {module_name!r} is not callable")
    return func
