"""The Reason-RFT paper's results table (accuracy %, pass@1), and our results laid out the same way.

Columns are the paper's benchmarks; each task's evaluation splits map onto them (tasks/*.BENCHMARKS).
Where a run's model and method match a row of the paper, that row is printed beside ours.
"""

from __future__ import annotations

import statistics

COLUMNS = ("CLEVR-Math", "Super-CLEVR", "GeoMath", "Geometry3K", "TRANCE", "TRANCE-L", "TRANCE-R")

RESULTS = {
    ("Qwen2-VL-2B", "zero_shot"): (82.40, 32.00, 25.86, 20.63, 3.78, 4.60, 4.67),
    ("Qwen2-VL-2B", "ans_sft"): (96.20, 39.20, 51.34, 22.50, 77.39, 49.24, 50.33),
    ("Qwen2-VL-2B", "cot_sft"): (85.50, 46.50, 43.05, 25.25, 64.37, 43.19, 42.86),
    ("Qwen2-VL-2B", "rft_zero"): (98.40, 44.80, 47.68, 32.50, 42.13, 34.07, 33.41),
    ("Qwen2-VL-2B", "rft"): (96.80, 51.20, 49.03, 33.13, 74.61, 64.05, 64.08),
    ("Qwen2-VL-7B", "zero_shot"): (98.60, 42.10, 43.30, 43.88, 13.53, 12.72, 12.78),
    ("Qwen2-VL-7B", "rft_zero"): (99.40, 53.00, 55.00, 54.75, 67.67, 57.20, 56.15),
    ("Qwen2-VL-7B", "rft"): (95.60, 51.00, 59.27, 49.25, 79.97, 59.36, 58.61),
}
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
            paper = dict(zip(COLUMNS, RESULTS[(model, method)]))
            label = f"paper: {model} {METHOD_NAMES[method]}"
            lines.append(f"| {label} | " + " | ".join(f"{paper[c]:.2f}" for c in used) + " |")
    return "\n".join(lines)
