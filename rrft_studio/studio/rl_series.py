"""What the monitor needs to read a GRPO run the way RL users read one: smoothing that keeps the raw series,
per-step reward bands from the logged rollouts, and the warning banner (workbench.banner) over a live run.

Pure functions over what the run directory holds (metrics.jsonl rows, samples.jsonl rows); no Gradio here.
"""

from __future__ import annotations

import math

from .. import workbench


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start (so the first points are
    not pulled towards 0); weight 0 returns the series unchanged, NaNs are skipped and kept."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight {weight} must be in [0, 1)")
    out, last, count = [], 0.0, 0
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(math.nan)
            continue
        count += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** count))
    return out


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def reward_bands(samples: list[dict], reward: str | None = None, quantiles=(0.1, 0.25, 0.5, 0.75, 0.9)) -> list[dict]:
    """Per logged GRPO step: the quantiles of one reward (None: the sum of every reward) over that step's
    rollouts, with the step's mean and the share of groups... rows {step, n, mean, q10, q25, q50, q75, q90}."""
    rows = []
    for record in samples:
        if record.get("stage", "grpo") != "grpo":
            continue
        values = []
        for c in record.get("completions", []):
            scores = c.get("rewards", {})
            value = sum(v for v in scores.values() if v is not None) if reward is None else scores.get(reward)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                values.append(float(value))
        if not values:
            continue
        values.sort()
        row = {"step": record["step"], "n": len(values), "mean": sum(values) / len(values)}
        row.update({f"q{round(100 * q)}": _quantile(values, q) for q in quantiles})
        rows.append(row)
    return rows


def histogram(samples: list[dict], step: int, reward: str | None = None) -> dict[float, int]:
    """{score: count} of one reward (None: the total) over one logged step's rollouts: GRPO rewards take few
    values (0, 1, 2 for format + accuracy), so exact values are the natural bins."""
    counts: dict[float, int] = {}
    for record in samples:
        if record.get("step") != step or record.get("stage", "grpo") != "grpo":
            continue
        for c in record.get("completions", []):
            scores = c.get("rewards", {})
            value = sum(v for v in scores.values() if v is not None) if reward is None else scores.get(reward)
            if value is not None:
                key = round(float(value), 4)
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def banner_markdown(metrics: list[dict], threshold: float = 0.9, steps: int = 10) -> str:
    """The monitor's banner over a run's metrics rows: empty when nothing is wrong."""
    marks = {"warning": "⚠", "info": "ℹ"}
    return "\n\n".join(f"**{marks[level]} {message}**" if level == "warning" else f"{marks[level]} {message}"
                     for level, message in workbench.banner(metrics, threshold, steps))
