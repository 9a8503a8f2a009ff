"""`rrft-studio export`: a trained model as a folder that other tools load without this project.

    rrft-studio export runs/<run> --format merged --out exports/demo        # transformers (and vLLM) load it
    rrft-studio export runs/<run> --format lora --out exports/demo-lora     # PEFT loads it over the base model
    rrft-studio export runs/<run> --format gguf --out exports/demo-gguf     # llama.cpp: model + vision projector
    rrft-studio export runs/<run> --format merged --out DIR --push-to-hub user/name

merged: config.json, safetensors shards, the processor (tokenizer, image processor, chat template), a
generation config with the decoding the run was evaluated with, and a README.md model card (card.py).
lora: one PEFT adapter over the run's base model. A run with two LoRA stages trained two adapters, the second
over the first one merged; their sum is exactly one adapter of rank r1 + r2 (A stacked, B side by side, each
scaled by its alpha / r), so the export needs no approximation. gguf: llama.cpp's own converter, run twice
(language model, then `--mmproj` for the vision projector), where it is installed.

The folder is written beside --out under a temporary name and renamed when complete: an error leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import runs
from ..config import Config, ConfigError
from . import card

FORMATS = ("merged", "lora", "gguf")
DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass
class Source:
    """What is exported: a checkpoint folder, and the run it belongs to where there is one."""

    checkpoint: Path
    run_dir: Path | None
    stage: str | None
    cfg: Config | None


def resolve(target: str) -> Source:
    """A run directory (its last finished stage) or a checkpoint folder (final/<stage> or any saved model)."""
    path = Path(target).expanduser()
    if runs.is_run(path):
        cfg = runs.load_config(path)
        stage = runs.last_finished_stage(path, cfg.run.stages)
        if stage is None:
            raise ConfigError(f"run '{path}' has no finished stage to export: wait for it or resume it")
        return Source(runs.final_dir(path, stage), path, stage, cfg)
    if (path / "config.json").is_file():
        run_dir = runs.run_of(path)
        stage = runs.final_stage(path)
        return Source(path, run_dir, stage, runs.load_config(run_dir) if run_dir else None)
    if (path / "adapter_config.json").is_file():
        raise ConfigError(f"'{path}' holds LoRA adapters only: export the run directory (or its final/<stage>), "
                          "where the adapters are merged and kept")
    raise ConfigError(f"'{target}' is neither a run directory nor a checkpoint (no config.yaml or config.json)")


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out '{out}' exists and is not empty: choose a new folder (nothing is overwritten)")
    if not out.parent.exists():
        raise ConfigError(f"--out '{out}': its parent folder '{out.parent}' does not exist")


def gguf_converter() -> list[str] | None:
    """The command of llama.cpp's convert_hf_to_gguf.py: $LLAMA_CPP_DIR/convert_hf_to_gguf.py, or one on PATH."""
    folder = os.environ.get("LLAMA_CPP_DIR")
    if folder and (Path(folder).expanduser() / "convert_hf_to_gguf.py").is_file():
        return [sys.executable, str(Path(folder).expanduser() / "convert_hf_to_gguf.py")]
    for name in ("convert_hf_to_gguf.py", "convert_hf_to_gguf", "convert-hf-to-gguf"):
        found = shutil.which(name)
        if found:
            return [sys.executable, found] if found.endswith(".py") else [found]
    return None


def check_hub(repo: str) -> None:
    """Before anything is built: uploading needs the network and a login."""
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise ConfigError(f"--push-to-hub {repo}: HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it, or "
                          "export without --push-to-hub and upload the folder later with `hf upload`")
    if get_token() is None:
        raise ConfigError(f"--push-to-hub {repo}: not logged in to the Hugging Face Hub: run `hf auth login` "
                          "(or set HF_TOKEN)")


def export(target: str, fmt: str, out: str, dtype: str | None = None, push_to_hub: str | None = None) -> Path:
    """Build the export in a temporary sibling of `out`, rename it into place, then upload where asked."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype}: choose bf16 or fp16 (or leave it out to keep the checkpoint's)")
    src, out_dir = resolve(target), Path(out).expanduser()
    check_out(out_dir)
    converter = gguf_converter() if fmt == "gguf" else None
    if fmt == "gguf" and converter is None:
        raise ConfigError("--format gguf needs llama.cpp's converter: clone llama.cpp, pip install -r its "
                          "requirements.txt, and set LLAMA_CPP_DIR to that folder; or export --format merged and "
                          "convert it yourself (see README: GGUF)")
    if fmt == "lora":
        check_lora(src)
    if push_to_hub:
        check_hub(push_to_hub)
    from transformers.utils import logging

    logging.set_verbosity_error()  # one line of output: no loading or writing progress bars
    logging.disable_progress_bar()
    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        if fmt == "merged":
            write_merged(src, tmp, dtype)
        elif fmt == "lora":
            write_lora(src, tmp)
        else:
            write_gguf(src, tmp, dtype, converter)
        for plot in [runs.plot_path(src.run_dir, name) for name in runs.PLOTS] if src.run_dir else []:
            if plot.is_file():
                shutil.copy2(plot, tmp / plot.name)
        if src.run_dir:
            shutil.copy2(runs.config_path(src.run_dir), tmp / "training_config.yaml")
        (tmp / "README.md").write_text(card.render(src, fmt, dtype, base_model(src)))
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if push_to_hub:
        upload(out_dir, push_to_hub)
    return out_dir


# ---------------------------------------------------------------- merged

def torch_dtype(dtype: str | None):
    import torch

    return "auto" if dtype is None else getattr(torch, DTYPES[dtype])


def write_merged(src: Source, out: Path, dtype: str | None) -> None:
    """The checkpoint re-saved as safetensors shards in the asked dtype, its processor and generation config."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(src.checkpoint, dtype=torch_dtype(dtype))
    processor = AutoProcessor.from_pretrained(src.checkpoint)
    set_generation_config(model, processor, src.cfg)
    model.save_pretrained(out, max_shard_size="5GB")
    processor.save_pretrained(out)


def set_generation_config(model, processor, cfg: Config | None) -> None:
    """End of turn as eos (each id once), and the run's eval decoding as the default, so a plain `generate`
    decodes as the eval table did."""
    generation = model.generation_config
    tokenizer = processor.tokenizer
    eos = generation.eos_token_id
    eos = list(dict.fromkeys(eos if isinstance(eos, list) else [eos] if eos is not None else []))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end not in eos:
        eos.insert(0, im_end)
    generation.eos_token_id = eos if len(eos) > 1 else (eos[0] if eos else None)
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    if cfg is not None:
        e = cfg.eval
        if e.temperature > 0:
            generation.do_sample, generation.temperature, generation.top_p, generation.top_k = True, e.temperature, e.top_p, e.top_k
        else:
            generation.do_sample = False
        generation.max_new_tokens = e.max_new_tokens


# ---------------------------------------------------------------- lora

def check_lora(src: Source) -> None:
    if src.run_dir is None or src.cfg is None:
        raise ConfigError(f"--format lora needs the run '{src.checkpoint}' came from (its adapters and base model): "
                          "give the run directory, or use --format merged")
    if src.cfg.model.finetune != "lora":
        raise ConfigError(f"run '{src.run_dir}' fine-tuned all weights (model.finetune=full): there are no adapters; "
                          "use --format merged")
    stages = lora_stages(src)
    missing = [s for s in stages if not (runs.final_dir(src.run_dir, s) / "lora" / "adapter_config.json").is_file()]
    if missing:
        raise ConfigError(f"run '{src.run_dir}' has no adapters in final/{missing[0]}/lora: use --format merged")


def lora_stages(src: Source) -> list[str]:
    """The stages whose adapters add up to the exported checkpoint, in training order."""
    stages = list(src.cfg.run.stages)
    return stages[: stages.index(src.stage) + 1] if src.stage in stages else stages


def base_model(src: Source) -> str:
    """What the run started from: the hub id (or folder) it names, or the tiny model it built."""
    if src.cfg is None:
        return str(src.checkpoint)
    if src.cfg.model.name != "tiny":
        return src.cfg.model.name
    return runs.read_status(src.run_dir).get("base_model") or "tiny"


def write_lora(src: Source, out: Path) -> None:
    """One adapter over the base model: the stages' adapters added up exactly (rank r1 + r2, scale 1)."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoProcessor

    adapters = []
    for stage in lora_stages(src):
        folder = runs.final_dir(src.run_dir, stage) / "lora"
        config = json.loads((folder / "adapter_config.json").read_text())
        adapters.append((config, load_file(str(folder / "adapter_model.safetensors"))))
    config, tensors = combine(adapters)
    config["base_model_name_or_path"] = base_model(src)
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.to(torch.float32).contiguous() for k, v in tensors.items()}, str(out / "adapter_model.safetensors"),
              metadata={"format": "pt"})
    AutoProcessor.from_pretrained(src.checkpoint).save_pretrained(out)


def _scale(config: dict) -> float:
    r = config["r"]
    return config["lora_alpha"] / (r ** 0.5 if config.get("use_rslora") else r)


def combine(adapters: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """Sum of LoRA deltas s_i B_i A_i as one adapter: A = [A_1; A_2; ...] (R, in), B = [s_1 B_1, s_2 B_2, ...]
    (out, R) with R = sum r_i and alpha = R (scale 1). A module one stage did not adapt gets zero blocks."""
    import torch

    if len(adapters) == 1:
        return dict(adapters[0][0]), dict(adapters[0][1])
    for config, _ in adapters:
        if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("use_dora"):
            raise ConfigError("--format lora: these adapters use per-module ranks or DoRA, which cannot be added up "
                              "exactly: use --format merged")
    ranks = [c["r"] for c, _ in adapters]
    total = sum(ranks)
    modules = sorted({k.rsplit(".lora_", 1)[0] for _, t in adapters for k in t if ".lora_A." in k})
    combined: dict = {}
    for module in modules:
        shapes = next((t[f"{module}.lora_A.weight"].shape[1], t[f"{module}.lora_B.weight"].shape[0])
                      for _, t in adapters if f"{module}.lora_A.weight" in t)
        a_blocks, b_blocks = [], []
        for (config, t), r in zip(adapters, ranks):
            a, b = t.get(f"{module}.lora_A.weight"), t.get(f"{module}.lora_B.weight")
            if a is None:
                a, b = torch.zeros(r, shapes[0]), torch.zeros(shapes[1], r)
            a_blocks.append(a.float())  # (r_i, in)
            b_blocks.append(b.float() * _scale(config))  # (out, r_i)
        combined[f"{module}.lora_A.weight"] = torch.cat(a_blocks, 0)  # (R, in)
        combined[f"{module}.lora_B.weight"] = torch.cat(b_blocks, 1)  # (out, R)
    config = dict(adapters[0][0])
    targets = [c["target_modules"] for c, _ in adapters]
    if all(isinstance(t, list) for t in targets):
        config["target_modules"] = sorted({m for t in targets for m in t})
    elif len({json.dumps(t) for t in targets}) > 1:  # regex or list: PEFT full-matches one regex
        config["target_modules"] = "|".join(f"(?:{t if isinstance(t, str) else '|'.join(map(_escape, t))})" for t in targets)
    config.update(r=total, lora_alpha=total, use_rslora=False, rank_pattern={}, alpha_pattern={})
    return config, combined


def _escape(name: str) -> str:
    import re

    return rf".*\b{re.escape(name)}"


# ---------------------------------------------------------------- gguf and the hub

def write_gguf(src: Source, out: Path, dtype: str | None, converter: list[str]) -> None:
    """The merged folder (temporary), then llama.cpp's converter: the language model, then the vision projector."""
    merged = out / ".merged"
    merged.mkdir()
    write_merged(src, merged, dtype)
    outtype = {"bf16": "bf16", "fp16": "f16", None: "auto"}[dtype]
    suffix = {"bf16": "-bf16", "fp16": "-f16", None: ""}[dtype]
    for extra, name in (([], f"model{suffix}.gguf"), (["--mmproj"], f"mmproj-model{suffix}.gguf")):
        command = [*converter, str(merged), "--outfile", str(out / name), "--outtype", outtype, *extra]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"llama.cpp's converter failed on {name}: {tail[0]}")
    shutil.rmtree(merged)


def upload(folder: Path, repo: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="Upload a Reason-RFT model exported by rrft-studio")
