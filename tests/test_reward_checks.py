"""Rewards under hostile completions and broken user rewards.

- Every checker finishes on the hostile corpus (tests/hostile_inputs.py: nested fractions, power towers,
  factorials, huge exponents, 200k characters), on the main thread and off it; timings are for
  benchmarks/rewards_hostile.py, the bounds here are generous "it finishes" limits.
- A reward call's math-verify fallbacks stop at its budget; off the main thread a verdict that does not come
  back in time kills the worker, and the next verdict gets a new one.
- A reward module that raises on import, or a reward that raises / returns the wrong shape on a sample
  completion, is one line.
"""

import sys
import threading
import time

import pytest

from hostile_inputs import ANSWERS, corpus
from rrft_studio import config, rewards, settings, tasks
from rrft_studio.answers import format_ok
from rrft_studio.tasks import checks, verifier

CHECKERS = sorted(tasks.CHECKERS)
SMALL = [("the answer is 3", "3"), ("$\\frac{6}{2}$", "3"), ("<answer>3</answer>", "3"), ("07", "7"),
         ("1/2", "0.5"), ("x", "3"), ("\\boxed{5/2}", "\\frac{5}{2}"), ("", "3")]


def _score_all(results: list, seconds: float) -> None:
    with checks.budget(seconds):
        for _, text in corpus():
            for name in CHECKERS:
                results.append(tasks.checker(name)(text, ANSWERS[0]))
            results.append(float(format_ok(text)))


def _on_thread(target, limit: float):
    box: list = []
    thread = threading.Thread(target=lambda: box.append(target()), daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit} s"
    return box[0], time.perf_counter() - start


@pytest.mark.parametrize("where", ["main", "thread"])
def test_every_checker_finishes_on_the_hostile_corpus(where):
    results: list = []
    if where == "main":
        start = time.perf_counter()
        _score_all(results, 3)
        elapsed = time.perf_counter() - start
    else:
        _, elapsed = _on_thread(lambda: _score_all(results, 3), 60)
    assert len(results) == len(corpus()) * (len(CHECKERS) + 1)
    assert all(0.0 <= r <= 1.0 for r in results)
    assert elapsed < 30, elapsed  # "finishes": the budget is 3 s, worker starts and one verdict past it aside


@pytest.mark.parametrize("where", ["main", "thread"])
def test_one_reward_call_stops_at_its_budget(monkeypatch, where):
    monkeypatch.setattr(verifier, "BUDGET_S", 2.0)
    texts = [text for _, text in corpus()]
    n = len(texts)

    def call():
        return rewards.accuracy_reward(texts, answer=["3"] * n, task=["custom"] * n, checker=["math_verify"] * n)

    scores, elapsed = (_on_thread(call, 60) if where == "thread" else (call(), None))
    assert len(scores) == n and set(scores) <= {0.0, 1.0}
    start = time.perf_counter()
    call()  # the worker is up now: the call's time is its budget plus at most one verdict
    assert time.perf_counter() - start < 2.0 + verifier.KILL_AFTER_S + 5


def test_a_verdict_past_the_limit_kills_the_worker(monkeypatch):
    monkeypatch.setattr(verifier, "KILL_AFTER_S", 0.5)
    slow = dict(corpus())["tower_plain_3"]  # math-verify takes its 3 s alarm on 9^9^9
    _on_thread(lambda: checks.match_answer("warm up: start the worker", "3"), 120)
    first = verifier.WORKER._proc
    score, elapsed = _on_thread(lambda: checks.match_answer(slow, "3"), 60)
    assert score == 0.0 and elapsed < 2.5, elapsed
    assert verifier.WORKER._proc is None and first.poll() is not None  # killed
    score, _ = _on_thread(lambda: checks.match_answer("the answer is 3", "3"), 120)
    assert score == 1.0  # a new worker answers


def test_verdicts_are_the_same_on_and_off_the_main_thread():
    main = [checks.paper_match(t, a) for t, a in SMALL] + [checks.match_answer(t, a) for t, a in SMALL]
    off, _ = _on_thread(lambda: [checks.paper_match(t, a) for t, a in SMALL]
                        + [checks.match_answer(t, a) for t, a in SMALL], 120)
    assert off == main
    assert main[:3] == [1.0, 1.0, 1.0]


def test_budgets_nest_and_charge_the_outer_one():
    with verifier.budget(5):
        with verifier.budget(1):
            verifier.charge(0.75)
            assert verifier.remaining() == pytest.approx(0.25)
        assert verifier.remaining() == pytest.approx(4.25)
        verifier.charge(10)
        assert verifier.spent() and checks.match_answer("the answer is 3", "3") == 0.0  # no verdict asked
    assert verifier.remaining() is None and not verifier.spent()


def test_paper_scorer_is_linear_on_many_opening_tags():
    start = time.perf_counter()
    assert tasks.checker("spatial_paper")("<answer>" * 25_000, "change_color(0, red)") == 0.0
    assert time.perf_counter() - start < 1.0  # the released regex takes about 80 s here


# ---------------------------------------------------------------- broken user rewards

@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """Modules a user might name in grpo.rewards, each broken its own way on import."""
    bodies = {
        "raises_runtime": "raise RuntimeError('no GPU here')\ndef f(completions, **kw): return []\n",
        "raises_syntax": "def f(completions, **kw)\n    return []\n",
        "raises_exit": "import sys\nsys.exit(3)\n",
        "raises_keyerror": "import os\nTOKEN = os.environ['SOME_TOKEN_THAT_IS_NOT_SET']\n",
    }
    for name, body in bodies.items():
        (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield list(bodies)
    for name in bodies:
        sys.modules.pop(name, None)


def test_a_reward_module_that_raises_on_import_is_one_line(user_modules):
    for module in user_modules:
        with pytest.raises(ValueError) as err:
            rewards.resolve(f"{module}:f")
        message = str(err.value)
        assert "\n" not in message and f"cannot import module {module!r}" in message, message
    with pytest.raises(config.ConfigError) as err:
        settings.load(None, ["grpo.rewards=[format,raises_runtime:f]", "grpo.reward_weights=[1,1]"])
    assert "grpo.rewards" in str(err.value) and "RuntimeError: no GPU here" in str(err.value)


def good_reward(completions, answer, **kwargs):
    return [1.0 if a in rewards.completion_text(c) else 0.0 for c, a in zip(completions, answer)]


def step_reward(completions, trainer_state, **kwargs):
    return [min(1.0, trainer_state.global_step / 10)] * len(completions)


def abstaining_reward(completions, **kwargs):
    return [None] * len(completions)


def raising_reward(completions, answer, **kwargs):
    return [float(a) / 0 for a in answer]


def short_reward(completions, **kwargs):
    return []


def text_reward(completions, **kwargs):
    return ["good"] * len(completions)


def nan_reward(completions, **kwargs):
    return [float("nan")] * len(completions)


def scalar_reward(completions, **kwargs):
    return 1.0


ROW = {"prompt": [{"role": "user", "content": "How many?"}], "answer": "3", "task": "counting",
       "checker": "match", "id": "counting-train-000001", "image_path": ["a.png"]}


@pytest.mark.parametrize("func, expected", [
    (good_reward, [1.0]), (step_reward, [0.0]), (abstaining_reward, [None]),
    (rewards.format_reward, [1.0]), (rewards.accuracy_reward, [1.0]), (rewards.format_strict_reward, [1.0]),
])
def test_check_callable_passes_working_rewards(func, expected):
    assert rewards.check_callable(func, ROW) == expected
    assert rewards.check_callable(func, {k: v for k, v in ROW.items() if k != "prompt"}) == expected  # plain text


@pytest.mark.parametrize("func, words", [
    (raising_reward, ["'raising_reward' raised ZeroDivisionError", "fix it before training", "answer"]),
    (short_reward, ["returned 0 scores for 1 completion"]),
    (text_reward, ["returned 'good', not a finite number"]),
    (nan_reward, ["returned nan, not a finite number"]),
    (scalar_reward, ["returned float, not a list"]),
])
def test_check_callable_refuses_broken_rewards_in_one_line(func, words):
    with pytest.raises(ValueError) as err:
        rewards.check_callable(func, ROW)
    message = str(err.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
