"""The Reason-RFT paper's results table (accuracy %, pass@1), and our results laid out the same way.

Columns are the benchmarks of the task families in order: each family maps its evaluation splits onto the paper's
benchmarks and declares the paper's results on them (tasks/: TaskFamily.benchmarks and .paper). Where a run's
model and method match a row of the paper, that row is printed beside ours.
"""

from __future__ import annotations

import statistics

from .. import tasks

COLUMNS = tuple(benchmark for family in tasks.FAMILIES.values() for benchmark in family.benchmarks.values())


def _results() -> dict[tuple[str, str], dict[str, float]]:
    """(model, method) -> {benchmark: the paper's accuracy}, from every family's share of the table."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for family in tasks.FAMILIES.values():
        for key, values in family.paper.items():
            out.setdefault(key, {}).update(zip(family.benchmarks.values(), values))
    return out


RESULTS = _results()
METHOD_NAMES = {"zero_shot": "zero-shot", "ans_sft": "ANS-SFT", "cot_sft": "CoT-SFT",
                "rft_zero": "Reason-RFT-Zero", "rft": "Reason-RFT"}


def paper_model(name: str) -> str | None:
    """'Qwen/Qwen2-VL-2B-Instruct' -> 'Qwen2-VL-2B' (the paper's models only)."""
    lowered = name.lower()
    for size in ("2b", "7b"):
        if f"qwen2-vl-{size}" in lowered:
            return f"Qwen2-VL-{size.upper()}"
    return None


class Spread(list):
    """Accuracies of several runs (a sweep's), shown as mean ± standard deviation."""

    def __format__(self, spec: str) -> str:
        sd = statistics.stdev(self) if len(self) > 1 else 0.0
        return f"{100 * statistics.fmean(self):.2f} ± {100 * sd:.2f}"


def _cell(value) -> str:
    return format(value) if isinstance(value, Spread) else f"{100 * value:.2f}"


def table(rows: list[tuple[str, dict]], matches: list[tuple[str, str]] = ()) -> str:
    """Markdown in the paper's layout. rows: (label, {benchmark: accuracy in [0, 1], or a Spread of them});
    matches: the (model, method) pairs whose paper rows go beside ours."""
    used = [c for c in COLUMNS if any(c in values for _, values in rows)] or list(COLUMNS)
    lines = ["| model / method | " + " | ".join(used) + " |", "|---" * (len(used) + 1) + "|"]
    for label, values in rows:
        cells = [_cell(values[c]) if c in values else "" for c in used]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for model, method in dict.fromkeys(matches):
        if (model, method) in RESULTS:
            paper = RESULTS[(model, method)]
            label = f"paper: {model} {METHOD_NAMES[method]}"
            lines.append(f"| {label} | " + " | ".join(f"{paper[c]:.2f}" if c in paper else "" for c in used) + " |")
    return "\n".join(lines)
