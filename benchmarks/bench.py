"""One benchmark arm in this process: a fixed SFT or GRPO workload through one backend, timed and measured.

Each arm runs in its own process, because Unsloth patches transformers and TRL on import; `run_all.py`
spawns them and compares them. The arm drives the product's own code (models.load_for_training,
sft.trainer_args / grpo.trainer_args, data.sft_dataset / data.grpo_dataset, the product's rewards) so it
measures what `rrft-studio train` runs. The model has the real shape of a published checkpoint
(rrft_studio.train.preflight.PUBLISHED) with random weights, built here from its config (nothing is downloaded),
or `tiny`, the CI micro shape. Images have one fixed size and every completion one fixed length (SFT: a
target of that many tokens; GRPO: `min_new_tokens` = max = --gen-len), so the arms do the same work.

SFT: non-padding tokens per second, step time (median, p90; the first step, with its warm-up, apart),
peak memory, estimated MFU (6 x parameters x tokens for trained weights, 4 x for frozen ones that gradients
pass through, 2 x forward-only, the vision tower's parameters x its patches counted the same way;
recomputation by checkpointing is not counted), the loss at each step. GRPO: seconds per step split into
generation, reward, log-probabilities (reference and policy forwards), backward and the rest; rollout tokens
per second against the decode roofline (weights + KV cache read once per decode step); peak memory; reward
and KL at each step. Every result also carries rrft_studio.train.preflight's estimate of its peak.

    python benchmarks/bench.py --arm transformers --model tiny --mode lora --stage sft --steps 2 \\
        --image-size 112 --gen-len 16 --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the GPU machine runs from a copy of the tree, without `pip install -e`

from rrft_studio import config, data, models  # noqa: E402  (light: neither imports transformers nor trl)
from workload import MODELS, PROMPT, arm_config, checkpoint, dataset, distinct_ratio  # noqa: E402

ARMS = ("transformers", "transformers_vllm", "unsloth", "unsloth_vllm")
# Dense bf16 tensor FLOP/s and memory bandwidth (bytes/s) from the vendors' datasheets, by device name.
DEVICES = {
    "H100 NVL": (835e12, 3.9e12), "H100 PCIe": (756e12, 2.0e12), "H100": (989e12, 3.35e12),
    "H200": (989e12, 4.8e12), "A100-SXM4-80GB": (312e12, 2.039e12), "A100": (312e12, 1.555e12),
    "L40S": (362e12, 0.864e12),
}


# ---------------------------------------------------------------- what can run here

def skip_reason(arm: str, model: str, mode: str, stage: str) -> str | None:
    """Why this arm cannot run on this machine (None: it can). Uses the product's own fast_inference checks."""
    import torch

    if arm != "transformers" and not torch.cuda.is_available():
        return "no CUDA GPU (Unsloth's vision models and vLLM need one)"
    if arm.endswith("_vllm"):
        if stage != "grpo":
            return "vLLM only generates: GRPO arms only"
        if importlib.util.find_spec("vllm") is None:
            return "vllm is not installed (its 336 MB wheel pins its own torch; it cannot reach the GPU machine)"
    if arm == "unsloth_vllm":
        try:
            models.check_fast_inference(arm_config(arm, model, mode, stage, Path("/nonexistent"), 2, 16, 112))
        except config.ConfigError as e:
            return str(e)
    return None


# ---------------------------------------------------------------- timing

class Clock:
    """Wall time per optimizer step and per part of it, the device synchronised at every edge."""

    def __init__(self):
        import torch

        self.sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        self.steps: list[dict] = []
        self.current: dict = {}
        self.inside_loss = False

    def timed(self, part: str, fn, count=None):
        def wrapper(*args, **kwargs):
            if part == "logprobs" and self.inside_loss:
                return fn(*args, **kwargs)  # already inside compute_loss's time
            self.sync()
            start = time.perf_counter()
            self.inside_loss = self.inside_loss or part == "loss_forward"
            try:
                out = fn(*args, **kwargs)
            finally:
                if part == "loss_forward":
                    self.inside_loss = False
            self.sync()
            self.current[part] = self.current.get(part, 0.0) + time.perf_counter() - start
            if count is not None:
                count(self.current, args, kwargs, out)
            return out
        return wrapper

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class StepClock(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                clock.sync()
                clock.current = {"start": time.perf_counter()}

            def on_step_end(self, args, state, control, **kwargs):
                clock.sync()
                row = dict(clock.current)
                row["total"] = time.perf_counter() - row.pop("start")
                clock.steps.append(row)

        return StepClock()


def _count_inputs(current: dict, args, kwargs, out) -> None:
    """Non-padding tokens and vision patches of a micro batch: SFT's collated batch (training_step) or GRPO's
    prepared one (compute_loss)."""
    inputs = args[1] if len(args) > 1 else kwargs["inputs"]  # (model, inputs, ...)
    masks = [inputs[k] for k in ("attention_mask", "prompt_mask", "completion_mask") if k in inputs]
    current["tokens"] = current.get("tokens", 0) + sum(int(m.sum()) for m in masks)
    if "image_grid_thw" in inputs:
        current["patches"] = current.get("patches", 0) + int(inputs["image_grid_thw"].prod(-1).sum())


def _count_rollout(current: dict, args, kwargs, out) -> None:
    completion_ids = out[1] if isinstance(out, tuple) else []
    current["rollout_tokens"] = current.get("rollout_tokens", 0) + sum(len(ids) for ids in completion_ids)
    current["completions"] = current.get("completions", 0) + len(completion_ids)


def instrument(trainer, clock: Clock, stage: str) -> None:
    """Wrap the trainer's own methods on this instance (TRL 1.15.0 names, kept by Unsloth's patches)."""
    trainer.add_callback(clock.callback())
    if stage == "sft":
        trainer.training_step = clock.timed("training_step", trainer.training_step, _count_inputs)
    backward = trainer.accelerator.backward
    trainer.accelerator.backward = clock.timed("backward", backward)
    if stage == "grpo":
        trainer._generate = clock.timed("generation", trainer._generate, _count_rollout)
        trainer._calculate_rewards = clock.timed("reward", trainer._calculate_rewards)
        trainer._get_per_token_logps_and_entropies = clock.timed("logprobs", trainer._get_per_token_logps_and_entropies)
        trainer.compute_loss = clock.timed("loss_forward", trainer.compute_loss, _count_inputs)


# ---------------------------------------------------------------- figures

def device_figures() -> tuple[str, float | None, float | None]:
    """(device name, peak bf16 FLOP/s, memory bytes/s); None where unknown (a CPU)."""
    import platform

    import torch

    if not torch.cuda.is_available():
        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)", None, None
    name = torch.cuda.get_device_name()
    for key, (flops, bandwidth) in DEVICES.items():
        if key in name:
            return name, flops, bandwidth
    return name, None, None


def median_p90(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p90": None}
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]}


def peak_memory() -> tuple[float, str]:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2 ** 30, "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, "cpu process peak RSS (not comparable)"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "unsloth", "unsloth_zoo", "vllm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def flop_factors(cfg: config.Config, stage: str) -> tuple[int, int]:
    """FLOPs per parameter per token for (language model, vision tower): 6 trained, 4 frozen with gradients
    flowing through, 2 forward only."""
    st, m = getattr(cfg, stage), cfg.model
    text = 6 if m.finetune == "full" else 4
    vision_lora = m.finetune == "lora" and models.lora_parts(m.lora_layers, st.freeze_vision)["vision"]
    vision = 6 if m.finetune == "full" and not st.freeze_vision else (4 if vision_lora else 2)
    return text, vision


# ---------------------------------------------------------------- the arm

def run_arm(a) -> dict:
    cfg = arm_config(a.arm, a.model, a.mode, a.stage, Path("/nonexistent"), a.steps, a.gen_len, a.image_size,
                     a.batch, a.generations, a.prompts)
    backend, why = models.choose_backend(cfg)  # imports Unsloth first where it is the backend
    cache = Path(a.cache).resolve()
    path = checkpoint(a.model, cache)
    cfg = arm_config(a.arm, a.model, a.mode, a.stage, path, a.steps, a.gen_len, a.image_size,
                     a.batch, a.generations, a.prompts)
    import torch
    from transformers import PrinterCallback, set_seed

    from rrft_studio.train import grpo, preflight, sft

    set_seed(0)
    started = time.perf_counter()
    stage_cfg = getattr(cfg, a.stage)
    model, processor, peft_config = models.load_for_training(cfg, stage_cfg, str(path), backend)
    n = a.steps * (a.batch if a.stage == "sft" else a.prompts)
    train = dataset(cfg, a.stage, processor, cache, a.image_size, a.gen_len, n)
    out_dir = cache / "trainer" / f"{a.arm}-{a.model}-{a.mode}-{a.stage}"
    use_cpu = not torch.cuda.is_available()
    if a.stage == "sft":
        from trl import SFTTrainer

        trainer = SFTTrainer(model=model, args=sft.trainer_args(cfg, out_dir, use_cpu), train_dataset=train,
                             processing_class=processor, peft_config=peft_config)
    else:
        from trl import GRPOTrainer

        args = grpo.trainer_args(cfg, out_dir, use_cpu, models.vision_token_ids(processor))
        vllm = a.arm.endswith("_vllm")
        if a.arm == "transformers_vllm":  # TRL's own colocated vLLM engine
            args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization = True, "colocate", 0.3
            args.generation_kwargs = {"logit_bias": {i: -100.0 for i in models.vision_token_ids(processor)}}
        args.generation_kwargs = {**(args.generation_kwargs or {}),
                                  ("min_tokens" if vllm else "min_new_tokens"): a.gen_len}  # fixed length
        args.reward_weights = [*cfg.grpo.reward_weights, 1.0]
        trainer = GRPOTrainer(model=model, reward_funcs=[*grpo.reward_funcs(cfg), distinct_ratio], args=args,
                              train_dataset=train, processing_class=processor, peft_config=peft_config)
    trainer.remove_callback(PrinterCallback)
    clock = Clock()
    instrument(trainer, clock, a.stage)
    trainer.train()
    return summarise(a, cfg, backend, why, trainer, clock, time.perf_counter() - started, preflight)


def summarise(a, cfg, backend, why, trainer, clock, seconds, preflight) -> dict:
    shape = preflight.shape_of(trainer.model.config.to_dict())
    text_params, vision_params = shape.params()
    name, peak_flops, bandwidth = device_figures()
    memory, memory_kind = peak_memory()
    steps = clock.steps
    timed = steps[1:] if len(steps) > 2 else steps  # the first step carries warm-up
    totals = [s["total"] for s in timed]
    logs = [row for row in trainer.state.log_history if "loss" in row]
    per_sample = a.batch if a.stage == "sft" else max(steps[0].get("completions", 1), 1) if steps else 1
    image_tokens = (steps[0].get("patches", 0) if steps else 0) // 4 // per_sample
    text_tokens = len(trainer.processing_class.tokenizer(PROMPT)["input_ids"]) + data.TEMPLATE_TOKENS
    estimate = preflight.estimate(cfg, a.stage, backend, shape,
                                  (image_tokens, text_tokens + (a.gen_len if a.stage == "sft" else 0)))
    result = {
        "arm": a.arm, "backend": backend, "backend_why": why, "model": a.model, "hub_shape": MODELS[a.model],
        "mode": a.mode, "stage": a.stage, "steps": len(steps), "image_size": a.image_size, "gen_len": a.gen_len,
        "image_tokens": image_tokens, "device": name, "versions": versions(),
        "params": {"language": text_params, "vision": vision_params},
        "step_time_s": {**median_p90(totals), "first": steps[0]["total"] if steps else None,
                        "all": [s["total"] for s in steps]},
        "peak_memory_gib": memory, "memory_kind": memory_kind, "preflight_gib": estimate.peak / preflight.GiB,
        "seconds": seconds, "losses": [row["loss"] for row in logs],
    }
    if a.stage == "sft":
        tokens = [s.get("tokens", 0) for s in timed]
        f_text, f_vision = flop_factors(cfg, "sft")
        head = shape.vocab * shape.hidden * (1 if shape.tied else 2)  # embeddings are lookups, the head a matmul
        matmul = text_params - head + shape.vocab * shape.hidden
        flops = sum(f_text * matmul * s.get("tokens", 0) + f_vision * vision_params * s.get("patches", 0)
                    for s in timed)
        result.update(batch=a.batch, tokens_per_step=statistics.median(tokens) if tokens else None,
                      tokens_per_s=sum(tokens) / sum(totals) if totals else None,
                      mfu=flops / sum(totals) / peak_flops if peak_flops and totals else None)
        return result
    parts = ("generation", "reward", "logprobs", "loss_forward", "backward")  # means: they add up to the step
    split = {p: sum(s.get(p, 0.0) for s in timed) / max(len(timed), 1) for p in parts}
    split["logprobs"] += split.pop("loss_forward")
    split["other"] = sum(totals) / max(len(totals), 1) - sum(split.values())
    generated = sum(s.get("rollout_tokens", 0) for s in timed)
    gen_time = sum(s.get("generation", 0.0) for s in timed)
    n = timed[0].get("completions", 0) if timed else 0
    result.update(completions_per_step=n, split_s=split, rollout_tokens_per_step=generated / max(len(timed), 1),
                  rollout_tokens_per_s=generated / gen_time if gen_time else None,
                  roofline_tokens_per_s=roofline(shape, n, image_tokens + text_tokens, a.gen_len, bandwidth),
                  rewards=[row.get("reward") for row in logs], kl=[row.get("kl") for row in logs])
    return result


def roofline(shape, n: int, prompt: int, gen_len: int, bandwidth: float | None) -> float | None:
    """Most decode tokens/s the memory allows: n sequences advance one token per read of the language model's
    bf16 weights and of the KV cache (at its mean length over the rollout)."""
    if not bandwidth or not n:
        return None
    weights = 2 * (shape.params()[0] - (0 if shape.tied else shape.vocab * shape.hidden))  # lookups read rows only
    kv = n * (prompt + gen_len / 2) * shape.layers * shape.kv_heads * shape.head_dim * 2 * 2
    return n * bandwidth / (weights + kv)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def mean_of(values: list) -> float | None:
    """The mean of the known values (None: not measured), or None."""
    known = [v for v in values if v is not None]
    return _mean(known) if known else None


def cell(value, spec: str = ".3g") -> str:
    """A table cell: the value formatted, n/a where it was not measured."""
    return "n/a" if value is None else format(value, spec)


def table(results: list[dict]) -> str:
    """Markdown: one table per stage; skipped and failed arms are rows that say why."""
    blocks = []
    for stage in ("sft", "grpo"):
        rows = [r for r in results if r["stage"] == stage]
        if not rows:
            continue
        if stage == "sft":
            head = ["model", "mode", "arm", "step s (median / p90)", "tokens/s", "peak GiB (preflight)", "MFU",
                    "loss (first, last)"]
        else:
            head = ["model", "mode", "arm", "step s (median / p90)", "generation / reward / logprobs / backward / "
                    "other s", "rollout tok/s (roofline)", "peak GiB (preflight)", "reward", "KL"]
        lines = [f"**{stage.upper()}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [r["model"], r["mode"], r["arm"]]
            if "skipped" in r or "failed" in r:
                what = f"skipped: {r['skipped']}" if "skipped" in r else f"failed: {r['failed']}"
                cells += [what] + [""] * (len(head) - 4)
            else:
                t = r["step_time_s"]
                cells += [f"{cell(t['median'])} / {cell(t['p90'])}"]
                memory = f"{cell(r['peak_memory_gib'], '.2f')} ({cell(r['preflight_gib'], '.1f')})"
                if stage == "sft":
                    losses = r["losses"]
                    cells += [cell(r["tokens_per_s"], ".1f"), memory, cell(r["mfu"], ".1%"),
                              f"{cell(losses[0] if losses else None, '.4f')}, {cell(losses[-1] if losses else None, '.4f')}"]
                else:
                    s = r["split_s"]
                    cells += [" / ".join(cell(s[k], ".2f") for k in ("generation", "reward", "logprobs", "backward",
                                                                    "other")),
                              f"{cell(r['rollout_tokens_per_s'], '.1f')} ({cell(r['roofline_tokens_per_s'], '.0f')})",
                              memory, cell(mean_of(r["rewards"]), ".3f"), cell(mean_of(r["kl"]), ".2g")]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def row(result: dict) -> str:
    """One markdown row (the same columns as run_all's tables)."""
    return table([result])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arm", choices=ARMS, default="transformers")
    p.add_argument("--model", choices=list(MODELS), default="tiny")
    p.add_argument("--mode", choices=["full", "lora"], default="lora")
    p.add_argument("--stage", choices=["sft", "grpo"], default="sft")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--image-size", type=int, default=448)
    p.add_argument("--gen-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=2, help="SFT: samples per step")
    p.add_argument("--generations", type=int, default=4, help="GRPO: completions per prompt (G)")
    p.add_argument("--prompts", type=int, default=2, help="GRPO: prompts per step")
    p.add_argument("--cache", default=str(ROOT / "benchmarks" / ".cache"), help="built models and images")
    p.add_argument("--out", help="write the result here as JSON")
    a = p.parse_args(argv)
    reason = skip_reason(a.arm, a.model, a.mode, a.stage)
    result = {"arm": a.arm, "model": a.model, "mode": a.mode, "stage": a.stage, "skipped": reason} if reason \
        else run_arm(a)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1))
    print(row(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
