"""The benchmark harness on the CPU: the tiny model through SFT and GRPO, two steps each, a small image;
the JSON it writes, the table it prints, and the GPU arms skipped with their reason."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """run_all on the CPU: every arm of tiny / LoRA, both stages (only transformers can run here)."""
    results = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("bench-cache")
    done = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--models", "tiny", "--modes", "lora",
                           "--steps", "2", "--image-size", "56", "--gen-len", "16", "--cache", str(cache),
                           "--results-dir", str(results)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = results.glob("*-cpu.json")
    return json.loads(path.read_text()), done.stdout


def _result(run, stage, arm="transformers"):
    return next(r for r in run["results"] if r["stage"] == stage and r["arm"] == arm)


def test_writes_device_versions_and_date(cpu_run):
    run, _ = cpu_run
    assert run["device"].startswith("cpu") and run["date"] and run["versions"]["transformers"] == "5.17.0"
    assert run["settings"]["steps"] == 2 and run["settings"]["image_size"] == 56


def test_sft_fields(cpu_run):
    r = _result(cpu_run[0], "sft")
    assert r["steps"] == 2 and len(r["losses"]) == 2 and all(loss > 0 for loss in r["losses"])
    assert r["step_time_s"]["median"] > 0 and r["step_time_s"]["p90"] >= r["step_time_s"]["median"]
    assert r["tokens_per_step"] > 2 * 16 and r["tokens_per_s"] > 0  # 2 samples, 16-token targets + prompt + image
    assert r["image_tokens"] == 4  # 56x56 pixels -> 2x2 merged tokens
    assert r["mfu"] is None and "not comparable" in r["memory_kind"]  # a CPU has no peak FLOP/s here
    assert r["peak_memory_gib"] > 0 and r["preflight_gib"] > 0 and r["params"]["vision"] > 0


def test_grpo_fields(cpu_run):
    r = _result(cpu_run[0], "grpo")
    assert r["completions_per_step"] == 8 and r["rollout_tokens_per_step"] == 8 * 16  # 2 prompts x G=4, 16 tokens each
    assert set(r["split_s"]) == {"generation", "reward", "logprobs", "backward", "other"}
    assert r["split_s"]["generation"] > 0 and r["split_s"]["backward"] > 0 and r["split_s"]["logprobs"] > 0
    assert r["rollout_tokens_per_s"] > 0 and r["roofline_tokens_per_s"] is None  # no bandwidth figure for a CPU
    assert len(r["rewards"]) == 2 and len(r["kl"]) == 2 and all(0 < x <= 3 for x in r["rewards"])


def test_gpu_arms_are_skipped_with_a_reason(cpu_run):
    run, stdout = cpu_run
    for stage in ("sft", "grpo"):
        for arm in ("unsloth", "unsloth_vllm", "transformers_vllm"):
            assert "no CUDA GPU" in _result(run, stage, arm)["skipped"]


def test_prints_the_tables(cpu_run):
    _, stdout = cpu_run
    assert "**SFT**" in stdout and "**GRPO**" in stdout
    assert "| tiny | lora | transformers |" in stdout and "| tiny | lora | unsloth | skipped: no CUDA GPU" in stdout
    assert "generation / reward / logprobs / backward / other s" in stdout and "wrote " in stdout


def test_parity_compares_each_arm_with_transformers():
    sys.path.insert(0, str(BENCH))
    import run_all

    a = {"arm": "transformers", "model": "m", "mode": "lora", "stage": "sft", "losses": [2.0, 1.0], "step_time_s": {}}
    b = dict(a, arm="unsloth", losses=[2.02, 1.0])
    g1 = dict(a, stage="grpo", rewards=[0.5, 0.7], kl=[0.0, 0.01])
    g2 = dict(g1, arm="unsloth", rewards=[0.6, 0.6], kl=[0.0, 0.03])
    rows = run_all.parity([a, b, g1, g2])
    assert rows[0]["max_loss_rel_diff"] == pytest.approx(0.01)
    assert rows[1]["rewards_mean_diff"] == pytest.approx(0.0) and rows[1]["kl_mean_diff"] == pytest.approx(0.01)


def test_the_fast_inference_arm_names_its_limit():
    sys.path.insert(0, str(BENCH))
    import bench

    from rrft_studio import config, models

    for model, mode, words in (("qwen2_vl_2b", "lora", "Qwen2.5-VL only"), ("qwen2_5_vl_3b", "full", "full fine-tune")):
        cfg_error = None
        try:
            models.check_fast_inference(bench.arm_config("unsloth_vllm", model, mode, "grpo",
                                                         ROOT / "nonexistent", 2, 16, 112))
        except config.ConfigError as e:
            cfg_error = str(e)
        assert cfg_error and words in cfg_error
