"""The CUDA path's contract, checked on the CPU: what the project hands Unsloth and TRL on a GPU (keywords bound to
the installed Unsloth's own signatures, the model named, fp32 master weights for a full fine-tune, the reference
model's dtype), the refusals a GPU machine can meet, and the memory preflight against bytes counted by hand."""

import ast
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MICRO, ROOT, cli
from rrft_studio import data, models, settings
from rrft_studio.config import ConfigError
from rrft_studio.train import preflight

GiB = 1024 ** 3


# ---------------------------------------------------------------- fp32 master weights

def _micro(cache_dir, *overrides):
    cfg = settings.load(MICRO, [f"run.cache_dir={cache_dir}", *overrides])
    return cfg, models.source(cfg, data.corpus(cfg))


def _one_sft_step(cfg, source, tmp_path):
    """One real SFTTrainer step at lr 1e-6 on the micro model: (model, weights before, the dtype of a decoder
    layer's output in that step)."""
    import torch
    from trl import SFTTrainer

    from rrft_studio.train import sft

    model, processor, _ = models.load_for_training(cfg, cfg.sft, source, "transformers")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    seen = []
    layer = model.model.language_model.layers[0].mlp.down_proj
    layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    rows = data.stage_records(cfg, "sft")[:4]
    train = data.sft_dataset(rows, data.task_of(cfg), "cot", cfg)
    trainer = SFTTrainer(model=model, args=sft.trainer_args(cfg, tmp_path, use_cpu=True), train_dataset=train,
                         processing_class=processor)
    trainer.train()
    assert torch.is_tensor(next(iter(before.values())))
    return model, before, seen


def test_a_full_fine_tune_keeps_fp32_master_weights_and_a_step_at_1e_6_moves_them(tmp_path, cache_dir):
    """model.dtype=bfloat16 (what `auto` gives on a GPU) on the transformers backend, here on the CPU: trainable
    weights fp32, frozen ones bf16, the forward in bf16 autocast, and one AdamW step at GRPO's 1e-6 changes nearly
    every weight. Pure bf16 weights (the fault this guards against) hardly move at that learning rate."""
    import torch

    cfg, source = _micro(cache_dir, "model.dtype=bfloat16", "sft.lr=1e-6", "sft.max_steps=1", "sft.freeze_vision=true",
                         "sft.weight_decay=0", "sft.save_steps=100")
    assert models.keeps_master_weights(cfg) and models.precision_args(cfg) == {"bf16": True, "fp16": False}
    model, before, seen = _one_sft_step(cfg, source, tmp_path / "fp32")
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values())
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)  # the vision tower, frozen in this stage
    assert seen and set(seen) == {torch.bfloat16}  # the forward ran in bf16
    moved = sum(int((trainable[n] != w).sum()) for n, w in before.items())
    total = sum(w.numel() for w in before.values())
    assert moved / total > 0.9, (moved, total)

    # the same step on pure bf16 weights: at most a few percent can move (a bf16 weight above ~256 x lr cannot)
    model = models.load_for_training(cfg, cfg.sft, source, "transformers")[0]
    import rrft_studio.models as m

    keep = m._keep_master_weights
    m._keep_master_weights = lambda model: None
    try:
        model, before, _ = _one_sft_step(cfg, source, tmp_path / "bf16")
    finally:
        m._keep_master_weights = keep
    params = dict(model.named_parameters())
    assert params["model.language_model.layers.0.mlp.down_proj.weight"].dtype == torch.bfloat16
    moved_bf16 = sum(int((params[n] != w).sum()) for n, w in before.items())
    assert moved_bf16 / total < 0.1 < moved / total


def test_a_full_fine_tunes_final_checkpoint_is_saved_in_the_compute_dtype(tmp_path, cache_dir):
    import torch

    cfg, source = _micro(cache_dir, "model.dtype=bfloat16")
    model, processor, _ = models.load_for_training(cfg, cfg.sft, source, "transformers")
    assert any(p.dtype == torch.float32 for p in model.parameters())
    out = models.save_final(model, processor, tmp_path / "final", "transformers", dtype=torch.bfloat16)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(out / "model.safetensors")).values()} == {torch.bfloat16}


def test_lora_keeps_16_bit_frozen_weights_and_fp32_adapters(cache_dir):
    import torch

    cfg, source = _micro(cache_dir, "model.dtype=bfloat16", "model.finetune=lora", "model.lora_r=4")
    assert not models.keeps_master_weights(cfg)
    model, _, peft_config = models.load_for_training(cfg, cfg.sft, source, "transformers")
    assert peft_config is not None and {p.dtype for p in model.parameters()} == {torch.bfloat16}


# ---------------------------------------------------------------- GRPO's reference model

def test_grpos_reference_model_has_the_policys_compute_dtype(tmp_path, cache_dir):
    import torch
    from trl import GRPOTrainer

    from rrft_studio.train import grpo

    cfg, source = _micro(cache_dir, "model.dtype=bfloat16", "grpo.beta=0.04")
    assert grpo.reference_init(cfg) == {"dtype": "bfloat16"}
    model, processor, _ = models.load_for_training(cfg, cfg.grpo, source, "transformers")
    rows = data.stage_records(cfg, "grpo")[:4]
    trainer = GRPOTrainer(model=model, reward_funcs=grpo.reward_funcs(cfg), train_dataset=data.grpo_dataset(
        rows, data.task_of(cfg), cfg), processing_class=processor, args=grpo.trainer_args(cfg, tmp_path, True))
    assert {p.dtype for p in trainer.ref_model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.float32}
    # no copy with LoRA (TRL disables the adapters) or without the KL term; fp32 where the compute dtype is fp32
    assert grpo.reference_init(settings.load(MICRO, ["model.finetune=lora"])) is None
    assert grpo.reference_init(settings.load(MICRO, ["grpo.beta=0"])) is None
    assert grpo.reference_init(settings.load(MICRO)) == {"dtype": "float32"}


# ---------------------------------------------------------------- Unsloth's signatures, read from its source

def _unsloth_source(relative: str) -> ast.Module:
    """A module of the installed Unsloth, parsed (importing it here would take the CPU stand-ins instead of the
    CUDA classes, whose FastVisionModel cannot load a vision model)."""
    spec = importlib.util.find_spec("unsloth")
    root = Path(next(iter(spec.submodule_search_locations)))
    return ast.parse((root / relative).read_text(encoding="utf-8"))


def _method(tree: ast.Module, cls: str, name: str) -> inspect.Signature:
    """inspect.Signature of cls.name as written in the source (defaults are placeholders: only names bind)."""
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    (fn,) = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == name]
    a, P = fn.args, inspect.Parameter
    params = [P(x.arg, P.POSITIONAL_OR_KEYWORD) for x in a.posonlyargs + a.args]
    for x, d in zip(reversed(a.args), reversed(a.defaults)):
        i = [p.name for p in params].index(x.arg)
        params[i] = params[i].replace(default=ast.unparse(d))
    if a.vararg:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    params += [P(x.arg, P.KEYWORD_ONLY, default=ast.unparse(d) if d else P.empty)
               for x, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    return inspect.Signature(params)


def _named(sig: inspect.Signature, kwargs: dict, *positional) -> None:
    """Every keyword binds to a parameter of its own name: none is swallowed by **kwargs (where a misspelt
    keyword goes unnoticed). Unsloth's methods are static: the model, where they take one, comes first."""
    sig.bind(*positional, **kwargs)
    named = {p.name for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD}
    assert not set(kwargs) - named, set(kwargs) - named


@pytest.fixture(scope="module")
def unsloth_api():
    loader, vision = _unsloth_source("models/loader.py"), _unsloth_source("models/vision.py")
    return {"from_pretrained": _method(loader, "FastModel", "from_pretrained"),
            "get_peft_model": _method(vision, "FastBaseModel", "get_peft_model"),
            "for_training": _method(loader, "FastModel", "for_training"),
            "for_inference": _method(loader, "FastModel", "for_inference"),
            "vision_is_fast_model": [b.id for n in loader.body if isinstance(n, ast.ClassDef)
                                     and n.name == "FastVisionModel" for b in n.bases]}


@pytest.mark.parametrize("mode, overrides", [
    ("full", ["model.name=Qwen/Qwen2-VL-2B-Instruct", "model.finetune=full"]),
    ("lora", ["model.name=Qwen/Qwen2-VL-7B-Instruct", "model.finetune=lora"]),
    ("qlora", ["model.name=Qwen/Qwen2-VL-7B-Instruct", "model.finetune=lora", "model.load_in_4bit=true"]),
    ("vllm", ["model.name=Qwen/Qwen2.5-VL-7B-Instruct", "model.finetune=lora", "model.fast_inference=true"]),
])
def test_unsloth_keywords_bind_to_its_signatures_and_name_the_model(unsloth_api, mode, overrides, monkeypatch):
    import torch

    assert unsloth_api["vision_is_fast_model"] == ["FastModel"]  # FastVisionModel's methods are FastModel's
    monkeypatch.setattr(models, "cuda_available", lambda cfg: True)  # what these keywords are on a GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cfg = settings.load(None, overrides)
    name = cfg.model.name
    for stage in (cfg.sft, cfg.grpo):
        kwargs = models.unsloth_load_kwargs(cfg, stage, name)
        _named(unsloth_api["from_pretrained"], kwargs)
        assert kwargs["model_name"] == name and kwargs["use_exact_model_name"] is True  # no 'unsloth/...' swap
        assert kwargs["dtype"] == torch.bfloat16 and kwargs["load_in_4bit"] is (mode == "qlora")
        assert kwargs["full_finetuning"] is (mode == "full")
        assert kwargs.get("float32_mixed_precision") is (True if mode == "full" else None)  # fp32 master weights
        assert kwargs.get("fast_inference", False) is (mode == "vllm" and stage is cfg.grpo)
        if mode != "full":
            peft = models.unsloth_peft_kwargs(cfg, stage)
            _named(unsloth_api["get_peft_model"], peft, "model")
            assert peft["max_seq_length"] == kwargs["max_seq_length"] and peft["r"] == cfg.model.lora_r
    _named(unsloth_api["for_training"], {"use_gradient_checkpointing": "unsloth"}, "model")
    _named(unsloth_api["for_inference"], {}, "model")
    inference = models.unsloth_inference_kwargs(name, cfg)
    _named(unsloth_api["from_pretrained"], inference)
    assert inference["model_name"] == name and inference["use_exact_model_name"] is True
    assert inference["load_in_4bit"] is False


def test_unsloth_gets_a_local_checkpoint_as_an_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "runs" / "final").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    # 'runs/final' would read to Unsloth as a hub id (one slash): it looks that up online
    assert models.unsloth_name("runs/final") == str(tmp_path / "runs" / "final")
    assert models.unsloth_name("Qwen/Qwen2-VL-2B-Instruct") == "Qwen/Qwen2-VL-2B-Instruct"


def test_unsloths_merged_save_is_not_used():
    """Unsloth's save_pretrained_merged re-reads the base weights under its own 'unsloth/...' name (a 16-bit copy
    fetched from the hub, offline a crash after Stage 1 trained): the project merges into the named base itself."""
    assert "save_pretrained_merged" not in (ROOT / "rrft_studio" / "models.py").read_text()


def test_an_unsloth_lora_stage_is_merged_into_the_named_base(tmp_path, cache_dir):
    """save_final on the unsloth backend: the adapters saved, then merged into the base as the user named it,
    reloaded with transformers (here a peft model over the micro model stands in for Unsloth's)."""
    import copy

    import torch
    from peft import get_peft_model

    cfg, source = _micro(cache_dir, "model.finetune=lora", "model.lora_r=4")
    model, processor, peft_config = models.load_for_training(cfg, cfg.sft, source, "transformers")
    model = get_peft_model(model, peft_config)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # adapters that change the weights
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    out = models.save_final(model, processor, tmp_path / "final", "unsloth", base=source)
    assert (out / "lora" / "adapter_config.json").is_file()
    from transformers import AutoModelForImageTextToText

    def q_proj(path):
        return AutoModelForImageTextToText.from_pretrained(path).state_dict()[key]

    key = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(q_proj(out), expected[key], atol=1e-6)
    assert not torch.allclose(q_proj(source), expected[key], atol=1e-3)
    with pytest.raises(ValueError, match="base="):
        models.save_final(model, processor, tmp_path / "other", "unsloth")


# ---------------------------------------------------------------- the trainer class that trained

def test_a_run_on_unsloth_stops_when_unsloth_could_not_patch_trl():
    cfg = settings.load(None)
    with pytest.raises(ConfigError) as err:
        models.check_trainers(cfg, "unsloth", {"sft": "UnslothSFTTrainer", "grpo": "GRPOTrainer"})
    assert "\n" not in str(err.value) and "GRPOTrainer" in str(err.value)
    assert "model.allow_stock_trainer=true" in str(err.value) and "constraints.txt" in str(err.value)
    models.check_trainers(cfg, "unsloth", {"sft": "UnslothSFTTrainer", "grpo": "UnslothGRPOTrainer"})
    models.check_trainers(cfg, "transformers", {"sft": "SFTTrainer", "grpo": "GRPOTrainer"})
    models.check_trainers(settings.load(None, ["model.allow_stock_trainer=true"]), "unsloth", {"grpo": "GRPOTrainer"})
    assert models.trainer_classes(["sft", "grpo"]) == {"sft": "SFTTrainer", "grpo": "GRPOTrainer"}  # no Unsloth here


# ---------------------------------------------------------------- refusals a GPU machine can meet

DRIVER_550 = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
DRIVER_580 = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder)\n"


def test_a_cuda_13_torch_on_an_old_driver_is_one_line(tmp_path, monkeypatch):
    import torch

    if not (torch.version.cuda or "").startswith("13") or torch.cuda.is_available():
        pytest.skip("needs the pinned CUDA 13 build of torch on a machine where it sees no GPU")
    driver = tmp_path / "version"
    monkeypatch.setattr(models, "NVIDIA_DRIVER", driver)
    cfg = settings.load(None)
    assert models.cuda_problem(cfg) is None  # no driver: a machine without an NVIDIA GPU
    preflight.check_training_device(cfg)
    driver.write_text(DRIVER_550)
    assert models.driver_version() == (550, 54, 15)
    with pytest.raises(ConfigError) as err:
        preflight.check_training_device(cfg)
    message = str(err.value)
    assert "\n" not in message and "CUDA 13.0" in message and "580" in message and "550.54.15" in message
    assert "run.device=cpu" in message
    with pytest.raises(ConfigError, match="driver is 550.54.15"):
        models.decide_backend(settings.load(None, ["run.device=cuda"]))
    preflight.check_training_device(settings.load(None, ["run.device=cpu"]))  # asked for the CPU: no refusal
    driver.write_text(DRIVER_580)
    assert models.driver_version() == (580, 65, 6) and models.cuda_problem(cfg) is None


def test_auto_does_not_fall_to_the_cpu_for_a_model_that_cannot_train_there(tmp_path):
    done = cli("train", "presets/counting_2b.yaml", f"run.runs_dir={tmp_path}")
    assert done.returncode == 2 and not any(tmp_path.iterdir())
    (line,) = done.stderr.strip().splitlines()
    assert "no CUDA GPU is visible" in line and "2.2 B parameters" in line and "run.device=cpu" in line
    preflight.check_training_device(settings.load(ROOT / "presets" / "counting_2b.yaml", ["run.device=cpu"]))
    preflight.check_training_device(settings.load(None))  # the tiny model trains anywhere


def test_several_images_a_prompt_with_fast_inference_is_refused_from_the_data(tmp_path, cache_dir):
    from rrft_studio.train import pipeline
    from rrft_studio.tasks import spatial

    spatial.generate(tmp_path, n=4, seed=0, spec=spatial.SceneSpec(image_size=56), split="train")
    cfg = settings.load(None, ["model.name=Qwen/Qwen2.5-VL-7B-Instruct", "model.finetune=lora", "data.task=custom",
                             f"data.train_file={tmp_path / 'train.json'}", "eval.enabled=false",
                             "method=rft_zero", f"run.cache_dir={cache_dir}"])
    cfg.model.fast_inference = True  # a custom task passes the config's check: its records say how many images
    with pytest.raises(ConfigError) as err:
        pipeline.check_data(cfg)
    message = str(err.value)
    assert "\n" not in message and "one image per prompt" in message and "have 2" in message
    assert "model.fast_inference=false" in message


def test_the_sweep_starts_no_backend_in_its_own_process(tmp_path):
    """The sweep's parent only starts runs: Unsloth (and a CUDA context) stay out of it, even where a run will
    use Unsloth. Here the GPU is declared present so that the decision picks Unsloth."""
    code = f"""
import sys
from rrft_studio import cli, models
from rrft_studio.eval import sweep
models.cuda_available = lambda cfg: True
root = __import__("pathlib").Path("{tmp_path}")
(root / "sweep.json").write_text('{{"points": [], "spread": []}}')
sweep.run = lambda *a, **k: root  # the runs themselves are not the point here
assert models.decide_backend(cli.settings.load("presets/demo.yaml"))[0] == "unsloth"
assert cli.main(["sweep", "presets/demo.yaml", "run.runs_dir={tmp_path}", "--samples", "16400"]) == 0
print(sorted(m for m in ("unsloth", "trl", "transformers") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_unsloth_compiles_into_the_cache_and_offline_sends_no_statistics(tmp_path):
    code = f"""
import os, sys, types
sys.modules["unsloth"] = types.ModuleType("unsloth")  # the import's side effects are Unsloth's, not ours
from rrft_studio import config, models
models.cuda_available = lambda cfg: True
os.environ["HF_HUB_OFFLINE"] = "1"
print(models.choose_backend(config.load(None, ["run.cache_dir={tmp_path}"]))[0])
print(os.environ["UNSLOTH_COMPILE_LOCATION"], os.environ.get("UNSLOTH_DISABLE_STATISTICS"))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNSLOTH_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    backend, where = done.stdout.strip().splitlines()[-2:]
    assert backend == "unsloth"
    assert where == f"{tmp_path / 'unsloth_compiled_cache'} 1"


# ---------------------------------------------------------------- preflight against bytes counted by hand

P2B, P7B = 2_208_985_600, 8_291_375_616  # Qwen2-VL-2B / 7B-Instruct parameters (the hub's counts)
LORA_7B = 28 * 64 * ((3584 + 3584) * 2 + (3584 + 512) * 2 + (3584 + 18944) * 3)  # r64 on q,k,v,o,gate,up,down


def _parts(preset: str, stage: str, *overrides: str) -> tuple[dict, float]:
    cfg = settings.load(ROOT / "presets" / preset, list(overrides))
    est = preflight.estimate(cfg, stage, "unsloth")
    return {name: size for name, size, _ in est.parts}, est.peak


def test_preflight_of_the_2b_full_fine_tune_counted_by_hand():
    parts, peak = _parts("counting_2b.yaml", "grpo")
    tokens = 121 + 80 + 512  # 320 px image -> 308 px, 11 x 11 merged tokens; prompt + template; completion
    hand = {
        "weights": P2B * 4,  # the whole model trains in GRPO: fp32 master weights
        "autocast copies": P2B * 2,
        "reference model": P2B * 2,  # bf16, the compute dtype
        "AdamW states": P2B * 8,
        "gradients": P2B * 4,
        "activations": 8 * (tokens * (4 * 1536 + 2 * (8 * 1536 + 4 * 8960)) + 4 * 121 * (32 * 2 * 1280 + 2 * (8 * 1280 + 4 * 5120))),
        "logits + loss": 8 * 512 * 151936 * 2,
        "KV cache (rollouts)": 14 * 8 * tokens * 28 * 2 * 128 * 2 * 2,  # layers, kv heads, head dim, K and V, bf16
    }
    for name, size in hand.items():
        assert parts[name] == pytest.approx(size, rel=1e-9), name
    training = parts["gradients"] + parts["activations"] + parts["logits + loss"]
    fixed = sum(hand[k] for k in ("weights", "autocast copies", "reference model", "AdamW states"))
    rollouts = parts["KV cache (rollouts)"] + parts["prefill (rollouts)"]
    assert peak == pytest.approx(fixed + max(training, rollouts) + GiB + 0.1 * max(training, rollouts))
    assert peak < 80 * GiB
    sft, _ = _parts("counting_2b.yaml", "sft")  # Stage 1 freezes the vision tower: 665 M frozen in bf16
    assert sft["weights"] == pytest.approx(1_543_714_304 * 4 + 665_271_296 * 2)
    assert sft["AdamW states"] == pytest.approx(1_543_714_304 * 8)


def test_preflight_of_the_7b_lora_counted_by_hand():
    parts, peak = _parts("counting_7b.yaml", "grpo")
    tokens = 121 + 80 + 512
    assert LORA_7B == 161_480_704
    hand = {
        "weights": P7B * 2,  # frozen, bf16
        "AdamW states": LORA_7B * 8,
        "gradients": LORA_7B * 4,
        "activations": 8 * (tokens * (4 * 3584 + 2 * (8 * 3584 + 4 * 18944)) + 4 * 121 * 2 * (8 * 1280 + 4 * 5120)),
        "logits + loss": 8 * 512 * 152064 * 2,
        "KV cache (rollouts)": 14 * 8 * tokens * 28 * 4 * 128 * 2 * 2,
    }
    for name, size in hand.items():
        assert parts[name] == pytest.approx(size, rel=1e-9), name
    assert "reference model" not in parts and "autocast copies" not in parts  # LoRA: the adapters are switched off
    assert peak < 80 * GiB
    sft, _ = _parts("counting_7b.yaml", "sft")
    assert sft["activations"] == pytest.approx(2 * ((121 + 336) * (4 * 3584 + 2 * (8 * 3584 + 4 * 18944))
                                                    + 4 * 121 * 2 * (8 * 1280 + 4 * 5120)))
    assert sft["logits + loss"] == pytest.approx(2 * (121 + 336) * 152064 * 2)


@pytest.mark.parametrize("preset", ["counting_2b", "counting_7b", "structure_2b", "structure_7b", "spatial_2b",
                                    "spatial_7b"])
def test_each_paper_preset_fits_one_80_gb_gpu(preset):
    for stage in ("sft", "grpo"):
        assert _parts(f"{preset}.yaml", stage)[1] < 80 * GiB, stage


def test_cli_preflight_shows_master_weights_and_the_bf16_reference():
    done = cli("preflight", "presets/counting_2b.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x 4 bytes (fp32 master weights)" in done.stdout
    assert "| reference model | 4.11 |" in done.stdout and "(the compute dtype)" in done.stdout


# ---------------------------------------------------------------- TRL's fused LM head: the kernel on a GPU, torch elsewhere

def test_trls_log_probability_kernel_stays_on_a_gpu_and_is_plain_torch_without_one(monkeypatch):
    """TRL 1.15 computes every log-probability through a Triton kernel (no setting turns it off) that needs a GPU
    driver. Both sides of the switch: on CUDA TRL's own stays; without it TorchLogProbs takes its place, and gives
    the log-probabilities, entropies and top-1 flags of the full logits."""
    import torch
    import trl.trainer.utils as trl_utils

    installed = trl_utils._ChunkedLogProbFunction
    kernel = installed.__module__.startswith("trl.kernels")  # TRL 1.15's Triton kernel (earlier: torch already)
    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", installed)
    models.fit_trl_to_device(cuda=True)
    assert trl_utils._ChunkedLogProbFunction is installed
    models.fit_trl_to_device(cuda=False)
    assert trl_utils._ChunkedLogProbFunction is (models.TorchLogProbs if kernel else installed)

    torch.manual_seed(0)
    hidden, weight = torch.randn(6, 8, requires_grad=True), torch.randn(11, 8)  # (N, H), (V, H)
    targets = torch.randint(0, 11, (6,))
    log_probs, entropy, _, _, top1 = models.TorchLogProbs.apply(
        hidden, weight, None, targets, 0.7, 4096, None, 1.0, ("log_probs", "entropy", "is_top1"))
    full = (hidden @ weight.T / 0.7).log_softmax(-1)  # (N, V)
    assert torch.allclose(log_probs, full.gather(-1, targets[:, None]).squeeze(-1), atol=1e-6)
    assert torch.allclose(entropy, -(full.exp() * full).sum(-1), atol=1e-6)
    assert torch.equal(top1, full.argmax(-1) == targets)
    log_probs.sum().backward()
    assert hidden.grad is not None and torch.isfinite(hidden.grad).all()
