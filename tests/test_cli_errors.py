"""Every user mistake: exit status 2, one line naming the problem and the fix, nothing written."""

import json
import subprocess
import sys

import pytest

from conftest import MICRO, ROOT, cli
from rrft_studio.cli import main


def _fails(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("override, words", [
    ("sft.lrr=1e-5", ["unknown config key 'sft.lrr'", "'sft.lr'"]),
    ("grpo.beta=high", ["grpo.beta must be float"]),
    ("grpo.micro_batch=3", ["must divide"]),
    ("data.train_file=missing.json", ["data.train_file", "not found"]),
    ("run.name=../../escaped", ["run.name='../../escaped'", "plain folder name"]),  # the run would land outside
    ("run.compare_to=no/such/sweep", ["run.compare_to", "no sweep.json there", "leave run.compare_to empty"]),
])
def test_bad_overrides_write_nothing(tmp_path, capsys, override, words):
    runs_dir = tmp_path / "runs"
    _fails(capsys, ["train", str(MICRO), f"run.runs_dir={runs_dir}", override], *words)
    assert not runs_dir.exists()


def test_missing_preset(tmp_path, capsys):
    _fails(capsys, ["train", str(tmp_path / "nope.yaml")], "not found")


def test_broken_data_file_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "train.json"
    bad.write_text(json.dumps([{"id": "a", "problem": "How many?", "answer": "3", "image": "missing.png"}]))
    runs_dir = tmp_path / "runs"
    _fails(capsys, ["train", str(MICRO), f"run.runs_dir={runs_dir}", f"data.train_file={bad}",
                    f"run.cache_dir={tmp_path / 'cache'}"], "missing.png")
    assert not runs_dir.exists()


def test_unsloth_without_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    runs_dir = tmp_path / "runs"
    _fails(capsys, ["train", str(MICRO), f"run.runs_dir={runs_dir}", "model.backend=unsloth"], "CUDA", "auto")
    assert not runs_dir.exists()


def test_eval_of_a_non_run(tmp_path, capsys):
    _fails(capsys, ["eval", str(tmp_path)], "neither a run directory nor a checkpoint")


def test_resume_of_a_non_run(tmp_path, capsys):
    _fails(capsys, ["train", "--resume", str(tmp_path)], "not a run directory")


def test_generate_refuses_to_overwrite(tmp_path, capsys):
    assert main(["data", "generate", "counting", "--n", "3", "--out", str(tmp_path)]) == 0
    assert len(json.loads((tmp_path / "train.json").read_text())) == 3
    capsys.readouterr()
    _fails(capsys, ["data", "generate", "counting", "--n", "3", "--out", str(tmp_path)], "exists")


def test_config_show_prints_docs():
    done = cli("config", "show", str(MICRO), "sft.lr=2e-4")
    assert done.returncode == 0, done.stderr
    assert "lr: 0.0002  # peak learning rate" in done.stdout
    assert "hidden_size: 64" in done.stdout


def test_resume_refuses_a_live_run(tmp_path, capsys):
    import os

    from rrft_studio import runs, settings

    run_dir = runs.create(settings.load(MICRO, [f"run.runs_dir={tmp_path}"]))
    runs.write_status(run_dir, state="running")
    status = runs.read_status(run_dir)
    status["pid"] = os.getppid()  # a live process other than this one
    (run_dir / "status.json").write_text(json.dumps(status))
    _fails(capsys, ["train", "--resume", str(run_dir)], "still running")


def test_resume_refuses_a_finished_run(tmp_path, capsys):
    from rrft_studio import runs, settings

    run_dir = runs.create(settings.load(MICRO, [f"run.runs_dir={tmp_path}"]))
    runs.write_status(run_dir, state="finished")
    _fails(capsys, ["train", "--resume", str(run_dir)], "already finished")


def test_a_mistake_is_answered_before_the_training_libraries_load(tmp_path):
    """A typo in the data or the trackers is refused before transformers, trl and peft are imported (seconds of a
    user's time on every mistake), in a fresh process as a user runs it."""
    script = ("import sys\nfrom rrft_studio.cli import main\n"
              f"code = main(['train', {str(ROOT / 'presets' / 'custom_example.yaml')!r}, "
              f"'run.runs_dir={tmp_path / 'runs'}', 'run.report_to=[tensorboard]'])\n"
              "print(code, sorted(m for m in ('transformers', 'trl', 'peft', 'unsloth') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[0] == "2 []", done.stdout + done.stderr
    assert "data.train_file" in done.stderr and not (tmp_path / "runs").exists()
