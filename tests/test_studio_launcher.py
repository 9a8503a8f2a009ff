"""The studio's launcher: validation with line numbers, the command it runs (the CLI, never a shell), what it
refuses, how it tells a live run from a dead one, and that it never signals a process that is not ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import MICRO, ROOT
from rrft_studio import runs
from rrft_studio.config import ConfigError
from rrft_studio.studio import launcher as launcher_mod
from rrft_studio.studio.folders import Folders
from rrft_studio.studio.launcher import Launcher


@pytest.fixture
def launcher(tmp_path):
    return Launcher(tmp_path / "runs")


def _run(runs_dir, name="r-1", **status):
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("run: {stages: [sft]}\n")
    (run_dir / "status.json").write_text(json.dumps(status))
    return run_dir


def test_line_of_finds_nested_keys_in_block_and_flow_yaml():
    text = "model:\n  tiny: {hidden_size: 64}\nsft: {max_steps: 2, lr: 1}\ngrpo:\n  lr: x\n"
    assert launcher_mod.line_of(text, "grpo.lr") == 5
    assert launcher_mod.line_of(text, "sft.lr") == 3
    assert launcher_mod.line_of(text, "model.tiny.hidden_size") == 2
    assert launcher_mod.line_of(text, "eval.lr") is None


@pytest.mark.parametrize("text, words", [
    ("sft:\n  lrr: 1\n", ["line 2:", "unknown config key 'sft.lrr'", "'sft.lr'"]),
    ("grpo: {beta: high}\n", ["line 1:", "grpo.beta must be float"]),
    ("sft: [unclosed\n", ["not valid YAML", "the preset"]),
])
def test_validate_reports_one_line_with_where(launcher, text, words):
    with pytest.raises(ConfigError) as err:
        launcher.validate("micro", text)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_validate_uses_the_name_and_the_studio_runs_dir(tmp_path):
    # micro.yaml's third reward is tests.data.rewards:length_reward: a rewards folder holding tests/ allows it
    launcher = Launcher(tmp_path / "runs", Folders.create(tmp_path / "runs", rewards=ROOT, cwd=ROOT))
    cfg = launcher.validate("micro", MICRO.read_text(), ["sft.lr=5e-4"])
    assert cfg.run.name == "micro" and cfg.sft.lr == 5e-4 and cfg.run.runs_dir == str(launcher.runs_dir)
    with pytest.raises(ConfigError, match="run name"):
        launcher.validate("../escape", MICRO.read_text())


def test_the_command_is_the_cli_without_a_shell(launcher, tmp_path):
    (tmp_path / "p.yaml").write_text("model: tiny\n")
    cmd = launcher.train_command(tmp_path / "p.yaml", ["sft.lr=1e-4"])
    assert cmd[:3] == [sys.executable, "-m", "rrft_studio.cli"] and cmd[3] == "train"
    assert cmd[-1] == f"run.runs_dir={launcher.runs_dir}"  # the default cache is the studio's default cache
    elsewhere = Launcher(launcher.runs_dir, Folders.create(launcher.runs_dir, cache=tmp_path / "cache"))
    assert elsewhere.train_command(tmp_path / "p.yaml")[-1] == f"run.cache_dir={tmp_path / 'cache'}"
    assert launcher_mod.command_text(cmd).startswith(f"rrft-studio train {tmp_path / 'p.yaml'} sft.lr=1e-4 ")


def test_a_bad_preset_starts_nothing(launcher):
    with pytest.raises(ConfigError):
        launcher.launch("micro", "sft: {lrr: 1}\n")
    assert launcher.launches() == [] and not (launcher.studio_dir / "presets").exists()


def test_states_of_live_dead_and_finished_runs(launcher):
    assert runs.effective_state({"state": "running", "pid": 2**22 + 12345}) == "killed"
    assert runs.effective_state({"state": "running", "pid": os.getpid()}) == "running"
    assert runs.effective_state({"state": "finished", "pid": 1}) == "finished"
    done = _run(launcher.runs_dir, state="finished", pid=1)
    with pytest.raises(ConfigError, match="finished"):
        launcher.resume(done)
    assert "not running" in launcher.stop(done)


def test_stop_never_signals_a_process_that_is_not_ours(launcher):
    stranger = subprocess.Popen(["sleep", "30"])  # a pid the status file claims, now someone else's
    try:
        run_dir = _run(launcher.runs_dir, state="running", pid=stranger.pid)
        assert "nothing was signalled" in launcher.stop(run_dir)
        time.sleep(0.2)
        assert stranger.poll() is None
        with pytest.raises(ConfigError, match="still running"):
            launcher.resume(run_dir)
    finally:
        stranger.kill()
        stranger.wait()


def test_it_acts_only_on_runs_inside_its_runs_folder(launcher, tmp_path):
    outside = _run(tmp_path / "elsewhere", state="stopped")
    with pytest.raises(ConfigError, match="is not a run in"):
        launcher.stop(outside)
    with pytest.raises(ConfigError, match="is not a run in"):
        launcher.resume(launcher.runs_dir / ".." / "elsewhere" / outside.name)


def test_a_launch_that_dies_before_its_run_dir_is_reported_with_its_log(launcher):
    launched = launcher._spawn([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], "broken")
    assert launcher_mod.os.getsid(launched.pid) == launched.pid  # its own session: it outlives the studio
    launcher.children[launched.pid].wait(30)
    (record,) = launcher.unclaimed()
    assert record["pid"] == launched.pid and not record["alive"]
    assert "boom" in launcher_mod.tail(launched.log)
    run_dir = _run(launcher.runs_dir, state="running", pid=launched.pid)  # once a run claims the pid
    assert launcher.unclaimed() == [] and launcher.log_of(run_dir) == launched.log
    assert Launcher(launcher.runs_dir).log_of(run_dir) == launched.log  # a restarted studio still knows it


def test_tail_keeps_the_last_progress_bar_update(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("start\nsft:  10%|#| 1/10\rsft:  20%|##| 2/10\rsft:  30%|###| 3/10\nend\n")
    assert launcher_mod.tail(log) == "start\nsft:  30%|###| 3/10\nend"
    assert runs.read_jsonl(tmp_path / "none.jsonl") == []
