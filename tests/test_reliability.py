"""Faults injected at precise points of a micro run (tests/faults.py): a run killed anywhere resumes with every
step, rollout and evaluation exactly once; a stop request is honoured in evaluation too; a divergence, a full
disk or an image lost mid-run ends the run `failed` with one line that says what to do, and resume then works;
bad input is refused before a run directory exists."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import MICRO, ROOT
from rrft_studio import runs

# SFT 6 steps saving every 2, GRPO 4 steps saving every 2, two evaluation batches per checkpoint
LONGER = ["sft.max_steps=6", "sft.save_steps=2", "grpo.max_steps=4", "grpo.save_steps=2", "eval.batch_size=4"]


def faulty(fault: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tests" / "faults.py"), fault, "--", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def start(fault: str, runs_dir: Path, cache_dir: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    done = faulty(fault, "train", str(MICRO), f"run.runs_dir={runs_dir}", f"run.cache_dir={cache_dir}", *LONGER,
                  *overrides)
    (run_dir,) = runs_dir.iterdir()
    return done, run_dir


def resume(fault: str, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return faulty(fault, "train", "--resume", str(run_dir), *overrides)


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one line a failed run prints for its user (the rest of stderr is progress bars), no traceback."""
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    return line


def steps(run_dir: Path, name: str, stage: str) -> list[int]:
    """The steps a stage logged (the end-of-training summary row, which repeats the last step, left out)."""
    return [r["step"] for r in runs.read_jsonl(run_dir / name) if r["stage"] == stage and "train_runtime" not in r]


def assert_finished_exactly_once(run_dir: Path) -> None:
    assert runs.read_status(run_dir)["state"] == "finished"
    assert "error" not in runs.read_status(run_dir)
    assert steps(run_dir, "metrics.jsonl", "sft") == [1, 2, 3, 4, 5, 6]
    assert steps(run_dir, "metrics.jsonl", "grpo") == [1, 2, 3, 4]
    assert steps(run_dir, "samples.jsonl", "grpo") == [1, 2, 3, 4]
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # no torn line left
    for stage, last in (("sft", 6), ("grpo", 4)):
        assert runs.is_done(run_dir, stage)
        names = [p.name for p in runs.checkpoints_dir(run_dir, stage).glob("checkpoint-*")]
        assert all(runs.checkpoint_step(Path(n)) <= last for n in names), names  # never a step too many
    for label in ("base", "sft", "grpo"):
        assert json.loads(runs.eval_path(run_dir, label, "id").read_text())["n"] == 8
    assert not list(run_dir.rglob(".*.tmp*"))


def test_killed_anywhere_resumes_with_every_step_once(tmp_path, cache_dir):
    done, run_dir = start("kill-step:sft:2", tmp_path, cache_dir)  # before the first checkpoint (at step 2)
    assert done.returncode == -9 and steps(run_dir, "metrics.jsonl", "sft") == [1]
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"stage": "sft", "step": 2, "lo')  # a torn last line, as a kill mid-write leaves
    for fault in ("kill-save:sft:2",   # while the first checkpoint is written
                  "kill-final:sft",    # between the last checkpoint (at max_steps) and final/
                  "kill-eval:sft",     # in the middle of an evaluation
                  "kill-step:grpo:1",  # before GRPO's first checkpoint: its rollouts too
                  "kill-save:grpo:4"):  # while GRPO's last checkpoint is written
        done = resume(fault, run_dir)
        assert done.returncode == -9, f"{fault}: {done.stderr[-2000:]}"
        assert runs.read_status(run_dir)["state"] == "running"  # as a kill leaves it
    done = resume("none", run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_finished_exactly_once(run_dir)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_a_resumed_stage_continues_from_the_checkpoints_weights(tmp_path, cache_dir, mode):
    """Killed after its step-2 checkpoint and resumed, SFT ends with the weights and losses of a run that was
    never interrupted: the resume loads the checkpoint's weights, not only its step, optimizer and schedule."""
    extra = ["run.stages=[sft]", "eval.enabled=false", "sft.logging_steps=1", *(["model.finetune=lora", "model.lora_r=4"] if mode == "lora" else [])]
    done, whole = start("none", tmp_path / "whole", cache_dir, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    done, cut = start("kill-step:sft:3", tmp_path / "cut", cache_dir, *extra)  # checkpoint-2 saved, step 3 lost
    assert done.returncode == -9
    done = resume("none", cut)
    assert done.returncode == 0, done.stderr[-3000:]

    def losses(run_dir):
        return [round(r["loss"], 4) for r in runs.read_jsonl(run_dir / "metrics.jsonl")
                if r["stage"] == "sft" and "loss" in r]

    assert losses(cut)[2:] == losses(whole)[2:], (losses(whole), losses(cut))
    files = sorted(p.relative_to(runs.final_dir(whole, "sft"))
                   for p in runs.final_dir(whole, "sft").rglob("*.safetensors"))
    assert files
    for file in files:  # the weights (with LoRA: the adapter and the merged model)
        a, b = (load_file(str(runs.final_dir(d, "sft") / file)) for d in (whole, cut))
        assert a.keys() == b.keys()
        for name, tensor in a.items():
            assert torch.allclose(tensor.float(), b[name].float(), atol=1e-5), f"{file}: {name}"


def test_a_stop_during_evaluation_is_honoured(tmp_path, cache_dir):
    done, run_dir = start("term-eval:base", tmp_path, cache_dir)
    assert done.returncode == 143 and "resume with" in done.stdout
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped" and steps(run_dir, "metrics.jsonl", "sft") == []  # not one step trained
    assert runs.eval_path(run_dir, "base", "id").exists() is False  # the interrupted evaluation is redone
    done = resume("term-eval:grpo", run_dir)
    assert done.returncode == 143 and runs.read_status(run_dir)["state"] == "stopped"
    assert runs.is_done(run_dir, "grpo") and not runs.eval_path(run_dir, "grpo", "id").exists()
    done = resume("none", run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_finished_exactly_once(run_dir)


def _finite(checkpoint: Path) -> bool:
    weights = load_file(str(next(checkpoint.glob("*.safetensors"))))
    return all(bool(t.float().isfinite().all()) for t in weights.values())


def test_divergence_stops_at_its_step_and_resumes_with_a_lower_learning_rate(tmp_path, cache_dir):
    done, run_dir = start("nan:sft:3", tmp_path, cache_dir)
    assert done.returncode == 1
    line = error_line(done)
    assert "sft diverged at step 3" in line and "checkpoint-2" in line and "sft.lr=" in line, line
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and status["failure"] == "diverged"
    checkpoints = sorted(runs.checkpoints_dir(run_dir, "sft").glob("checkpoint-*"))
    assert [p.name for p in checkpoints] == ["checkpoint-2"] and _finite(checkpoints[0])  # step 3 never saved
    assert not runs.is_done(run_dir, "sft")
    done = resume("none", run_dir, "sft.lr=1e-4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert runs.load_config(run_dir).sft.lr == 1e-4
    sft = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r["stage"] == "sft" and "train_runtime" not in r]
    assert [r["step"] for r in sft] == [1, 2, 3, 4, 5, 6]
    assert sft[2]["learning_rate"] < 1e-4 < sft[1]["learning_rate"]  # the new rate from step 3 on (cosine decay)
    assert_finished_exactly_once(run_dir)


def test_a_real_divergence_is_caught_too(tmp_path, cache_dir):
    done, run_dir = start("none", tmp_path, cache_dir, "sft.lr=1e6", "run.stages=[sft]")
    assert done.returncode == 1, done.stdout[-2000:]
    assert "diverged" in done.stderr and runs.read_status(run_dir)["failure"] == "diverged"
    assert not runs.is_done(run_dir, "sft")
    for checkpoint in runs.checkpoints_dir(run_dir, "sft").glob("checkpoint-*"):
        assert _finite(checkpoint)


def test_disk_full_fails_with_one_line_and_resumes(tmp_path, cache_dir):
    done, run_dir = start("enospc:sft:3", tmp_path, cache_dir)
    assert done.returncode == 1
    line = error_line(done)
    assert line.startswith("error: disk full: ") and " MB free in " in line
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and status["failure"] == "disk_full"
    assert not list(run_dir.rglob(".*.tmp*"))
    done = resume("none", run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_finished_exactly_once(run_dir)


def test_an_image_lost_mid_run_is_named(tmp_path):
    cache = tmp_path / "cache"  # a private cache: its generated images are deleted
    done, run_dir = start("delete-image:sft:1", tmp_path / "runs", cache)
    assert done.returncode == 1
    line = error_line(done)
    assert "image unreadable mid-run: " in line and str(cache) in line and "delete its folder" in line, line
    assert runs.read_status(run_dir)["failure"] == "image"


@pytest.mark.parametrize("overrides, needle", [
    (["model.name={model}"], "not valid JSON"),
    (["model.name=someone/not-downloaded-model"], "not in the local Hugging Face cache"),
    (["model.finetune=lora", "model.lora_layers=[vision]", "sft.freeze_vision=true"], "which sft freezes"),
])
def test_refused_before_anything_is_written(tmp_path, overrides, needle):
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "config.json").write_text("{not json")
    runs_dir = tmp_path / "runs"
    args = [o.format(model=model) for o in overrides]
    done = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "train", str(MICRO), f"run.runs_dir={runs_dir}",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"})
    assert done.returncode == 2 and needle in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not runs_dir.exists()


def test_a_corrupt_image_in_a_real_file_is_refused_before_the_run(tmp_path, cache_dir):
    import layout

    top = layout.build(tmp_path)
    rows = json.loads((top / "train_jsons" / "A3-Visual-Counting-train-35k-cot.json").read_text())
    victim = top / "images" / "train_images" / rows[1]["image"]
    victim.write_bytes(victim.read_bytes()[:60])  # truncated: the header is there, the pixels are not
    runs_dir = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "train", str(MICRO), f"data.root={top}",
                           f"run.runs_dir={runs_dir}", f"run.cache_dir={cache_dir}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and f"unreadable image {victim}" in done.stderr, done.stderr[-2000:]
    assert not runs_dir.exists()

