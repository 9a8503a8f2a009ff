"""Tests for the numeric tolerance reward (the paper's described structure-perception reward)."""

import math

import pytest

from rrft_studio.rewards import REWARDS, resolve, tolerance_reward
from rrft_studio.tasks.checks import tolerance_score

# Hand-computed: d = |pred - gt|, g = |gt|; 1 below 0.05 g, 0 above 0.20 g,
# 0.5 (1 + cos(pi (d - 0.05 g) / (0.15 g))) in between.
CASES = [
    # exact and within 5%
    ("70", "70", 1.0),
    ("72.1", "70", 1.0),                   # 3% off
    ("67.9", "70", 1.0),                   # 3% under
    ("73.5", "70", 1.0),                   # exactly 5%: the ramp starts at 1
    # the cosine ramp
    ("77", "70", 0.75),                    # 10%: (7 - 3.5) / 10.5 = 1/3, 0.5 (1 + cos(pi/3)) = 0.75
    ("78.75", "70", 0.5),                  # 12.5%: half way, cos(pi/2) = 0
    ("100", "110", 0.8274303669726426),    # d = 10, g = 110: (10 - 5.5) / 16.5
    ("84", "70", 0.0),                     # exactly 20%: cos(pi) = -1
    # beyond 20%
    ("87.5", "70", 0.0),                   # 25% off
    ("52.5", "70", 0.0),                   # 25% under
    ("1000", "70", 0.0),
    # truth 0: absolute scale 1
    ("0", "0", 1.0),
    ("0.0", "0", 1.0),
    ("-0", "0", 1.0),
    ("0.04", "0", 1.0),
    ("0.125", "0", 0.5),
    ("-0.125", "0", 0.5),
    ("0.3", "0", 0.0),
    ("0", "0.5", 0.0),                     # a zero prediction is 100% off a non-zero truth
    # negative numbers
    ("-10.4", "-10", 1.0),
    ("-11", "-10", 0.75),
    ("-12.5", "-10", 0.0),
    ("10", "-10", 0.0),
    # number forms
    ("70.0", "70", 1.0),
    ("+70", "70", 1.0),
    ("7e1", "70", 1.0),
    ("70°", "70", 1.0),
    (".5", "0.5", 1.0),
    # non-numeric: plain string equality of the answer texts, no math-verify
    ("70 degrees", "70", 0.0),
    ("x = 70", "70", 0.0),
    ("√2", "√2", 1.0),
    ("1.41", "√2", 0.0),
    ("abc", "abc", 1.0),
    ("abc", "abd", 0.0),
    ("nan", "5", 0.0),
    ("inf", "5", 0.0),
    ("1e999", "5", 0.0),
    ("", "5", 0.0),
    ("5", "", 0.0),
    ("", "", 0.0),
    # letters compare as strings
    ("A", "A", 1.0),
    ("B", "A", 0.0),
    ("a", "A", 0.0),
    ("A.", "A", 0.0),
    # answer tags, with spaces and new lines, on either side
    ("<think>70 + 7</think>\n<answer>\n 77 \n</answer>", "70", 0.75),
    ("<think>so C</think><answer> C </answer>", "C", 1.0),
    ("<answer>70</answer>", "<answer> 70 </answer>", 1.0),
    ("<think>I think it is 70</think>", "70", 0.0),  # no answer tag: the whole text is not a number
    ("<answer>70</answer><answer>10</answer>", "70", 1.0),  # the first answer tag counts
]


@pytest.mark.parametrize("pred, gt, expected", CASES)
def test_tolerance_score_table(pred, gt, expected):
    assert tolerance_score(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_ramp_is_continuous_and_monotone():
    gt = 40.0
    scores = [tolerance_score(str(gt + d), str(gt)) for d in [i * 0.05 for i in range(0, 201)]]
    assert all(a >= b for a, b in zip(scores, scores[1:]))
    assert scores[0] == 1.0 and scores[-1] == 0.0
    assert max(abs(a - b) for a, b in zip(scores, scores[1:])) < 0.05  # no jumps at 5% or 20%
    assert all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("pred, gt", [(None, "5"), ("5", None), (5, 5), (5.0, "5"), ("5", 5)])
def test_non_strings_never_raise(pred, gt):
    expected = 0.0 if None in (pred, gt) else 1.0
    assert tolerance_score(pred, gt) == expected


def test_reward_plain_and_conversational_completions():
    completions = [
        "<think>7 × 10</think><answer>70</answer>",
        [{"role": "assistant", "content": "<think>...</think>\n<answer>77</answer>"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "<think>..</think><answer>"},
                                           {"type": "image"}, {"type": "text", "text": "84</answer>"}]}],
        [{"role": "assistant", "content": "<think>pick</think><answer> B </answer>"}],
        "",
    ]
    answers = ["70", "70", "70", "B", "70"]
    got = tolerance_reward(completions, answer=answers, prompts=["p"] * 5, completion_ids=[[1]] * 5)
    assert got == pytest.approx([1.0, 0.75, 0.0, 1.0, 0.0])


def test_reward_requires_one_answer_per_completion():
    with pytest.raises(ValueError):
        tolerance_reward(["<answer>1</answer>"], answer=["1", "2"])


def test_registered_as_tolerance():
    assert REWARDS["tolerance"] is tolerance_reward
    assert resolve("tolerance") is tolerance_reward
    assert math.isclose(resolve("tolerance")(["<answer>3</answer>"], answer=["3"])[0], 1.0)
