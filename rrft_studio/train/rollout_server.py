"""GRPO's rollouts on a vLLM server (grpo.vllm_mode=server): TRL's server mode, checked before the run.

The server runs on its own GPUs and the training on the others:

    CUDA_VISIBLE_DEVICES=0 trl vllm-serve --model Qwen/Qwen2-VL-2B-Instruct --port 8000 --max-model-len 5120
    CUDA_VISIBLE_DEVICES=1,2,3 rrft-studio train PRESET --processes 3 grpo.vllm_mode=server

The main process sends the prompts (and their images) to the server and gives each rank its completions; before
each rollout step it sends the policy's weights over NCCL (LoRA merged first, so adapters on any layer, the
vision tower's included, reach the server). So the server starts from the base model (model.name) even when GRPO
starts from Stage 1's output. What is checked, in one line each, before anything is written: the combination
(not with model.fast_inference, Unsloth's colocated engine; no 4-bit weights, which cannot be merged and sent;
a Qwen2-VL or Qwen2.5-VL model, both served by vLLM, several images per prompt included), that the server
answers within grpo.vllm_server_timeout and serves the same model, then vllm installed here and a CUDA GPU
(TRL's client sends the weights with NCCL).
"""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import data, models
from ..config import Config, ConfigError

def uses_server(cfg: Config) -> bool:
    return cfg.grpo.vllm_mode == "server" and "grpo" in cfg.run.stages


def url(cfg: Config) -> str:
    host = cfg.grpo.vllm_server_host
    return f"http://{f'[{host}]' if ':' in host else host}:{cfg.grpo.vllm_server_port}"


def serve_command(cfg: Config) -> str:
    """The `trl vllm-serve` line for this run: its model, port and longest sequence, and for two images per
    prompt (spatial) vLLM's per-prompt image limit (extra arguments go on to `vllm serve`)."""
    name = cfg.model.name if cfg.model.name != "tiny" else "<the tiny model's folder>"
    line = (f"trl vllm-serve --model {name} --port {cfg.grpo.vllm_server_port} "
            f"--max_model_len {models.max_seq_length(cfg, cfg.grpo)}")
    images = data.task_of(cfg).images_per_sample
    return line + (f" --limit-mm-per-prompt '{{\"image\": {images}}}'" if images > 1 else "")


def _get(address: str, timeout: float) -> tuple[int, bytes]:
    with urllib.request.urlopen(address, timeout=timeout) as response:  # noqa: S310 (http to the user's server)
        return response.status, response.read()


def wait(cfg: Config) -> list[str]:
    """The server's model ids, once /health answers; ConfigError after grpo.vllm_server_timeout seconds."""
    base, deadline, said = url(cfg), time.monotonic() + cfg.grpo.vllm_server_timeout, False
    while True:
        try:
            status, _ = _get(f"{base}/health", timeout=5)
            if status == 200:
                break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() >= deadline:
            raise ConfigError(f"no vLLM server answers at {base} (waited {cfg.grpo.vllm_server_timeout:g} s, "
                              f"grpo.vllm_server_timeout): start it on its own GPUs (CUDA_VISIBLE_DEVICES=0 "
                              f"{serve_command(cfg)}) or fix grpo.vllm_server_host / grpo.vllm_server_port")
        if not said:
            print(f"waiting for the vLLM server at {base} (up to {cfg.grpo.vllm_server_timeout:g} s)", flush=True)
            said = True
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    try:
        _, body = _get(f"{base}/v1/models", timeout=10)
        return [m.get("id", "") for m in json.loads(body).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError):
        return []


def _same(served: str, name: str) -> bool:
    """A hub id and a local folder of it name the same model when their last parts agree."""
    return Path(served.rstrip("/")).name.lower() == Path(name.rstrip("/")).name.lower()


def check(cfg: Config, cuda: bool) -> None:
    """Before the run: the server answers and serves this model, then this machine can talk to it."""
    if not uses_server(cfg):
        return
    served = wait(cfg)
    if served and cfg.model.name != "tiny" and not any(_same(s, cfg.model.name) for s in served):
        raise ConfigError(f"the vLLM server at {url(cfg)} serves {', '.join(served)} and this run trains "
                          f"{cfg.model.name}: start it with {serve_command(cfg)}")
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("grpo.vllm_mode=server needs vllm installed here too (TRL's client sends the weights to the "
                          f"server with it): {models.VLLM_INSTALL}, or drop grpo.vllm_mode=server (rollouts through generate)")
    if not cuda:
        raise ConfigError("grpo.vllm_mode=server needs a CUDA GPU for training (the weights go to the server over "
                          "NCCL): train on a GPU machine, or drop grpo.vllm_mode=server")


def trainer_args(cfg: Config) -> dict:
    """GRPOConfig's vLLM settings: Unsloth's colocated engine (model.fast_inference), the server, or none."""
    if uses_server(cfg):
        g = cfg.grpo
        return dict(use_vllm=True, vllm_mode="server", vllm_server_host=g.vllm_server_host,
                    vllm_server_port=g.vllm_server_port, vllm_server_timeout=g.vllm_server_timeout)
    return dict(use_vllm=models.uses_fast_inference(cfg), vllm_mode="colocate",
                vllm_gpu_memory_utilization=cfg.model.gpu_memory_utilization)
