"""A user's own visual-reasoning data: any records with image(s), a problem and an answer (a chain of thought
optional), trained and evaluated with the prompt templates and the checker its preset names.

Records come from JSON, JSONL, parquet or a folder saved by ``datasets`` (``data.train_file``,
``data.eval_files``); ``question`` / ``images`` / ``solution`` are read where ``problem`` / ``image`` /
``answer`` are missing, and images may be paths or embedded bytes. Without ``cot`` in the records, Stage 1
cannot be CoT-SFT: use ``method=ans_sft`` or ``method=rft_zero``. The dataset's optional sets (GeoQA,
Geometry3K, ScienceQA, ...) train and evaluate through this task.

    rrft-studio train presets/custom_example.yaml data.train_file=my.jsonl data.eval_files=[my_test.jsonl]
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import doc
from . import schema
from .family import TaskFamily

NAME = "custom"
BENCHMARKS = {"id": "ID test", "ood": "OOD test"}
PROMPT_TOKENS = 200
DATASET: dict[str, str] = {}  # no public layout: the files are given one by one


@dataclass(frozen=True)
class SceneSpec:
    """A custom task's settings: the `data.custom` section of a run's config."""
    prompt: str = doc("{problem} Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
                      "custom task: the CoT prompt ({problem} is replaced by the record's problem)")
    zero_shot_prompt: str = doc("{problem} Answer with the final answer only.",
                                "custom task: the zero-shot prompt (eval.style=bare)")
    ans_prompt: str = doc("{problem}", "custom task: the ANS-SFT prompt (sft.style=ans, eval.style=ans)")
    checker: str = doc("math_verify", "custom task: how an answer is checked, for the accuracy reward and the "
                                      "evaluation: exact, math_verify, tolerance, or package.module:function "
                                      "called as f(completion_text, answer) -> float in [0, 1]")


def check_options(spec) -> None:
    """One-line ValueErrors for templates without {problem}, other placeholders, or an unknown checker."""
    from . import CHECKERS

    for key in ("prompt", "zero_shot_prompt", "ans_prompt"):
        template = getattr(spec, key)
        try:
            template.format(problem="")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"data.custom.{key}: {template!r} is not a template with only {{problem}} in it "
                             f"({type(e).__name__}: {e}); write braces as {{{{ }}}}") from None
        if "{problem}" not in template:
            raise ValueError(f"data.custom.{key} must contain {{problem}}, where the record's problem goes")
    if spec.checker not in CHECKERS and ":" not in spec.checker:
        raise ValueError(f"data.custom.checker={spec.checker!r}: use one of {', '.join(CHECKERS)} or "
                         f"package.module:function")


def checker_names(options) -> tuple[str, dict[str, str]]:
    """The training reward and the evaluation scorers: the preset's checker; strict = exact strings."""
    name = options.checker if options is not None else SceneSpec().checker
    return name, {"paper": name, "strict": "exact"}


def prompt(problem: str, style: str = "cot", *, options=None, **context) -> str:
    """The preset's template for the style, with the problem filled in."""
    spec = options if options is not None else SceneSpec()
    templates = {"cot": spec.prompt, "bare": spec.zero_shot_prompt, "ans": spec.ans_prompt}
    if style not in templates:
        raise ValueError(f"custom.prompt: unknown style {style!r}; use one of {', '.join(schema.PROMPT_STYLES)}")
    return templates[style].format(problem=problem)


FAMILY = TaskFamily(
    name=NAME, about="custom (your own records)",
    section="your own records (data.task=custom): prompt templates and the answer checker",
    card="custom visual reasoning (your own records, with the prompts and the checker their preset names)",
    benchmarks=BENCHMARKS, spec=SceneSpec, check_options=check_options, prompt=prompt, reward=SceneSpec().checker,
    scorers={"paper": SceneSpec().checker, "strict": "exact"}, chosen_checkers=checker_names,
    prompt_tokens=PROMPT_TOKENS, dataset=DATASET)
