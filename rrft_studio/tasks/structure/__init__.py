"""Structure perception: GeoMath / Geometry3K-style geometry diagrams, questions, prompts and SFT targets.

Reason-RFT's structure-perception family trains on plane-geometry problems (GeoMath in distribution,
Geometry3K out of distribution): a diagram plus a question about an angle, a length, an area or a
perimeter, answered with a number or with the letter of a choice. Nothing can be downloaded on this
project's machines, so this module offers two things:

* ``generate``: a seeded, deterministic synthetic generator that writes records in exactly the
  Reason-RFT JSON schema (``id``, ``image``, ``problem``, ``answer``, ``cot``) plus PNG diagrams. The
  figures come from ``geometry`` (thirteen kinds, ``KINDS``, each built from coordinates that realise
  the given measures exactly, the answer computed from the construction) and are drawn by
  ``draw``. ``make_question`` turns a figure into the record's problem, answer and chain of
  thought: a share ``choice_fraction`` are multiple choice (answer: the letter, the wrong choices drawn
  from the kind's plausible mistakes); the rest are numeric (an integer, or a decimal rounded as the
  question says).
  Two styles form the ID / OOD split. ``style="id"`` (GeoMath-like): thin black lines on white, upright
  figures, GeoQA phrasing that states the givens in words ("As shown in the figure, in triangle ABC,
  angle A = 50 deg ... Find angle C."), angle-chasing heavy. ``style="ood"`` (Geometry3K-like): thick
  lines, pastel fills, bold labels with the values in dark red, dots on points, figures at any rotation
  or mirrored, the unknown marked ``x`` on the figure and asked as "Find x." (so the givens must be
  read from the diagram), rounding to the nearest tenth or hundredth, and a mix weighted towards
  lengths, trigonometry and areas. It departs from the real data on purpose: the diagrams are clean and
  uncluttered, the kinds are few, and the chain of thought is a short template built from the
  construction (the rule, the formula and the numbers) rather than a GPT-4o distillation.
* ``prompt``: the released code's instruction sentences, picked as it picks them: by the ANSWER being one
  of A-D (choice) or not (non-choice), for training and evaluation alike; Geometry3K's evaluation asks for
  "(number or choice)" instead (prompt set ``reason_rft``). Checkers: ``REWARD`` and ``SCORERS``.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import random
import re

from .. import consistency, schema
from ..family import TaskFamily
from .draw import render
from .geometry import Figure, SceneSpec, check_spec, fmt, is_exact, sample_figure


NAME = "structure"
BENCHMARKS = {"id": "GeoMath", "ood": "Geometry3K"}
# The released code's prompts, word for word. GeoMath's CoT prompts (choice and non-choice, chosen by the
# answer) serve training and the ID evaluation; its Geometry3K evaluation appends GENERIC_INSTRUCTION; zero-shot
# puts ZERO_SHOT before the question; ANS-SFT sends the bare question.
CHOICE_INSTRUCTION = (
    "Please select the correct answer by writing the letter (A, B, C or D) that precedes your choice.\n"
    "Output the thinking process in <think> </think> and final answer (chosen letter) in <answer> </answer> tags."
)
NUMBER_INSTRUCTION = (
    "Output the thinking process in <think> </think> and final answer (float number or int number) in "
    "<answer> </answer> tags."
)
GENERIC_INSTRUCTION = (
    "Output the thinking process in <think> </think> and final answer (number or choice) in <answer> </answer> tags."
)
ZERO_SHOT = (
    "Please answer the question with only numbers (either integer or float, such as 1, 2, 5.2, etc.) or options "
    "(such as A, B, C, or D). If it is an option, please provide your answer as a single letter (A, B, C, or D). "
    "For example, if the answer is A, just respond with A. Do not include any explanations or additional text."
)
REWARD = "match"
SCORERS = {"paper": "math_verify", "strict": "match"}
PROMPT_TOKENS = 150
DATASET = {"train": "A2-Structure-Perception-train-4k5-cot.json",
           "id": "Structure-Perception-id-test-820.json", "ood": "Structure-Perception-ood-test-800.json"}
LETTERS = "ABCD"

# Choice lists: "A. 70 B. 110 ..." (the ID layout) or one per line (the OOD layout); also "A:" and "(A)".
_CHOICES = re.compile(r"(?:^|\s)\(?A[.:)]\s*\S.*?(?:^|\s)\(?B[.:)]\s*\S.*?(?:^|\s)\(?C[.:)]\s*\S.*?"
                      r"(?:^|\s)\(?D[.:)]\s*\S", re.DOTALL)
_CHOICE_ITEM = re.compile(r"(?:^|\s)([ABCD])\. (\S+)")


def split_spec(spec: SceneSpec, split: str) -> SceneSpec:
    """The generator settings of a split: OOD is the Geometry3K-like drawing and phrasing style."""
    return dataclasses.replace(spec, style="ood") if split == "ood" else spec


# ----------------------------------------------------------------------------------------------
# Questions, answers and chains of thought
# ----------------------------------------------------------------------------------------------

def _distractors(rng: random.Random, fig: Figure, answer: str) -> list[str]:
    """Three distinct wrong values: the kind's plausible mistakes first, then nearby numbers."""
    v = fig.value
    if fig.unit == "°":
        fallback = [180 - v, 90 - v, v / 2, 2 * v, v + 10, v - 10, v + 20, v - 20, v + 5, v + 30]
    else:
        fallback = [2 * v, v / 2, v + 1, v - 1, 1.5 * v, v + 2, v + 3, v * 0.75, v + 5, v * 3]
    plausible = list(fig.distractors)
    rng.shuffle(plausible)
    out: list[str] = []
    for x in plausible + fallback:
        if not math.isfinite(x) or x <= 0 or (fig.unit == "°" and x >= 180):
            continue
        text = fmt(x, fig.decimals)
        if text != answer and text not in out and text != "0":
            out.append(text)
        if len(out) == 3:
            break
    return out


def make_question(rng: random.Random, fig: Figure, spec: SceneSpec = SceneSpec()):
    """Return (problem, answer, cot): multiple choice with probability ``spec.choice_fraction``."""
    value = fmt(fig.value, fig.decimals)
    # OOD questions ask for x, a plain number; ID ones for a named angle, in degrees.
    unit = "" if spec.style == "ood" else fig.unit
    reasoning = fig.cot
    if not is_exact(fig.value, fig.decimals) and reasoning.endswith(" = "):
        reasoning = reasoning[:-3] + " ≈ "  # the rounded answer is an approximation
    cot = f"{reasoning}{value}{unit}."
    if rng.random() >= spec.choice_fraction:
        return fig.question, value, cot
    options = _distractors(rng, fig, value)
    index = rng.randrange(4)
    options.insert(index, value)
    letter = LETTERS[index]
    items = [f"{L}. {o}{unit}" for L, o in zip(LETTERS, options)]
    if spec.style == "ood":
        problem = fig.question + "\n" + "\n".join(items)
    else:
        problem = fig.question + "\nChoices: " + " ".join(items)
    return problem, letter, f"{cot} This matches choice {letter}."


def choices_of(problem: str) -> dict[str, str]:
    """The choice texts of a generated problem by letter (empty when it has none)."""
    if not _CHOICES.search(problem):
        return {}
    start = problem.find("\n")
    return {m.group(1): m.group(2) for m in _CHOICE_ITEM.finditer(problem[start:])} if start >= 0 else {}


# ----------------------------------------------------------------------------------------------
# Dataset writing and loading
# ----------------------------------------------------------------------------------------------

def generate(out_dir, n: int, seed: int, spec: SceneSpec = SceneSpec(), split: str = "train") -> pathlib.Path:
    """Write n records to out_dir/{split}.json and images to out_dir/images/{split}/.

    Deterministic: the same (n, seed, spec, split) gives byte-identical JSON and PNGs. Records are
    drawn from one sequential stream, so the first m records of a size-n run equal a size-m run.
    """
    check_spec(spec)

    def sample(rng: random.Random):
        fig = sample_figure(rng, spec)
        problem, answer, cot = make_question(rng, fig, spec)
        return render(fig, spec), problem, answer, cot

    return schema.write(out_dir, n, seed, split, NAME, sample)


# ----------------------------------------------------------------------------------------------
# Prompt, target text and answer check
# ----------------------------------------------------------------------------------------------

def is_choice(problem: str, answer=None) -> bool:
    """Whether a problem is multiple choice: by its answer when known (a letter A-D, the released code's
    rule), else by its text (choices "A. .. B. .. C. .. D. .." for a question typed in the studio)."""
    if answer is not None:
        return str(answer).strip() in tuple(LETTERS)
    return bool(_CHOICES.search(problem))


def prompt(problem: str, style: str = "cot", *, answer=None, split: str = "train", prompts: str = "reason_rft",
           **context) -> str:
    """The user-turn text: cot (think/answer instruction), bare (zero-shot) or ans (the question alone).

    cot: the choice or the non-choice instruction by ``is_choice``; with ``prompts="reason_rft"`` the OOD
    split (Geometry3K) gets the released evaluation's generic "(number or choice)" instruction instead.
    """
    if style == "cot":
        if split == "ood" and prompts == "reason_rft":
            return f"{problem} {GENERIC_INSTRUCTION}"
        return f"{problem} {CHOICE_INSTRUCTION if is_choice(problem, answer) else NUMBER_INSTRUCTION}"
    if style == "bare":
        return f"{ZERO_SHOT} {problem}"
    if style == "ans":
        return problem
    raise ValueError(f"structure.prompt: unknown style {style!r}; use one of {', '.join(schema.PROMPT_STYLES)}")


def check_options(spec) -> None:
    """One-line ValueErrors for settings the generator cannot honour (`spec`: SceneSpec or its config section)."""
    if not 0.0 <= spec.choice_fraction <= 1.0:
        raise ValueError(f"data.structure.choice_fraction={spec.choice_fraction} is a share: use a value in [0, 1]")
    if spec.image_size < 64:
        raise ValueError(f"data.structure.image_size={spec.image_size} is too small for readable labels: use >= 64")


# The paper's accuracy (%) on BENCHMARKS, by (model, method): its share of the paper's results table.
PAPER = {
    ("Qwen2-VL-2B", "zero_shot"): (25.86, 20.63),
    ("Qwen2-VL-2B", "ans_sft"): (51.34, 22.50),
    ("Qwen2-VL-2B", "cot_sft"): (43.05, 25.25),
    ("Qwen2-VL-2B", "rft_zero"): (47.68, 32.50),
    ("Qwen2-VL-2B", "rft"): (49.03, 33.13),
    ("Qwen2-VL-7B", "zero_shot"): (43.30, 43.88),
    ("Qwen2-VL-7B", "rft_zero"): (55.00, 54.75),
    ("Qwen2-VL-7B", "rft"): (59.27, 49.25),
}


FAMILY = TaskFamily(
    name=NAME, position=2, about="structure perception (geometry)", section="synthetic geometry problems (GeoMath-like)",
    card="structure perception (GeoMath-like geometry diagrams, multiple choice)", benchmarks=BENCHMARKS, spec=SceneSpec,
    check_options=check_options, prompt=prompt, reward=REWARD, scorers=SCORERS, prompt_tokens=PROMPT_TOKENS,
    dataset=DATASET, generate=generate, split_spec=split_spec, paper=PAPER,
    consistency=consistency.last_result)
