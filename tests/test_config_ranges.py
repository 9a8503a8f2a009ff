"""Every config field refuses its impossible values: exit 2 / ConfigError with one line naming the key, before
anything is written. The table below has an entry for EVERY key of the config tree (a new field without one
fails `test_the_table_covers_every_field`), and every number declares its range where it is declared
(`options.doc(..., ge=, gt=, le=, lt=)`; a new number without one fails `test_every_number_declares_a_range`)."""

import dataclasses
import re
import typing

import pytest

from conftest import MICRO
from rrft_studio import config, settings
from rrft_studio.cli import main
from rrft_studio.config import ConfigError

NOT_A_NUMBER = [".nan", ".inf", "-.inf"]  # YAML's spellings; "nan" and "inf" are read as floats too
SIZE = ["0", "-1"]  # sizes and counts that must be at least 1
COUNT = ["-1", "-100"]  # counts where 0 means "none" or "all"
SEED = ["-1", "4294967296"]  # numpy's seeds are 0 .. 2**32 - 1
SHARE = ["-0.1", "1.5", *NOT_A_NUMBER]
POSITIVE = ["0", "-1e-5", *NOT_A_NUMBER]
BOOL = ["maybe", "2"]  # no value of the right type is wrong: these are of the wrong type
# key -> (invalid values as written after `key=`, extra overrides that make the key matter)
INVALID: dict[str, tuple[list[str], list[str]]] = {
    "method": (["rl", "sft"], []),
    "run.name": (["a/b/c", "..", "x\\y"], []),
    "run.runs_dir": (["pyproject.toml", "''"], []),
    "run.stages": (["[rl]", "[grpo,sft]"], ["method=custom"]),
    "run.seed": (SEED, []),
    "run.device": (["gpu", "tpu"], []),
    "run.cache_dir": (["pyproject.toml", "''"], []),
    "run.report_to": (["[none,trackio]", "[neptune]"], []),
    "run.project": (["''", "[a,b]"], []),
    "run.processes": (["0", "-1", "3"], []),  # 3 does not divide SFT's global batch of 16
    "run.accelerate_config": (["zero9", "/nonexistent/accelerate.yaml"], []),
    "run.compare_to": (["[a,b]"], []),  # a missing sweep is refused when a run starts (test_cli_errors)
    "model.name": (["./no_such_checkpoint", "/nonexistent/model"], []),
    "model.backend": (["vllm"], []),
    "model.finetune": (["qlora"], []),
    "model.lora_r": (SIZE, []),
    "model.lora_alpha": (SIZE, []),
    "model.lora_dropout": (["-0.1", "1.0", ".nan"], []),
    "model.lora_layers": (["[vision,everything]", "[bogus]"], ["model.finetune=lora"]),
    "model.load_in_4bit": (["true", *BOOL], []),  # true needs finetune=lora
    "model.dtype": (["int8"], []),
    "model.trust_remote_code": (BOOL, []),
    "model.fast_inference": (["true", *BOOL], []),  # true needs CUDA and vLLM
    "model.allow_stock_trainer": (BOOL, []),
    "model.gpu_memory_utilization": (["0", "1", "1.5", ".nan"], []),
    "model.tiny.arch": (["llama"], []),
    "model.tiny.hidden_size": (["0", "-256", "250"], []),  # 250: not a multiple of 2 x num_heads
    "model.tiny.num_layers": (SIZE, []),
    "model.tiny.num_heads": (["0", "-4", "3"], []),  # 3: 256 / 3 is not a whole head
    "model.tiny.num_kv_heads": (["0", "3"], []),  # 3 does not divide num_heads=4
    "model.tiny.intermediate_size": (SIZE, []),
    "model.tiny.vision_depth": (SIZE, []),
    "model.tiny.vision_embed_dim": (["0", "-128", "130"], []),
    "model.tiny.vision_heads": (["0", "3"], []),
    "model.tiny.vocab_size": (["0", "256"], []),
    "model.tiny.seed": (SEED, []),
    "data.task": (["ocr"], []),
    "data.root": (["/nonexistent/dataset"], []),
    "data.train_file": (["/nonexistent/train.json"], []),
    "data.eval_files": (["[/nonexistent/id.json]", "[a.json,b.json,c.json]"], []),
    "data.image_root": (["/nonexistent/images"], []),
    "data.eval_image_root": (["/nonexistent/images"], []),
    "data.prompts": (["verbose"], []),
    "data.n_train": (SIZE, []),
    "data.n_eval": (SIZE, []),
    "data.seed": (SEED, []),
    "data.counting.image_size": (["0", "27", "100000"], []),
    "data.counting.min_objects": (["0", "7", "11"], []),  # 7 > max_objects=6
    "data.counting.max_objects": (["0", "11"], []),
    "data.counting.subtract_fraction": (SHARE, []),
    "data.counting.add_fraction": (SHARE + ["0.6"], []),  # 0.6 + subtract 0.5 > 1
    "data.counting.layout": (["hex"], []),
    "data.structure.image_size": (["-3", "63", "100000"], ["data.task=structure"]),
    "data.structure.choice_fraction": (SHARE, ["data.task=structure"]),
    "data.spatial.image_size": (["-3", "55", "100000"], []),  # checked in every section, in use or not
    "data.spatial.min_objects": (["0", "10"], []),
    "data.spatial.max_objects": (["0", "2", "10"], []),  # 2 < min_objects=3
    "data.spatial.min_steps": (["0", "5"], []),
    "data.spatial.max_steps": (["0", "5"], []),
    "data.custom.prompt": (["'no placeholder'", "'{answer}'"], ["data.task=custom"]),
    "data.custom.zero_shot_prompt": (["'no placeholder'", "'{problem'"], ["data.task=custom"]),
    "data.custom.ans_prompt": (["'{0}'"], ["data.task=custom"]),
    "data.custom.checker": (["nonsense"], ["data.task=custom"]),
    "data.sft_samples": (COUNT, []),
    "data.grpo_all": (BOOL, []),
    "data.max_samples": (COUNT, []),
    "data.longest_first": (BOOL, []),
    "sft.style": (["short"], []),
    "sft.epochs": (["-1", *NOT_A_NUMBER], []),
    "sft.max_steps": (["0", "-2"], []),
    "sft.lr": (POSITIVE, []),
    "sft.scheduler": (["cosine_annealing", "greedy", "cosine_with_min_lr"], []),
    "sft.warmup_steps": (["-1"], []),
    "sft.weight_decay": (["-0.1", *NOT_A_NUMBER], []),
    "sft.batch_size": (SIZE, []),
    "sft.grad_accum": (SIZE, []),
    "sft.max_pixels": (["0", "3135", "100000000"], []),
    "sft.max_length": (["0", "63"], []),
    "sft.freeze_vision": (BOOL, []),
    "sft.gradient_checkpointing": (BOOL, []),
    "sft.logging_steps": (SIZE, []),
    "sft.save_steps": (SIZE, []),
    "sft.stop_at_accuracy": (SHARE, []),
    "sft.stop_every": (SIZE, ["sft.stop_at_accuracy=0.5"]),
    "sft.stop_samples": (SIZE, ["sft.stop_at_accuracy=0.5"]),
    "grpo.epochs": (["-1", "0", *NOT_A_NUMBER], []),  # 0 with max_steps=-1 trains nothing
    "grpo.max_steps": (["0", "-2"], []),
    "grpo.lr": (POSITIVE, []),
    "grpo.scheduler": (["cosine_annealing", "reduce_lr_on_plateau"], []),
    "grpo.warmup_steps": (["-1"], []),
    "grpo.weight_decay": (["-0.1", *NOT_A_NUMBER], []),
    "grpo.num_generations": (["1", "0", "-8"], []),
    "grpo.prompts_per_step": (["0", "-7"], []),
    "grpo.micro_batch": (["0", "5"], []),  # 5 does not divide 14 x 8
    "grpo.beta": (["-0.04", *NOT_A_NUMBER], []),
    "grpo.loss_type": (["ppo", "GRPO"], []),
    "grpo.epsilon": (["0", "-0.2", ".nan"], []),
    "grpo.scale_rewards": (["true", "std"], []),
    "grpo.temperature": (["0", "-0.9", ".nan"], []),
    "grpo.top_p": (["0", "1.1", ".nan"], []),
    "grpo.top_k": (["-1"], []),
    "grpo.max_completion_length": (["0", "-512"], []),
    "grpo.max_pixels": (["0", "3135", "100000000"], []),
    "grpo.freeze_vision": (BOOL, []),
    "grpo.dynamic_sampling": (BOOL, []),
    "grpo.dynamic_sampling_draws": (["0", "33", "-1"], ["grpo.dynamic_sampling=true"]),
    "grpo.rewards": (["[nope]", "[accuracyy,format]"], []),
    "grpo.reward_weights": (["[1,.nan]", "[.inf,1]", "[1]"], []),
    "grpo.gradient_checkpointing": (BOOL, []),
    "grpo.logging_steps": (SIZE, []),
    "grpo.save_steps": (SIZE, []),
    "grpo.samples_every": (SIZE, []),
    "grpo.vllm_mode": (["remote", "off"], []),
    "grpo.vllm_server_host": (["''"], ["grpo.vllm_mode=server"]),
    "grpo.vllm_server_port": (["0", "65536"], []),
    "grpo.vllm_server_timeout": (["0", "-1", ".nan"], []),
    "eval.enabled": (BOOL, []),
    "eval.max_samples": (COUNT, []),
    "eval.temperature": (["-0.1", ".nan"], []),
    "eval.top_p": (["0", "1.5"], []),
    "eval.top_k": (["-1"], []),
    "eval.max_new_tokens": (SIZE, []),
    "eval.batch_size": (SIZE, []),
    "eval.splits": (["[test]", "[left]"], []),
    "eval.style": (["chat"], []),
    "eval.scorer": (["lenient"], []),
}
CASES = [(key, value, extra) for key, (values, extra) in INVALID.items() for value in values]


def _is_number(hint) -> bool:
    if typing.get_origin(hint) is list:
        hint = typing.get_args(hint)[0]
    return hint in (int, float)


def _field(key: str) -> dataclasses.Field:
    *path, name = key.split(".")
    node = config.Config()
    for part in path:
        node = getattr(node, part)
    return {f.name: f for f in dataclasses.fields(node)}[name]


def test_the_table_covers_every_field():
    assert set(INVALID) == set(config.all_keys()), "every config field needs its invalid values in INVALID"
    for key, (values, _) in INVALID.items():
        assert values, key


def test_every_number_declares_a_range():
    """Every int or float field has bounds with its declaration (reward weights may be any finite number)."""
    finite_only = {"grpo.reward_weights"}
    for key, (hint, _) in config.all_keys().items():
        if _is_number(hint) and key not in finite_only:
            assert _field(key).metadata.get("bounds"), f"{key}: declare its range in doc(..., ge=/gt=/le=/lt=)"


def test_defaults_are_within_their_ranges():
    config.check_ranges(config.Config())


@pytest.mark.parametrize("key, value, extra", CASES, ids=[f"{k}={v}" for k, v, _ in CASES])
def test_invalid_value_is_one_line_naming_the_key(key, value, extra):
    with pytest.raises(ConfigError) as err:
        settings.load(None, [*extra, f"{key}={value}"])
    message = str(err.value)
    assert "\n" not in message and message.strip() == message, message
    assert key in message or key.rsplit(".", 1)[0] + ":" in message or key.rsplit(".", 1)[-1] in message, message


@pytest.mark.parametrize("override, words", [
    ("sft.lr=.nan", ["sft.lr=nan", "finite", "e.g. sft.lr="]),
    ("grpo.reward_weights=[1,.nan]", ["grpo.reward_weights=[1.0, nan]", "finite"]),
    ("grpo.top_p=1.5", ["grpo.top_p=1.5", "greater than 0 and at most 1", "e.g. grpo.top_p=0.9"]),
    ("sft.max_steps=0", ["sft.max_steps=0", "at least 1 (or -1)"]),
    ("run.seed=-1", ["run.seed=-1", "at least 0 and at most 4294967295"]),
    ("model.tiny.hidden_size=250", ["multiple of 2 x model.tiny.num_heads=4", "e.g. model.tiny.hidden_size=248"]),
    ("model.tiny.num_kv_heads=3", ["must divide model.tiny.num_heads=4", "e.g. model.tiny.num_kv_heads=2"]),
    ("model.tiny.vision_embed_dim=130", ["multiple of 4 x model.tiny.vision_heads=4", "vision_embed_dim=128"]),
    ("grpo.loss_type=ppo", ["grpo.loss_type='ppo' is not allowed", "dr_grpo"]),
    ("sft.scheduler=greedy", ["sft.scheduler='greedy' is not allowed", "cosine"]),
    ("data.spatial.image_size=-3", ["data.spatial.image_size=-3", "at least 56"]),
])
def test_messages_name_the_value_and_the_fix(override, words):
    with pytest.raises(ConfigError) as err:
        settings.load(None, [override])
    for word in words:
        assert word in str(err.value), str(err.value)


@pytest.mark.parametrize("override", [
    "run.seed=-1", "grpo.temperature=0", "sft.weight_decay=.nan", "grpo.reward_weights=[1,1,.nan]",
    "grpo.prompts_per_step=-7", "sft.scheduler=nope", "grpo.loss_type=ppo", "model.tiny.hidden_size=250",
])
def test_the_cli_exits_2_and_writes_nothing(tmp_path, capsys, override):
    runs_dir = tmp_path / "runs"
    assert main(["train", str(MICRO), f"run.runs_dir={runs_dir}", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert override.split("=")[0] in err, err
    assert not runs_dir.exists()


def test_the_real_command_line_exits_2_and_writes_nothing(tmp_path):
    from conftest import cli

    runs_dir = tmp_path / "runs"
    done = cli("train", str(MICRO), f"run.runs_dir={runs_dir}", "grpo.top_p=1.5")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "grpo.top_p=1.5" in done.stderr, done.stderr
    assert not runs_dir.exists()


def test_schedulers_are_transformers_names_a_stage_can_run():
    """SCHEDULERS plus the ones left out (with why) are exactly transformers' SchedulerType; each allowed one
    builds without extra arguments."""
    import torch
    from transformers import get_scheduler
    from transformers.trainer_utils import SchedulerType

    assert set(config.SCHEDULERS) | set(config.SCHEDULERS_LEFT_OUT) == {s.value for s in SchedulerType}
    assert not set(config.SCHEDULERS) & set(config.SCHEDULERS_LEFT_OUT)
    for name in config.SCHEDULERS:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        get_scheduler(name, optimizer, num_warmup_steps=1, num_training_steps=4)


def test_loss_types_are_trls():
    """LOSS_TYPES are the values the installed TRL's GRPOConfig documents as supported."""
    from trl import GRPOConfig

    help_text = {f.name: f for f in dataclasses.fields(GRPOConfig)}["loss_type"].metadata["help"]
    supported = re.search(r"Supported values are (.*?)\.\s", help_text).group(1)
    assert set(config.LOSS_TYPES) == set(re.findall(r"'(\w+)'", supported))


def test_tiny_shapes_the_config_accepts_are_ones_the_model_accepts():
    from rrft_studio import tiny

    for hidden, heads, kv, vision, vheads in [(64, 2, 1, 32, 2), (96, 6, 3, 48, 3), (256, 4, 4, 128, 4)]:
        cfg = settings.load(None, [f"model.tiny.hidden_size={hidden}", f"model.tiny.num_heads={heads}",
                                 f"model.tiny.num_kv_heads={kv}", f"model.tiny.vision_embed_dim={vision}",
                                 f"model.tiny.vision_heads={vheads}"])
        tiny.TinySpec(**vars(cfg.model.tiny))


def test_counting_places_ten_objects():
    """max_objects' upper bound can be drawn: scenes whose objects do not fit draw other objects."""
    import random

    from rrft_studio.tasks import counting

    spec = counting.SceneSpec(min_objects=10, max_objects=10)
    rng = random.Random(0)
    assert all(len(counting.sample_scene(rng, spec)) == 10 for _ in range(60))


def test_a_preset_that_is_not_utf8_is_one_line(tmp_path, capsys):
    preset = tmp_path / "latin1.yaml"
    preset.write_bytes("# réglages\nsft: {lr: 1.0e-5}\n".encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        settings.load(preset)
    assert "not UTF-8" in str(err.value) and "offset 3" in str(err.value) and "\n" not in str(err.value)
    runs_dir = tmp_path / "runs"
    assert main(["train", str(preset), f"run.runs_dir={runs_dir}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "not UTF-8" in err, err
    assert not runs_dir.exists()
