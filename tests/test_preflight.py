"""Memory preflight: parameter counts, how the estimate moves, Unsloth's vLLM limits, the longest sample first."""

import json
from pathlib import Path

import pytest
from PIL import Image

from conftest import MICRO, ROOT, cli
from rrft_studio import data, settings, tiny
from rrft_studio.config import ConfigError
from rrft_studio.train import preflight

GiB = preflight.GiB
QWEN25 = "model.name=Qwen/Qwen2.5-VL-3B-Instruct"


def peak(preset: str, *overrides: str, stage: str = "grpo", backend: str = "unsloth") -> float:
    return preflight.estimate(settings.load(ROOT / "presets" / preset, list(overrides)), stage, backend).peak


@pytest.mark.parametrize("hub_id, billions", [
    ("Qwen/Qwen2-VL-2B-Instruct", 2.21), ("Qwen/Qwen2-VL-7B-Instruct", 8.29),
    ("Qwen/Qwen2.5-VL-3B-Instruct", 3.75), ("Qwen/Qwen2.5-VL-7B-Instruct", 8.29),
])
def test_published_shapes_have_the_published_sizes(hub_id, billions):
    text, vision = preflight.shape_of(preflight.PUBLISHED[hub_id]).params()
    assert abs((text + vision) / 1e9 - billions) < 0.01
    assert 0.6e9 < vision < 0.7e9


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl"])
def test_counts_match_a_built_model(tmp_path, arch):
    """Parameters and LoRA parameters counted from config.json equal those of the real model."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    from rrft_studio import models

    spec = tiny.TinySpec(arch=arch, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128,
                         vision_depth=2, vision_embed_dim=32, vision_heads=2, vocab_size=300)
    path = tiny.ensure(spec, tmp_path, ["count the cubes"])
    shape = preflight.shape_of(json.loads((path / "config.json").read_text()))
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    assert sum(shape.params()) == sum(p.numel() for p in model.parameters())
    cfg = settings.load(None, ["model.finetune=lora", "model.lora_r=4", "model.lora_layers=[vision,language,attention,mlp]"])
    cfg.grpo.freeze_vision = False
    counted, _, vision_grad = preflight._trainable(cfg, cfg.grpo, shape)
    lora = get_peft_model(model, models.lora_config(cfg, model, cfg.grpo))
    assert vision_grad and counted == sum(p.numel() for p in lora.parameters() if p.requires_grad)


def test_estimate_grows_with_the_workload():
    base = peak("counting_2b.yaml")
    assert peak("counting_2b.yaml", "grpo.num_generations=16") > base
    assert peak("counting_2b.yaml", "grpo.max_completion_length=1024") > base
    assert peak("counting_2b.yaml", "data.counting.image_size=640") > base
    assert peak("counting_2b.yaml", "grpo.micro_batch=16") > base
    assert peak("counting_2b.yaml", "model.finetune=lora") < base
    assert peak("counting_2b.yaml", "grpo.beta=0") < base  # no reference copy
    assert peak("spatial_7b.yaml", "model.load_in_4bit=true") < peak("spatial_7b.yaml")
    assert peak("counting_7b.yaml") > peak("counting_2b.yaml", "model.finetune=lora", "model.lora_r=64")
    assert peak("counting_2b.yaml", stage="sft", backend="transformers") > peak("counting_2b.yaml", stage="sft")


def test_gradient_checkpointing_and_frozen_vision_save_memory():
    assert peak("counting_2b.yaml", "grpo.gradient_checkpointing=false") > peak("counting_2b.yaml")
    assert peak("counting_2b.yaml", "grpo.freeze_vision=true") < peak("counting_2b.yaml")


def test_report_says_whether_it_fits():
    cfg = settings.load(ROOT / "presets" / "counting_2b.yaml")
    text = preflight.report(cfg, "grpo", "unsloth", device=None)
    assert "| KV cache (rollouts) |" in text and "**peak**" in text and "no GPU: estimate only" in text
    assert "fits on NVIDIA H100 80GB HBM3, 79.2 GiB" in preflight.report(cfg, "sft", "unsloth",
                                                                          device=("NVIDIA H100 80GB HBM3", 79.2 * GiB))
    assert "does not fit on Small GPU, 8.0 GiB" in preflight.report(cfg, "grpo", "unsloth", device=("Small GPU", 8 * GiB))


def test_fast_inference_replaces_the_kv_cache_with_vllms_reservation():
    cfg = settings.load(ROOT / "presets" / "counting_7b.yaml",
                      [QWEN25, "model.fast_inference=true", "model.gpu_memory_utilization=0.6"])
    est = preflight.estimate(cfg, "grpo", "unsloth", gpu_total=80 * GiB)
    names = [name for name, _, _ in est.parts]
    assert "vLLM engine" in names and "KV cache (rollouts)" not in names
    assert dict((n, b) for n, b, _ in est.parts)["vLLM engine"] == pytest.approx(0.6 * 80 * GiB)


def test_cli_preflight_prints_both_stages():
    done = cli("preflight", "presets/counting_2b.yaml", "grpo.num_generations=4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "preflight sft:" in done.stdout and "preflight grpo:" in done.stdout
    assert "Qwen/Qwen2-VL-2B-Instruct (qwen2_vl, 2.21 B parameters" in done.stdout
    assert "4 x 8" not in done.stdout and "56 completions" in done.stdout  # 14 prompts x G=4


def test_unknown_model_is_a_one_line_error():
    cfg = settings.load(None, ["model.name=someone/SomeVLM-13B"])
    with pytest.raises(ConfigError, match="preflight needs its config.json.*local checkpoint"):
        preflight.model_shape(cfg)


# ---------------------------------------------------------------- Unsloth's vLLM rollouts: limits

@pytest.mark.parametrize("overrides, words", [
    (["model.fast_inference=true"], ["Qwen2.5-VL only", "'qwen2_vl'", "model.fast_inference=false"]),
    ([QWEN25, "model.fast_inference=true"], ["full fine-tune", "model.finetune=lora", "model.fast_inference=false"]),
    ([QWEN25, "model.fast_inference=true", "model.finetune=lora", "model.lora_layers=[vision,language,mlp]",
      "grpo.freeze_vision=false"], ["vision layers", "remove vision from model.lora_layers"]),
    ([QWEN25, "model.fast_inference=true", "model.finetune=lora", "model.lora_layers=[attention,mlp]"],
     ["vision layers", "model.lora_layers=[language,attention,mlp]"]),  # no tower named: both towers
    ([QWEN25, "model.fast_inference=true", "model.finetune=lora", "data.task=spatial", "eval.splits=[id]"],
     ["one image per prompt", "spatial gives 2", "not tiled", "model.fast_inference=false"]),
    ([QWEN25, "model.fast_inference=true", "model.finetune=lora", "model.backend=transformers"],
     ["model.backend=auto or unsloth"]),
    (["model.gpu_memory_utilization=1.5"], ["model.gpu_memory_utilization", "between 0 and 1"]),
])
def test_fast_inference_limits_are_one_line_errors(overrides, words):
    with pytest.raises(ConfigError) as err:
        settings.load(None, overrides)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_fast_inference_needs_cuda_before_the_run_starts(tmp_path):
    from rrft_studio import models

    ok = settings.load(None, [QWEN25, "model.fast_inference=true", "model.finetune=lora"])
    assert models.uses_fast_inference(ok)
    assert not models.uses_fast_inference(settings.load(None, ["model.fast_inference=true", "run.stages=[sft]"]))
    with pytest.raises(ConfigError, match="needs the unsloth backend on a CUDA GPU.*model.fast_inference=false"):
        models.choose_backend(ok)
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", "model.fast_inference=true")
    assert done.returncode == 2 and "model.fast_inference=false" in done.stderr and not any(tmp_path.iterdir())


# ---------------------------------------------------------------- the longest sample first

def test_longest_first_order():
    tokens = [(16, 40), (64, 40), (16, 90), (16, 41), (144, 10), (16, 30)]
    order = data.longest_first(tokens, first=2, seed=0)
    assert order[:2] == [4, 2] and sorted(order) == list(range(6))
    assert order == data.longest_first(tokens, first=2, seed=0)  # seeded
    assert {tuple(data.longest_first(tokens, 1, seed)[1:]) for seed in range(8)} != {tuple(order[1:])}


@pytest.fixture(scope="module")
def big_one(tmp_path_factory):
    """Counting records where one image (id 'big') is four times the others' area."""
    from rrft_studio import tasks

    folder = tmp_path_factory.mktemp("records")
    task = tasks.get("counting")
    path = task.generate(folder, n=16, seed=3, spec=task.spec(image_size=112), split="train")
    records = json.loads(path.read_text())
    big = folder / "big.png"
    Image.open(folder / records[9]["image"]).resize((224, 224)).save(big)
    records[9].update(id="big", image=str(big))
    path.write_text(json.dumps(records))
    return path


class FirstBatch(Exception):
    pass


def _stage_cfg(tmp_path, cache_dir, train_file, stage):
    cfg = settings.load(MICRO, [f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", f"data.train_file={train_file}",
                              f"run.stages=[{stage}]", "sft.batch_size=2", "grpo.prompts_per_step=2"])
    from rrft_studio import data, models, runs

    models.choose_backend(cfg)
    return cfg, runs.create(cfg), models.source(cfg, data.corpus(cfg))


def test_sft_first_batch_holds_the_longest_sample(tmp_path, cache_dir, big_one, monkeypatch):
    from trl import SFTTrainer

    from rrft_studio.train import sft

    cfg, run_dir, source = _stage_cfg(tmp_path, cache_dir, big_one, "sft")
    seen = []

    def first(self, model, inputs, *args, **kwargs):
        seen.append(inputs["image_grid_thw"].tolist())  # (images, 3): t, h, w in patches
        raise FirstBatch

    monkeypatch.setattr(SFTTrainer, "compute_loss", first)
    with pytest.raises(FirstBatch):
        sft.run(cfg, run_dir, source, "transformers")
    assert [1, 16, 16] in seen[0] and len(seen[0]) == 2  # the 224-pixel image, in a batch of 2


def test_grpo_first_rollout_batch_holds_the_longest_prompt(tmp_path, cache_dir, big_one, monkeypatch):
    from trl import GRPOTrainer

    from rrft_studio.train import grpo

    cfg, run_dir, source = _stage_cfg(tmp_path, cache_dir, big_one, "grpo")
    seen = []

    def first(self, batch):
        seen.append([row["id"] for row in batch])
        raise FirstBatch

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", first)
    with pytest.raises(FirstBatch):
        grpo.run(cfg, run_dir, source, "transformers")
    assert "big" in seen[0] and len(set(seen[0])) == 2  # 2 prompts x G=4


def test_report_reads_the_loaded_models_config(cache_dir):
    from rrft_studio import data, models

    cfg = settings.load(MICRO, [f"run.cache_dir={cache_dir}"])
    path = Path(models.source(cfg, data.corpus(cfg)))
    shape = preflight.shape_of(json.loads((path / "config.json").read_text()))
    text = preflight.report(cfg, "grpo", "transformers", (16, 60), None, shape)
    assert "micro batch 4 x 92 tokens (16 image + 60 text + 16 completion)" in text
