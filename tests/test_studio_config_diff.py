"""Compare's config diff, without a browser: only the keys whose values differ, as dotted keys with each run's
value, a key one run lacks shown as absent, and how many keys are equal."""

from __future__ import annotations

import pytest

from rrft_studio import config, runs
from rrft_studio.config import ConfigError
from rrft_studio.studio import config_diff


def _run(root, name: str, overrides: list[str]):
    """A run directory as the CLI starts it: its resolved config.yaml."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    runs.write_atomic(runs.config_path(run_dir), config.dump(config.load(None, overrides)))
    return run_dir


def test_diff_lists_only_the_keys_that_differ():
    a = {"grpo": {"temperature": 1.0, "lr": 1e-5, "rewards": ["format", "accuracy"]}, "run": {"seed": 0, "name": "a"},
         "model": {"tiny": {"hidden_size": 64}}, "data": {"eval_files": []}}
    b = {"grpo": {"temperature": 0.7, "lr": 1e-5, "rewards": ["format", "accuracy"]}, "run": {"seed": 0, "name": "b"},
         "model": {"tiny": {"hidden_size": 64.0}}, "sft": {"lr": 2e-5}, "data": {"eval_files": []}}
    rows, equal = config_diff.diff(a, b)
    assert [r[0] for r in rows] == ["grpo.temperature", "run.name", "sft.lr"]
    assert rows[0] == ("grpo.temperature", 1.0, 0.7)
    assert rows[2] == ("sft.lr", config_diff.ABSENT, 2e-5) and config_diff.shown(rows[2][1]) == "(absent)"
    assert equal == 5  # lr, rewards, seed, hidden_size (64 is 64.0), eval_files
    assert config_diff.diff({"x": True}, {"x": 1})[0] == [("x", True, 1)]  # true is not 1 in a config
    assert config_diff.shown(["format", "accuracy"]) == '["format", "accuracy"]' and config_diff.shown("tiny") == "tiny"
    assert config_diff.shown(None) == "null" and config_diff.shown(False) == "false"


def test_diff_of_two_runs_reads_their_config_yaml(tmp_path):
    a = _run(tmp_path, "cool-1", ["grpo.temperature=0.7"])
    b = _run(tmp_path, "hot-1", ["grpo.temperature=1.2", "sft.lr=3e-5"])
    rows, line = config_diff.diff_runs(a, b)
    assert {r[0]: r[1:] for r in rows} == {"grpo.temperature": ["0.7", "1.2"],
                                           "sft.lr": [config_diff.shown(config.load().sft.lr), "3e-05"]}
    total = len(config_diff.flatten(config.to_dict(config.load())))
    assert line == f"**2 keys differ**; {total - 2} keys are equal."
    same, line = config_diff.diff_runs(a, a)
    assert same == [] and line == f"No key differs: all {total} keys of the two configs are equal."
    runs.config_path(b).write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigError) as err:
        config_diff.diff_runs(a, b)
    assert str(err.value) == "hot-1: its config.yaml is not a mapping of keys"
