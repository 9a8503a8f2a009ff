"""The evaluation scorers against hand-computed cases of the released evaluation (eval/cal_score_benchmarks_for_
open_source.py): number forms, letters, where the answer is read from; and that each task declares its checkers."""

import pytest

from rrft_studio import tasks
from rrft_studio.tasks import checks, counting, custom, spatial, structure

# (completion, truth, as the released evaluation scores it, as training rewards it)
NUMBER_FORMS = [
    ("<answer>7</answer>", "7", 1.0, 1.0),
    ("<answer>7.0</answer>", "7", 1.0, 0.0),
    ("<answer>07</answer>", "7", 1.0, 0.0),
    ("<answer>$7$</answer>", "7", 1.0, 0.0),
    ("<answer>\\boxed{7}</answer>", "7", 1.0, 0.0),
    ("<answer>7 objects</answer>", "7", 1.0, 0.0),
    ("<answer>x = 7</answer>", "7", 1.0, 0.0),
    ("<answer>70°</answer>", "70", 1.0, 0.0),
    ("<answer>70 degrees</answer>", "70", 1.0, 0.0),
    ("<answer>5/2</answer>", "\\frac{5}{2}", 1.0, 0.0),
    ("<answer>2.5</answer>", "5/2", 1.0, 0.0),
    ("<answer>12\\sqrt{3}</answer>", "12\\sqrt{3}", 1.0, 1.0),
    ("<answer>20.78</answer>", "12\\sqrt{3}", 0.0, 0.0),  # a rounded value is not equal
    ("<answer>7.5</answer>", "7", 0.0, 0.0),
    ("<answer>8</answer>", "7", 0.0, 0.0),
    ("<think>7 cubes</think>\n<answer>\n7\n</answer>", "7", 1.0, 1.0),  # the SFT layout
    ("<answer>7</answer>\n<answer>8</answer>", "7", 1.0, 1.0),  # the first answer block counts
    ("the answer is 7", "7", 1.0, 1.0),  # no tag: the whole text (math-verify finds the 7)
    ("<answer></answer>", "7", 0.0, 0.0),
    ("", "7", 0.0, 0.0),
]
LETTERS = [
    ("<answer>B</answer>", "B", 1.0, 1.0),
    ("<answer> B </answer>", "B", 1.0, 1.0),
    ("<answer>C</answer>", "B", 0.0, 0.0),
    ("<answer>(B)</answer>", "B", 0.0, 0.0),  # the released scorer has no letter extraction
    ("<answer>B. 50°</answer>", "B", 0.0, 0.0),
    ("<answer>b</answer>", "B", 0.0, 0.0),
]


@pytest.mark.parametrize("text, truth, paper, strict", NUMBER_FORMS + LETTERS)
def test_counting_and_structure_scorers(text, truth, paper, strict):
    for task in (counting, structure):
        assert tasks.checker(task.SCORERS["paper"])(text, truth) == paper
        assert tasks.checker(task.SCORERS["strict"])(text, truth) == strict
        assert tasks.checker(task.REWARD)(text, truth) == strict  # training rewards as before


def test_scorers_never_raise_on_odd_inputs():
    for text in ("<answer>\\frac{</answer>", "<answer>" + "9" * 5000 + "</answer>", "\x00", "<answer>nan</answer>"):
        for name in ("math_verify", "match", "exact", "tolerance"):
            assert 0.0 <= tasks.checker(name)(text, "7") <= 1.0
    assert checks.paper_match("<answer>7</answer>", 7) == 1.0  # a number in the JSON is read as text


def test_every_task_declares_its_checkers_and_dataset():
    for name in tasks.TASKS:
        task = tasks.get(name)
        assert task.name == name and task.benchmarks and callable(task.check_options) and callable(task.prompt)
        task.check_options(task.spec())  # its own defaults are settings it can honour
        reward, scorers = task.checker_names(None)
        assert set(scorers) == {"paper", "strict"}
        for checker in (reward, *scorers.values()):
            assert callable(tasks.checker(checker))
    for name in tasks.SYNTHETIC:
        task = tasks.get(name)
        assert set(task.dataset) == {"train", *task.benchmarks}
        assert callable(task.generate) and callable(task.split_spec)


def test_custom_checker_from_a_module():
    name = "tests.data.rewards:contains_answer"
    assert tasks.checker(name)("the answer is 42", "42") == 1.0
    assert custom.checker_names(custom.SceneSpec(checker=name)) == (name, {"paper": name, "strict": "exact"})
    with pytest.raises(ValueError, match="has no attribute"):
        tasks.checker("tests.data.rewards:nope")


def test_accuracy_reward_asks_the_row_checker_then_the_task():
    from rrft_studio.rewards import accuracy_reward

    spatial_gt = "change_color(2, red), change_size(0, small)"
    assert accuracy_reward(["<answer>change_color(2, red)</answer>"], [spatial_gt], task=["spatial"]) == [0.5]
    assert accuracy_reward(["<answer>7.0</answer>"], ["7"], task=["custom"], checker=["math_verify"]) == [1.0]
    assert accuracy_reward(["<answer>7.0</answer>"], ["7"]) == [0.0]  # counting's as-trained match
    assert spatial.paper_score(spatial_gt, spatial_gt) == 1.0
