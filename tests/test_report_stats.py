"""The report's uncertainty figures: each accuracy's standard error and GRPO minus SFT paired over the same items."""

import pytest

from rrft_studio.eval import report


def _result(correct: dict) -> dict:
    return {"predictions": [{"id": i, "correct": c} for i, c in correct.items()]}


def test_standard_error_of_a_mean_score():
    assert report.standard_error([1.0] * 10) == 0.0
    assert report.standard_error([1.0]) == 0.0
    # p = 0.5 over 100 items: sqrt(0.25 * 100 / 99 / 100)
    assert report.standard_error([1.0, 0.0] * 50) == pytest.approx((0.25 / 99) ** 0.5)


def test_paired_difference_over_the_same_items():
    before = _result({"a": 1.0, "b": 0.0, "c": 0.0, "d": 1.0, "e": 0.0})
    after = _result({"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0, "e": 0.0, "new": 1.0})  # "new" has no pair
    delta = report.paired_difference(before, after)
    diffs = [0, 1, 1, -1, 0]
    assert delta["n"] == 5 and delta["gained"] == 2 and delta["lost"] == 1
    assert delta["diff"] == pytest.approx(0.2)
    assert delta["se"] == pytest.approx(report.standard_error(diffs), abs=1e-4)
    assert report.paired_difference(None, after) is None


def test_report_text_shows_the_errors():
    text = report.text({"run_dir": "r", "seconds": 61, "chance": 0.19, "accuracy_base": 0.0, "accuracy_sft": 0.75,
                        "accuracy_grpo": 0.81, "se_base": 0.0, "se_sft": 0.025, "se_grpo": 0.0227,
                        "grpo_minus_sft": {"diff": 0.063, "se": 0.024, "n": 300, "gained": 36, "lost": 17}})
    assert "accuracy, after SFT   75.0% ± 2.5" in text and "accuracy, after GRPO  81.0% ± 2.3" in text
    assert "GRPO - SFT           +6.3 points, paired SE 2.4, 2.6 SE (same 300 items: 36 gained, 17 lost)" in text
