"""Config: merge order, types, docs, validation, and every shipped preset."""

from pathlib import Path

import pytest

from rrft_studio import config, settings
from rrft_studio.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "presets").glob("*.yaml"))


def test_defaults_are_the_papers():
    cfg = config.Config()
    assert (cfg.grpo.num_generations, cfg.grpo.prompts_per_step, cfg.grpo.beta) == (8, 14, 0.04)
    assert (cfg.grpo.temperature, cfg.grpo.top_p, cfg.grpo.top_k, cfg.grpo.max_completion_length) == (0.9, 0.9, 50, 512)
    assert (cfg.grpo.lr, cfg.grpo.loss_type, cfg.grpo.max_pixels) == (1e-6, "grpo", 480000)
    assert (cfg.sft.lr, cfg.sft.scheduler, cfg.sft.weight_decay, cfg.sft.freeze_vision) == (1e-5, "cosine", 0.1, True)
    assert (cfg.eval.temperature, cfg.eval.max_new_tokens) == (0.1, 768)


def test_sections_mirror_their_owners_defaults():
    """config's tiny-model and scene sections carry the docs; the generators own the fields. Same defaults."""
    import dataclasses

    from rrft_studio import tasks, tiny

    pairs = [(config.TinyModel(), tiny.TinySpec())]
    pairs += [(getattr(config.Data(), name), tasks.get(name).spec()) for name in config.TASKS]
    for section, owner in pairs:
        for f in dataclasses.fields(section):
            assert getattr(section, f.name) == getattr(owner, f.name), (type(owner), f.name)


def test_every_field_has_a_doc():
    for key, (_, doc) in config.all_keys().items():
        assert doc, key


def test_preset_then_overrides(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("sft:\n  lr: 0.001\n  epochs: 2\nrun:\n  stages: [sft]\n")
    cfg = settings.load(preset, ["sft.lr=5e-4", "grpo.rewards=[format]", "grpo.reward_weights=[1]"])
    assert cfg.sft.lr == 5e-4 and cfg.sft.epochs == 2.0 and cfg.run.stages == ["sft"]
    assert cfg.grpo.rewards == ["format"] and cfg.run.name == "p"


def test_int_accepted_for_float():
    assert settings.load(None, ["sft.epochs=3"]).sft.epochs == 3.0


@pytest.mark.parametrize("override, words", [
    ("sft.lrr=1", ["unknown config key 'sft.lrr'", "sft.lr"]),
    ("lr=1", ["unknown config key 'lr'", "did you mean"]),
    ("sft.lr=fast", ["sft.lr must be float", "'fast'"]),
    ("sft.batch_size=true", ["sft.batch_size must be int"]),
    ("model.backend=vllm", ["not allowed", "auto, unsloth, transformers"]),
    ("run.stages=[grpo,sft]", ["order sft, grpo"]),
    ("run.stages=[rl]", ["unknown stage 'rl'"]),
    ("grpo.num_generations=1", ["at least 2"]),
    ("grpo.micro_batch=5", ["must divide"]),
    ("grpo.rewards=[accuracyy,format]", ["did you mean 'accuracy'"]),
    ("grpo.reward_weights=[1]", ["one weight per reward"]),
    ("data.train_file=/nope.json", ["data.train_file", "not found"]),
    ("model.name=./missing_ckpt", ["not a checkpoint directory"]),
    ("model.load_in_4bit=true", ["finetune=lora"]),
    ("sft", ["not key=value"]),
])
def test_user_errors_are_one_line(override, words):
    with pytest.raises(ConfigError) as err:
        settings.load(None, [override])
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_missing_and_broken_presets(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        settings.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        settings.load(bad)
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- a\n")
    with pytest.raises(ConfigError, match="mapping"):
        settings.load(notmap)


def test_describe_lists_docs():
    text = config.describe(config.Config())
    assert "lr: 1.0e-06  # peak learning rate" in text
    assert "num_generations: 8  # G: completions sampled per prompt" in text


def test_dump_round_trips():
    import yaml

    cfg = settings.load(None, ["sft.lr=3e-4"])
    assert config.from_dict(yaml.safe_load(config.dump(cfg))) == cfg


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_validates(preset):
    text = preset.read_text()
    assert text.startswith("#"), "a preset starts with a header saying what it is and how to run it"
    assert f"rrft-studio train presets/{preset.name}" in text
    settings.load(preset)


def test_rft_needs_records_left_for_grpo():
    """A sweep point of method rft below data.sft_samples would give GRPO nothing (or Stage 1's own records)."""
    demo = Path(__file__).resolve().parents[1] / "presets" / "demo.yaml"
    with pytest.raises(ConfigError, match="data.max_samples=4000 leaves GRPO no records.*data.sft_samples=6400"):
        settings.load(demo, ["data.max_samples=4000"])
    settings.load(demo, ["data.max_samples=8800"])
    settings.load(demo, ["data.max_samples=4000", "method=cot_sft", "sft.stop_at_accuracy=0"])  # one stage takes all
    with pytest.raises(ConfigError, match="sft.stop_at_accuracy checks Stage 1 on records held out for Stage 2"):
        settings.load(demo, ["method=cot_sft"])  # the demo's stopping rule needs a Stage 2 to hold records out
