"""A run's settings: the config tree (config.py) and the checks that need the rest of the project.

`config.load` merges defaults < preset < key=value overrides and checks what the tree alone can tell; `load` here
adds what another module must judge: LoRA has something to adapt in every stage (models), the data files exist
(data), the process count divides each stage's global batch (ranks), GRPO's vLLM rollouts can serve this model
(models), and each reward resolves (rewards). The CLI and the studio read a preset, or a run's own config, through
`load` and `load_run`; a user mistake is one ConfigError line that names the key and the fix, before anything
is written.

    rrft-studio config show presets/demo.yaml [key=value ...]
"""

from __future__ import annotations

from pathlib import Path

from . import config, data, models, ranks, rewards, runs
from .config import Config, ConfigError

SERVED_ARCHS = ("qwen2_vl", "qwen2_5_vl")  # vLLM's Qwen2VLForConditionalGeneration and Qwen2_5_VL...


def load(preset: str | Path | None = None, overrides: list[str] = (), import_rewards: bool = True) -> Config:
    """Defaults < preset < overrides, then every check. import_rewards=False leaves `module:function` rewards
    unimported (the studio checks them its own way, in its own process). Raises ConfigError."""
    cfg = config.load(preset, overrides)
    check(cfg, import_rewards)
    return cfg


def load_run(run_dir: Path, overrides: list[str] = ()) -> Config:
    """A run's resolved config with key=value overrides applied, and every check (a resume, an evaluation)."""
    cfg = runs.load_config(run_dir, overrides)
    check(cfg)
    return cfg


def check(cfg: Config, import_rewards: bool = True) -> None:
    """The checks that need another module, each a ConfigError with its fix."""
    r, m, e = cfg.run, cfg.model, cfg.eval
    if m.finetune == "lora":  # every stage must have something to adapt
        for name in r.stages:
            try:
                models.lora_parts(m.lora_layers, getattr(cfg, name).freeze_vision)
            except ConfigError:
                raise ConfigError(f"model.lora_layers={m.lora_layers} adapts only the vision tower, which {name} freezes "
                                  f"({name}.freeze_vision=true): add language to model.lora_layers or set "
                                  f"{name}.freeze_vision=false") from None
    for split in ["train", *(e.splits if e.enabled else [])]:
        if split == "train" and not r.stages:
            continue
        path, _ = data.source(cfg, split)
        if path is not None and not path.exists():
            d = cfg.data
            raise ConfigError(f"{data.source_key(cfg, split)}: '{path}' not found: "
                              + ("the dataset's files belong in train_jsons/ and test_jsons/ under data.root"
                                 if d.root and not (d.train_file if split == "train" else d.eval_files)
                                 else "give an existing data file"))
    ranks.check(cfg)
    check_rollout_server(cfg)
    if "grpo" in r.stages:
        models.check_fast_inference(cfg)
        for name in cfg.grpo.rewards if import_rewards else [n for n in cfg.grpo.rewards if ":" not in n]:
            try:
                rewards.resolve(name)
            except ValueError as err:
                raise ConfigError(f"grpo.rewards: {err}") from None


def check_rollout_server(cfg: Config) -> None:
    """grpo.vllm_mode=server with the rest of the config (no network: train/rollout_server.py asks the server)."""
    if cfg.grpo.vllm_mode != "server" or "grpo" not in cfg.run.stages:
        return
    if cfg.model.fast_inference:
        raise ConfigError("grpo.vllm_mode=server sends rollouts to a trl vllm-serve server and model.fast_inference=true "
                          "runs Unsloth's engine in the training process: choose one, e.g. model.fast_inference=false")
    if cfg.model.load_in_4bit:
        raise ConfigError("grpo.vllm_mode=server: the trainer merges LoRA into the weights it sends to vLLM, which "
                          "4-bit weights cannot take: set model.load_in_4bit=false")
    if not cfg.grpo.vllm_server_host.strip():
        raise ConfigError("grpo.vllm_server_host is empty: give the server's host, e.g. grpo.vllm_server_host=127.0.0.1")
    arch = models.arch_of(cfg)
    if arch not in SERVED_ARCHS:
        raise ConfigError(f"grpo.vllm_mode=server: this project serves Qwen2-VL and Qwen2.5-VL through vLLM, and "
                          f"model.name is a '{arch}' model")
