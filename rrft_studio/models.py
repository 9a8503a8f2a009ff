"""The one module that knows the backends: Unsloth (FastVisionModel, CUDA) and transformers + peft (everywhere).

`choose_backend` runs before transformers or trl is imported, because Unsloth patches them on import; the
run records which backend ran and why. Model sources are a hub id, a local checkpoint directory, or the
built-in `tiny` factory. Each stage ends with a plain checkpoint (LoRA merged in, the adapters kept beside it
in lora/) that the next stage, the evaluator and the chat load with plain transformers (the evaluator through
Unsloth's FastVisionModel in inference mode where this process chose Unsloth). With
model.fast_inference, GRPO's rollouts go through Unsloth's vLLM engine; `check_fast_inference` enforces its
limits when the config is validated, before anything runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from . import ranks, tasks
from .config import Config, ConfigError

UNSLOTH_ARCHS = ("qwen2_vl", "qwen2_5_vl")
FAST_INFERENCE_ARCHS = ("qwen2_5_vl",)  # Unsloth's VLLM_SUPPORTED_VLM has qwen2_5_vl, not qwen2_vl
MIN_PIXELS = 56 * 56
# vLLM pins torch exactly (0.30: torch 2.13.0, not constraints.txt's 2.14.1): it installs with its own set
VLLM_INSTALL = 'pip install -c constraints-vllm.txt -e ".[vllm]" (vLLM pins its own torch; that set resolves together)'
CHOSEN: str | None = None  # the backend choose_backend picked in this process (None: it was not called)


def arch_of(cfg: Config) -> str:
    """model_type of the configured model, without loading it."""
    name = cfg.model.name
    if name == "tiny":
        return cfg.model.tiny.arch
    config_file = Path(name).expanduser() / "config.json"
    if config_file.is_file():
        return _checkpoint_config(config_file).get("model_type", "unknown")
    lowered = name.lower()
    if "qwen2.5-vl" in lowered or "qwen2_5_vl" in lowered:
        return "qwen2_5_vl"
    if "qwen2-vl" in lowered or "qwen2_vl" in lowered:
        return "qwen2_vl"
    return "unknown"


def _checkpoint_config(path: Path) -> dict:
    try:
        tree = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"model.name: {path} is not valid JSON ({' '.join(str(e).split())[:120]}): the checkpoint "
                          "folder is damaged; copy it again") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"model.name: {path} holds {type(tree).__name__}, not a model config: the checkpoint is damaged")
    return tree


HUB_HOST = ("huggingface.co", 443)


def offline() -> bool:
    """The user said the hub is out of reach (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_source(cfg: Config) -> None:
    """Before a run directory exists: the model can be loaded from where config names it. A local folder holds a
    Qwen2-VL / Qwen2.5-VL config; a hub id is in the local cache or the hub can be reached (offline, loading
    would retry for minutes before failing)."""
    name = cfg.model.name
    if name == "tiny":
        return
    path = Path(name).expanduser()
    if path.exists():
        arch = _checkpoint_config(path / "config.json").get("model_type")
        if arch not in UNSLOTH_ARCHS:
            raise ConfigError(f"model.name: {path} is a '{arch or 'no model_type'}' checkpoint: this project trains "
                              f"Qwen2-VL and Qwen2.5-VL ({', '.join(UNSLOTH_ARCHS)})")
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    if not offline():
        import socket

        try:
            socket.create_connection(HUB_HOST, timeout=3).close()
            return
        except OSError:
            pass
    raise ConfigError(f"model.name: '{name}' is not in the local Hugging Face cache and the hub cannot be reached: "
                      "download it where there is a network (huggingface-cli download "
                      f"{name}) or give a local checkpoint folder")


def cuda_available(cfg: Config) -> bool:
    import torch

    return cfg.run.device != "cpu" and torch.cuda.is_available()


NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # the loaded kernel module's version line (Linux)
MIN_DRIVER = {13: 580, 12: 525, 11: 450}  # the oldest Linux driver each CUDA major version runs on


def driver_version() -> tuple[int, ...] | None:
    """The NVIDIA driver's version where one is loaded, else None."""
    try:
        text = NVIDIA_DRIVER.read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"Kernel Module\b.*?\s(\d+(?:\.\d+)+)\s", text)
    return tuple(int(p) for p in found.group(1).split(".")) if found else None


def cuda_problem(cfg: Config) -> str | None:
    """Why a machine with an NVIDIA driver sees no CUDA GPU through this torch, where the driver's age says it:
    a torch built for CUDA 13 reads as 'no GPU' on a driver older than 580, and `auto` would train on the CPU."""
    import torch

    if cfg.run.device == "cpu" or not torch.version.cuda or torch.cuda.is_available():
        return None
    driver = driver_version()
    need = MIN_DRIVER.get(int(torch.version.cuda.split(".")[0]))
    if driver is None or need is None or driver[0] >= need:
        return None
    return (f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, which needs NVIDIA driver {need} or "
            f"newer, and this machine's driver is {'.'.join(map(str, driver))}, so torch sees no GPU: update the "
            "driver, or install a torch built for an older CUDA (https://pytorch.org/get-started/locally/), or set "
            "run.device=cpu to run on the CPU")


def decide_backend(cfg: Config) -> tuple[str, str]:
    """(backend, why), importing nothing: the process that trains imports it (`choose_backend`)."""
    cuda, arch, asked = cuda_available(cfg), arch_of(cfg), cfg.model.backend
    if asked == "unsloth" and not cuda:
        raise ConfigError(cuda_problem(cfg) or "model.backend=unsloth needs a CUDA GPU (Unsloth has no CPU path for "
                          "vision models): set model.backend=auto or transformers")
    if cfg.run.device == "cuda" and not cuda:
        raise ConfigError(cuda_problem(cfg) or "run.device=cuda but no CUDA GPU is visible: set run.device=auto or cpu")
    if asked == "transformers":
        backend, why = "transformers", "model.backend=transformers"
    elif asked == "unsloth":
        backend, why = "unsloth", "model.backend=unsloth"
    elif ranks.wanted(cfg) or ranks.launched():
        backend, why = "transformers", (f"{cfg.run.processes} process(es) through accelerate: Unsloth's kernels train "
                                        "on one GPU")
    elif not cuda:
        backend, why = "transformers", "no CUDA GPU: Unsloth's vision models need CUDA"
    elif arch not in UNSLOTH_ARCHS:
        backend, why = "transformers", f"Unsloth's vision path does not cover model type '{arch}'"
    else:
        backend, why = "unsloth", f"CUDA GPU and a {arch} model"
    if uses_fast_inference(cfg):
        if backend != "unsloth":
            raise ConfigError(f"model.fast_inference=true needs the unsloth backend on a CUDA GPU, and this run gets "
                              f"{backend} ({why}): set model.fast_inference=false (rollouts through generate)")
        if importlib.util.find_spec("vllm") is None:
            raise ConfigError(f"model.fast_inference=true needs vllm, which is not installed: {VLLM_INSTALL}, "
                              "or set model.fast_inference=false (rollouts through generate)")
        why += "; GRPO rollouts through Unsloth's vLLM engine (model.fast_inference)"
    return backend, why


def choose_backend(cfg: Config) -> tuple[str, str]:
    """(backend, why). Call before importing transformers/trl; imports Unsloth when it is chosen. Unsloth's
    compiled kernels go to run.cache_dir (not the working directory), and offline its usage statistics (a
    network probe at every model load) are off."""
    global CHOSEN
    backend, why = decide_backend(cfg)
    if backend == "unsloth":
        os.environ.setdefault("UNSLOTH_COMPILE_LOCATION",
                              str(Path(cfg.run.cache_dir).expanduser().resolve() / "unsloth_compiled_cache"))
        if offline():
            os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
        import unsloth  # noqa: F401  (patches transformers and trl; must come first)
    CHOSEN = backend
    return backend, why


class TorchLogProbs:
    """TRL's fused LM head (TRL 1.15: per-token log-probabilities straight from the hidden states, the logits never
    held whole) computed with plain torch where there is no GPU: TRL runs it as a Triton kernel, which needs a GPU
    driver ("0 active drivers" on a CPU). The arguments and outputs of trl.kernels.ChunkedLogProbFunction.apply;
    the logits of the given tokens are held whole, which a CPU run's small model affords."""

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, softcap=None, logit_scale=1.0,
              outputs=("log_probs",)):
        import torch.nn.functional as F

        z = F.linear(hidden, weight.to(hidden.dtype), None if bias is None else bias.to(hidden.dtype)).float()  # (N, V)
        z = z * logit_scale
        if softcap is not None:
            z = softcap * (z / softcap).tanh()
        z = z / temperature
        logp = z.log_softmax(-1)  # (N, V)
        log_probs = logp.gather(-1, targets[:, None]).squeeze(-1)  # (N,)
        entropy = -(logp.exp() * logp).sum(-1) if "entropy" in outputs else None
        log_sum_sq = (2 * logp).logsumexp(-1).detach() if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1).detach() if "mean_logits" in outputs else None
        is_top1 = (z.argmax(-1) == targets) if "is_top1" in outputs else None
        return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def fit_trl_to_device(cuda: bool) -> None:
    """Where there is no CUDA GPU, TRL's Triton log-probability kernel (TRL 1.15's fused LM head, always on, no
    setting turns it off) is replaced by TorchLogProbs; on a GPU the kernel stays. Earlier TRLs have no such
    kernel (their own torch implementation carries the same name) and are left as they are."""
    import trl.trainer.utils as trl_utils

    current = getattr(trl_utils, "_ChunkedLogProbFunction", None)
    if not cuda and current is not None and current.__module__.startswith("trl.kernels"):
        trl_utils._ChunkedLogProbFunction = TorchLogProbs


TRAINERS = {"sft": "SFTTrainer", "grpo": "GRPOTrainer"}


def trainer_classes(stages: list[str]) -> dict[str, str]:
    """The class each stage's TRL trainer is built from in this process (Unsloth's where it patched TRL)."""
    import trl

    return {stage: getattr(trl, TRAINERS[stage]).__name__ for stage in stages}


def check_trainers(cfg: Config, backend: str, classes: dict[str, str]) -> None:
    """On the unsloth backend every stage trains with Unsloth's patched trainer, unless the user allowed TRL's
    own (Unsloth falls back to it with a warning only when its patch fails)."""
    stock = [name for name in classes.values() if not name.startswith("Unsloth")]
    if backend == "unsloth" and stock and not cfg.model.allow_stock_trainer:
        raise ConfigError(f"Unsloth could not patch TRL's {' and '.join(stock)} (its warning above says why), so "
                          "this run would train without Unsloth's kernels: install the versions tested together "
                          "(pip install -c constraints.txt -e .), or set model.allow_stock_trainer=true to train "
                          "with TRL's own trainer")


def uses_fast_inference(cfg: Config) -> bool:
    """Unsloth's vLLM engine serves the rollouts: only GRPO generates, so only a run with a GRPO stage."""
    return cfg.model.fast_inference and "grpo" in cfg.run.stages


def check_fast_inference(cfg: Config) -> None:
    """The limits of Unsloth's vLLM rollout path, checked with the config (before anything runs or loads)."""
    m = cfg.model
    if not uses_fast_inference(cfg):
        return
    fix = "or set model.fast_inference=false (rollouts through generate)"
    if m.backend == "transformers":
        raise ConfigError(f"model.fast_inference=true runs on Unsloth's vLLM engine, not model.backend=transformers: "
                          f"set model.backend=auto or unsloth, {fix}")
    arch = arch_of(cfg)
    if arch not in FAST_INFERENCE_ARCHS:
        raise ConfigError(f"model.fast_inference=true: Unsloth's vLLM path serves Qwen2.5-VL only, and this model is "
                          f"'{arch}': use a Qwen2.5-VL model, {fix}")
    if m.finetune == "full":
        raise ConfigError("model.fast_inference=true cannot train a full fine-tune (vLLM serves the frozen base "
                          f"weights plus LoRA adapters): set model.finetune=lora, {fix}")
    if lora_parts(m.lora_layers, cfg.grpo.freeze_vision)["vision"]:
        raise ConfigError("model.fast_inference=true cannot put LoRA on the vision layers (vLLM serves LoRA on the "
                          f"language model only): remove vision from model.lora_layers, e.g. "
                          f"model.lora_layers=[language,attention,mlp], {fix}")
    images = tasks.get(cfg.data.task).images_per_sample
    if images > 1:
        raise ConfigError(f"model.fast_inference=true: Unsloth's vLLM engine takes one image per prompt and "
                          f"data.task={cfg.data.task} gives {images} (they are not tiled into one): "
                          "set model.fast_inference=false (rollouts through generate)")


def dtype_of(cfg: Config):
    """The compute dtype: what the forward runs in (auto: bf16 on a CUDA GPU that has it, else fp16 there; fp32
    on the CPU). A full fine-tune keeps fp32 master weights whatever this is (`keeps_master_weights`)."""
    import torch

    if cfg.model.dtype == "auto":
        if not cuda_available(cfg):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, cfg.model.dtype)


def keeps_master_weights(cfg: Config) -> bool:
    """A full fine-tune in 16 bits keeps its trainable weights (and so its gradients and AdamW states) in fp32 and
    runs the forward in 16-bit autocast, as the paper's DeepSpeed runs do: an AdamW update of about the learning
    rate does not change a bf16 weight above ~256 x lr (at GRPO's 1e-6, most of them), so pure-bf16 weights
    barely train. LoRA keeps its adapters in fp32 anyway (peft, Unsloth) over 16-bit frozen weights."""
    import torch

    return cfg.model.finetune == "full" and dtype_of(cfg) != torch.float32


def precision_args(cfg: Config) -> dict[str, bool]:
    """The trainers' mixed-precision switches: autocast in the compute dtype over the loaded weights."""
    import torch

    dtype = dtype_of(cfg)
    return dict(bf16=dtype == torch.bfloat16, fp16=dtype == torch.float16)


def _keep_master_weights(model) -> None:
    """Trainable parameters to fp32 (the frozen ones stay in the compute dtype); the trainer's autocast runs the
    forward in 16 bits."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


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
    _apply_pixels(processor, max_pixels)
    processor.tokenizer.padding_side = "left"  # generation pads on the left
    return processor


def _apply_pixels(processor, max_pixels: int) -> None:
    image_processor = processor.image_processor
    image_processor.max_pixels = max_pixels
    image_processor.min_pixels = min(MIN_PIXELS, max_pixels)
    image_processor.size = {"shortest_edge": image_processor.min_pixels, "longest_edge": max_pixels}


VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def vision_token_ids(processor) -> list[int]:
    """Ids a completion must never contain: one sampled <|image_pad|> makes the image tokens outnumber
    the image features in the next forward pass, and the step fails."""
    tokenizer = getattr(processor, "tokenizer", processor)
    vocab = tokenizer.get_vocab()
    return sorted(vocab[t] for t in VISION_TOKENS if t in vocab)


# ---------------------------------------------------------------- training

def max_seq_length(cfg: Config, stage: Any) -> int:
    """Longest sequence a stage runs (Unsloth sizes its kernels and vLLM its KV cache by it): SFT's max_length;
    for GRPO a prompt bounded by the same max_length plus the completion."""
    return cfg.sft.max_length + (cfg.grpo.max_completion_length if stage is cfg.grpo else 0)


def load_for_training(cfg: Config, stage: Any, path: str, backend: str):
    """(model, processor, peft_config or None) for a stage; the TRL trainer applies peft_config. TRL is fitted to
    the device first (fit_trl_to_device): every trainer is built from a model loaded here."""
    fit_trl_to_device(cuda_available(cfg))
    if backend == "unsloth":
        return _load_unsloth(cfg, stage, path)
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype_of(cfg), trust_remote_code=cfg.model.trust_remote_code)
    processor = load_processor(path, stage.max_pixels, cfg.model.trust_remote_code)
    if cfg.model.finetune == "full":
        if stage.freeze_vision:
            _freeze_vision(model)
        if keeps_master_weights(cfg):
            _keep_master_weights(model)
        return model, processor, None
    return model, processor, lora_config(cfg, model, stage)


def _freeze_vision(model) -> None:
    for name, param in model.named_parameters():
        if ".visual." in f".{name}":
            param.requires_grad_(False)


def lora_parts(layers: list[str], freeze_vision: bool) -> dict[str, bool]:
    """Which towers and module kinds get LoRA (both of a pair when neither is named); a frozen vision tower
    gets none."""
    towers = [t for t in ("vision", "language") if t in layers] or ["vision", "language"]
    kinds = [k for k in ("attention", "mlp") if k in layers] or ["attention", "mlp"]
    parts = {"vision": "vision" in towers and not freeze_vision, "language": "language" in towers,
             "attention": "attention" in kinds, "mlp": "mlp" in kinds}
    if not (parts["vision"] or parts["language"]):
        raise ConfigError(f"model.lora_layers={layers} adapts only the vision tower, which this stage freezes "
                          "(freeze_vision=true): add language to model.lora_layers")
    return parts


def lora_targets(model, parts: dict[str, bool]) -> list[str]:
    """Names of the Linear layers that LoRA wraps: the chosen towers x the chosen module kinds."""
    import torch

    attention = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv", "attn.proj")
    mlp = ("gate_proj", "up_proj", "down_proj", "fc1", "fc2")
    suffixes = (attention if parts["attention"] else ()) + (mlp if parts["mlp"] else ())
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or "lm_head" in name:
            continue
        tower = "vision" if ".visual." in f".{name}." else "language"
        if parts[tower] and name.endswith(suffixes) and ".merger." not in name:
            names.append(name)
    if not names:
        chosen = ", ".join(k for k, v in parts.items() if v)
        raise ConfigError(f"model.lora_layers ({chosen}) matches no layer of this model: use language, attention, mlp")
    return names


def lora_config(cfg: Config, model, stage: Any):
    from peft import LoraConfig

    m = cfg.model
    parts = lora_parts(m.lora_layers, stage.freeze_vision)
    return LoraConfig(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                      target_modules=lora_targets(model, parts), task_type="CAUSAL_LM")


def unsloth_name(path: str) -> str:
    """What Unsloth is given: a local folder as an absolute path (a relative 'a/b' reads to Unsloth as a hub id,
    which it looks up online), a hub id as the user wrote it."""
    local = Path(path).expanduser()
    return str(local.resolve()) if local.exists() else path


def unsloth_load_kwargs(cfg: Config, stage: Any, path: str) -> dict[str, Any]:
    """FastVisionModel.from_pretrained's keywords for a training stage. use_exact_model_name: without it Unsloth
    swaps a hub id for its own 'unsloth/...' copy (another download, a crash offline). float32_mixed_precision:
    without it a bf16 full fine-tune keeps bf16 weights (`keeps_master_weights`)."""
    m = cfg.model
    kwargs = dict(model_name=unsloth_name(path), max_seq_length=max_seq_length(cfg, stage), dtype=dtype_of(cfg),
                  load_in_4bit=m.load_in_4bit, full_finetuning=m.finetune == "full", use_exact_model_name=True,
                  use_gradient_checkpointing="unsloth" if stage.gradient_checkpointing else False,
                  random_state=cfg.run.seed, trust_remote_code=m.trust_remote_code)
    if keeps_master_weights(cfg):
        kwargs["float32_mixed_precision"] = True
    if uses_fast_inference(cfg) and stage is cfg.grpo:  # Stage 1 does not generate: no engine to reserve memory
        kwargs.update(fast_inference=True, gpu_memory_utilization=m.gpu_memory_utilization,
                      max_lora_rank=max(8, 1 << (m.lora_r - 1).bit_length()))  # vLLM takes power-of-two bounds
    return kwargs


def unsloth_peft_kwargs(cfg: Config, stage: Any) -> dict[str, Any]:
    """FastVisionModel.get_peft_model's keywords (its max_seq_length defaults to 2048 and overwrites the model's)."""
    m = cfg.model
    parts = lora_parts(m.lora_layers, stage.freeze_vision)
    return dict(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                finetune_vision_layers=parts["vision"], finetune_language_layers=parts["language"],
                finetune_attention_modules=parts["attention"], finetune_mlp_modules=parts["mlp"],
                use_gradient_checkpointing="unsloth" if stage.gradient_checkpointing else False,
                random_state=cfg.run.seed, max_seq_length=max_seq_length(cfg, stage))


def _load_unsloth(cfg: Config, stage: Any, path: str):
    """FastVisionModel in 16 or 4 bits, LoRA through get_peft_model (or a full fine-tune with fp32 master
    weights), Unsloth's offloaded gradient checkpointing, and for GRPO with model.fast_inference a vLLM engine
    sharing the weights."""
    from unsloth import FastVisionModel

    model, processor = FastVisionModel.from_pretrained(**unsloth_load_kwargs(cfg, stage, path))
    if cfg.model.finetune == "lora":
        model = FastVisionModel.get_peft_model(model, **unsloth_peft_kwargs(cfg, stage))
    elif stage.freeze_vision:
        _freeze_vision(model)
    FastVisionModel.for_training(model, use_gradient_checkpointing="unsloth" if stage.gradient_checkpointing else False)
    _apply_pixels(processor, stage.max_pixels)
    return model, processor, None


# ---------------------------------------------------------------- saving and inference

def save_final(model, processor, out_dir: Path, backend: str, base: str | None = None, dtype=None) -> Path:
    """Save a plain 16-bit checkpoint (LoRA merged) atomically: a half-written final/ never exists. With LoRA,
    the adapters alone go to final/<stage>/lora/ as well (peft's format), for whoever wants them unmerged.
    A full fine-tune's fp32 master weights are saved in `dtype`, the compute dtype. On the unsloth backend the
    adapters are merged into `base` (the stage's starting weights, as the user named them) reloaded in 16 bits:
    4-bit weights cannot take a merge, and Unsloth's own merged save fetches its 'unsloth/...' copy of a hub
    model instead of the one named."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lora = hasattr(model, "merge_and_unload")  # a PeftModel
    if lora:
        model.save_pretrained(tmp / "lora")  # adapter_config.json + adapter_model.safetensors
        if backend == "unsloth":
            if base is None:
                raise ValueError("save_final: the unsloth backend merges into the stage's base weights: give base=")
            model = merged_onto(base, tmp / "lora", dtype)
        else:
            model = model.merge_and_unload()
    elif dtype is not None:
        model = model.to(dtype)  # fp32 master weights -> the 16-bit checkpoint the next stage loads
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def merged_onto(base: str, adapter: Path, dtype=None):
    """A LoRA adapter merged into the named base weights, loaded on the CPU with plain transformers."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(base, dtype=dtype or "auto")
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def _sharded(trainer) -> bool:
    """Whether no rank holds the whole model (FSDP, ZeRO-3): saving it needs every rank."""
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return bool(getattr(trainer, "is_deepspeed_enabled", False) and plugin is not None and plugin.zero_stage == 3)


def save_stage(trainer, processor, out: Path, cfg: Config, source: str, backend: str) -> Path:
    """final/<stage> as one process saves it (`save_final`: a plain checkpoint, LoRA merged, the adapters in
    lora/): written by the main process; with sharded weights every rank first takes part in gathering them."""
    kept = dict(base=source, dtype=dtype_of(cfg) if keeps_master_weights(cfg) else None)
    if not ranks.active():
        return save_final(trainer.model, processor, out, backend, **kept)
    if not _sharded(trainer):  # DDP, ZeRO-1/2: every rank holds the same whole model
        if ranks.is_main():
            save_final(trainer.model, processor, out, backend, **kept)
    else:
        gathered = Path(out).with_name(f".{Path(out).name}.gathered")
        trainer.save_model(str(gathered))  # a collective: the shards are gathered, rank 0 writes
        if ranks.is_main():
            _assemble(gathered, processor, Path(out), cfg, source)
    ranks.barrier()
    return Path(out)


def _assemble(gathered: Path, processor, out: Path, cfg: Config, source: str) -> None:
    """Gathered weights -> final/<stage>: a whole model as it is; a LoRA adapter merged on the CPU into the
    stage's starting weights, as save_final merges it for one process."""
    if (gathered / "adapter_config.json").is_file():
        save_final(merged_onto(source, gathered, dtype_of(cfg)), processor, out, "transformers")
        shutil.rmtree(gathered)
        return
    processor.save_pretrained(gathered)
    (gathered / "training_args.bin").unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(gathered, out)


def load_for_inference(path: str, cfg: Config, max_pixels: int):
    """(model, processor) in eval mode on the run's device: through Unsloth's fast generation path where this
    process chose the unsloth backend (training runs on CUDA), else plain transformers (chat, the studio)."""
    if CHOSEN == "unsloth":
        from unsloth import FastVisionModel

        model, processor = FastVisionModel.from_pretrained(**unsloth_inference_kwargs(path, cfg))
        FastVisionModel.for_inference(model)
        _apply_pixels(processor, max_pixels)
        processor.tokenizer.padding_side = "left"
        return model, processor
    from transformers import AutoModelForImageTextToText

    device = "cuda" if cuda_available(cfg) else "cpu"
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype_of(cfg), trust_remote_code=cfg.model.trust_remote_code).to(device).eval()
    return model, load_processor(path, max_pixels, cfg.model.trust_remote_code)


def unsloth_inference_kwargs(path: str, cfg: Config) -> dict[str, Any]:
    """FastVisionModel.from_pretrained's keywords for evaluation: the named weights, 16-bit, no 4-bit copy."""
    return dict(model_name=unsloth_name(path), load_in_4bit=False, dtype=dtype_of(cfg), use_exact_model_name=True,
                max_seq_length=cfg.sft.max_length + cfg.eval.max_new_tokens,
                trust_remote_code=cfg.model.trust_remote_code)
