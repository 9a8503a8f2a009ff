"""The reward workbench (`rrft-studio rewards check`): verdicts on constructed cases through the CLI, its
one-line errors, the pasted-completion explanation, and the monitor's banner condition."""

import json

import pytest

from conftest import MICRO, cli
from rrft_studio import settings, workbench
from rrft_studio.cli import main


def _tagged(answer) -> str:
    return f"<think>\nThere are {answer} objects.\n</think>\n<answer>\n{answer}\n</answer>"


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def healthy(tmp_path):
    """Four groups of four (micro's G): each group half right, half wrong, all in the format."""
    rows = [{"completion": _tagged(3 if i % 2 else 4), "answer": "3"} for i in range(16)]
    return _write(tmp_path / "healthy.jsonl", rows)


def _check(capsys, *argv) -> str:
    assert main(["rewards", "check", str(MICRO), *argv]) == 0
    return capsys.readouterr().out


def test_a_healthy_case(capsys, healthy):
    out = _check(capsys, "--completions", healthy, "grpo.rewards=[format,accuracy]", "grpo.reward_weights=[1,1]")
    assert "verdict: ok: 100% of groups have a spread" in out
    assert "format matched 100%" in out and "samples (16 in 4 groups)" in out
    assert "note: format is 1.00 in all 16 samples" in out  # saturated: a note, not the verdict


def test_a_reward_that_is_always_zero(capsys, healthy):
    out = _check(capsys, "--completions", healthy, "grpo.rewards=[accuracy,tests.data.rewards:zero_reward]",
                 "grpo.reward_weights=[1,1]")
    assert "verdict: weak: tests.data.rewards:zero_reward is 0 in all 16 samples: it gives GRPO no signal" in out


def test_a_constant_reward(capsys, healthy):
    out = _check(capsys, "--completions", healthy, "grpo.rewards=[tests.data.rewards:constant_reward]",
                 "grpo.reward_weights=[1]")
    assert "verdict: dead: all 4 groups have zero spread: the rewards are constant" in out
    assert "constant_reward always 0.50" in out


def test_completions_that_never_write_the_tags(capsys, tmp_path):
    rows = [{"completion": f"I count {i % 3} objects", "answer": "7", "group": i // 4} for i in range(12)]
    out = _check(capsys, "--completions", _write(tmp_path / "untagged.jsonl", rows),
                 "grpo.rewards=[format,accuracy]", "grpo.reward_weights=[1,1]")
    assert "verdict: dead: format never matched in 12 samples" in out


def test_zero_spread_groups_name_the_fix(capsys, tmp_path):
    """Three groups solved by every completion, one with a spread: the issue's example verdict."""
    rows = [{"completion": _tagged(3 if g < 3 or i % 2 else 4), "answer": "3", "group": g}
            for g in range(4) for i in range(4)]
    out = _check(capsys, "--completions", _write(tmp_path / "easy.jsonl", rows),
                 "grpo.rewards=[format,accuracy]", "grpo.reward_weights=[1,1]")
    assert ("verdict: weak: 75% of groups have zero spread (75% where every completion scored the top total 2.00): "
            "GRPO will learn from 25% of prompts; raise grpo.temperature or grpo.num_generations, "
            "or stop Stage 1 earlier") in out


def test_the_micro_model_never_writes_the_tags(tmp_path, cache_dir):
    """The real command on a model: sample G completions per prompt, score them, write every sample."""
    out = tmp_path / "check.json"
    done = cli("rewards", "check", str(MICRO), "--n", "2", f"run.cache_dir={cache_dir}", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 prompts x 4 completions = 8 samples from the preset's model" in done.stdout
    assert "verdict: weak: format never matched in 8 samples" in done.stdout  # length_reward still varies
    report = json.loads(out.read_text())
    assert len(report["samples"]) == 8 and report["verdict"]["level"] == "weak"
    assert set(report["samples"][0]["rewards"]) == {"format", "accuracy", "tests.data.rewards:length_reward"}
    assert report["summary"]["entropy"] > 0 and report["summary"]["length_unit"] == "tokens"


@pytest.mark.parametrize("reward, words", [
    ("tests.data.rewards:raising_reward", ["reward 'tests.data.rewards:raising_reward' raised ZeroDivisionError"]),
    ("tests.data.rewards:short_reward", ["returned 15 scores for 16 completions"]),
    ("tests.data.rewards:text_reward", ["returned 'good' for completion 0", "finite number"]),
])
def test_a_broken_reward_is_one_line(capsys, healthy, reward, words):
    assert main(["rewards", "check", str(MICRO), "--completions", healthy, f"grpo.rewards=[{reward}]",
                 "grpo.reward_weights=[1]"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and not captured.out, err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("content, words", [
    ('{"completion": "x"}\n', ["line 1", "'completion' and 'answer'"]),
    ('{"completion": "x", "answer": "1"}\nnot json\n', ["line 2 is not JSON"]),
    ('{"completion": "x", "answer": "1", "task": "chess"}\n', ["task 'chess'"]),
    ("", ["holds no rows"]),
])
def test_bad_completion_files(capsys, tmp_path, content, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["rewards", "check", str(MICRO), "--completions", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    for word in words:
        assert word in err, err


def test_bad_arguments(capsys, tmp_path, healthy):
    for argv, word in ([["--completions", str(tmp_path / "none.jsonl")], "not found"],
                       [["--completions", healthy, "--checkpoint", str(tmp_path)], "give one of them"],
                       [["--checkpoint", str(tmp_path)], "neither a run directory nor a checkpoint"],
                       [["--n", "0"], "--n"]):
        assert main(["rewards", "check", str(MICRO), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and word in err and "\n" not in err, err


def test_explain_a_pasted_completion():
    cfg = settings.load(MICRO, ["grpo.rewards=[format,format_strict,accuracy]", "grpo.reward_weights=[1,1,1]"])
    by_name = {r["reward"]: r for r in workbench.explain(cfg, "<think>7 objects</think> 7", "7")}
    assert by_name["format"]["score"] == 0 and by_name["format"]["why"] == "no <answer> tag"
    assert "no <answer> tag: the whole text" in by_name["accuracy"]["why"]
    nested = "<think>a</think>\n<answer><answer>5</answer></answer>"
    by_name = {r["reward"]: r for r in workbench.explain(cfg, nested, "5")}
    assert by_name["format"]["score"] == 1 and by_name["format_strict"]["score"] == 0
    assert "exactly one of each tag" in by_name["format_strict"]["why"]
    assert "'<answer>5'" in by_name["accuracy"]["why"] and "'5'" in by_name["accuracy"]["why"]
    assert workbench.format_problem("Sure. <think>a</think><answer>1</answer>").startswith("text before <think>")


def _rows(spread, fmt_std=0.3, fmt=0.8, steps=12):
    return [{"stage": "grpo", "step": s, "frac_reward_zero_std": spread, "rewards/format_reward/mean": fmt,
             "rewards/format_reward/std": fmt_std, "rewards/accuracy_reward/mean": 0.5,
             "rewards/accuracy_reward/std": 0.4} for s in range(1, steps + 1)]


def test_banner_when_spread_stays_gone():
    assert workbench.banner(_rows(0.5)) == []
    assert workbench.banner(_rows(1.0, steps=9), steps=10) == []  # not yet K steps
    rows = _rows(0.5, steps=3) + _rows(0.95, steps=10)
    ((level, message),) = workbench.banner(rows, threshold=0.9, steps=10)
    assert level == "warning" and "at least 95% of groups had zero spread in each of the last 10 steps" in message
    rows[-1]["frac_reward_zero_std"] = 0.5  # one good step breaks the run of bad ones
    assert workbench.banner(rows, threshold=0.9, steps=10) == []


def test_banner_for_a_constant_reward():
    ((level, message),) = workbench.banner(_rows(0.2, fmt_std=0.0, fmt=1.0))
    assert level == "info" and "format_reward has been 1.00" in message and "saturated" in message
    ((level, message),) = workbench.banner(_rows(0.2, fmt_std=0.0, fmt=0.0))
    assert level == "warning" and "format_reward has been 0 for every completion" in message
    alone = [{k: v for k, v in r.items() if "accuracy" not in k} for r in _rows(0.2, fmt_std=0.0, fmt=0.5)]
    ((level, message),) = workbench.banner(alone)  # the only reward: nothing else carries a signal
    assert level == "warning" and "only reward, so no completion is preferred" in message
