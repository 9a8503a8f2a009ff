"""The benchmark's workload, the same for every arm: a model of a published shape with random weights (or
the CI micro shape), built from its config; fixed-size images; SFT targets and GRPO completions of a fixed
number of tokens; the run's config as the product would resolve it."""

from __future__ import annotations

import dataclasses
import gc
import os
from pathlib import Path

from rrft_studio import config

MODELS = {
    "tiny": None,
    "qwen2_vl_2b": "Qwen/Qwen2-VL-2B-Instruct",
    "qwen2_vl_7b": "Qwen/Qwen2-VL-7B-Instruct",
    "qwen2_5_vl_3b": "Qwen/Qwen2.5-VL-3B-Instruct",
    "qwen2_5_vl_7b": "Qwen/Qwen2.5-VL-7B-Instruct",
}
TINY = dict(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, vision_depth=1,
            vision_embed_dim=32, vision_heads=2, vocab_size=300)  # tests/data/micro.yaml's shape
PROMPT = "How many objects are in the image? Output the thinking process in <think> </think> and final answer " \
         "(number) in <answer> </answer> tags."
WORD = " cube"  # one token of the benchmark tokenizer: targets of exactly --gen-len tokens are made of it


# ---------------------------------------------------------------- the model, built from its config

def build_checkpoint(model: str, out: Path) -> None:
    """A loadable checkpoint of the model's shape with seeded random weights (bf16 on CUDA), the tiny
    factory's byte-level BPE tokenizer and a real Qwen2-VL / Qwen2.5-VL processor."""
    import torch

    from rrft_studio import tiny
    from rrft_studio.train import preflight

    corpus = [PROMPT, (WORD * 64).strip(), "<think>\n</think>\n<answer>\n3\n</answer>"]
    if MODELS[model] is None:
        tiny.build(tiny.TinySpec(**TINY), out, corpus)
        return
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)

    published = dict(preflight.PUBLISHED[MODELS[model]])
    arch, vision, tied = published.pop("model_type"), published.pop("vision_config"), published.pop("tie_word_embeddings")
    spec = tiny.TinySpec(arch=arch)
    tokenizer = tiny._tokenizer(spec, corpus)
    processor = tiny._processor(spec, tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS}
    head_dim = published["hidden_size"] // published["num_attention_heads"]
    text = dict(published, max_position_embeddings=32768, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": tiny._mrope_section(head_dim)})
    vision = dict(vision, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    config_class, model_class = (Qwen2VLConfig, Qwen2VLForConditionalGeneration) if arch == "qwen2_vl" else \
        (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration)
    hf_config = config_class(text_config=text, vision_config=vision, tie_word_embeddings=tied,
                             image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                             vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        net = model_class._from_config(hf_config, dtype=torch.bfloat16 if cuda else torch.float32)
    net.generation_config.update(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                                 eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]])
    net.save_pretrained(out, max_shard_size="4GB")
    processor.save_pretrained(out)


def checkpoint(model: str, cache: Path) -> Path:
    """The cached checkpoint, built first if missing. Call it after models.choose_backend: Unsloth, where it
    is the backend, must be imported before transformers (the weights are the same files for every arm)."""
    path = cache / "models" / model
    if not (path / "config.json").is_file():
        tmp = path.with_name(f".{model}.tmp{os.getpid()}")
        build_checkpoint(model, tmp)
        os.replace(tmp, path)
        import torch

        if torch.cuda.is_available():  # the built weights are gone: measure the arm's peak, not the build's
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return path


# ---------------------------------------------------------------- the workload

def arm_config(arm: str, model: str, mode: str, stage: str, path: Path, steps: int, gen_len: int,
               image_size: int, batch: int = 2, generations: int = 4, prompts: int = 2) -> config.Config:
    """The run's config for this arm: the product's settings, with the benchmark's fixed sizes."""
    name = str(path) if path.exists() else (MODELS[model] or "tiny")
    pixels = max(image_size * image_size, 56 * 56)
    tree = {
        "run": {"stages": [stage], "seed": 0},
        "model": {"name": name, "backend": "unsloth" if arm.startswith("unsloth") else "transformers",
                  "finetune": mode, "lora_r": 16, "lora_alpha": 32, "fast_inference": arm == "unsloth_vllm"},
        "data": {"task": "counting"},
        "sft": {"max_steps": steps, "batch_size": batch, "grad_accum": 1, "lr": 1e-5, "warmup_steps": 0,
                "scheduler": "constant", "max_pixels": pixels, "gradient_checkpointing": True,
                "save_steps": 10 ** 6, "logging_steps": 1},
        "grpo": {"max_steps": steps, "num_generations": generations, "prompts_per_step": prompts,
                 "micro_batch": generations * prompts, "max_completion_length": gen_len, "max_pixels": pixels,
                 "gradient_checkpointing": True, "save_steps": 10 ** 6, "logging_steps": 1},
        "eval": {"enabled": False},
    }
    if model == "tiny" and not path.exists():
        tree["model"]["tiny"] = TINY
    return config.from_dict(tree)


def images(cache: Path, size: int, n: int = 8) -> list[str]:
    """n fixed noise images of size x size pixels (the content does not matter, the size does)."""
    import numpy as np
    from PIL import Image

    folder = cache / "images" / str(size)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        if not path.exists():
            pixels = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def dataset(cfg: config.Config, stage: str, processor, cache: Path, size: int, gen_len: int, n: int):
    """Records in the Reason-RFT schema through the product's dataset builders; SFT targets of gen_len tokens."""
    from rrft_studio import data, tasks

    tokenizer = processor.tokenizer
    frame = "<think>\n{}\n</think>\n<answer>\n3\n</answer>"
    overhead = len(tokenizer(frame.format(""), add_special_tokens=False)["input_ids"]) + 1  # + <|im_end|>
    target = frame.format((WORD * max(gen_len - overhead, 1)).strip())
    paths = images(cache, size)
    rows = [{"id": f"b{i}", "image": paths[i % len(paths)], "problem": PROMPT, "answer": "3", "cot": target}
            for i in range(n)]
    # the bare problem as the prompt; the framed cot is the SFT target as it stands (schema.target keeps it)
    task = dataclasses.replace(tasks.get("counting"), prompt=lambda problem, style, **context: problem)
    return data.sft_dataset(rows, task, "cot") if stage == "sft" else data.grpo_dataset(rows, task)


def distinct_ratio(completions, completion_ids, **kwargs) -> list[float]:
    """A reward with spread on a random model's output (format and accuracy are 0 there): distinct ids / ids."""
    return [len(set(ids)) / max(len(ids), 1) for ids in completion_ids]
