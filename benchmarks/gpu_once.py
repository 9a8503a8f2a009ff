"""The Python half of benchmarks/gpu_once.sh: the environment check, a full fine-tune's fp32 master weights, the
Unsloth chain on the micro model, its GRPO checkpoint reloaded with plain transformers, and the summary of
whatever has run so far.

Each part is its own process (Unsloth patches transformers and TRL when it is imported, and the reload must
run without it) and writes its result as it goes: a part killed at the budget's end leaves what it finished.

    python benchmarks/gpu_once.py env --json env.json          # imports, TRL's trainer classes, CUDA, bf16, 4-bit
    python benchmarks/gpu_once.py master --json 2-master.json --work /tmp/w   # one full fine-tune step at lr 1e-6
    python benchmarks/gpu_once.py chain --mode lora --json 4-chain.json --work /tmp/w
    python benchmarks/gpu_once.py reload --mode lora --json 4-chain.json
    python benchmarks/gpu_once.py summary --out OUT --parts parts.tsv --env env.json --budget 530 --elapsed 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the GPU machine runs from a copy of the tree, without `pip install -e`
MICRO = ROOT / "tests" / "data" / "micro.yaml"

# Unsloth first, as in every run: it patches transformers and TRL when it is imported.
REQUIRED = ("unsloth", "unsloth_zoo", "trl", "transformers", "peft", "datasets", "bitsandbytes", "math_verify")
OPTIONAL = {"xformers": "Unsloth uses SDPA attention without it (pack-site.sh leaves it out for size)"}
ALSO = ("torch", "torchvision", "accelerate", "triton", "tokenizers", "huggingface_hub", "safetensors", "fsspec",
        "pyarrow", "pillow", "matplotlib", "gradio", "vllm")  # versions only: what the image has
DISTRIBUTIONS = {"math_verify": "math-verify"}
CHECKED = ("unsloth", "unsloth_zoo", "trl", "datasets", "peft", "transformers", "accelerate")  # requirements met?
MODES = {"lora": ["model.finetune=lora"], "full": ["model.finetune=full"],
         "qlora": ["model.finetune=lora", "model.load_in_4bit=true"]}
# Tensor names that a merged 16-bit checkpoint must not hold: LoRA factors, bitsandbytes' 4-bit state.
NOT_MERGED = ("lora_", ".absmax", ".quant_map", "quant_state")
SKIPPED = 5  # exit status of a part that cannot run here; its last line of output says why
CHECK_FAILED = 4  # exit status of a part that ran but whose finding is wrong; its last line ("failed: ...") says what
# TRL's trainers as a training process builds them: Unsloth replaces them with its own on import (UnslothSFTTrainer,
# UnslothGRPOTrainer) and keeps TRL's, with a warning, where its patch fails
TRAINERS = ("SFTTrainer", "GRPOTrainer")
# A full fine-tune in bf16 (what model.dtype=auto gives on a GPU), one SFT step at GRPO's learning rate: fp32
# master weights move by about 1e-6 each, pure bf16 ones (the fault) mostly not at all. The vision tower frozen,
# so that the frozen weights' dtype is seen too; no weight decay and no warm-up, so the step is the update alone.
MASTER = ("model.finetune=full", "model.dtype=bfloat16", "sft.lr=1e-6", "sft.max_steps=1", "sft.freeze_vision=true",
          "sft.weight_decay=0", "sft.warmup_steps=0", "sft.save_steps=100")
MOVED_AT_LEAST = 0.9  # the share of trainable weight elements the step must change


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _last_line(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()[-1][:300]


def _write(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


class Stopped(Exception):
    """SIGTERM: the part's time limit (gpu_once.sh's `timeout`)."""

    def __str__(self) -> str:
        return "cut off at its time limit (SIGTERM)"


def _stop(signum, frame):
    raise Stopped()


# ---------------------------------------------------------------- 1. environment

def env(a) -> int:
    """Import everything a run needs, really; say where each came from. Exit 1 on a failed import (its
    traceback printed), 3 when there is no CUDA GPU outside a dry run."""
    facts: dict = {"python": sys.version.split()[0], "executable": sys.executable,
                   "pythonpath": os.environ.get("PYTHONPATH", ""), "imports": {}, "failed": []}
    print(f"python {facts['python']} ({sys.executable})\nPYTHONPATH={facts['pythonpath']}")
    for var in ("CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "UNSLOTH_DISABLE_STATISTICS", "TOKENIZERS_PARALLELISM"):
        print(f"{var}={os.environ.get(var, '(unset)')}")
    for name in ("torch", *REQUIRED, *OPTIONAL):
        started = time.perf_counter()
        try:
            module = __import__(name)
        except Exception as e:  # every import is tried, so one run names every missing piece
            if name in OPTIONAL:
                facts["imports"][name] = f"not importable ({_last_line(e)}): {OPTIONAL[name]}"
                print(f"{name}: {facts['imports'][name]}")
                continue
            print(f"FAILED: import {name}", flush=True)
            traceback.print_exc()
            facts["failed"].append(f"{name}: {_last_line(e)}")
            continue
        version = _version(DISTRIBUTIONS.get(name, name)) or getattr(module, "__version__", "?")
        where = Path(getattr(module, "__file__", "") or "?").parent.parent
        facts["imports"][name] = version
        print(f"{name} {version} from {where} ({time.perf_counter() - started:.1f} s)", flush=True)
    if "trl" in facts["imports"]:  # after `import unsloth` above, as in a training process
        facts["trainers"] = trainer_classes(facts["failed"])
    if "torch" not in facts["imports"]:  # nothing below can run
        _write(Path(a.json), facts)
        print(f"stopping: {'; '.join(facts['failed'])}")
        return 1
    import torch

    print(f"CUDA build {torch.version.cuda}")
    facts["versions"] = {name: _version(name) for name in ALSO}
    print("also: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in facts["versions"].items()))
    facts["requirements"] = unmet_requirements()
    for line in facts["requirements"]:
        print(f"requirement not met: {line}")
    facts.update(device_checks(torch))
    _write(Path(a.json), facts)
    if facts["failed"]:
        print(f"stopping: {len(facts['failed'])} import(s) failed: {'; '.join(facts['failed'])}")
        return 1
    if not facts["cuda"] and not a.dry_run:
        print("stopping: no CUDA GPU is visible, so there is nothing to measure (GPU_DRY_RUN=1 is the CPU check)")
        return 3
    return 0


def trainer_classes(failed: list[str]) -> dict:
    """TRL's trainer classes as this process sees them: Unsloth's where its import patched them, TRL's own where
    the patch failed (or on a CPU, where Unsloth patches nothing). A class that cannot be imported is a failed
    import: no stage could train."""
    import trl

    found = {}
    for name in TRAINERS:
        try:
            cls = getattr(trl, name)  # trl imports its trainers lazily: this is the real import
        except Exception as e:
            print(f"FAILED: from trl import {name}", flush=True)
            traceback.print_exc()
            failed.append(f"trl.{name}: {_last_line(e)}")
            continue
        found[name] = {"class": cls.__name__, "module": cls.__module__}
        print(f"trl.{name} is {cls.__name__} (from {cls.__module__})", flush=True)
    return found


def unmet_requirements() -> list[str]:
    """Declared requirements of the packed packages that the installed versions miss (pip would not say:
    .gpu-site is unpacked, not installed); a missing one is listed only when nothing provides its module."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    unmet = []
    for name in CHECKED:
        try:
            declared = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in declared:
            try:
                req = Requirement(text)
                if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                    continue
            except Exception as e:  # a requirement this packaging cannot read is a finding, not a stop
                unmet.append(f"{name} declares {text!r}, unreadable here: {_last_line(e)}")
                continue
            found = _version(req.name)
            if found is None:
                unmet.append(f"{name} wants {req}: not installed")
            elif req.specifier and not req.specifier.contains(found, prereleases=True):
                unmet.append(f"{name} wants {req}: {found} is installed")
    return unmet


def device_checks(torch) -> dict:
    """The device, its memory, a bf16 matmul's speed and a 4-bit bitsandbytes layer's forward pass."""
    cuda = torch.cuda.is_available()
    facts: dict = {"cuda": cuda}
    if not cuda:
        facts["device"] = "cpu (no CUDA GPU)"
        print("CUDA: no GPU visible")
    else:
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info()
        facts.update(device=props.name, capability=f"{props.major}.{props.minor}", memory_gib=total / 2 ** 30,
                     free_gib=free / 2 ** 30, device_count=torch.cuda.device_count())
        print(f"CUDA: {props.name}, capability {props.major}.{props.minor}, {total / 2 ** 30:.1f} GiB "
              f"({free / 2 ** 30:.1f} free), {torch.cuda.device_count()} device(s)")
    n = 8192 if cuda else 256
    device = "cuda" if cuda else "cpu"
    x = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    y = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):  # warm-up: cuBLAS picks its kernel
        x @ y
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        z = x @ y  # (n, n)
    sync()
    seconds = (time.perf_counter() - started) / repeats
    facts["bf16_matmul_tflops"] = 2 * n ** 3 / seconds / 1e12
    assert torch.isfinite(z.float()).all(), "the bf16 matmul gave non-finite values"
    print(f"bf16 matmul {n}x{n}: {facts['bf16_matmul_tflops']:.1f} TFLOP/s on {device}")
    if not cuda:
        facts["bnb_4bit"] = "skipped: no CUDA"
        print("4-bit bitsandbytes layer: skipped: no CUDA")
        return facts
    import bitsandbytes as bnb

    layer = bnb.nn.Linear4bit(4096, 4096, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4").to("cuda")
    out = layer(torch.randn(8, 4096, device="cuda", dtype=torch.bfloat16))  # (8, 4096)
    assert out.shape == (8, 4096) and torch.isfinite(out.float()).all(), "the 4-bit layer gave non-finite values"
    facts["bnb_4bit"] = f"ok: nf4 Linear4bit forward, weight stored as {layer.weight.dtype}"
    print(f"4-bit bitsandbytes layer: {facts['bnb_4bit']}")
    return facts


def _recorded(entry: dict, save, work):
    """work(), stopped by SIGTERM (the part's limit); a failure is recorded before it propagates, the peak GPU
    memory after it ends."""
    import torch

    signal.signal(signal.SIGTERM, _stop)
    try:
        result = work()
    except BaseException as e:
        entry["state"] = f"failed: {_last_line(e)}"
        save()
        raise
    if torch.cuda.is_available():
        entry["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return result


# ---------------------------------------------------------------- 2. fp32 master weights

def master(a) -> int:
    """The product's loader and one real SFT step of a full fine-tune on the micro model, through Unsloth on CUDA
    (transformers on a CPU): trainable weights must be fp32 master weights and the step at lr 1e-6 must change
    nearly all of them (`models.keeps_master_weights`: pure bf16 weights barely move at that rate). Exit 4, its
    reason as the last line, when either is not so."""
    import torch

    path = Path(a.json)
    record: dict = {}

    def save():
        _write(path, record)

    cuda = torch.cuda.is_available()
    if not cuda:
        record["note"] = "Unsloth skipped: no CUDA; the same checks through transformers, to check this script"
    problem = _recorded(record, save, lambda: master_steps(a, record, save, cuda))
    record["state"] = "ok" if problem is None else f"check failed: {problem}"
    save()
    print("\n".join(master_lines(record)))
    if problem:
        print(f"failed: {problem}")  # the last line: gpu_once.sh's record of the part
        return CHECK_FAILED
    return 0


def _dtypes(params: list) -> dict:
    return {"tensors": len(params), "elements": sum(p.numel() for p in params),
            "dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in params})}


def _decoder_layer(model):
    """(name, the language model's first decoder layer, its MLP's down_proj): the layer's output is the residual
    stream (fp32 where fp32 embeddings start it, autocast or not); down_proj's output is a matmul's, in the dtype
    the forward computes in (bf16 under autocast)."""
    import re

    import torch

    for name, module in model.named_modules():
        if re.search(r"(^|\.)layers\.0$", name) and "visual" not in name:
            linears = [(n, m) for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
            return name, module, next((m for n, m in linears if n.endswith("down_proj")), linears[-1][1])
    raise AssertionError(f"no decoder layer named ...layers.0 in {type(model).__name__}")


def _watch(module, seen: set) -> None:
    """Add the dtype of every output of `module` to `seen` (a decoder layer may return a tuple); never raises, so
    that an output of another shape (Unsloth's forward, say) costs the finding, not the training step."""
    def hook(module, args, out):
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        seen.add(str(getattr(first, "dtype", type(first).__name__)).removeprefix("torch."))

    module.register_forward_hook(hook)


def master_steps(a, record: dict, save, cuda: bool) -> str | None:
    """The steps, each recorded as it ends; the finding that fails the part, or None."""
    with step(record, "backend", save) as facts:  # Unsloth's import (and its patches to TRL) before TRL's
        from rrft_studio import config, data, models
        from rrft_studio.train import sft

        cfg = config.load(str(MICRO), [f"run.runs_dir={a.work}/runs-master", f"run.cache_dir={a.work}/cache",
                                       f"model.backend={'unsloth' if cuda else 'transformers'}", *MASTER])
        facts["backend"], facts["why"] = models.choose_backend(cfg)
        import trl

        facts["trl_trainers"] = {name: getattr(trl, name).__name__ for name in TRAINERS}
        facts["keeps_master_weights"] = models.keeps_master_weights(cfg)
        facts["precision_args"] = models.precision_args(cfg)
    backend = facts["backend"]
    with step(record, "load", save) as facts:
        source = models.source(cfg, data.corpus(cfg))
        if backend == "unsloth":  # what the loader hands Unsloth for the precision
            kwargs = models.unsloth_load_kwargs(cfg, cfg.sft, source)
            facts["unsloth_kwargs"] = {k: str(kwargs.get(k)) for k in ("dtype", "full_finetuning",
                                                                     "float32_mixed_precision")}
        model, processor, peft_config = models.load_for_training(cfg, cfg.sft, source, backend)
        assert peft_config is None, "model.finetune=full gave a LoRA config"
        params = list(model.named_parameters())
        trainable = [p for _, p in params if p.requires_grad]
        facts["trainable"] = _dtypes(trainable)
        facts["frozen"] = _dtypes([p for _, p in params if not p.requires_grad])
        facts["class"] = type(model).__name__
    if not trainable:
        return "the full fine-tune has no trainable weights"
    with step(record, "step", save) as facts:
        from trl import SFTTrainer  # Unsloth's where its import patched TRL

        before = {n: p.detach().clone() for n, p in params if p.requires_grad}
        layer_name, layer, matmul = _decoder_layer(model)
        seen: set[str] = set()
        seen_matmul: set[str] = set()
        _watch(layer, seen)
        _watch(matmul, seen_matmul)
        rows = data.stage_records(cfg, "sft")[:4]
        train = data.sft_dataset(rows, data.task_of(cfg), "cot", cfg)
        trainer = SFTTrainer(model=model, args=sft.trainer_args(cfg, Path(a.work) / "master", use_cpu=not cuda),
                             train_dataset=train, processing_class=processor)
        record["trainer"] = type(trainer).__name__  # beside the step: kept when the step fails
        save()
        result = trainer.train()
        after = dict(model.named_parameters())
        moved = sum(int((after[n].detach() != w).sum()) for n, w in before.items())
        total = sum(w.numel() for w in before.values())
        facts.update(loss=float(result.training_loss), layer=layer_name, layer_output_dtypes=sorted(seen),
                     matmul_output_dtypes=sorted(seen_matmul),
                     moved_fraction=moved / total, moved=moved, of=total,
                     trainable_after=_dtypes([p for p in after.values() if p.requires_grad])["dtypes"])
    found = record["step"]
    if record["load"]["trainable"]["dtypes"] != ["float32"] or found["trainable_after"] != ["float32"]:
        return (f"trainable weights are {record['load']['trainable']['dtypes']} after loading and "
                f"{found['trainable_after']} after the step, not float32 master weights")
    if found["moved_fraction"] < MOVED_AT_LEAST:
        return (f"one step at lr 1e-6 changed {found['moved_fraction']:.1%} of the trainable weights "
                f"(under {MOVED_AT_LEAST:.0%}): they do not train like fp32 master weights")
    return None


# ---------------------------------------------------------------- 4. the chain

@contextlib.contextmanager
def step(entry: dict, name: str, save):
    """Time a step of the chain and record it (running, ok with its facts, or failed with its error) at once."""
    entry[name] = {"state": "running"}
    save()
    facts: dict = {}
    started = time.perf_counter()
    try:
        yield facts
    except BaseException as e:
        entry[name] = {"state": "failed", "error": _last_line(e), "seconds": round(time.perf_counter() - started, 1)}
        save()
        raise
    entry[name] = {"state": "ok", "seconds": round(time.perf_counter() - started, 1), **facts}
    save()


def checkpoint_facts(path: Path, lora: bool) -> dict:
    """What a stage's final checkpoint holds; raises when it is not a plain merged 16-bit checkpoint."""
    from safetensors import safe_open

    weights = sorted(path.glob("*.safetensors"))
    if not weights or not (path / "config.json").is_file():
        raise AssertionError(f"{path} is not a checkpoint: {sorted(p.name for p in path.iterdir())}")
    keys, dtypes = [], set()
    for file in weights:
        with safe_open(str(file), "pt") as f:
            for key in f.keys():
                keys.append(key)
                dtypes.add(f.get_slice(key).get_dtype())
    stray = [k for k in keys if any(mark in k for mark in NOT_MERGED)]
    if stray:
        raise AssertionError(f"the merged checkpoint still holds {len(stray)} unmerged tensors, e.g. {stray[0]}")
    if lora and not (path / "lora" / "adapter_config.json").is_file():
        raise AssertionError(f"no lora/adapter_config.json beside the merged checkpoint in {path}")
    return {"final": str(path), "tensors": len(keys), "dtypes": sorted(dtypes),
            "bytes": sum(f.stat().st_size for f in weights), "adapters_beside": (path / "lora").is_dir()}


def chain(a) -> int:
    """SFT, merged save, GRPO, save, evaluation of one fine-tuning mode on the micro model, in this process."""
    import torch

    path = Path(a.json)
    record = json.loads(path.read_text()) if path.is_file() else {}
    entry = record[a.mode] = {}

    def save():
        _write(path, record)

    cuda = torch.cuda.is_available()
    if not cuda:
        entry["unsloth"] = "skipped: no CUDA"
        if a.mode == "qlora":
            entry["skipped"] = "no CUDA (4-bit layers need bitsandbytes' CUDA kernels)"
            save()
            print(f"skipped: {entry['skipped']}")
            return SKIPPED
        entry["note"] = "Unsloth skipped: no CUDA; the same chain ran through transformers, to check this script"
    _recorded(entry, save, lambda: chain_steps(a, entry, save, cuda))
    entry["state"] = "ok"
    save()
    print(f"{a.mode}: " + ", ".join(f"{k} {entry[k]['state']} {entry[k]['seconds']} s"
                                     for k in ("backend", "sft", "grpo", "eval")))
    return 0


def chain_steps(a, entry: dict, save, cuda: bool) -> None:
    with step(entry, "backend", save) as facts:  # the config, Unsloth's import (and its patches), TRL's
        from rrft_studio import config, data, models, runs

        cfg = config.load(str(MICRO), [f"run.runs_dir={a.work}/runs-{a.mode}", f"run.cache_dir={a.work}/cache",
                                       f"model.backend={'unsloth' if cuda else 'transformers'}", "model.lora_r=8",
                                       *MODES[a.mode]])
        facts["backend"], facts["why"] = models.choose_backend(cfg)
        import datasets
        from transformers.utils import logging

        from rrft_studio.eval import evaluate
        from rrft_studio.train import grpo, sft

        logging.disable_progress_bar()
        datasets.disable_progress_bars()
    backend, lora = facts["backend"], cfg.model.finetune == "lora"
    run_dir = runs.create(cfg)
    print(f"{a.mode}: backend {backend}, run directory {run_dir}", flush=True)
    with step(entry, "sft", save) as facts:
        out = sft.run(cfg, run_dir, models.source(cfg, data.corpus(cfg)), backend)
        facts.update(checkpoint_facts(out, lora))  # the merged save, checked
    with step(entry, "grpo", save) as facts:
        out = grpo.run(cfg, run_dir, str(out), backend)
        facts.update(checkpoint_facts(out, lora))
        logged = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r.get("stage") == "grpo" and "reward" in r]
        facts.update(logged_steps=len(logged), rewards=[r["reward"] for r in logged],
                     kl=[r.get("kl") for r in logged])
    with step(entry, "eval", save) as facts:
        result = evaluate.evaluate(str(out), cfg, evaluate.eval_rows(cfg, "id"), "grpo", "id")
        facts.update({k: result[k] for k in ("n", "accuracy", "format", "mean_length")})
    assert "gradio" not in sys.modules, "the chain imported gradio (the studio's), which the GPU image lacks"


def reload(a) -> int:
    """The chain's GRPO checkpoint loaded and run with plain transformers (Unsloth not imported here)."""
    path = Path(a.json)
    record = json.loads(path.read_text())
    entry = record[a.mode]
    final = entry.get("grpo", {}).get("final")
    if "skipped" in entry:
        print(f"skipped: the chain was skipped: {entry['skipped']}")
        return SKIPPED
    if not final:
        print(f"{a.mode}: the chain left no GRPO checkpoint to reload")
        return 1
    signal.signal(signal.SIGTERM, _stop)
    with step(entry, "reload", lambda: _write(path, record)) as facts:
        facts.update(generate_once(final))
    print(f"{a.mode}: reloaded with plain transformers: {entry['reload']}")
    return 0


def generate_once(final: str) -> dict:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rrft_studio import models

    assert "unsloth" not in sys.modules, "Unsloth was imported: this is not plain transformers"
    cuda = torch.cuda.is_available()
    model = AutoModelForImageTextToText.from_pretrained(final, dtype=torch.bfloat16 if cuda else torch.float32)
    model.to("cuda" if cuda else "cpu").eval()
    adapters = [name for name, _ in model.named_parameters() if "lora" in name]
    assert not adapters, f"the reloaded model still has LoRA parameters, e.g. {adapters[0]}"
    processor = AutoProcessor.from_pretrained(final)
    turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many objects?"}]}]
    text = processor.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (56, 56), "white")], return_tensors="pt").to(model.device)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False,  # (1, L + new)
                             suppress_tokens=models.vision_token_ids(processor) or None)
    new = out[0, inputs["input_ids"].shape[1]:]
    return {"class": type(model).__name__, "dtype": str(next(model.parameters()).dtype),
            "device": str(model.device), "generated_tokens": int(new.numel()),
            "text": processor.decode(new, skip_special_tokens=True)[:80]}


# ---------------------------------------------------------------- 0. the summary

def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _tail(path: Path, n: int = 15) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[-300:] for line in lines if line.strip()][-n:]


def summary(a) -> int:
    """0-summary.md: what ran, what failed with its last lines, the Unsloth / transformers ratios so far."""
    out = Path(a.out)
    facts = _read_json(Path(a.env)) if a.env else {}
    parts = [line.split("\t") for line in Path(a.parts).read_text().splitlines() if line.strip()]
    mode = "dry run on a CPU (tiny model, a few steps)" if a.dry_run else "GPU run"
    lines = [f"# gpu_once.sh: {facts.get('device', 'device unknown')}", "",
             f"{time.strftime('%Y-%m-%d %H:%M:%S')} · {mode} · {a.elapsed} s of the {a.budget} s budget used", ""]
    lines += env_lines(facts)
    lines += ["## Parts", "", "| part | result | s | log |", "|---|---|---|---|"]
    lines += [f"| {name} | {state} | {seconds} | {log} |" for name, state, seconds, log in parts]
    arms = _read_json(out / "3-ratio.json").get("results", [])  # parts 3, 5 and 6 append their arms to it
    lines += ["", "## Unsloth / transformers so far", "", *benchmark_tables(arms)]
    lines += ["", "## fp32 master weights: a full fine-tune of the micro model, one SFT step at lr 1e-6", "",
              *master_lines(_read_json(out / "2-master.json"))]
    lines += ["", "## The chain on the micro model", "", *chain_table(_read_json(out / "4-chain.json"))]
    failures = [(name, state, log) for name, state, _, log in parts
                if state != "ok" and not state.startswith("skipped")]
    failed_arms = [r for r in arms if "failed" in r]
    if failures or failed_arms:
        lines += ["", "## Failures"]
    for name, state, log in failures:
        lines += ["", f"### {name}: {state} (last lines of {log})", "", "```", *_tail(out / log), "```"]
    for r in failed_arms:
        lines += ["", f"### {r['model']} {r['mode']} {r['stage']} {r['arm']}: failed: {r['failed']}"]
        if r.get("last_lines"):
            lines += ["", "```", *r["last_lines"], "```"]
    _write_text(out / "0-summary.md", "\n".join(lines) + "\n")
    return 0


def env_lines(facts: dict) -> list[str]:
    """The environment part's findings in a few lines: versions, the device checks, what is missing."""
    if not facts:
        return []
    shown = ("torch", "accelerate", "fsspec", "pyarrow")
    versions = {**facts.get("imports", {}), **{k: v for k, v in facts.get("versions", {}).items() if k in shown}}
    unmet = facts.get("requirements", [])
    lines = ["versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    if "bf16_matmul_tflops" in facts:
        lines.append(f"bf16 matmul: {facts['bf16_matmul_tflops']:.1f} TFLOP/s; 4-bit layer: {facts.get('bnb_4bit')}")
    trainers = facts.get("trainers", {})
    if trainers:  # Unsloth's names where its import patched TRL, TRL's own where the patch failed
        lines.append("trainers after `import unsloth`: " + ", ".join(f"trl.{k} is {v['class']} ({v['module']})"
                                                                    for k, v in trainers.items()))
    lines += [f"requirement not met: {r}" for r in unmet[:12]]
    lines += [f"... {len(unmet) - 12} more in 1-env.log"] if len(unmet) > 12 else []
    return lines + [f"FAILED import {f}" for f in facts.get("failed", [])] + [""]


def benchmark_tables(arms: list[dict]) -> list[str]:
    if not arms:
        return ["no benchmark arm has run yet"]
    sys.path.insert(0, str(HERE))
    import bench  # noqa: PLC0415  (same folder; light: neither torch nor transformers)
    import run_all  # noqa: PLC0415

    return [run_all.ratio_table(arms), "", bench.table(arms)]


def master_lines(record: dict) -> list[str]:
    if not record:
        return ["the master-weights part has not run"]
    load, found = record.get("load", {}), record.get("step", {})
    lines = [f"state: {record.get('state', 'cut off before it ended')}"]
    if "backend" in record.get("backend", {}):
        lines.append(f"backend {record['backend']['backend']}; TRL's trainers {record['backend'].get('trl_trainers')}"
                     + (f"; {record['note']}" if "note" in record else ""))
    if "trainable" in load:
        lines.append(f"trainable: {load['trainable']['tensors']} tensors, {load['trainable']['elements']} elements, "
                     f"{load['trainable']['dtypes']}; frozen: {load['frozen']['tensors']} tensors, "
                     f"{load['frozen']['dtypes']}" + (f"; Unsloth given {load['unsloth_kwargs']}"
                                                      if "unsloth_kwargs" in load else ""))
    if "trainer" in record:
        lines.append(f"trainer: {record['trainer']}")
    if "moved_fraction" in found:
        lines.append(f"one step: {found['moved_fraction']:.1%} of the trainable elements changed; the decoder "
                     f"layer's output (the residual stream) in {found['layer_output_dtypes']}, its down_proj's "
                     f"(a matmul) in {found['matmul_output_dtypes']}; loss {found['loss']:.4f}")
    lines += [f"{name} failed: {s['error']}" for name in ("backend", "load", "step")
              if isinstance(s := record.get(name), dict) and s.get("state") == "failed"]
    if "peak_memory_gib" in record:
        lines.append(f"peak {record['peak_memory_gib']:.2f} GiB")
    return [f"- {line}" for line in lines]


def chain_table(record: dict) -> list[str]:
    if not record:
        return ["the chain has not run"]
    steps = ("backend", "sft", "grpo", "eval", "reload")
    lines = ["| mode | " + " | ".join(steps) + " | notes |", "|---" * (len(steps) + 2) + "|"]
    for mode, entry in record.items():
        cells = []
        for name in steps:
            s = entry.get(name)
            cells.append("" if s is None else f"{s['state']} {s.get('seconds', '')} s" +
                         (f": {s['error']}" if "error" in s else ""))
        notes = [f"skipped: {entry['skipped']}"] if "skipped" in entry else []
        if str(entry.get("state", "")).startswith("failed"):
            notes.append(entry["state"])
        if "backend" in entry and "backend" in entry["backend"]:
            notes.append(f"backend {entry['backend']['backend']}")
        if "note" in entry:
            notes.append(entry["note"])
        if "eval" in entry and "accuracy" in entry["eval"]:
            notes.append(f"eval n={entry['eval']['n']} accuracy {entry['eval']['accuracy']:.2f}")
        if "peak_memory_gib" in entry:
            notes.append(f"peak {entry['peak_memory_gib']:.2f} GiB")
        lines.append(f"| {mode} | " + " | ".join(cells) + f" | {'; '.join(notes)} |")
    return lines


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    e = sub.add_parser("env", help="imports, versions, TRL's trainer classes, CUDA, a bf16 matmul, a 4-bit layer")
    e.add_argument("--json", required=True)
    e.add_argument("--dry-run", action="store_true", help="no CUDA is fine")
    m = sub.add_parser("master", help="a full fine-tune's fp32 master weights and one SFT step at lr 1e-6")
    m.add_argument("--json", required=True)
    m.add_argument("--work", required=True, help="folder for the micro model and the trainer's output")
    c = sub.add_parser("chain", help="SFT, merged save, GRPO, save, evaluation on the micro model")
    c.add_argument("--mode", choices=list(MODES), default="lora")
    c.add_argument("--json", required=True)
    c.add_argument("--work", required=True, help="folder for the run and its cache")
    r = sub.add_parser("reload", help="the chain's GRPO checkpoint through plain transformers")
    r.add_argument("--mode", choices=list(MODES), default="lora")
    r.add_argument("--json", required=True)
    s = sub.add_parser("summary", help="0-summary.md from the parts so far")
    s.add_argument("--out", required=True)
    s.add_argument("--parts", required=True, help="name, state, seconds, log: one tab-separated line per part")
    s.add_argument("--env")
    s.add_argument("--budget", type=int, default=530)
    s.add_argument("--elapsed", type=int, default=0)
    s.add_argument("--dry-run", action="store_true")
    a = p.parse_args(argv)
    return {"env": env, "master": master, "chain": chain, "reload": reload, "summary": summary}[a.part](a)


if __name__ == "__main__":
    sys.exit(main())
