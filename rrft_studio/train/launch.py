"""`rrft-studio train PRESET --launcher accelerate --processes N [--accelerate-config zero3]`: the run's ranks
started through `accelerate launch` on this machine.

This process validates the config, checks the data and creates the run directory (config.yaml with
run.processes and run.accelerate_config, status `created`), then starts

    accelerate launch --config_file configs/accelerate/<ddp|fsdp2|zero2|zero3>.yaml (or your file)
        --num_processes N --num_machines 1 --main_process_port 0 -m rrft_studio.cli train --resume RUN_DIR

in its own session, and waits. The ranks take the run over (ranks.py: rank 0 writes it). Ctrl-C or
SIGTERM here goes to rank 0 alone, which stops every rank at the end of the step with a checkpoint (a second
one aborts); the exit status is the run's: 0 finished, 128+signal stopped, 1 failed. `train --resume RUN` of a
run trained on several processes comes here again, with the same count. Several machines use `accelerate
launch` directly (README, examples/slurm/train.sbatch).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from .. import ranks, runs
from ..config import Config, ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def config_file(name: str) -> Path:
    """The accelerate config a run.accelerate_config names (ddp when empty)."""
    name = name or "ddp"
    path = CONFIGS / f"{name}.yaml" if name in ranks.STRATEGIES else Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"run.accelerate_config={name}: {path} not found: give an accelerate config file "
                          "(accelerate config --config_file FILE writes one)")
    return path


def read(name: str) -> dict:
    try:
        tree = yaml.safe_load(config_file(name).read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"run.accelerate_config: {config_file(name)} is not valid YAML ({e}): fix the file") from None
    if not isinstance(tree, dict) or "distributed_type" not in tree:
        raise ConfigError(f"run.accelerate_config: {config_file(name)} has no distributed_type: not an accelerate config")
    return tree


def strategy_of(name: str) -> str:
    """ddp, fsdp1, fsdp2, zero1, zero2 or zero3: what an accelerate config shards."""
    tree = read(name)
    kind = str(tree["distributed_type"]).upper()
    if kind == "DEEPSPEED":
        return f"zero{(tree.get('deepspeed_config') or {}).get('zero_stage', 0)}"
    if kind == "FSDP":
        return f"fsdp{(tree.get('fsdp_config') or {}).get('fsdp_version', 1)}"
    return "ddp"


def check_environment(cfg: Config) -> None:
    """What this machine must have for the launch: DeepSpeed for a zero config, as many GPUs as processes."""
    import torch

    name = cfg.run.accelerate_config or "ddp"
    cuda = cfg.run.device != "cpu" and torch.cuda.is_available()
    if not cuda and strategy_of(name) != "ddp":
        raise ConfigError(f"run.accelerate_config={name} shards the model over CUDA GPUs and this run has none (on the "
                          "CPU accelerate would quietly run plain DDP): use run.accelerate_config=ddp here")
    if strategy_of(name).startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"run.accelerate_config={name} needs DeepSpeed, which is not installed: pip install "
                          "deepspeed (on a CUDA machine), or use fsdp2")
    if cuda and torch.cuda.device_count() < cfg.run.processes:
        raise ConfigError(f"run.processes={cfg.run.processes} but this machine has {torch.cuda.device_count()} "
                          "GPU(s): one process per GPU (several machines: accelerate launch --num_machines, see README)")


def command(cfg: Config, run_dir: Path, rewards_dir: str | None = None) -> list[str]:
    """The accelerate launch that starts the run's ranks on this machine (a free rendezvous port)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file(cfg.run.accelerate_config)),
           "--num_processes", str(cfg.run.processes), "--num_machines", "1", "--machine_rank", "0",
           "--main_process_port", "0", "-m", "rrft_studio.cli", "train", "--resume", str(run_dir)]
    return cmd + (["--rewards-dir", str(rewards_dir)] if rewards_dir else [])


def run(cfg: Config, run_dir: Path, rewards_dir: str | None = None) -> int:
    """Start the ranks, pass stop requests to rank 0, and return the run's exit status."""
    cmd = command(cfg, run_dir, rewards_dir)
    env = {**os.environ, ranks.LAUNCHER_PID: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    print(f"run directory: {run_dir}\n{cfg.run.processes} processes: {shlex.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # the terminal's Ctrl-C reaches us alone
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        status = runs.read_status(run_dir)
        if status.get("launcher_pid") == os.getpid() and runs.pid_alive(status.get("pid")):
            os.kill(int(status["pid"]), signum)  # rank 0: every rank stops at the end of this step
        else:  # the ranks have not started training: nothing to save
            os.killpg(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    status = runs.read_status(run_dir)
    if status.get("launcher_pid") != os.getpid():  # the ranks never took the run over
        return code or 1
    if status.get("state") == "stopped":
        return 128 + (received[0] if received else signal.SIGTERM)
    return 0 if status.get("state") == "finished" else (code or 1)
