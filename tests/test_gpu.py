"""On CUDA: the chain through the Unsloth backend, its checkpoints, the preflight, the benchmark's Unsloth arms
(all skipped without a GPU). On the GPU machine `bash benchmarks/gpu.sh tests lora|full|qlora|arms` runs them
in parts that each fit one 10-minute command (`bash benchmarks/gpu.sh tests list` says which)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import MICRO, ROOT
from rrft_studio import runs

pytestmark = pytest.mark.gpu
# One Unsloth process (15-30 s of import, up to 90 s of compilation, the chain itself) must fail inside the
# GPU machine's 10-minute command, with pytest's own start, rather than be killed with the command's output.
TIMEOUT = 540
# An image without matplotlib (rrft-studio train's plots) still tests the stages, their checkpoints and the
# evaluation, without the report (test_stages_...).
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed: rrft-studio train writes its plots with it")


def python(*args: str) -> subprocess.CompletedProcess:
    """A fresh process (Unsloth must be imported before transformers), bounded by TIMEOUT."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=TIMEOUT)


# Both stages, their final checkpoints and the evaluation, in a fresh process (Unsloth is imported first).
STAGES = """
import json, sys
from rrft_studio import config, data, models, runs
cfg = config.load(sys.argv[1], sys.argv[2:])
backend, why = models.choose_backend(cfg)
from rrft_studio.eval import evaluate
from rrft_studio.train import grpo, sft
run_dir = runs.create(cfg)
out = sft.run(cfg, run_dir, models.source(cfg, data.corpus(cfg)), backend)
out = grpo.run(cfg, run_dir, str(out), backend)
result = evaluate.evaluate(str(out), cfg, evaluate.eval_rows(cfg, "id"), "grpo", "id")
print(json.dumps({"backend": backend, "final": str(out), "n": result["n"]}))
"""


MODES = {"full": ["model.finetune=full"], "lora": ["model.finetune=lora"],
         "qlora": ["model.finetune=lora", "model.load_in_4bit=true"]}


@pytest.fixture(scope="module")
def stages(tmp_path_factory, cache_dir):
    """STAGES once per mode (runs directory, finished process): the LoRA chain serves two tests."""
    done = {}

    def run(mode: str):
        if mode not in done:
            runs_dir = tmp_path_factory.mktemp(f"runs-{mode}")
            done[mode] = runs_dir, python("-c", STAGES, str(MICRO), f"run.runs_dir={runs_dir}",
                                         f"run.cache_dir={cache_dir}", "model.backend=unsloth", "model.lora_r=8",
                                         *MODES[mode])
        return done[mode]

    return run


@pytest.mark.parametrize("mode", list(MODES))
def test_stages_checkpoints_and_eval_through_unsloth(stages, mode):
    runs_dir, done = stages(mode)
    overrides = MODES[mode]
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "unsloth" and result["n"] == 8
    assert "preflight sft:" in done.stdout and "preflight grpo:" in done.stdout and " on NVIDIA" in done.stdout
    (run_dir,) = runs_dir.iterdir()
    for stage in ("sft", "grpo"):
        assert (run_dir / "final" / stage / "config.json").is_file()
        if "model.finetune=lora" in overrides:  # adapters alongside the merged 16-bit checkpoint
            assert (run_dir / "final" / stage / "lora" / "adapter_config.json").is_file()


@needs_matplotlib
@pytest.mark.parametrize("mode", list(MODES))
def test_unsloth_chain(tmp_path, cache_dir, mode):
    overrides = MODES[mode]
    done = python("-m", "rrft_studio.cli", "train", str(MICRO), f"run.runs_dir={tmp_path}",
                  f"run.cache_dir={cache_dir}", "model.backend=unsloth", "model.lora_r=8", *overrides)
    assert done.returncode == 0, done.stderr[-4000:]
    (run_dir,) = tmp_path.iterdir()
    status = runs.read_status(run_dir)
    assert status["backend"] == "unsloth" and status["state"] == "finished"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["accuracy_grpo"] is not None
    grpo = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r["stage"] == "grpo" and "reward" in r]
    assert len(grpo) == 2
    assert "preflight sft:" in done.stdout and "preflight grpo:" in done.stdout and " on NVIDIA" in done.stdout
    if "model.finetune=lora" in overrides:  # adapters alongside the merged 16-bit checkpoint
        assert (run_dir / "final" / "sft" / "lora" / "adapter_config.json").is_file()


def test_final_checkpoint_loads_with_transformers(stages):
    import torch
    from transformers import AutoModelForImageTextToText

    _, done = stages("lora")  # the same run as test_stages_..._through_unsloth[lora]
    assert done.returncode == 0, done.stderr[-4000:]
    final = json.loads(done.stdout.strip().splitlines()[-1])["final"]
    model = AutoModelForImageTextToText.from_pretrained(final, dtype=torch.bfloat16)  # this process: no Unsloth
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_auto_picks_unsloth_on_cuda():
    from rrft_studio import config, models

    backend, why = models.choose_backend(config.Config())
    assert backend == "unsloth" and "CUDA" in why


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_fast_inference_without_vllm_is_refused_before_the_run(tmp_path):
    done = python("-m", "rrft_studio.cli", "train", str(MICRO), f"run.runs_dir={tmp_path}",
                  "model.tiny.arch=qwen2_5_vl", "model.finetune=lora", "model.fast_inference=true")
    assert done.returncode == 2 and "needs vllm" in done.stderr and not any(tmp_path.iterdir())


def test_preflight_says_whether_it_fits_here():
    done = python("-m", "rrft_studio.cli", "preflight", "presets/counting_2b.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fits on NVIDIA" in done.stdout  # "fits" or "does not fit"


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_benchmark_unsloth_arm(tmp_path, stage):
    out = tmp_path / "r.json"
    done = python(str(ROOT / "benchmarks" / "bench.py"), "--arm", "unsloth", "--model", "tiny", "--stage", stage,
                  "--steps", "3", "--image-size", "112", "--gen-len", "16", "--cache", str(tmp_path / "cache"),
                  "--out", str(out))
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["backend"] == "unsloth" and result["memory_kind"] == "cuda max_memory_allocated"
    if stage == "grpo":
        assert result["rollout_tokens_per_step"] == 8 * 16 and result["split_s"]["backward"] > 0
    else:
        assert len(result["losses"]) == 3
