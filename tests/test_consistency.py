"""Does the reasoning lead to the answer? Each family's check on texts of the kinds its models write, the reward
that pays for it, and where a run reports it."""

import pytest

from rrft_studio import rewards, tasks
from rrft_studio.answers import compose
from rrft_studio.tasks import consistency


@pytest.mark.parametrize("reasoning, answer, expected", [
    # the demo's own completions after GRPO: a fixed preamble whose sum does not add up, a sum that is not the answer
    ("I count the objects by shape: 1 cube, 1 sphere, 1 cylinder. 1 + 1 + 1 = 5.", "5", False),
    ("There are 5 objects. Adding 3: 5 + 3 = 9.", "7", False),
    ("I count the objects by shape: 3 cubes, 1 sphere, 1 cylinder. 3 + 1 + 1 = 5.", "5", True),
    ("There are 2 objects. The brown spheres: 1. 2 - 1 = 1.", "1", True),
    ("There are 10 objects. The red cubes: 3. 10 - 3 = 7.", "7", True),
    ("I count the objects by shape: 4 cubes. Total: 4.", "4", True),
    ("I look at the picture.", "4", None),  # no number: nothing to check
])
def test_counting_checks_the_arithmetic_and_the_last_result(reasoning, answer, expected):
    assert consistency.arithmetic(reasoning, answer) is expected


@pytest.mark.parametrize("reasoning, answer, expected", [
    ("The two angles sum to 180, so x = 180 - 40 = 140.", "140", True),
    ("The area is 3.14 * 2 * 2 = 12.57 cm^2.", "12.56", True),  # within 1%
    ("The perimeter is 4 * 5 = 20.", "25", False),
    ("Comparing the options, A is too small, so the answer is C.", "C", True),
    ("Comparing the options, the answer is C.", "(B)", False),
])
def test_structure_checks_the_last_number_or_choice(reasoning, answer, expected):
    assert consistency.last_result(reasoning, answer) is expected


def test_spatial_checks_the_calls_the_reasoning_ends_on():
    reasoning = ("Object 1 (small red rubber cube): its color changed from red to blue, change_color(1, blue). "
                 "The transformation is change_color(1, blue), change_size(2, large).")
    assert consistency.calls(reasoning, "change_size(2, large), change_color(1, blue)") is True
    assert consistency.calls(reasoning, "change_color(1, blue)") is False
    assert consistency.calls("Nothing moved.", "change_color(1, blue)") is None


def test_a_completion_is_checked_by_its_family_and_only_with_reasoning_and_an_answer():
    assert tasks.consistent("counting", compose("There are 5 objects. Adding 3: 5 + 3 = 8.", "8")) is True
    assert tasks.consistent("counting", compose("There are 5 objects. Adding 3: 5 + 3 = 8.", "9")) is False
    assert tasks.consistent("counting", "<answer>8</answer>") is None  # no reasoning
    assert tasks.consistent("counting", "<think>5 + 3 = 8</think>") is None  # no answer
    assert tasks.consistent("custom", compose("1 + 1 = 2", "2")) is None  # a family without the check


def test_the_consistency_reward_pays_reasoning_that_leads_to_the_answer_right_or_wrong():
    texts = [compose("5 + 3 = 8.", "8"), compose("5 + 3 = 8.", "9"), compose("5 + 3 = 9.", "9"), "8"]
    reward = rewards.resolve("consistency")
    assert reward([[{"role": "assistant", "content": t}] for t in texts], task=["counting"] * 4) == [1.0, 0.0, 0.0, 0.0]
    assert reward(texts) == [1.0, 0.0, 0.0, 0.0]  # no task column: counting's check


SCENE = "I count the objects by shape: 1 cube, 1 sphere, 3 cylinders. 1 + 1 + 3 = 5."  # the record's own reasoning


@pytest.mark.parametrize("reasoning, reference, expected", [
    # the example: consistent arithmetic, right total, false counts
    ("I count the objects by shape: 3 cubes, 1 sphere, 1 cylinder. 3 + 1 + 1 = 5.", SCENE, False),
    (SCENE, SCENE, True),
    ("I count the objects by shape: 1 cube, 1 sphere, 3 cylinders, 1 bus. 1 + 1 + 3 + 1 = 6.", SCENE, False),
    ("There are 4 objects. The rubber cubes: 2. 4 - 2 = 2.", "There are 4 objects. The rubber cubes: 1. 4 - 1 = 3.", False),
    ("There are 4 objects. The rubber cubes: 1. 4 - 1 = 3.", "There are 4 objects. The rubber cubes: 1. 4 - 1 = 3.", True),
    ("There are 6 objects. Adding 3: 6 + 3 = 9.", "There is 1 object. Adding 3: 1 + 3 = 4.", False),
    ("There is 1 object. Adding 3: 1 + 3 = 4.", "There is 1 object. Adding 3: 1 + 3 = 4.", True),
    ("I look at the picture.", SCENE, None),  # no count stated: nothing to check
])
def test_counting_checks_the_stated_counts_against_the_scene(reasoning, reference, expected):
    assert consistency.claims_true(reasoning, reference) is expected


def test_claims_are_checked_only_with_a_reference_and_reasoning():
    text = compose("I count the objects by shape: 3 cubes, 1 sphere, 1 cylinder. 3 + 1 + 1 = 5.", "5")
    assert tasks.claims_true("counting", text, SCENE) is False
    assert tasks.claims_true("counting", text, None) is None  # a record that does not state its scene
    assert tasks.claims_true("counting", "<answer>5</answer>", SCENE) is None
    assert tasks.claims_true("structure", text, SCENE) is None  # a family without the check


def test_eval_reports_right_answers_reasoned_from_true_counts():
    from rrft_studio.eval import evaluate

    rows = [{"correct": 1, "consistent": True, "claims_true": True}, {"correct": 1, "consistent": True, "claims_true": False},
            {"correct": 1, "consistent": False, "claims_true": True}, {"correct": 0, "consistent": True, "claims_true": True},
            {"correct": 1, "consistent": None, "claims_true": None}]
    summary = evaluate.consistency(rows)
    assert summary["consistency_right"] == 2 / 4 and summary["grounded_right"] == 1 / 3
    assert evaluate.consistency([{"correct": 1, "consistent": True}])["grounded_right"] is None
