"""The whole chain on a micro model on the CPU: run directory, metrics, rollouts, weights that change, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import MICRO, ROOT, cli
from rrft_studio import runs, settings


def _weights(path: Path) -> dict:
    return load_file(str(next(Path(path).glob("*.safetensors"))))


def _changed(a: dict, b: dict) -> bool:
    return any(not (a[k] == b[k]).all() for k in a if k in b)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory, cache_dir):
    runs_dir = tmp_path_factory.mktemp("runs")
    done = cli("train", str(MICRO), f"run.runs_dir={runs_dir}", f"run.cache_dir={cache_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = runs_dir.iterdir()
    return run_dir, done


def test_run_directory(micro_run):
    run_dir, done = micro_run
    for name in ("config.yaml", "status.json", "metrics.jsonl", "samples.jsonl", "report.json",
                 "rewards.png", "length.png", "final/sft/config.json", "final/grpo/config.json",
                 "eval/base/id.json", "eval/sft/id.json", "eval/grpo/id.json", "eval/table.md"):
        assert (run_dir / name).exists(), name
    status = runs.read_status(run_dir)
    assert status["state"] == "finished" and status["backend"] == "transformers" and status["backend_why"]
    assert status["trainers"] == {"sft": "SFTTrainer", "grpo": "GRPOTrainer"}  # the classes that trained
    report = json.loads((run_dir / "report.json").read_text())
    for key in ("chance", "accuracy_base", "accuracy_sft", "accuracy_grpo", "format_reward_grpo", "seconds"):
        assert report[key] is not None, key
    assert "accuracy, after GRPO" in done.stdout and str(run_dir) in done.stdout
    # does the reasoning lead to the answer: each rollout, each GRPO step, each evaluation
    rollouts = [c for r in runs.read_jsonl(run_dir / "samples.jsonl") for c in r["completions"]]
    assert rollouts and all("consistent" in c for c in rollouts)
    assert all(1 <= c["length"] <= 16 for c in rollouts)  # tokens sampled, at most grpo.max_completion_length
    steps = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r.get("stage") == "grpo" and "loss" in r]
    assert all(0 <= r["consistency"] <= 1 for r in steps)
    result = json.loads((run_dir / "eval/grpo/id.json").read_text())
    assert "consistency" in result and all("consistent" in p for p in result["predictions"])


def test_report_reads_the_strict_format_reward_too(micro_run, tmp_path):
    """A run trained with grpo.rewards=[format_strict, ...] logs rewards/format_strict_reward/mean instead."""
    import shutil

    from rrft_studio.eval import report

    run_dir = Path(shutil.copytree(micro_run[0], tmp_path / "run"))
    metrics = run_dir / "metrics.jsonl"
    text = metrics.read_text()
    assert "rewards/format_reward/mean" in text
    metrics.write_text(text.replace("rewards/format_reward/", "rewards/format_strict_reward/"))
    rows = [r for r in runs.read_jsonl(metrics) if r["stage"] == "grpo" and "rewards/format_strict_reward/mean" in r]
    expected = sum(r["rewards/format_strict_reward/mean"] for r in rows[-5:]) / len(rows[-5:])
    assert report.build(run_dir, 1.0)["format_reward_grpo"] == round(expected, 4)


def test_metrics_hold_what_trl_logs(micro_run):
    run_dir, _ = micro_run
    rows = runs.read_jsonl(run_dir / "metrics.jsonl")
    sft = [r for r in rows if r["stage"] == "sft" and "loss" in r]
    grpo = [r for r in rows if r["stage"] == "grpo" and "reward" in r]
    assert [r["step"] for r in sft] == [1, 2] and [r["step"] for r in grpo] == [1, 2]
    for key in ("rewards/format_reward/mean", "rewards/accuracy_reward/mean", "reward", "reward_std",
                "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio", "kl",
                "entropy", "loss", "learning_rate", "step_time", "rewards/length_reward/mean"):
        assert key in grpo[-1], key


def test_samples_hold_each_completion(micro_run):
    run_dir, _ = micro_run
    steps = runs.read_jsonl(run_dir / "samples.jsonl")
    assert [s["step"] for s in steps] == [1, 2]
    completions = steps[0]["completions"]
    assert len(completions) == 8  # 2 prompts x 4 generations
    first = completions[0]
    assert set(first["rewards"]) == {"format_reward", "accuracy_reward", "length_reward"}
    assert {"prompt", "completion", "advantage", "length", "answer", "id"} <= set(first)
    assert Path(first["image"][0]).is_file()


def test_weights_changed_in_each_stage(micro_run, cache_dir):
    run_dir, _ = micro_run
    base = runs.read_status(run_dir)["base_model"]
    sft, grpo = _weights(run_dir / "final/sft"), _weights(run_dir / "final/grpo")
    assert _changed(_weights(base), sft)
    assert _changed(sft, grpo)


def test_eval_command_on_a_run(micro_run):
    run_dir, _ = micro_run
    done = cli("eval", str(run_dir), "eval.max_samples=4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "accuracy" in done.stdout and "n=4" in done.stdout and "CLEVR-Math" in done.stdout


def test_stop_then_resume_repeats_no_step(tmp_path, cache_dir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "rrft_studio.cli", "train", str(MICRO), f"run.runs_dir={tmp_path}",
            f"run.cache_dir={cache_dir}", "run.stages=[sft]", "sft.max_steps=150", "sft.save_steps=1000",
            "eval.enabled=false"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = None
    deadline = time.time() + 300
    while time.time() < deadline:
        found = list(tmp_path.glob("*/metrics.jsonl"))
        if found and len(runs.read_jsonl(found[0])) >= 3:
            metrics = found[0]
            break
        time.sleep(0.05)
    assert metrics is not None, "training never logged"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    run_dir = metrics.parent
    assert proc.returncode == 130, out[-3000:]  # stopped by SIGINT, as a shell reports it: not a success
    assert "resume with" in out
    assert runs.read_status(run_dir)["state"] == "stopped"
    stopped_at = runs.last_checkpoint(run_dir, "sft")
    assert stopped_at is not None
    assert int(stopped_at.name.split("-")[1]) < 150

    done = cli("train", "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [r["step"] for r in runs.read_jsonl(metrics) if r["stage"] == "sft" and "loss" in r]
    assert steps == list(range(1, 151))
    assert runs.read_status(run_dir)["state"] == "finished"


@pytest.mark.parametrize("extra", [
    ["model.tiny.arch=qwen2_5_vl"],
    ["model.finetune=lora", "model.lora_r=4", "model.lora_layers=[vision,language,attention,mlp]"],
    ["sft.style=ans"],
], ids=["qwen2_5_vl", "lora", "ans_sft"])
def test_other_models_and_modes(tmp_path, cache_dir, extra):
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}",
               "eval.enabled=false", *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    sft, grpo = _weights(run_dir / "final/sft"), _weights(run_dir / "final/grpo")
    assert not any("lora" in k for k in grpo), "LoRA is merged into the final checkpoint"
    assert _changed(sft, grpo)


def test_freeze_vision_keeps_the_vision_tower(tmp_path, cache_dir):
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}",
               "run.stages=[sft]", "sft.freeze_vision=true", "eval.enabled=false")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    base = runs.read_status(run_dir)["base_model"]
    before, after = _weights(base), _weights(run_dir / "final/sft")
    vision = [k for k in before if "visual" in k]
    language = [k for k in before if "visual" not in k]
    assert vision and all((before[k] == after[k]).all() for k in vision)
    assert any(not (before[k] == after[k]).all() for k in language)


def test_rollouts_never_sample_vision_tokens(micro_run, tmp_path):
    """A sampled <|image_pad|> would outnumber the image features in the next forward pass."""
    from rrft_studio import models
    from rrft_studio.train import grpo

    run_dir, _ = micro_run
    processor = models.load_processor(str(run_dir / "final/grpo"), 262144)
    banned = models.vision_token_ids(processor)
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") in banned and len(banned) >= 4
    args = grpo.trainer_args(settings.load(MICRO), tmp_path, True, banned)
    assert args.generation_kwargs["suppress_tokens"] == banned


def test_stage_1_checks_its_held_out_accuracy_and_stops_at_the_target(tmp_path, cache_dir):
    """sft.stop_at_accuracy: every sft.stop_every steps the held-out accuracy (the last of Stage 2's records) is
    logged; at the target the stage ends there and says so in status.json. The micro model answers nothing right,
    so a target of 1.0 is never met (the stage runs its steps); the callback itself, given a target its real check
    meets, stops the trainer."""
    from transformers import TrainerControl, TrainerState

    from rrft_studio import config, data, models
    from rrft_studio.train import stopping

    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "run.stages=[sft]",
               "method=custom", "sft.max_steps=3", "sft.stop_at_accuracy=1.0", "sft.stop_every=1",
               "sft.stop_samples=4", "eval.enabled=false")
    assert done.returncode == 2 and "needs method=rft" in done.stderr  # no Stage 2: nothing is held out
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "sft.max_steps=3",
               "sft.stop_at_accuracy=1.0", "sft.stop_every=1", "sft.stop_samples=4", "grpo.max_steps=1",
               "eval.enabled=false")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    checks = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if "stop_check/accuracy" in r]
    assert [r["step"] for r in checks] == [1, 2] and all(r["stop_check/accuracy"] == 0.0 for r in checks)
    assert "sft_stopped" not in runs.read_status(run_dir)  # never met: the stage ran its 3 steps
    cfg = config.load(MICRO, [f"run.cache_dir={cache_dir}", "sft.stop_at_accuracy=1.0", "sft.stop_samples=4"])
    held = stopping.held_out(cfg)
    assert len(held) == 4 and not {r["id"] for r in held} & {r["id"] for r in data.stage_records(cfg, "sft")}
    model, processor, _ = models.load_for_training(cfg, cfg.sft, models.source(cfg, data.corpus(cfg)), "transformers")
    model.train()  # as the trainer leaves it
    callback = stopping.AccuracyStop(cfg, run_dir, processor)
    score = stopping.accuracy(model, processor, callback.cfg, held)
    state, control = TrainerState(), TrainerControl()
    state.global_step, state.max_steps = 50, 400
    callback.on_step_end(None, state, control, model=model)
    assert not control.should_training_stop and model.training  # 0.0 < 1.0; the model is back in training mode
    callback.cfg.sft.stop_at_accuracy = score
    callback.on_step_end(None, state, control, model=model)
    assert control.should_training_stop
    assert runs.read_status(run_dir)["sft_stopped"] == {"step": 50, "accuracy": score, "target": score}
