"""Task families: one module per family, each declaring what the rest of the project needs of it.

A task module declares ``NAME``; ``BENCHMARKS`` (its evaluation splits and the paper's benchmark names);
``SceneSpec`` (its settings, whose documented fields become its config section ``data.<name>``) and
``check_options``; ``prompt(problem, style, **context)``; ``REWARD`` and ``SCORERS`` (the names of its
training reward and of its evaluation scorers in ``CHECKERS``); ``PROMPT_TOKENS`` (a prompt's size for the
memory preflight); ``DATASET`` (its files in the public dataset); and, for the synthetic families,
``generate`` and ``split_spec``. Records are read by ``schema.load`` for every family.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import checks

TASKS = ("counting", "structure", "spatial", "custom")
SYNTHETIC = ("counting", "structure", "spatial")


def get(name: str) -> ModuleType:
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}': choose one of {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{name}")


def _spatial(name: str) -> Callable[[str, str], float]:
    def check(text: str, answer: str) -> float:
        from . import spatial

        return getattr(spatial, name)(text, answer)
    return check


# Checkers by name: f(completion text, true answer) -> score in [0, 1]; never raise.
CHECKERS: dict[str, Callable[[str, str], float]] = {
    "exact": checks.exact,  # the answer texts are equal strings
    "match": checks.match_answer,  # as trained: equal strings; math-verify only without an answer tag
    "math_verify": checks.paper_match,  # as the paper evaluates: equal strings, else math-verify equal
    "tolerance": checks.tolerance_score,  # the paper's numeric cosine ramp (5% to 20% relative error)
    "spatial_exact": _spatial("exact_score"),  # as trained: calls equal as sets, duplicate penalty
    "spatial_partial": _spatial("partial_score"),  # hierarchical partial credit
    "spatial_paper": _spatial("paper_score"),  # the same, parsed exactly as the released evaluation parses
}
_resolved: dict[str, Callable[[str, str], float]] = {}


def checker(name: str) -> Callable[[str, str], float]:
    """A checker by ``CHECKERS`` key or ``package.module:function`` (called as f(text, answer))."""
    if name in CHECKERS:
        return CHECKERS[name]
    if name not in _resolved:
        _resolved[name] = import_callable(name, f"checker {name!r}", ", ".join(CHECKERS))
    return _resolved[name]


def checker_names(task: ModuleType, options=None) -> tuple[str, dict[str, str]]:
    """(training reward, {scorer: checker}) of a task; a custom task reads them from its config section."""
    if hasattr(task, "checker_names"):
        return task.checker_names(options)
    return task.REWARD, task.SCORERS


def reward(task: str | None, text: str, answer: str, name: str | None = None) -> float:
    """The training reward of a row: its named checker, else its task's ``REWARD`` (counting's by default)."""
    return checker(name or get(task or "counting").REWARD)(text, answer)


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
