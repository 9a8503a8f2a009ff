"""One typed config tree for a run: defaults < preset YAML < `key=value` overrides, validated after the merge.

Every field is documented once, where it is declared (`doc(default, "...")`); `rrft-studio config show`
and the studio read those docs. Defaults are the paper's settings (see method.md); presets hold only what
differs. A user mistake raises `ConfigError`, one line naming the key and the fix, before anything is written.
The checks here need the tree alone; those that need another module (data files, processes, rewards) are
settings.py's, which the CLI and the studio load configs through.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from . import options, tasks
from .options import doc, options_of, section


class ConfigError(ValueError):
    """A user mistake in a preset or an override: one line that names the problem and the fix."""

    def __init__(self, message: str) -> None:  # a user's text quoted in it stays on the line, escaped
        super().__init__(message.translate(_LINE_BREAKS))


# control characters (what str.splitlines() breaks at among them), written as Python escapes; tabs stay
_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in [*range(32), 0x7F, 0x85, 0x2028, 0x2029] if c != ord("\t")}


MAX_PIXELS = 28 * 28 * 16384  # Qwen2-VL's own ceiling: 16,384 visual tokens of 28x28 pixels
# transformers' SchedulerType names a stage can run: the others need lr_scheduler_kwargs we do not pass, or an
# evaluation during training, which the stages do not run (a test keeps both in step with transformers).
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt")
SCHEDULERS_LEFT_OUT = {"cosine_with_min_lr": "needs min_lr", "cosine_warmup_with_min_lr": "needs min_lr",
                       "warmup_stable_decay": "needs num_decay_steps", "reduce_lr_on_plateau": "needs evaluation during training",
                       "greedy": "needs evaluation during training"}
# TRL 1.15.0's GRPOConfig.loss_type values (a test reads them from the installed TRL)
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class TinyModel:
    arch: Literal["qwen2_vl", "qwen2_5_vl"] = doc("qwen2_vl", "architecture of the built-in tiny model")
    hidden_size: int = doc(256, "tiny model: text hidden size", ge=1)
    num_layers: int = doc(4, "tiny model: text decoder layers", ge=1)
    num_heads: int = doc(4, "tiny model: attention heads", ge=1)
    num_kv_heads: int = doc(2, "tiny model: key/value heads", ge=1)
    intermediate_size: int = doc(768, "tiny model: MLP width", ge=1)
    vision_depth: int = doc(4, "tiny model: vision transformer blocks", ge=1)
    vision_embed_dim: int = doc(128, "tiny model: vision embedding width", ge=1)
    vision_heads: int = doc(4, "tiny model: vision attention heads", ge=1)
    vocab_size: int = doc(1024, "tiny model: BPE vocabulary trained on the task's text (plus special tokens)", ge=257)
    seed: int = doc(0, "tiny model: seed of the random initialisation", ge=0, le=2**32 - 1)


@dataclass
class Model:
    name: str = doc("tiny", "'tiny' (built locally, no download), a hub id such as Qwen/Qwen2-VL-2B-Instruct, or a local checkpoint directory")
    backend: Literal["auto", "unsloth", "transformers"] = doc("auto", "auto: Unsloth on CUDA where it supports the model, else transformers + peft")
    finetune: Literal["full", "lora"] = doc("full", "full fine-tune (the paper) or LoRA adapters (merged into each stage's final checkpoint)")
    lora_r: int = doc(16, "LoRA rank", ge=1)
    lora_alpha: int = doc(32, "LoRA alpha (scale = alpha / r)", ge=1)
    lora_dropout: float = doc(0.0, "LoRA dropout", ge=0, lt=1)
    lora_layers: list[str] = doc(["language", "attention", "mlp"], "where LoRA goes: any of vision, language (which towers) and attention, mlp (which modules)")
    load_in_4bit: bool = doc(False, "QLoRA: load the base weights in 4 bits (Unsloth backend, CUDA only)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = doc("auto", "compute dtype (auto = bfloat16 on CUDA, float16 on GPUs without it, float32 on CPU); a full fine-tune keeps fp32 master weights and runs the forward in this dtype's autocast, LoRA loads the frozen weights in it")
    trust_remote_code: bool = doc(False, "run code shipped inside a model repository (off unless you trust it)")
    fast_inference: bool = doc(False, "GRPO rollouts through Unsloth's vLLM engine (CUDA, vllm installed, Qwen2.5-VL, LoRA on the language model, one image per prompt); off = rollouts through generate")
    allow_stock_trainer: bool = doc(False, "unsloth backend: train with TRL's own trainer when Unsloth could not patch it (slower, more memory) instead of stopping before the run starts")
    gpu_memory_utilization: float = doc(0.5, "with model.fast_inference: share of GPU memory vLLM reserves for the shared weights and its KV cache", gt=0, lt=1)
    tiny: TinyModel = section(TinyModel, "shape of the built-in tiny model (model.name=tiny)")


TASKS = tasks.TASKS  # the task families (tasks/), in order


def _splits_doc() -> str:
    """Each family's evaluation splits: 'counting, structure, custom: id, ood; spatial: id, left, right'."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, family in tasks.FAMILIES.items():
        groups.setdefault(tuple(family.benchmarks), []).append(name)
    return "; ".join(f"{', '.join(names)}: {', '.join(splits)}" for splits, names in groups.items())


SPLITS_DOC = _splits_doc()
_ABOUT = [family.about for family in tasks.FAMILIES.values()]


@dataclass
class _Records:
    task: Literal[TASKS] = doc("counting", "task family: " + ", ".join(_ABOUT[:-1]) + ", or " + _ABOUT[-1])
    root: str = doc("", "the public Reason-RFT dataset as unpacked (train_jsons/, test_jsons/, images/): the task's training and test files and their images are found there")
    train_file: str = doc("", "training records (JSON, JSONL, parquet or a saved datasets folder); empty = the task's file under data.root, else synthetic data")
    eval_files: list[str] = doc([], "one file per evaluation split, in the task's order (" + SPLITS_DOC + "); empty = the task's test files under data.root, else synthetic")
    image_root: str = doc("", "folder the training file's image paths are relative to; empty = found by the dataset's layout (train_jsons/ -> images/train_images/), else the file's folder")
    eval_image_root: str = doc("", "folder the evaluation files' image paths are relative to; empty = found by the dataset's layout (test_jsons/ -> images/test_images/), else each file's folder")
    prompts: Literal["reason_rft", "compact"] = doc("reason_rft", "prompt set: reason_rft = the released code's strings word for word (needed to compare with the paper or its checkpoints); compact = the same with spatial's rules in fewer tokens, for small models")
    n_train: int = doc(2000, "synthetic data: training samples", ge=1)
    n_eval: int = doc(200, "synthetic data: samples per evaluation split (other seeds)", ge=1)
    seed: int = doc(0, "synthetic data: generator seed", ge=0, le=2**32 - 1)


@dataclass
class _Stages:
    sft_samples: int = doc(1600, "method rft: Stage 1 trains on the first N training records, Stage 2 on the rest", ge=0)
    grpo_all: bool = doc(False, "method rft: Stage 2 trains on all records, Stage 1's included (the paper, for structure perception)")
    max_samples: int = doc(0, "use at most N training records (0 = all): the data-efficiency knob", ge=0)
    longest_first: bool = doc(True, "each stage trains on a seeded shuffle of its records with the longest (image tokens + text tokens) in the first batch, so an out-of-memory shows at step 1; every epoch repeats that order (false: the trainers' own shuffling)")


def _copied(cls: type) -> list[tuple]:
    """A dataclass's fields as make_dataclass takes them."""
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], dataclasses.field(default=f.default, default_factory=f.default_factory,
                                                      metadata=f.metadata)) for f in dataclasses.fields(cls)]


# data: where the records come from, each task family's section (the documented part of its settings, declared
# with the family: data.counting, ...), and how the stages share the records.
_SECTIONS = {name: options_of(family.spec, name.title()) for name, family in tasks.FAMILIES.items()}
Data = dataclasses.make_dataclass("Data", [
    *_copied(_Records),
    *[(name, cls, section(cls, tasks.get(name).section)) for name, cls in _SECTIONS.items()],
    *_copied(_Stages)])


@dataclass
class SFT:
    style: Literal["cot", "ans"] = doc("cot", "cot: <think>CoT</think><answer>..</answer> targets (CoT-SFT); ans: answer only (ANS-SFT)")
    epochs: float = doc(1.0, "passes over the Stage-1 data", ge=0)
    max_steps: int = doc(-1, "stop after N optimizer steps (-1 = run the epochs)", ge=1, also=(-1,))
    lr: float = doc(1e-5, "peak learning rate", gt=0)
    scheduler: Literal[SCHEDULERS] = doc("cosine", "learning-rate schedule (transformers name: cosine, linear, constant, ...)")
    warmup_steps: int = doc(100, "linear warm-up steps", ge=0)
    weight_decay: float = doc(0.1, "AdamW weight decay", ge=0)
    batch_size: int = doc(2, "samples per forward pass", ge=1)
    grad_accum: int = doc(8, "forward passes per optimizer step (global batch = batch_size x grad_accum)", ge=1)
    max_pixels: int = doc(262144, "images are down-scaled to at most this many pixels (512x512)", ge=56 * 56, le=MAX_PIXELS)
    max_length: int = doc(4096, "longest tokenized sample, image tokens included", ge=64)
    freeze_vision: bool = doc(True, "freeze the vision tower and merger (the paper's Stage 1)")
    gradient_checkpointing: bool = doc(False, "trade compute for memory")
    logging_steps: int = doc(1, "write metrics every N steps", ge=1)
    save_steps: int = doc(100, "checkpoint every N steps (a stop also checkpoints)", ge=1)
    stop_at_accuracy: float = doc(0.0, "stop Stage 1 at the first check where greedy accuracy on sft.stop_samples held-out training records (the last of Stage 2's) reaches this; 0 = off (run sft.max_steps or the epochs)", ge=0, le=1)
    stop_every: int = doc(50, "with sft.stop_at_accuracy: check every N steps", ge=1)
    stop_samples: int = doc(100, "with sft.stop_at_accuracy: held-out records each check decodes", ge=1)


@dataclass
class GRPO:
    epochs: float = doc(1.0, "passes over the Stage-2 prompts", ge=0)
    max_steps: int = doc(-1, "stop after N optimizer steps (-1 = run the epochs)", ge=1, also=(-1,))
    lr: float = doc(1e-6, "peak learning rate", gt=0)
    scheduler: Literal[SCHEDULERS] = doc("linear", "learning-rate schedule")
    warmup_steps: int = doc(0, "linear warm-up steps", ge=0)
    weight_decay: float = doc(0.0, "AdamW weight decay", ge=0)
    num_generations: int = doc(8, "G: completions sampled per prompt", ge=2)
    prompts_per_step: int = doc(14, "prompts per optimizer step (x G completions; the paper: 14 x 8 = 112)", ge=1)
    micro_batch: int = doc(8, "completions per forward/backward pass", ge=1)
    beta: float = doc(0.04, "KL coefficient against the reference (the Stage-1 model), k3 estimator", ge=0)
    loss_type: Literal[LOSS_TYPES] = doc("grpo", "TRL loss aggregation; grpo = mean over sequences of per-sequence token means (the paper)")
    epsilon: float = doc(0.2, "PPO ratio clip (inactive with one update per rollout batch)", gt=0)
    scale_rewards: Literal["group", "batch", "none"] = doc("group", "advantage = (r - mean_G) / std_G (group) as in the paper")
    temperature: float = doc(0.9, "rollout sampling temperature", gt=0)
    top_p: float = doc(0.9, "rollout nucleus sampling", gt=0, le=1)
    top_k: int = doc(50, "rollout top-k sampling", ge=0)
    max_completion_length: int = doc(512, "most new tokens per rollout", ge=1)
    max_pixels: int = doc(480000, "images are down-scaled to at most this many pixels", ge=56 * 56, le=MAX_PIXELS)
    freeze_vision: bool = doc(False, "freeze the vision tower and merger (the paper trains the whole model)")
    dynamic_sampling: bool = doc(False, "DAPO's dynamic sampling: groups whose rewards are all equal are set aside and more prompts drawn, so each step trains on groups that differ (train/dynamic_sampling.py; not the paper's method)")
    dynamic_sampling_draws: int = doc(3, "with grpo.dynamic_sampling: at most N extra batches of prompts drawn a step; where they run out, the step's own zero-spread groups fill the batch", ge=1, le=32)
    rewards: list[str] = doc(["format", "accuracy"], "reward functions: format, format_strict, accuracy, tolerance, spatial_partial, consistency (the reasoning leads to the answer given), or package.module:function")
    reward_weights: list[float] = doc([1.0, 1.0], "weight of each reward in the total")
    gradient_checkpointing: bool = doc(False, "trade compute for memory")
    logging_steps: int = doc(1, "write metrics every N steps", ge=1)
    save_steps: int = doc(50, "checkpoint every N steps (a stop also checkpoints)", ge=1)
    samples_every: int = doc(1, "write the rollouts of every N-th step to samples.jsonl", ge=1)
    vllm_mode: Literal["colocate", "server"] = doc("colocate", "where vLLM rollouts run: colocate = in the training process (model.fast_inference: Unsloth's engine, one GPU); server = a `trl vllm-serve` process on other GPUs at grpo.vllm_server_host:port (any process count; the trainer sends it the weights before each rollout step). Neither: rollouts through generate")
    vllm_server_host: str = doc("127.0.0.1", "with grpo.vllm_mode=server: the host of the trl vllm-serve server")
    vllm_server_port: int = doc(8000, "with grpo.vllm_mode=server: its port", ge=1, le=65535)
    vllm_server_timeout: float = doc(240.0, "with grpo.vllm_mode=server: seconds to wait for the server at start (it may still be loading) before the run is refused in one line", gt=0)


@dataclass
class Eval:
    enabled: bool = doc(True, "evaluate the starting model and each stage's output on the eval split")
    max_samples: int = doc(0, "evaluate at most N records (0 = all)", ge=0)
    temperature: float = doc(0.1, "decoding temperature (the paper: 0.1; 0 = greedy)", ge=0)
    top_p: float = doc(0.9, "decoding nucleus sampling", gt=0, le=1)
    top_k: int = doc(50, "decoding top-k", ge=0)
    max_new_tokens: int = doc(768, "most new tokens per answer", ge=1)
    batch_size: int = doc(16, "prompts per generate call", ge=1)
    splits: list[str] = doc(["id"], "evaluation splits (" + SPLITS_DOC + ")")
    style: Literal["cot", "bare", "ans"] = doc("cot", "prompt: cot asks for <think>/<answer>; bare asks for the answer alone (zero-shot); ans sends the bare question (as ANS-SFT trained)")
    scorer: Literal["paper", "strict"] = doc("paper", "accuracy as the released evaluation scores it (paper: equal answer text, else math-verify equal; spatial: partial credit) or as training rewards it (strict); each prediction records both")


@dataclass
class Run:
    name: str = doc("", "run directory name prefix (default: the preset's file name)")
    runs_dir: str = doc("runs", "where run directories go")
    stages: list[str] = doc(["sft", "grpo"], "stages in order (set by `method` unless method=custom): sft, grpo; GRPO starts from SFT's output, its KL reference")
    seed: int = doc(42, "training seed", ge=0, le=2**32 - 1)
    device: Literal["auto", "cpu", "cuda"] = doc("auto", "auto = CUDA when available")
    cache_dir: str = doc("~/.cache/rrft-studio", "built tiny models and generated synthetic data")
    report_to: list[Literal["none", "trackio", "tensorboard", "wandb", "mlflow"]] = doc(["none"], "experiment trackers that also get each stage's metrics, the config, GRPO's rollouts and the eval table: none, or any of trackio, tensorboard, wandb (offline unless WANDB_MODE is set), mlflow")
    project: str = doc("rrft-studio", "tracker project (trackio project, wandb project, MLflow experiment); tracker runs are <run>-sft, <run>-grpo, <run>-eval")
    processes: int = doc(1, "training processes, one per GPU, over all machines (--processes N; accelerate launch sets it): each stage keeps its global batch, split as per-device batch x processes x accumulation (status.json records the split); a count that does not divide it is refused", ge=1)
    accelerate_config: str = doc("", "how the processes share the model: ddp, fsdp2, zero2, zero3 (configs/accelerate/) or an accelerate config file; empty = ddp (with run.processes > 1)")
    compare_to: str = doc("", "a sweep (its folder or sweep.json) whose spread over seeds and thread counts the report places this run's GRPO - SFT against (the demo: README's sweep, docs/demo/seeds.json)")


@dataclass
class Config:
    method: Literal["rft", "rft_zero", "cot_sft", "ans_sft", "zero_shot", "custom"] = doc("custom", "rft: CoT-SFT on data.sft_samples then GRPO on the rest; rft_zero: GRPO from the base model; cot_sft / ans_sft: SFT on all; zero_shot: evaluate only; custom: run.stages and sft.style as given")
    run: Run = section(Run, "the run: stages, where it goes, seed, device")
    model: Model = section(Model, "which model, which backend, which weights train")
    data: Data = section(Data, "task and records")
    sft: SFT = section(SFT, "Stage 1: CoT-SFT (or ANS-SFT) with TRL's SFTTrainer")
    grpo: GRPO = section(GRPO, "Stage 2: GRPO with TRL's GRPOTrainer")
    eval: Eval = section(Eval, "accuracy on the eval split")


STAGES = ("sft", "grpo")
# method -> (stages, SFT target style, evaluation prompt style): the rows of the paper's table
METHODS = {
    "rft": (["sft", "grpo"], "cot", "cot"),
    "rft_zero": (["grpo"], "cot", "cot"),
    "cot_sft": (["sft"], "cot", "cot"),
    "ans_sft": (["sft"], "ans", "ans"),
    "zero_shot": ([], "cot", "bare"),
}


def apply_method(cfg: Config) -> None:
    """Set the stages and styles a method implies; a conflicting explicit run.stages is an error."""
    if cfg.method == "custom":
        return
    stages, sft_style, eval_style = METHODS[cfg.method]
    if cfg.run.stages not in (Run().stages, stages):
        raise ConfigError(f"run.stages={cfg.run.stages} conflicts with method={cfg.method} (stages {stages}): "
                          "drop run.stages or set method=custom")
    cfg.run.stages, cfg.sft.style, cfg.eval.style = list(stages), sft_style, eval_style


# ---------------------------------------------------------------- merge

def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def all_keys(cls: type = Config, prefix: str = "") -> dict[str, tuple[Any, str]]:
    """Every leaf key as 'section.field' -> (type, doc)."""
    keys: dict[str, tuple[Any, str]] = {}
    hints = _hints(cls)
    for name, f in _fields(cls).items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            keys.update(all_keys(hint, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = (hint, f.metadata.get("doc", ""))
    return keys


def _unknown(key: str) -> ConfigError:
    near = difflib.get_close_matches(key, list(all_keys()), n=1, cutoff=0.5)
    if not near:  # a bare field name: look for it under any section
        near = [k for k in all_keys() if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]][:1]
    hint = f"did you mean '{near[0]}'?" if near else "run `rrft-studio config show` for the valid keys"
    return ConfigError(f"unknown config key '{key}': {hint}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check a value against a field's type hint; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise ConfigError(f"{key}={value!r} is not allowed: choose one of {choices}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}: write it as {key}=[a,b]")
        return [_coerce(key, v, item) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {hint.__name__}, got {value!r}")
    return value


def _apply(node: Any, tree: dict, prefix: str = "") -> None:
    if not isinstance(tree, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'preset'}' must be a mapping of keys, got {tree!r}")
    hints = _hints(type(node))
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if name not in hints:
            raise _unknown(key)
        if dataclasses.is_dataclass(hints[name]):
            if isinstance(value, str) and "name" in _hints(hints[name]):
                value = {"name": value}  # model=tiny is model.name=tiny
            _apply(getattr(node, name), value, key + ".")
        else:
            setattr(node, name, _coerce(key, value, hints[name]))


def parse_override(text: str) -> dict:
    """'a.b.c=value' -> {'a': {'b': {'c': value}}}, the value read as YAML (1e-5, true, [a,b])."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value: write it like sft.lr=1e-5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if value is None:
        value = ""
    tree: dict = {}
    node = tree
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return tree


def read_preset(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        hint = ", ".join(sorted(p.name for p in Path("presets").glob("*.yaml"))) if Path("presets").is_dir() else ""
        raise ConfigError(f"preset '{path}' not found" + (f": presets here are {hint}" if hint else ""))
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"preset '{path}' is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}): "
                          "save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"preset '{path}' cannot be read ({e.strerror or e})") from None
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"preset '{path}'{where} is not valid YAML: {getattr(e, 'problem', e)}") from None
    return tree


def load(preset: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults < preset < overrides, then validate the tree (settings.load adds the other checks). Raises ConfigError."""
    cfg = Config()
    if preset is not None:
        _apply(cfg, read_preset(preset))
        if not cfg.run.name:
            cfg.run.name = Path(preset).stem
    for text in overrides:
        _apply(cfg, parse_override(text))
    apply_method(cfg)
    validate(cfg)
    return cfg


def from_dict(tree: dict) -> Config:
    cfg = Config()
    _apply(cfg, tree)
    apply_method(cfg)
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def dump(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def get(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


# ---------------------------------------------------------------- validate

def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _show(value: Any) -> str:
    """A number or a list of numbers as an override would write it (nan and inf as Python spells them)."""
    if isinstance(value, list):
        return "[" + ", ".join(map(_show, value)) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def check_ranges(node: Any, prefix: str = "") -> None:
    """Every number of every section (task sections not in use included) within the range its field declares
    (`options.doc`), every float finite, list items too; ConfigError naming the key, the value and a fix."""
    for f in dataclasses.fields(node):
        key, value = f"{prefix}{f.name}", getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, key + ".")
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, (int, float)) or isinstance(item, bool) or options.in_range(item, f.metadata):
                continue
            bad = f"{key}={_show(value)}" + (f": {_show(item)}" if isinstance(value, list) else "")
            rule = options.range_text(f.metadata)
            if isinstance(item, float) and not math.isfinite(item):
                rule = "a finite number" + (f", {rule}" if rule else "")
            raise ConfigError(f"{bad} must be {rule}: e.g. {key}={_show(_default(f))}")


def _multiple(value: int, of: int) -> int:
    """The multiple of `of` nearest to `value` (at least `of`): the suggestion in a shape error."""
    return of * max(1, round(value / of))


def check_tiny(t: TinyModel) -> None:
    """Shapes the tiny model's classes would reject deep inside their __init__ (or silently mis-rotate)."""
    _check(t.hidden_size % (2 * t.num_heads) == 0,
           f"model.tiny.hidden_size={t.hidden_size} must be a multiple of 2 x model.tiny.num_heads={t.num_heads} "
           f"(even head size, for rotary embeddings): e.g. model.tiny.hidden_size={_multiple(t.hidden_size, 2 * t.num_heads)}")
    divisor = max(k for k in range(1, min(t.num_kv_heads, t.num_heads) + 1) if t.num_heads % k == 0)
    _check(t.num_heads % t.num_kv_heads == 0,
           f"model.tiny.num_kv_heads={t.num_kv_heads} must divide model.tiny.num_heads={t.num_heads}: "
           f"e.g. model.tiny.num_kv_heads={divisor}")
    _check(t.vision_embed_dim % (4 * t.vision_heads) == 0,
           f"model.tiny.vision_embed_dim={t.vision_embed_dim} must be a multiple of 4 x model.tiny.vision_heads="
           f"{t.vision_heads} (head size a multiple of 4, for 2-D rotary embeddings): "
           f"e.g. model.tiny.vision_embed_dim={_multiple(t.vision_embed_dim, 4 * t.vision_heads)}")


def validate(cfg: Config) -> None:
    """Impossible values and combinations the tree alone can tell, each with its fix (settings.py adds the checks
    that need other modules)."""
    r, m, d, s, g, e = cfg.run, cfg.model, cfg.data, cfg.sft, cfg.grpo, cfg.eval
    check_ranges(cfg)
    check_tiny(m.tiny)
    _check(not any(bad in r.name for bad in ("/", "\\", "..")),
           f"run.name={r.name!r} must be a plain folder name, without '/', '\\' or '..': runs go into run.runs_dir")
    for key in ("runs_dir", "cache_dir"):
        folder = getattr(r, key)
        _check(bool(folder.strip()) and not Path(folder).expanduser().is_file(),
               f"run.{key}={folder!r} is not a folder path: give a folder (created when missing), e.g. run.{key}={_default(_fields(Run)[key])}")
    _check(bool(r.project.strip()), "run.project='' is empty: name the tracker project, e.g. run.project=rrft-studio")
    _check("none" not in r.report_to or len(r.report_to) == 1,
           f"run.report_to={r.report_to}: none means no tracker: give none alone or trackers only, e.g. run.report_to=[trackio]")
    for stage in r.stages:
        _check(stage in STAGES, f"run.stages: unknown stage '{stage}': use sft, grpo or both in that order")
    _check(list(r.stages) == [x for x in STAGES if x in r.stages], "run.stages must be in the order sft, grpo")
    for part in m.lora_layers:
        _check(part in ("vision", "language", "attention", "mlp"),
               f"model.lora_layers: unknown part '{part}': use vision, language, attention, mlp")
    _check(m.finetune == "lora" or not m.load_in_4bit, "model.load_in_4bit needs model.finetune=lora (QLoRA)")
    _check(not m.load_in_4bit or m.backend != "transformers", "model.load_in_4bit needs the unsloth backend: set model.backend=auto or unsloth")
    if m.name != "tiny" and (m.name.startswith((".", "/", "~")) or Path(m.name).expanduser().exists()):
        _check((Path(m.name).expanduser() / "config.json").is_file(),
               f"model.name: '{m.name}' is not a checkpoint directory (no config.json): give a hub id, a saved checkpoint or tiny")
    try:  # every task's section, in use or not: a mistake there is one whichever task runs
        for name in (d.task, *[t for t in TASKS if t != d.task]):
            tasks.get(name).check_options(getattr(d, name))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for key in ("image_root", "eval_image_root", "root"):
        value = getattr(d, key)
        _check(not value or Path(value).expanduser().is_dir(), f"data.{key}: '{value}' is not a folder")
    splits = list(tasks.get(d.task).benchmarks)
    for split in e.splits:
        _check(split in splits, f"eval.splits: '{split}' is not a split of {d.task}: use {', '.join(splits)}")
    _check(len(d.eval_files) <= len(splits), f"data.eval_files: {d.task} has {len(splits)} evaluation splits ({', '.join(splits)})")
    for name, stage in (("sft", s), ("grpo", g)):
        _check(stage.epochs > 0 or stage.max_steps > 0,
               f"{name}.epochs={stage.epochs} with {name}.max_steps={stage.max_steps} trains nothing: set epochs > 0 or max_steps > 0")
    if "sft" in r.stages and "grpo" in r.stages and d.max_samples > 0 and d.sft_samples > 0 and not d.grpo_all:
        _check(d.max_samples > d.sft_samples,
               f"data.max_samples={d.max_samples} leaves GRPO no records: Stage 1 takes the first "
               f"data.sft_samples={d.sft_samples}; raise data.max_samples above it or lower data.sft_samples")
    if s.stop_at_accuracy > 0:
        _check("sft" in r.stages and "grpo" in r.stages and not d.grpo_all,
               "sft.stop_at_accuracy checks Stage 1 on records held out for Stage 2: it needs method=rft (sft then "
               "grpo, without data.grpo_all); set sft.stop_at_accuracy=0 otherwise")
        _check(r.processes == 1, "sft.stop_at_accuracy runs in one process: set sft.stop_at_accuracy=0 for "
               f"run.processes={r.processes}")
    if g.dynamic_sampling:
        _check(g.scale_rewards != "batch", "grpo.dynamic_sampling joins groups from several draws, and "
               "grpo.scale_rewards=batch scales each draw by its own batch: set grpo.scale_rewards=group or none")
        _check(g.prompts_per_step % r.processes == 0,
               f"grpo.dynamic_sampling: each process refills its own whole groups, and grpo.prompts_per_step="
               f"{g.prompts_per_step} does not divide among run.processes={r.processes}: make it a multiple")
    total = g.prompts_per_step * g.num_generations
    _check(total % g.micro_batch == 0,
           f"grpo.micro_batch={g.micro_batch} must divide prompts_per_step x num_generations = {total}")
    _check(len(g.reward_weights) == len(g.rewards),
           f"grpo.reward_weights has {len(g.reward_weights)} values for {len(g.rewards)} rewards: give one weight per reward")


def describe(cfg: Config) -> str:
    """The resolved config as YAML with each field's doc as a comment."""
    lines: list[str] = []
    _describe(cfg, "", lines)
    return "\n".join(lines)


def _describe(node: Any, indent: str, lines: list[str]) -> None:
    for name, f in _fields(type(node)).items():
        value = getattr(node, name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{indent}{name}:  # {f.metadata.get('doc', '')}")
            _describe(value, indent + "  ", lines)
        else:
            rendered = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
            rendered = rendered.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"{indent}{name}: {rendered}  # {f.metadata.get('doc', '')}")
