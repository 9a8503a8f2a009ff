"""What a task family declares, in one place: the contract between a family's module and the rest of the project.

A family is one module (or one package) that ends with `FAMILY = TaskFamily(...)`: its name, its evaluation splits
and the paper's benchmark names, its settings (whose documented fields become the config section data.<name>),
its prompts, the checkers of its training reward and of its evaluation, its files in the public dataset, and for
synthetic data its generator. The registry (tasks/__init__.py) finds the families; the config, the data, the
evaluation, the model card, the paper's table and the memory preflight read them from here and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Checker = Callable[[str, str], float]  # f(completion text, true answer) -> score in [0, 1]; never raises


def _same_spec(spec: Any, split: str) -> Any:
    return spec


@dataclass(frozen=True)
class TaskFamily:
    name: str  # data.task, and the config section data.<name>
    about: str  # a few words for data.task's doc, e.g. "visual counting"
    card: str  # what the model card says the model was trained on
    section: str  # the doc of its config section
    benchmarks: dict[str, str]  # evaluation split -> the paper's benchmark name (the first split is in-distribution)
    spec: type  # its settings, a frozen dataclass: the fields declared with options.doc are the config section
    check_options: Callable[[Any], None]  # one-line ValueErrors for settings (its config section) it cannot honour
    prompt: Callable[..., str]  # prompt(problem, style, *, answer, split, prompts, options) -> the user turn's text
    reward: str  # the checker (tasks.CHECKERS) of the accuracy reward, as trained
    scorers: dict[str, str]  # eval.scorer (paper, strict) -> the checker of the evaluation
    prompt_tokens: int  # text tokens of a prompt and its CoT target, for the memory preflight without the data
    dataset: dict[str, str] = field(default_factory=dict)  # split -> its file in the public dataset (data.root)
    generate: Callable[..., Path] | None = None  # synthetic data: generate(out_dir, n, seed, spec, split) -> JSON file
    split_spec: Callable[[Any, str], Any] = _same_spec  # the generator's settings for a split (OOD splits shift them)
    images_per_sample: int = 1  # images in each prompt
    checkers: dict[str, Checker] = field(default_factory=dict)  # checkers it adds to tasks.CHECKERS, by name
    paper: dict[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)  # (model, method) -> the paper's
    # accuracy (%) on its benchmarks, in their order
    chosen_checkers: Callable[[Any], tuple[str, dict[str, str]]] | None = None  # (options) -> (reward, scorers)
    # where its config section chooses them (custom); else `reward` and `scorers`
    position: int = 100  # where it comes in lists and tables (the paper's families: 1 to 3), then by name
    consistency: Callable[[str, str], bool | None] | None = None  # (reasoning, answer) -> does the reasoning's
    # last result give that answer (None: nothing to check); tasks/consistency.py
    claims_true: Callable[[str, str], bool | None] | None = None  # (reasoning, the record's own reasoning) -> are
    # the facts the reasoning states those of the scene (records written from a known scene); tasks/consistency.py

    def checker_names(self, options: Any = None) -> tuple[str, dict[str, str]]:
        """(the training reward's checker, {scorer: checker}) for its config section."""
        if self.chosen_checkers is not None:
            return self.chosen_checkers(options)
        return self.reward, self.scorers
