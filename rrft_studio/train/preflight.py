"""Memory preflight: an analytic estimate of a stage's peak GPU memory, said before anything is loaded, and
the ordering that puts the longest sample in the first batch so an out-of-memory shows at step 1.

The estimate counts, in bytes: the weights (16-bit, or 4-bit NF4 linear layers for QLoRA; a 16-bit full
fine-tune keeps its trainable weights in fp32, the master weights, plus the 16-bit copy autocast makes of each);
the trainable parameters' fp32 gradients and two fp32 AdamW moments (so 16 bytes a trainable parameter in all,
full fine-tune or LoRA adapter); a frozen reference copy for GRPO with beta > 0 in the compute dtype (full
fine-tune only: with LoRA, TRL disables the adapters instead); the activations of one micro batch of the
longest sample (image tokens = pixels / (14*14*4) + prompt + completion), with or without gradient
checkpointing; the logits and their loss; and for GRPO's `generate` rollouts the KV cache of every completion
of an optimizer step (TRL generates the whole step at once) plus the prefill; with model.fast_inference, vLLM's
reservation (gpu_memory_utilization x the GPU) in place of the weights and that KV cache. Peak = weights +
reference + AdamW + the larger of training and rollouts + CUDA context and slack. Parameters are counted from the
model's config (a local config.json, the HF cache, or the published Qwen2-VL / Qwen2.5-VL shapes below), not
by loading it. It is an estimate: the benchmark (benchmarks/) prints it next to the measured peak.

On several processes (run.processes, run.accelerate_config) it is the peak of one GPU: each process runs the
stage's per-device batch and generates its share of the step's completions, and the strategy shards what it
shards (ranks.SHARDED): ZeRO-2 gradients and optimizer states, ZeRO-3 and FSDP2 the weights (the
reference model's too) as well; DeepSpeed keeps fp32 master weights and moments (12 bytes a trainable
parameter, sharded), and ZeRO-3 gathers the whole model on each GPU for GRPO's generate.

    rrft-studio preflight presets/counting_2b.yaml [key=value ...] [--processes 8 --accelerate-config zero3]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import data, models, ranks, tasks
from ..config import Config, ConfigError
from . import launch

GiB = 1024 ** 3
# Published configs (config.json of the hub checkpoints), so a hub id needs no download.
PUBLISHED: dict[str, dict] = {
    "Qwen/Qwen2-VL-2B-Instruct": dict(
        model_type="qwen2_vl", vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True,
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16)),
    "Qwen/Qwen2-VL-7B-Instruct": dict(
        model_type="qwen2_vl", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False,
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=3584, mlp_ratio=4, num_heads=16)),
    "Qwen/Qwen2.5-VL-3B-Instruct": dict(
        model_type="qwen2_5_vl", vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
        num_attention_heads=16, num_key_value_heads=2, tie_word_embeddings=True,
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                           window_size=112, fullatt_block_indexes=[7, 15, 23, 31])),
    "Qwen/Qwen2.5-VL-7B-Instruct": dict(
        model_type="qwen2_5_vl", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False,
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           window_size=112, fullatt_block_indexes=[7, 15, 23, 31])),
}
# Text of the longest sample when preflight runs without the data (train prints the measured one): the task's
# prompt, the chat template (data.TEMPLATE_TOKENS), and for SFT the target (<think> CoT </think><answer>..</answer>).
TARGET_TOKENS = 256
CUDA_OVERHEAD = 1.0 * GiB  # CUDA context, cuBLAS workspace, kernels
FRAGMENTATION = 0.10  # allocator slack on the activations
CPU_TRAINABLE = 1e9  # parameters: above this, training on a CPU takes days (the demo's model has 4.6 M)


@dataclass(frozen=True)
class Shape:
    """What the estimate needs from a Qwen2-VL / Qwen2.5-VL config."""

    arch: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    tied: bool
    v_depth: int
    v_dim: int
    v_intermediate: int
    v_out: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linears(self) -> list[tuple[str, str, str, int, int, int]]:
        """(tower, kind, name, in, out, count) of every Linear layer LoRA can wrap."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        d, i, vi = self.v_dim, self.intermediate, self.v_intermediate
        text = [("attention", "q_proj", h, h), ("attention", "k_proj", h, kv), ("attention", "v_proj", h, kv),
                ("attention", "o_proj", h, h), ("mlp", "gate_proj", h, i), ("mlp", "up_proj", h, i),
                ("mlp", "down_proj", i, h)]
        vision = [("attention", "qkv", d, 3 * d), ("attention", "proj", d, d)]
        vision += [("mlp", "fc1", d, vi), ("mlp", "fc2", vi, d)] if self.arch == "qwen2_vl" else \
            [("mlp", "gate_proj", d, vi), ("mlp", "up_proj", d, vi), ("mlp", "down_proj", vi, d)]
        return [("language", k, n, a, b, self.layers) for k, n, a, b in text] + \
               [("vision", k, n, a, b, self.v_depth) for k, n, a, b in vision]

    def params(self) -> tuple[int, int]:
        """(language model, vision tower with merger) parameter counts, biases and norms included."""
        h, d = self.hidden, self.v_dim
        kv = self.kv_heads * self.head_dim
        layer = sum(a * b for t, _, _, a, b, _ in self.linears() if t == "language") + h + 2 * kv + 2 * h
        text = self.vocab * h * (1 if self.tied else 2) + self.layers * layer + h
        norm = 2 * d if self.arch == "qwen2_vl" else d  # LayerNorm (weight, bias) or RMSNorm
        block = sum(a * b + b for t, _, _, a, b, _ in self.linears() if t == "vision") + 2 * norm
        merger = norm + (4 * d) * (4 * d) + 4 * d + (4 * d) * self.v_out + self.v_out
        return text, 3 * 2 * 14 * 14 * d + self.v_depth * block + merger

    def linear_params(self) -> int:
        return sum(a * b * n for _, _, _, a, b, n in self.linears())


def shape_of(config: dict) -> Shape:
    """A Shape from a config.json dict (flat text fields as on the hub, or transformers 5's text_config)."""
    text = {**config, **config.get("text_config", {})}
    vision = config["vision_config"]
    arch = config.get("model_type", text.get("model_type", "qwen2_vl"))
    if arch == "qwen2_vl":
        v_dim = vision.get("embed_dim", 1280)
        v_intermediate, v_out = int(v_dim * vision.get("mlp_ratio", 4)), vision.get("hidden_size", text["hidden_size"])
    else:
        v_dim, v_intermediate = vision["hidden_size"], vision["intermediate_size"]
        v_out = vision.get("out_hidden_size", text["hidden_size"])
    return Shape(arch, text["vocab_size"], text["hidden_size"], text["num_hidden_layers"],
                 text["num_attention_heads"], text.get("num_key_value_heads", text["num_attention_heads"]),
                 text["intermediate_size"], bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings"))),
                 vision["depth"], v_dim, v_intermediate, v_out)


def _normal(name: str) -> str:
    base = name.rstrip("/").rsplit("/", 1)[-1].lower()
    return base.removesuffix("-bnb-4bit").removesuffix("-unsloth").removesuffix("-instruct")


def model_shape(cfg: Config) -> Shape:
    """The configured model's Shape: the tiny spec, a local config.json, the HF cache or a published config."""
    name = cfg.model.name
    if name == "tiny":
        t = cfg.model.tiny
        vision = dict(depth=t.vision_depth, embed_dim=t.vision_embed_dim, hidden_size=t.hidden_size,
                      intermediate_size=4 * t.vision_embed_dim, out_hidden_size=t.hidden_size)
        return shape_of(dict(model_type=t.arch, vocab_size=t.vocab_size + 14, hidden_size=t.hidden_size,
                             intermediate_size=t.intermediate_size, num_hidden_layers=t.num_layers,
                             num_attention_heads=t.num_heads, num_key_value_heads=t.num_kv_heads,
                             tie_word_embeddings=True, vision_config=vision))
    local = Path(name).expanduser() / "config.json"
    if local.is_file():
        return shape_of(json.loads(local.read_text()))
    for hub_id, config in PUBLISHED.items():
        if _normal(hub_id) == _normal(name):
            return shape_of(config)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return shape_of(json.loads(Path(cached).read_text()))
    known = ", ".join(PUBLISHED)
    raise ConfigError(f"model.name={name}: preflight needs its config.json and finds none here: give a local "
                      f"checkpoint directory, or one of {known}")


def check_training_device(cfg: Config) -> None:
    """Before a run trains: a GPU the driver hides is said, and `auto` does not quietly fall to the CPU for a
    model far too big to train there (run.device=cpu asks for that explicitly)."""
    problem = models.cuda_problem(cfg)
    if problem:
        raise ConfigError(problem)
    if cfg.run.device != "auto" or cfg.model.name == "tiny" or models.cuda_available(cfg):
        return
    try:
        params = sum(model_shape(cfg).params())
    except (ConfigError, ValueError, KeyError):
        return  # a model whose shape cannot be read here (check_source names a damaged one): its size is unknown
    if params > CPU_TRAINABLE:
        raise ConfigError(f"no CUDA GPU is visible, and model.name={cfg.model.name} ({params / 1e9:.1f} B parameters) "
                          "would take days to train on the CPU: run on a CUDA GPU, or set run.device=cpu to train "
                          "on the CPU anyway")


# ---------------------------------------------------------------- the estimate

@dataclass
class Estimate:
    stage: str
    parts: list[tuple[str, float, str]]  # (what, bytes, how it was counted)
    peak: float
    tokens: dict[str, int]
    note: str


def default_tokens(cfg: Config, stage: str) -> tuple[int, int]:
    """(image tokens, text tokens) of the longest sample without reading the data: synthetic images have the
    generator's size; real files count as max_pixels (the worst case)."""
    st, task = getattr(cfg, stage), tasks.get(cfg.data.task)
    n_images = task.images_per_sample
    side = getattr(getattr(cfg.data, task.name), "image_size", None)
    real = data.source(cfg, "train")[0] is not None or side is None
    per_image = data.image_tokens(st.max_pixels, 1, st.max_pixels) if real else data.image_tokens(side, side, st.max_pixels)
    text = task.prompt_tokens + data.TEMPLATE_TOKENS + (TARGET_TOKENS if stage == "sft" else 0)
    return n_images * per_image, text


def _trainable(cfg: Config, st: Any, shape: Shape) -> tuple[int, str, bool]:
    """(trainable parameters, which, whether gradients flow through the vision tower)."""
    text, vision = shape.params()
    if cfg.model.finetune == "full":
        n = text + (0 if st.freeze_vision else vision)
        return n, "language model" + ("" if st.freeze_vision else " + vision tower"), not st.freeze_vision
    parts = models.lora_parts(cfg.model.lora_layers, st.freeze_vision)
    r = cfg.model.lora_r
    n = sum(r * (a + b) * count for tower, kind, _, a, b, count in shape.linears() if parts[tower] and parts[kind])
    return n, f"LoRA r{r} on {'+'.join(k for k, v in parts.items() if v)}", parts["vision"]


def compute_bytes(cfg: Config) -> int:
    """Bytes of a value in the compute dtype (auto is bf16 on a GPU)."""
    return 4 if cfg.model.dtype == "float32" else 2


def keeps_master_weights(cfg: Config, strategy: str = "ddp") -> bool:
    """A 16-bit full fine-tune holds its trainable weights in fp32 in the model (models.keeps_master_weights);
    under DeepSpeed the model holds 16-bit weights and the optimizer the fp32 master copy."""
    return cfg.model.finetune == "full" and compute_bytes(cfg) == 2 and not strategy.startswith("zero")


def _weights(cfg: Config, stage: str, shape: Shape, gpu_total: float | None,
             strategy: str = "ddp") -> list[tuple[str, float, str]]:
    """Weights (or the vLLM engine that holds them), the autocast copies of fp32 master weights, and GRPO's
    reference copy."""
    m = cfg.model
    total, wbytes = sum(shape.params()), compute_bytes(cfg)
    n_train, what, _ = _trainable(cfg, getattr(cfg, stage), shape)
    if m.load_in_4bit:
        linear = shape.linear_params()
        parts = [("weights", linear * 0.53 + (total - linear) * wbytes,
                  f"{total / 1e9:.2f} B: {linear / 1e9:.2f} B in linear layers at 4 bits (NF4 + scales), "
                  f"the rest at {wbytes} bytes")]
    elif keeps_master_weights(cfg, strategy):
        frozen = total - n_train
        parts = [("weights", n_train * 4 + frozen * wbytes,
                  f"{n_train / 1e9:.2f} B trainable ({what}) x 4 bytes (fp32 master weights)"
                  + (f" + {frozen / 1e9:.2f} B frozen x {wbytes} bytes" if frozen else "")),
                 ("autocast copies", n_train * wbytes, f"{n_train / 1e9:.2f} B trainable x {wbytes} bytes: the 16-bit "
                  "copy autocast makes of each master weight, held through a forward and its backward")]
    else:
        parts = [("weights", total * wbytes, f"{total / 1e9:.2f} B parameters x {wbytes} bytes")]
    if stage == "grpo" and m.fast_inference:
        gpu = gpu_total or 80 * GiB
        parts = [("vLLM engine", max(m.gpu_memory_utilization * gpu, parts[0][1]),
                  f"model.gpu_memory_utilization {m.gpu_memory_utilization} x {gpu / GiB:.0f} GiB: "
                  "the shared weights + vLLM's KV cache")]
    if stage == "grpo" and cfg.grpo.beta > 0 and m.finetune == "full":
        parts.append(("reference model", total * wbytes, f"beta {cfg.grpo.beta} > 0: a frozen copy for the KL term, "
                      f"{total / 1e9:.2f} B x {wbytes} bytes (the compute dtype)"))
    return parts


def _training(cfg: Config, stage: str, backend: str, shape: Shape, img: int, text: int):
    """(optimizer part, [gradients, activations, logits]) of one micro batch of the longest sample."""
    st, grpo = getattr(cfg, stage), stage == "grpo"
    completion = cfg.grpo.max_completion_length if grpo else 0
    micro, seq = ranks.split(cfg, stage).per_device, img + text + completion
    n_train, what, vision_grad = _trainable(cfg, st, shape)
    # fp32 gradients and moments: fp32 master weights (full), peft's fp32 adapters (LoRA), an fp32 model
    optimizer = ("AdamW states", 2 * n_train * 4, f"2 fp32 moments x {n_train / 1e6:,.1f} M trainable ({what}) x 4 bytes")
    grads = ("gradients", n_train * 4, f"{n_train / 1e6:,.1f} M x 4 bytes (fp32)")
    h, i, d, vi = shape.hidden, shape.intermediate, shape.v_dim, shape.v_intermediate
    per_layer = 2 * (8 * h + 4 * i)  # bytes a decoder layer keeps per token (norms, q/k/v, attention, SwiGLU)
    if not st.gradient_checkpointing:
        kept, how = shape.layers * per_layer, "no gradient checkpointing"
    elif backend == "unsloth":
        kept, how = 2 * 2 * h + per_layer, "Unsloth's checkpointing (layer inputs offloaded to CPU)"
    else:
        kept, how = shape.layers * 2 * h + per_layer, "gradient checkpointing (layer inputs kept)"
    v_block = 2 * (8 * d + 4 * vi)  # per patch (before the 2x2 merge) and vision block
    v_kept = (shape.v_depth * (2 * d if st.gradient_checkpointing else v_block) + v_block) if vision_grad else v_block
    activations = micro * (seq * kept + 4 * img * v_kept)
    tail = f" + {completion:,} completion" if grpo else ""
    scored = micro * (completion if grpo else seq)
    logit_bytes = 2 if backend == "unsloth" else (8 if grpo else 12)
    return optimizer, [
        grads,
        ("activations", activations, f"micro batch {micro} x {seq:,} tokens ({img:,} image + {text:,} text{tail}); "
                                     f"vision {'trained' if vision_grad else 'forward only'}; {how}"),
        ("logits + loss", scored * shape.vocab * logit_bytes,
         f"{scored:,} scored tokens x {shape.vocab:,} vocab x {logit_bytes} bytes"
         + (" (Unsloth's chunked loss)" if backend == "unsloth" else " (bf16 logits + fp32 loss)")),
    ]


def _rollouts(cfg: Config, shape: Shape, img: int, text: int) -> list[tuple[str, float, str]]:
    """TRL generates a whole optimizer step's completions in one `generate`: their KV cache and the prefill."""
    g, wbytes = cfg.grpo, compute_bytes(cfg)
    n, seq = g.prompts_per_step * g.num_generations // cfg.run.processes, img + text + g.max_completion_length
    kv = n * seq * shape.layers * shape.kv_heads * shape.head_dim * 2 * wbytes
    v_block = 2 * (8 * shape.v_dim + 4 * shape.v_intermediate)
    prefill = max(n * (img + text) * 2 * (3 * shape.intermediate + 4 * shape.hidden), n * 4 * img * v_block)
    return [("KV cache (rollouts)", kv, f"{n} completions x {seq:,} tokens x {shape.layers} layers x "
                                        f"{shape.kv_heads} kv heads x {shape.head_dim} x 2 (K, V) x {wbytes} bytes"),
            ("prefill (rollouts)", prefill, f"one layer of the prompt pass over {n} prompts (language or vision)")]


def _sharded(cfg: Config, stage: str, parts: list, strategy: str) -> list[tuple[str, float, str]]:
    """One GPU's share of each part under the strategy (ranks.SHARDED), DeepSpeed's fp32 optimizer, and
    ZeRO-3's whole model gathered for GRPO's generate."""
    n, shards, out = cfg.run.processes, ranks.SHARDED.get(strategy, set()), []
    for name, size, how in parts:
        if name == "AdamW states" and strategy.startswith("zero"):
            trainable = size / 8  # two fp32 moments a trainable parameter
            size, how = trainable * 12, f"{trainable / 1e6:,.1f} M trainable x 12 bytes (DeepSpeed: fp32 master " \
                                        "weights + 2 fp32 moments)"
        if name in shards and n > 1:
            size, how = size / n, f"{how}, / {n} processes ({strategy} shards it)"
        out.append((name, size, how))
    weights = [size for name, size, _ in parts if name == "weights"]
    if strategy == "zero3" and stage == "grpo" and weights and cfg.grpo.vllm_mode != "server":
        out.append(("weights gathered (rollouts)", weights[0], "ZeRO-3 gathers the whole model for generate"))
    return out


def estimate(cfg: Config, stage: str, backend: str = "unsloth", shape: Shape | None = None,
             tokens: tuple[int, int] | None = None, gpu_total: float | None = None) -> Estimate:
    """Peak GPU memory of `stage` ("sft" or "grpo") for the longest sample, `tokens` = (image, text):
    weights + reference + AdamW + max(training: gradients + activations + logits, rollouts: KV + prefill)
    + CUDA context and slack. Gradients are freed (set to None) before the next rollout."""
    shape = shape or model_shape(cfg)
    img, text = tokens or default_tokens(cfg, stage)
    strategy = (launch.strategy_of(cfg.run.accelerate_config) if cfg.run.accelerate_config else "ddp")
    optimizer, training = _training(cfg, stage, backend, shape, img, text)
    fixed = _sharded(cfg, stage, [*_weights(cfg, stage, shape, gpu_total, strategy), optimizer], strategy)
    training = _sharded(cfg, stage, training, strategy)
    rollouts = _rollouts(cfg, shape, img, text) if stage == "grpo" and not cfg.model.fast_inference \
        and cfg.grpo.vllm_mode != "server" else []  # a vLLM server holds its KV cache on its own GPUs
    rollouts += [part for part in fixed if part[0] == "weights gathered (rollouts)"]
    fixed = [part for part in fixed if part[0] != "weights gathered (rollouts)"]
    phase = max(sum(b for _, b, _ in training), sum(b for _, b, _ in rollouts))
    overhead = ("CUDA context + slack", CUDA_OVERHEAD + FRAGMENTATION * phase,
                f"{CUDA_OVERHEAD / GiB:.0f} GiB + {FRAGMENTATION:.0%} of the larger phase")
    peak = sum(b for _, b, _ in fixed) + phase + overhead[1]
    note = "fixed + training" + (" or rollouts, the larger" if rollouts else "") + " + slack"
    completion = cfg.grpo.max_completion_length if stage == "grpo" else 0
    return Estimate(stage, fixed + training + rollouts + [overhead], peak,
                    dict(image=img, text=text, completion=completion, sequence=img + text + completion), note)


# ---------------------------------------------------------------- the report

def gpu() -> tuple[str, float] | None:
    """(name, total bytes) of the CUDA GPU at hand, or None."""
    import torch

    if not torch.cuda.is_available():
        return None
    _, total = torch.cuda.mem_get_info()
    return torch.cuda.get_device_name(), float(total)


def verdict(peak: float, device: tuple[str, float] | None) -> str:
    if device is None:
        return f"no GPU: estimate only ({peak / GiB:.1f} GiB; an 80 GiB GPU would {'' if peak < 80 * GiB else 'not '}hold it)"
    name, total = device
    fits = "fits" if peak <= total else "does not fit"
    return f"{fits} on {name}, {total / GiB:.1f} GiB"


def report(cfg: Config, stage: str, backend: str, tokens: tuple[int, int] | None = None,
           device: tuple[str, float] | None = None, shape: Shape | None = None) -> str:
    """A small markdown table of the estimate and the verdict for the GPU at hand."""
    shape = shape or model_shape(cfg)
    est = estimate(cfg, stage, backend, shape, tokens, device[1] if device else None)
    text, vision = shape.params()
    lines = [f"preflight {stage}: {cfg.model.name} ({shape.arch}, {(text + vision) / 1e9:.2f} B parameters, "
             f"vision {vision / 1e6:.0f} M), {cfg.model.finetune}{' 4-bit' if cfg.model.load_in_4bit else ''}, "
             f"{backend} backend" + (f", per GPU of {cfg.run.processes} processes "
                                      f"({cfg.run.accelerate_config or 'ddp'})" if cfg.run.processes > 1 else ""),
             "| part | GiB | counted as |", "|---|---:|---|"]
    lines += [f"| {name} | {b / GiB:.2f} | {how} |" for name, b, how in est.parts]
    lines.append(f"| **peak** | **{est.peak / GiB:.1f}** | {est.note} |")
    lines.append(verdict(est.peak, device))
    return "\n".join(lines)


def backend_for(cfg: Config) -> str:
    """The backend a CUDA run would get: Unsloth for Qwen2-VL / Qwen2.5-VL unless transformers is asked for."""
    if cfg.model.backend != "auto":
        return cfg.model.backend
    if ranks.wanted(cfg):  # several processes train on transformers + peft (models.choose_backend)
        return "transformers"
    return "unsloth" if models.arch_of(cfg) in models.UNSLOTH_ARCHS else "transformers"


# ---------------------------------------------------------------- longest sample first

def prepare(cfg: Config, stage: str, train, rows: list[dict], processor, model, backend: str):
    """Before a stage trains: put the longest samples in its first batch (data.longest_first), so an
    out-of-memory shows at step 1, and on CUDA print the memory estimate for its longest sample."""
    cuda = models.cuda_available(cfg)
    if not (cfg.data.longest_first or cuda):
        return train
    st = getattr(cfg, stage)
    tokens = data.sample_tokens(train, rows, processor, st.max_pixels)  # (image, text) per sample
    if cfg.data.longest_first:  # SFT: the first batch of every process
        first = ranks.split(cfg, "sft").per_device * cfg.run.processes if stage == "sft" else st.prompts_per_step
        train = train.select(data.longest_first(tokens, first, cfg.run.seed))
    if cuda and ranks.is_main():
        print(report(cfg, stage, backend, max(tokens, key=sum), gpu(), shape_of(model.config.to_dict())), flush=True)
    return train
