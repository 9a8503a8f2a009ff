"""The one module that knows the backends: Unsloth (FastVisionModel, CUDA) and transformers + peft (everywhere).

`choose_backend` runs before transformers or trl is imported, because Unsloth patches them on import; the
run records which backend ran and why. Model sources are a hub id, a local checkpoint directory, or the
built-in `tiny` factory. Each stage ends with a plain checkpoint (LoRA merged in) that the next stage, the
evaluator and the chat load with plain transformers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .config import Config, ConfigError

UNSLOTH_ARCHS = ("qwen2_vl", "qwen2_5_vl")
MIN_PIXELS = 56 * 56


def arch_of(cfg: Config) -> str:
    """model_type of the configured model, without loading it."""
    name = cfg.model.name
    if name == "tiny":
        return cfg.model.tiny.arch
    config_file = Path(name).expanduser() / "config.json"
    if config_file.is_file():
        return json.loads(config_file.read_text()).get("model_type", "unknown")
    lowered = name.lower()
    if "qwen2.5-vl" in lowered or "qwen2_5_vl" in lowered:
        return "qwen2_5_vl"
    if "qwen2-vl" in lowered or "qwen2_vl" in lowered:
        return "qwen2_vl"
    return "unknown"


def cuda_available(cfg: Config) -> bool:
    import torch

    return cfg.run.device != "cpu" and torch.cuda.is_available()


def choose_backend(cfg: Config) -> tuple[str, str]:
    """(backend, why). Call before importing transformers/trl; imports Unsloth when it is chosen."""
    cuda, arch, asked = cuda_available(cfg), arch_of(cfg), cfg.model.backend
    if asked == "unsloth" and not cuda:
        raise ConfigError("model.backend=unsloth needs a CUDA GPU (Unsloth has no CPU path for vision models): "
                          "set model.backend=auto or transformers")
    if cfg.run.device == "cuda" and not cuda:
        raise ConfigError("run.device=cuda but no CUDA GPU is visible: set run.device=auto or cpu")
    if asked == "transformers":
        backend, why = "transformers", "model.backend=transformers"
    elif asked == "unsloth":
        backend, why = "unsloth", "model.backend=unsloth"
    elif not cuda:
        backend, why = "transformers", "no CUDA GPU: Unsloth's vision models need CUDA"
    elif arch not in UNSLOTH_ARCHS:
        backend, why = "transformers", f"Unsloth's vision path does not cover model type '{arch}'"
    else:
        backend, why = "unsloth", f"CUDA GPU and a {arch} model"
    if backend == "unsloth":
        import unsloth  # noqa: F401  (patches transformers and trl; must come first)
    return backend, why


def dtype_of(cfg: Config):
    import torch

    if cfg.model.dtype == "auto":
        return torch.bfloat16 if cuda_available(cfg) else torch.float32
    return getattr(torch, cfg.model.dtype)


def is_bf16(cfg: Config) -> bool:
    import torch

    return dtype_of(cfg) == torch.bfloat16


# ---------------------------------------------------------------- sources

def source(cfg: Config, corpus: list[str] | None = None) -> str:
    """Where the base weights come from: a local path (tiny is built on first use) or a hub id."""
    if cfg.model.name != "tiny":
        path = Path(cfg.model.name).expanduser()
        return str(path) if path.exists() else cfg.model.name
    from . import tiny

    spec = tiny.TinySpec(**vars(cfg.model.tiny))
    return str(tiny.ensure(spec, Path(cfg.run.cache_dir).expanduser() / "models", corpus or []))


def load_processor(path: str, max_pixels: int, trust_remote_code: bool = False):
    """The model's processor with the image budget applied (set both size and max_pixels: one alone may not act)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    image_processor = processor.image_processor
    image_processor.max_pixels = max_pixels
    image_processor.min_pixels = min(MIN_PIXELS, max_pixels)
    image_processor.size = {"shortest_edge": image_processor.min_pixels, "longest_edge": max_pixels}
    processor.tokenizer.padding_side = "left"  # generation pads on the left
    return processor


VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def vision_token_ids(processor) -> list[int]:
    """Ids a completion must never contain: one sampled <|image_pad|> makes the image tokens outnumber
    the image features in the next forward pass, and the step fails."""
    tokenizer = getattr(processor, "tokenizer", processor)
    vocab = tokenizer.get_vocab()
    return sorted(vocab[t] for t in VISION_TOKENS if t in vocab)


# ---------------------------------------------------------------- training

def load_for_training(cfg: Config, stage: Any, path: str, backend: str):
    """(model, processor, peft_config or None) for a stage; the TRL trainer applies peft_config."""
    if backend == "unsloth":
        return _load_unsloth(cfg, stage, path)
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype_of(cfg), trust_remote_code=cfg.model.trust_remote_code)
    processor = load_processor(path, stage.max_pixels, cfg.model.trust_remote_code)
    if cfg.model.finetune == "full":
        if stage.freeze_vision:
            for name, param in model.named_parameters():
                if ".visual." in f".{name}":
                    param.requires_grad_(False)
        return model, processor, None
    return model, processor, lora_config(cfg, model)


def lora_targets(model, layers: list[str]) -> list[str]:
    """Names of the Linear layers that LoRA wraps: the chosen towers x the chosen module kinds."""
    import torch

    towers = [t for t in ("vision", "language") if t in layers] or ["vision", "language"]
    kinds = [k for k in ("attention", "mlp") if k in layers] or ["attention", "mlp"]
    attention = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv", "attn.proj")
    mlp = ("gate_proj", "up_proj", "down_proj", "fc1", "fc2")
    suffixes = (attention if "attention" in kinds else ()) + (mlp if "mlp" in kinds else ())
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or "lm_head" in name:
            continue
        tower = "vision" if ".visual." in f".{name}." else "language"
        if tower in towers and name.endswith(suffixes) and ".merger." not in name:
            names.append(name)
    if not names:
        raise ConfigError(f"model.lora_layers={layers} matches no layer of this model: use language, attention, mlp")
    return names


def lora_config(cfg: Config, model):
    from peft import LoraConfig

    m = cfg.model
    return LoraConfig(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                      target_modules=lora_targets(model, m.lora_layers), task_type="CAUSAL_LM")


def _load_unsloth(cfg: Config, stage: Any, path: str):
    from unsloth import FastVisionModel

    m = cfg.model
    model, processor = FastVisionModel.from_pretrained(
        path, load_in_4bit=m.load_in_4bit, full_finetuning=m.finetune == "full", dtype=None,
        use_gradient_checkpointing="unsloth" if stage.gradient_checkpointing else False,
        trust_remote_code=m.trust_remote_code)
    if m.finetune == "lora":
        model = FastVisionModel.get_peft_model(
            model, r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
            finetune_vision_layers="vision" in m.lora_layers and not stage.freeze_vision,
            finetune_language_layers="language" in m.lora_layers or "vision" not in m.lora_layers,
            finetune_attention_modules="attention" in m.lora_layers or "mlp" not in m.lora_layers,
            finetune_mlp_modules="mlp" in m.lora_layers or "attention" not in m.lora_layers,
            random_state=cfg.run.seed)
    elif stage.freeze_vision:
        for name, param in model.named_parameters():
            if ".visual." in f".{name}":
                param.requires_grad_(False)
    FastVisionModel.for_training(model)
    image_processor = processor.image_processor
    image_processor.max_pixels = stage.max_pixels
    image_processor.size = {"shortest_edge": min(MIN_PIXELS, stage.max_pixels), "longest_edge": stage.max_pixels}
    return model, processor, None


# ---------------------------------------------------------------- saving and inference

def save_final(model, processor, out_dir: Path, backend: str) -> Path:
    """Save a plain checkpoint (LoRA merged) atomically: a half-written final/ never exists."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if backend == "unsloth" and hasattr(model, "save_pretrained_merged"):
        model.save_pretrained_merged(str(tmp), processor, save_method="merged_16bit")
    else:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def load_for_inference(path: str, cfg: Config, max_pixels: int):
    """(model, processor) in eval mode on the run's device, through plain transformers."""
    from transformers import AutoModelForImageTextToText

    device = "cuda" if cuda_available(cfg) else "cpu"
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype_of(cfg), trust_remote_code=cfg.model.trust_remote_code).to(device).eval()
    return model, load_processor(path, max_pixels, cfg.model.trust_remote_code)
