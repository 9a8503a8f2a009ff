"""run.report_to: a micro run with trackio and TensorBoard, each read back from its own files (trackio's SQLite
database, TensorBoard's event files): the trainers' metrics, the config, GRPO's rollouts with their images, and
the eval table. A tracker that is missing is one line before the run directory exists."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MICRO, ROOT, cli
from rrft_studio import config, runs, settings


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("tracked")
    env = {"TRACKIO_DIR": str(root / "trackio"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "train", str(MICRO), f"run.runs_dir={root / 'runs'}",
                           f"run.cache_dir={cache_dir}", "run.report_to=[trackio,tensorboard]", "run.project=micro-tests"],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (root / "runs").iterdir()
    return run_dir, root / "trackio" / "micro-tests.db", done


def _ours(run_dir: Path, stage: str, key: str) -> dict[int, float]:
    return {r["step"]: r[key] for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r["stage"] == stage and key in r}


def _trackio(db: Path, run: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        return [json.loads(m) for (m,) in conn.execute("select metrics from metrics where run_name = ? order by id", (run,))]


def test_trackio_gets_each_stage_the_rollouts_and_the_eval_table(tracked):
    run_dir, db, done = tracked
    assert "trackio show" in done.stdout  # where the dashboard is, said as the run starts
    for stage, key in (("sft", "loss"), ("grpo", "reward")):
        logged = {int(m["train/global_step"]): m[f"train/{key}"] for m in _trackio(db, f"{run_dir.name}-{stage}")
                  if f"train/{key}" in m}
        assert logged == pytest.approx(_ours(run_dir, stage, key)) and len(logged) == 2, stage
    tables = [m["rollouts"] for m in _trackio(db, f"{run_dir.name}-grpo") if "rollouts" in m]
    assert len(tables) == 2  # one per logged step
    rows = tables[0]["_value"]
    assert len(rows) == 8 and {"prompt", "completion", "advantage", "format_reward", "accuracy_reward"} <= set(rows[0])
    image = rows[0]["image"][0]
    assert image["_type"] == "trackio.image" and (db.parent / "media" / image["file_path"]).is_file()
    (evaluated,) = _trackio(db, f"{run_dir.name}-eval")
    labels = [row["model / method"] for row in evaluated["eval/table"]["_value"]]
    assert labels == ["ours: tiny base", "ours: tiny sft", "ours: tiny grpo"]
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("select config from configs where run_name = ?", (f"{run_dir.name}-grpo",)).fetchone()
    assert json.loads(raw)["rrft_studio"]["run"]["report_to"] == ["trackio", "tensorboard"]


def test_tensorboard_gets_each_stage_the_rollouts_and_the_eval_table(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, _ = tracked

    def events(stage: str) -> EventAccumulator:
        acc = EventAccumulator(str(run_dir / "tensorboard" / stage), size_guidance={"images": 0, "tensors": 0})
        acc.Reload()
        return acc

    for stage, key in (("sft", "loss"), ("grpo", "reward")):
        scalars = {e.step: e.value for e in events(stage).Scalars(f"train/{key}")}
        assert scalars == pytest.approx(_ours(run_dir, stage, key), rel=1e-5), stage
    grpo = events("grpo")
    assert "rollouts/image_0" in grpo.Tags()["images"] and "rollouts/text_summary" in grpo.Tags()["tensors"]
    assert "rrft_studio/config/text_summary" in grpo.Tags()["tensors"]
    table = events("eval").Tensors("eval/table/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| ours: tiny grpo |" in table
    assert (run_dir / "metrics.jsonl").is_file() and (run_dir / "samples.jsonl").is_file()  # the run dir as before


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_tracker_that_is_not_installed_is_one_line_before_the_run(tmp_path, name):
    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"{name} is installed here")
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.report_to=[{name}]")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert f"run.report_to: {name} is not installed: pip install {name}" in done.stderr
    assert not any(tmp_path.iterdir())  # no run directory


def test_report_to_none_alone_and_the_trainer_args(tmp_path, monkeypatch):
    from rrft_studio.train import trackers

    with pytest.raises(config.ConfigError, match="none means no tracker"):
        settings.load(MICRO, ["run.report_to=[none,trackio]"])
    cfg = settings.load(MICRO, ["run.report_to=tensorboard", "run.name=demo"])
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    args = trackers.report_args(cfg, tmp_path / "demo-1" / "checkpoints" / "grpo")
    assert args == {"report_to": ["tensorboard"], "run_name": "demo-1-grpo", "project": "rrft-studio"}
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "demo-1" / "tensorboard" / "grpo")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "/mine")  # the user's own setting wins
    trackers._SET_BY_US.discard("TENSORBOARD_LOGGING_DIR")
    trackers.report_args(cfg, tmp_path / "demo-1" / "checkpoints" / "sft")
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == "/mine"
    assert trackers.report_args(settings.load(MICRO), tmp_path / "r" / "checkpoints" / "sft")["report_to"] == []
