"""Pure tests of the format and accuracy rewards and of reward name resolution (hand-computed cases)."""

import math
import re
import threading
import time

import pytest

from rrft_studio import rewards
from rrft_studio.answers import FORMAT_PATTERN, answer_text, completion_text, has_answer_tag
from rrft_studio.rewards import REWARDS, accuracy_reward, format_reward, resolve
from rrft_studio.tasks import checks
from rrft_studio.tasks.checks import match_answer

FORMAT_CASES = [
    ("<think>\ncount the cubes\n</think>\n<answer>\n3\n</answer>", 1.0),  # the CoT-SFT target template
    ("<think>a</think><answer>3</answer>", 1.0),
    ("  <think>a</think> \n <answer>3</answer>\n", 1.0),  # outer whitespace is stripped
    ("<think></think><answer></answer>", 1.0),  # empty bodies still match .*?
    ("<answer>3</answer>", 0.0),  # missing think
    ("<think>a</think>", 0.0),  # missing answer
    ("<think>a</think>x<answer>3</answer>", 0.0),  # only whitespace between the blocks
    ("Sure! <think>a</think><answer>3</answer>", 0.0),  # text before <think>
    ("<think>a</think><answer>3</answer> done", 0.0),  # text after </answer>
    ("<think>a</think><answer>3</answer><|im_end|>", 1.0),  # trailing special token
    ("<think>a</think><answer>3</answer>\n<|im_end|>\n<|endoftext|>", 1.0),
    ("<think>a</think><answer>3</answer><|im_end|>x", 0.0),
    ("<think>a</think><answer>1</answer><answer>2</answer>", 1.0),  # second block lies inside .*?
    ("<think>a</think><answer><answer>3</answer></answer>", 1.0),  # nested: still one frame
    ("<think>a</think><answer>1</answer><think>b</think><answer>2</answer>", 1.0),
    ("<think>a</think><answer>3", 0.0),  # truncated
    ("<THINK>a</THINK><ANSWER>3</ANSWER>", 0.0),  # tags are case-sensitive
    ("", 0.0),
    ("   ", 0.0),
]


@pytest.mark.parametrize("text, expected", FORMAT_CASES)
def test_format_reward(text, expected):
    assert format_reward([text]) == [expected]


@pytest.mark.parametrize("text, expected", [
    ("<think>\ncount\n</think>\n<answer>\n3\n</answer><|im_end|>", 1.0),
    ("<think>a</think><answer>1</answer><answer>2</answer>", 0.0),  # the paper's format pays for these
    ("<think>a</think><answer>\n<answer>\n<answer\n</answer>", 0.0),  # a hack seen in a short-SFT run
    ("<think>a</think><answer>1</answer><think>b</think><answer>2</answer>", 0.0),
    ("<think><think>a</think><answer>3</answer>", 0.0),
    ("<think>a</think>x<answer>3</answer>", 0.0),
    ("", 0.0),
])
def test_format_strict_reward(text, expected):
    assert rewards.format_strict_reward([text, [{"role": "assistant", "content": text}]]) == [expected] * 2
    assert expected <= format_reward([text])[0]


@pytest.mark.parametrize("text, expected", FORMAT_CASES)
def test_format_check_equals_the_papers_regex(text, expected):
    stripped = re.sub(r"<\|[A-Za-z0-9_]+\|>", "", text).strip()
    assert bool(re.fullmatch(FORMAT_PATTERN, stripped, re.DOTALL)) == bool(expected)


@pytest.mark.parametrize(
    "text",
    [
        "<think>" + "</think><answer></answer>x" * 8000,  # quadratic for the plain regex (~6 s)
        "<think>" + "a" * 200_000,
        "<think>" + "</think>" * 20_000 + "<answer>" * 5_000,
        "<think>" + " " * 200_000 + "</think>" + " " * 200_000 + "<answer>3</answer>",
    ],
)
def test_format_reward_is_fast_on_huge_input(text):
    start = time.perf_counter()
    format_reward([text])
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    "text, expected_answer, expected_tag",
    [
        ("<answer> 3 </answer>", "3", True),
        ("x<answer>\n2\n3\n</answer>y", "2\n3", True),
        ("<answer>1</answer><answer>2</answer>", "1", True),  # the first tag wins
        ("<answer><answer>3</answer></answer>", "<answer>3", True),  # lazy match, as the regex
        ("<answer>3", "<answer>3", False),  # no closing tag: whole string
        ("</answer><answer>3</answer>", "3", True),
        ("  the answer is 3 ", "the answer is 3", False),
        ("", "", False),
    ],
)
def test_answer_text_and_has_answer_tag(text, expected_answer, expected_tag):
    assert answer_text(text) == expected_answer
    assert has_answer_tag(text) is expected_tag


ACCURACY_CASES = [
    ("3", "3", 1.0),
    ("<answer> 3 </answer>", "3", 1.0),  # spaces stripped
    ("<think>two plus one</think>\n<answer>\n3\n</answer>", "3", 1.0),
    ("<answer>'3'</answer>", "3", 0.0),  # quotes are kept: string compare fails, tag blocks fallback
    ("<answer>'3'</answer>", "'3'", 1.0),
    ("'3'", "3", 0.0),  # no tag: math-verify cannot parse '3'
    ("<answer>\nleft\nright\n</answer>", "left\nright", 1.0),  # multi-line content
    ("<answer>left right</answer>", "left\nright", 0.0),
    ("<answer>03</answer>", "3", 0.0),  # tag present: strings only, no math-verify
    ("<answer>3.0</answer>", "3", 0.0),
    ("03", "3", 1.0),  # no tag: math-verify says 03 == 3
    ("the answer is 3", "3", 1.0),  # no tag: math-verify fallback
    ("the answer is 4", "3", 0.0),
    ("\\frac{1}{2}", "0.5", 1.0),  # math-verify: 1/2 == 0.5
    ("1/2", "0.5", 1.0),
    ("<think>a</think><answer>3", "3", 0.0),  # truncated = no tag; math-verify parses "...>3" to nothing
    ("<think>a</think><answer> 3", "3", 1.0),  # ...but finds a separated 3
    ("", "3", 0.0),  # empty completion
    ("<answer></answer>", "", 0.0),  # an empty answer never matches
    ("", "", 0.0),
    ("<answer>3</answer>", "<answer>3</answer>", 1.0),  # solution compared by its tag text
    ("3", "<answer> 3 </answer>", 1.0),
    ("<answer>1</answer><answer>3</answer>", "3", 0.0),  # the first tag is the answer
    ("<answer>B</answer>", "B", 1.0),
    ("<answer>b</answer>", "B", 0.0),
    ("<answer>3</answer>", 3, 1.0),  # a numeric dataset column is compared as its string
    (None, "3", 0.0),
]


@pytest.mark.parametrize("text, answer, expected", ACCURACY_CASES)
def test_match_answer(text, answer, expected):
    assert match_answer(text, answer) == expected


def test_accuracy_reward_batch_matches_match_answer():
    texts = [t for t, _, _ in ACCURACY_CASES if isinstance(t, str)]
    answers = [a for t, a, _ in ACCURACY_CASES if isinstance(t, str)]
    expected = [e for t, _, e in ACCURACY_CASES if isinstance(t, str)]
    assert accuracy_reward(texts, answer=answers) == expected


def _part(text):
    return {"type": "text", "text": text}


TRL_KWARGS = dict(
    prompts=[[{"role": "user", "content": "How many?"}]] * 2,
    completion_ids=[[1, 2], [3]],
    trainer_state=object(),
    log_extra=lambda *a, **k: None,
    log_metric=lambda *a, **k: None,
    problem=["How many?", "How many?"],
    image=["a.png", "b.png"],
)


@pytest.mark.parametrize(
    "completions, answers, fmt, acc",
    [
        (["<think>a</think><answer>3</answer>", "4"], ["3", "3"], [1.0, 0.0], [1.0, 0.0]),
        (
            [
                [{"role": "assistant", "content": "<think>a</think><answer>3</answer>"}],
                [{"role": "assistant", "content": "the answer is 3"}],
            ],
            ["3", "3"],
            [1.0, 0.0],
            [1.0, 1.0],
        ),
        (
            [
                [{"role": "assistant", "content": [_part("<think>a</think><answer>"), _part("3</answer>")]}],
                [{"role": "assistant", "content": [{"type": "image"}, _part("<answer>2</answer>")]}],
            ],
            ["3", "3"],
            [1.0, 0.0],
            [1.0, 0.0],
        ),
    ],
)
def test_rewards_take_trl_inputs(completions, answers, fmt, acc):
    assert format_reward(completions, answer=answers, **TRL_KWARGS) == fmt
    assert accuracy_reward(completions, answer=answers, **TRL_KWARGS) == acc
    assert accuracy_reward(completions=completions, answer=answers) == acc  # TRL passes keywords


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "hi"}], "hi"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "ab"),
        ([{"role": "assistant", "content": None}], ""),
        ([], ""),
        (None, ""),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


def test_reward_names_are_what_trl_logs():
    assert format_reward.__name__ == "format_reward"
    assert accuracy_reward.__name__ == "accuracy_reward"


def test_accuracy_reward_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        accuracy_reward(["3", "3"], answer=["3"])


@pytest.mark.parametrize(
    "text",
    [
        "9" * 200_000,  # no tag: math-verify sees only the tail
        "<answer>" * 25_000,  # many opening tags, no closing one
        "\\frac{" * 40_000,
        "<think>" + "x " * 100_000 + "</think><answer>3</answer>",
    ],
)
def test_accuracy_is_fast_on_huge_input(text):
    start = time.perf_counter()
    assert accuracy_reward([text], answer=["3"]) in ([0.0], [1.0])
    assert time.perf_counter() - start < 2.0


def test_match_answer_works_off_the_main_thread():
    # math-verify's signal-based timeouts raise in threads unless switched off.
    results = []
    thread = threading.Thread(target=lambda: results.append(match_answer("the answer is 3", "3")))
    thread.start()
    thread.join()
    assert results == [1.0]


@pytest.mark.parametrize("error", [RuntimeError("boom"), RecursionError(), "timeout"])
def test_match_answer_never_raises(monkeypatch, error):
    import math_verify
    from math_verify.errors import TimeoutException

    def broken(*args, **kwargs):
        raise TimeoutException("Operation timed out!") if error == "timeout" else error

    monkeypatch.setattr(math_verify, "parse", broken)
    assert match_answer("the answer is 3", "3") == 0.0
    assert match_answer("<answer>3</answer>", "3") == 1.0  # the string path needs no math-verify


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_resolve_known_names(name):
    assert resolve(name) is REWARDS[name]


def test_resolve_module_paths():
    assert resolve("math:sqrt") is math.sqrt
    assert resolve("rrft_studio.rewards:format_reward") is format_reward
    assert resolve("os:path.join") is __import__("os").path.join


@pytest.mark.parametrize(
    "name, fragments",
    [
        ("accuracyy", ["'accuracyy'", "accuracy, consistency, format", "package.module:function", "did you mean 'accuracy'"]),
        ("fromat", ["did you mean 'format'"]),
        ("zzz", ["unknown reward 'zzz'", "package.module:function"]),
        ("nonexistent.module:f", ["cannot import module 'nonexistent.module'", "No module named"]),
        ("math:nope", ["has no attribute 'nope'"]),
        ("math:pi", ["not callable"]),
        ("math:", ["expected 'package.module:function'"]),
        (":f", ["expected 'package.module:function'"]),
    ],
)
def test_resolve_errors_are_one_line(name, fragments):
    with pytest.raises(ValueError) as info:
        resolve(name)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_name_without_a_close_match_has_no_suggestion():
    with pytest.raises(ValueError) as info:
        resolve("zzz")
    assert "did you mean" not in str(info.value)


def test_module_constants_are_sane():
    assert checks.MATH_VERIFY_MAX_CHARS >= 100
    assert checks.MATH_VERIFY_TIMEOUT_S >= 1
