"""Several processes, GPUs or machines through accelerate: which process writes, how a stage's batch is split,
and how the processes (ranks) agree.

`rrft-studio train PRESET --launcher accelerate --processes N` (train/launch.py) or `accelerate launch ... -m
rrft_studio.cli train PRESET` start N copies of the CLI. They make one run: the main process (rank 0) creates
the run directory and tells the others, and it alone writes in it (config, status, metrics, rollouts,
evaluations, report, final weights); the trainers add their own per-rank checkpoint parts. A stop request or
non-finite weights seen by any rank stop every rank at the same step. Evaluation is sharded over the ranks
(eval/evaluate.py), and weights sharded over them are gathered into one final checkpoint (models.py). Each
stage keeps the preset's global batch, split as per-device batch x processes x accumulation with the per-device
batch no larger than the preset's; a process count that does not divide the global batch is refused in one line.

    accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m rrft_studio.cli train PRESET
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from .config import Config, ConfigError

STRATEGIES = ("ddp", "fsdp2", "zero2", "zero3")  # the accelerate configs the project ships (configs/accelerate/)
LAUNCHER_PID = "RRFT_STUDIO_LAUNCHER_PID"  # set by train/launch.py for the ranks it starts: it created the run
# what each strategy shards over the processes (the names of preflight's parts); DDP shards nothing
SHARDED = {"zero2": {"gradients", "AdamW states"},
           "zero3": {"weights", "reference model", "gradients", "AdamW states"},
           "fsdp2": {"weights", "reference model", "gradients", "AdamW states"}}


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    """Whether this process is one of several ranks."""
    return world_size() > 1


def launched() -> bool:
    """Whether this process was started by accelerate launch / torchrun (one rank or several)."""
    return "LOCAL_RANK" in os.environ or LAUNCHER_PID in os.environ


def launcher_pid() -> int | None:
    value = os.environ.get(LAUNCHER_PID)
    return int(value) if value else None


def wanted(cfg: Config) -> bool:
    """Whether the config asks for a launch through accelerate (several processes, or a named strategy)."""
    return cfg.run.processes > 1 or bool(cfg.run.accelerate_config)


def strategy() -> str:
    """The strategy this rank was launched with, read from accelerate's environment variables."""
    env = os.environ
    if env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return f"zero{env.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '')}"
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return f"fsdp{env.get('FSDP_VERSION', '1')}"
    return "ddp"


# ---------------------------------------------------------------- collectives

def init(cuda: bool) -> None:
    """Join the process group (gloo on the CPU, NCCL on CUDA) before the first collective; alone, nothing."""
    if active():
        from accelerate import PartialState

        if not cuda:  # accelerate names the CPU "cpu:0" on several processes, which torch.load cannot map a
            os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")  # checkpoint to: resume would fail
        PartialState(cpu=not cuda)  # the trainers' Accelerator reuses this state


def barrier() -> None:
    if active():
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def share(compute):
    """compute() on the main process, its result on every rank. A ConfigError there is raised on every rank
    (the CLI prints it on the main one only); any other failure ends the other ranks too."""
    if not active():
        return compute()
    from accelerate.utils import broadcast_object_list

    box, error = [None], None
    if is_main():
        try:
            box = [("ok", compute())]
        except ConfigError as e:
            box, error = [("config", str(e))], e
        except BaseException as e:
            box, error = [("failed", f"{type(e).__name__}: {e}")], e
    broadcast_object_list(box, from_process=0)
    if error is not None:
        raise error
    kind, value = box[0]
    if kind == "config":
        raise ConfigError(value)
    if kind == "failed":
        raise SystemExit(f"rank {rank()}: the main process failed ({value})")
    return value


def any_rank(*flags: bool) -> list[bool]:
    """Each flag, true where any rank has it true (one small all-reduce): every rank takes the same decision."""
    if not active():
        return [bool(f) for f in flags]
    import torch
    from accelerate import PartialState

    values = torch.tensor([float(bool(f)) for f in flags], device=PartialState().device)
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def gather(value) -> list:
    """Every rank's value, in rank order, on every rank."""
    if not active():
        return [value]
    from accelerate.utils import gather_object

    return gather_object([value])


@contextlib.contextmanager
def main_first():
    """The main process of each machine first (it fills the caches: tiny model, generated data), then the rest."""
    if not active():
        yield
        return
    from accelerate import PartialState

    with PartialState().local_main_process_first():
        yield


# ---------------------------------------------------------------- the batch

@dataclass(frozen=True)
class Split:
    """How a stage's global batch is shared: per_device x processes x accumulation."""

    processes: int
    per_device: int
    accumulation: int

    @property
    def global_batch(self) -> int:
        return self.per_device * self.processes * self.accumulation

    def as_dict(self) -> dict:
        return dict(processes=self.processes, per_device_batch=self.per_device, grad_accum=self.accumulation,
                    global_batch=self.global_batch)


def _global(cfg: Config, stage: str) -> tuple[int, int, str, str]:
    """(global batch, largest per-device batch, how the preset writes it, the key to change)."""
    if stage == "sft":
        s = cfg.sft
        return s.batch_size * s.grad_accum, s.batch_size, f"sft.batch_size {s.batch_size} x sft.grad_accum " \
                                                           f"{s.grad_accum}", "sft.grad_accum"
    g = cfg.grpo
    return g.prompts_per_step * g.num_generations, g.micro_batch, \
        f"grpo.prompts_per_step {g.prompts_per_step} x grpo.num_generations {g.num_generations} completions", \
        "grpo.prompts_per_step"


def split(cfg: Config, stage: str) -> Split:
    """The stage's global batch over run.processes (check() has made sure it divides): the largest per-device
    batch up to the preset's that divides each process's share, the rest as accumulation."""
    total, cap, _, _ = _global(cfg, stage)
    n = cfg.run.processes
    share = total // n
    per_device = max(d for d in range(1, min(cap, share) + 1) if share % d == 0)
    return Split(n, per_device, share // per_device)


def check(cfg: Config) -> None:
    """run.processes, run.accelerate_config and what cannot run on several processes, each in one line."""
    r, m = cfg.run, cfg.model
    name = r.accelerate_config
    if name and name not in STRATEGIES and not Path(name).expanduser().is_file():
        raise ConfigError(f"run.accelerate_config={name!r} is neither {', '.join(STRATEGIES)} nor an accelerate "
                          "config file: e.g. run.accelerate_config=zero3")
    if not wanted(cfg):
        return
    for stage in r.stages:
        total, _, what, key = _global(cfg, stage)
        if total % r.processes:
            counts = ", ".join(str(d) for d in range(1, min(total, 64) + 1) if total % d == 0)
            raise ConfigError(f"run.processes={r.processes} does not divide {stage}'s global batch {total} ({what}): "
                              f"use {counts} processes, or change {key}")
    fix = "set model.backend=auto or transformers (several processes train on transformers + peft)"
    if m.backend == "unsloth":
        raise ConfigError(f"model.backend=unsloth trains on one GPU and run.processes={r.processes}: {fix}")
    if m.load_in_4bit:
        raise ConfigError("model.load_in_4bit (QLoRA) runs on Unsloth's one-GPU path: on several processes train "
                          "16-bit LoRA (zero3 or fsdp2 shard it): set model.load_in_4bit=false")
    if m.fast_inference and "grpo" in r.stages:
        raise ConfigError("model.fast_inference runs Unsloth's vLLM engine inside one training process: on several "
                          "processes serve the rollouts with grpo.vllm_mode=server, or set model.fast_inference=false")


def check_count(cfg: Config, run_dir: Path, count: int) -> None:
    """A run resumes with the process count it trained with: its checkpoints hold that many ranks' states."""
    if cfg.run.processes != count:
        raise ConfigError(f"run '{run_dir}' trained on {cfg.run.processes} process(es) and this resume has {count}: "
                          f"resume with the same count (its checkpoints hold {cfg.run.processes} ranks' optimizer "
                          f"and random states): rrft-studio train --resume {run_dir}")


def adopt(cfg: Config) -> None:
    """In a rank of an accelerate launch of a preset: the config takes the launch's process count and strategy."""
    n = world_size()
    if cfg.run.processes not in (1, n):
        raise ConfigError(f"run.processes={cfg.run.processes} but accelerate launched {n} processes: launch "
                          f"--num_processes {cfg.run.processes}, or drop run.processes")
    cfg.run.processes = n
    if not cfg.run.accelerate_config and strategy() in STRATEGIES:  # recorded for a resume through train/launch.py
        cfg.run.accelerate_config = strategy()
    check(cfg)
