"""Property-based tests (hypothesis) of the config merge and of the rewards and checkers.

Config: defaults < preset < overrides for any valid values; dump -> from_dict round-trips; any valid value
written as an override reads back equal; any out-of-range number, and any text at all as a value or a key, is
a ConfigError (never another exception). Rewards: checkers never raise and stay in [0, 1]; format_ok is the
paper's regex as a full match; answer_text is idempotent and is the regex's first answer block; the released
TRANCE scorer's answer block is found as its regex finds it; a text always matches itself.
"""

import dataclasses
import math
import re

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rrft_studio import config, rewards, tasks
from rrft_studio.answers import FORMAT_PATTERN, SPECIAL_TOKEN, answer_text, format_ok, format_ok_strict, has_answer_tag
from rrft_studio.config import ConfigError
from rrft_studio.tasks import checks, spatial

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Numbers whose valid values do not depend on another field (the others are checked together with theirs:
# micro_batch divides prompts x G, min <= max, max_samples past sft_samples, tiny shapes divide, shares sum to at most 1, epochs or steps).
DEPENDENT = {"grpo.micro_batch", "grpo.num_generations", "grpo.prompts_per_step", "grpo.epochs", "sft.epochs",
             "grpo.max_steps", "sft.max_steps", "data.counting.subtract_fraction", "data.counting.add_fraction",
             "model.tiny.hidden_size", "model.tiny.num_heads", "model.tiny.num_kv_heads", "model.tiny.vision_embed_dim",
             "model.tiny.vision_heads", "grpo.reward_weights", "run.processes",  # processes divide the batches
             "data.max_samples", "data.sft_samples"}  # rft: max_samples leaves GRPO records past sft_samples
DEPENDENT |= {f"data.{t}.{m}_{w}" for t in ("counting", "spatial") for m in ("min", "max") for w in ("objects", "steps")}


def _field(key: str) -> dataclasses.Field:
    *path, name = key.split(".")
    node = config.Config()
    for part in path:
        node = getattr(node, part)
    return {f.name: f for f in dataclasses.fields(node)}[name]


NUMBERS = {key: hint for key, (hint, _) in config.all_keys().items() if hint in (int, float) and key not in DEPENDENT}


def valid(key: str) -> st.SearchStrategy:
    """Values within a field's declared range."""
    bounds = _field(key).metadata.get("bounds", {})
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    if NUMBERS[key] is int:
        low = -10**6 if low is None else int(low) + ("gt" in bounds)
        high = low + 10**6 if high is None else int(high) - ("lt" in bounds)
        return st.integers(low, min(high, low + 10**6))
    return st.floats(min_value=low, max_value=high, exclude_min="gt" in bounds, exclude_max="lt" in bounds,
                     allow_nan=False, allow_infinity=False)


def invalid(key: str) -> st.SearchStrategy:
    """Numbers outside a field's declared range (NaN and infinities for floats)."""
    bounds, also = _field(key).metadata.get("bounds", {}), _field(key).metadata.get("also", ())
    is_int = NUMBERS[key] is int
    outside = []
    if "ge" in bounds or "gt" in bounds:
        low = bounds.get("ge", bounds.get("gt"))
        limit = low - (1 if is_int else 1e-9) if "ge" in bounds else low
        outside.append(st.integers(max_value=math.floor(limit)) if is_int else st.floats(max_value=limit, allow_nan=False))
    if "le" in bounds or "lt" in bounds:
        high = bounds.get("le", bounds.get("lt"))
        limit = high + (1 if is_int else 1e-9) if "le" in bounds else high
        outside.append(st.integers(min_value=math.ceil(limit)) if is_int else st.floats(min_value=limit, allow_nan=False))
    if not is_int:
        outside.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    return st.one_of(outside).filter(lambda v: v not in also and not config.options.in_range(v, _field(key).metadata))


def written(value) -> str:
    """A value as a user writes it after `key=` (floats in full precision; YAML's spellings of nan and inf)."""
    if isinstance(value, float):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf") if math.isinf(value) else repr(value)
    return str(value)


pairs = st.lists(st.sampled_from(sorted(NUMBERS)), min_size=1, max_size=6, unique=True).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), valid(k), valid(k)) for k in keys]))


def _tree(key: str, value) -> dict:
    tree: dict = {}
    node = tree
    *path, name = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[name] = value
    return tree


def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        a[k] = _merge(a.get(k, {}), v) if isinstance(v, dict) else v
    return a


@SETTINGS
@given(pairs, st.data())
def test_overrides_beat_the_preset_which_beats_the_defaults(tmp_path_factory, items, data):
    preset = tmp_path_factory.mktemp("p") / "p.yaml"
    tree: dict = {}
    overridden = {k for k, _, _ in items if data.draw(st.booleans(), label=f"override {k}")}
    for key, in_preset, _ in items:
        _merge(tree, _tree(key, in_preset))
    preset.write_text(yaml.safe_dump(tree))
    cfg = config.load(preset, [f"{k}={written(o)}" for k, _, o in items if k in overridden])
    for key, in_preset, in_override in items:
        assert config.get(cfg, key) == (in_override if key in overridden else in_preset), key
    untouched = [k for k in NUMBERS if k not in {i[0] for i in items}]
    defaults = config.Config()
    for key in untouched:
        if key != "run.name":
            assert config.get(cfg, key) == config.get(defaults, key), key


@SETTINGS
@given(pairs)
def test_dump_and_from_dict_round_trip(items):
    cfg = config.load(None, [f"{k}={written(o)}" for k, _, o in items])
    assert config.from_dict(yaml.safe_load(config.dump(cfg))) == cfg


@SETTINGS
@given(st.sampled_from(sorted(NUMBERS)).flatmap(lambda k: st.tuples(st.just(k), valid(k))))
def test_any_valid_value_reads_back_equal(item):
    key, value = item
    assert config.get(config.load(None, [f"{key}={written(value)}"]), key) == value


@SETTINGS
@given(st.sampled_from(sorted(NUMBERS)).flatmap(lambda k: st.tuples(st.just(k), invalid(k))))
def test_any_out_of_range_number_is_a_config_error_naming_the_key(item):
    key, value = item
    try:
        config.load(None, [f"{key}={written(value)}"])
    except ConfigError as e:
        assert key in str(e) and "\n" not in str(e), str(e)
    else:
        raise AssertionError(f"{key}={written(value)} was accepted")


@SETTINGS
@given(st.sampled_from(sorted(config.all_keys())), st.text(max_size=40))
def test_any_text_as_a_value_is_accepted_or_a_config_error(key, text):
    try:
        cfg = config.load(None, [f"{key}={text}"])
    except ConfigError as e:
        assert "\n" not in str(e)
    else:
        config.check_ranges(cfg)


@SETTINGS
@given(st.text(max_size=30), st.text(max_size=30))
def test_any_text_as_a_key_or_override_is_accepted_or_a_config_error(key, value):
    for override in (f"{key}={value}", key):
        try:
            config.load(None, [override])
        except ConfigError as e:
            assert "\n" not in str(e)


# ---------------------------------------------------------------- rewards and checkers

PIECES = ["<think>", "</think>", "<answer>", "</answer>", "<|im_end|>", "<|endoftext|>", " ", "\n", "\t", "3", "7",
          "0.5", "x", "A", "B", "\\frac{1}{2}", "$", "{", "}", "^", "!", "change_color(0, red)", "change_size(1, 'small')",
          ",", "(", ")", "'", "<", ">", "/", "°", "-", "e5", "\u00a0", "\u2028"]
texts = st.one_of(st.lists(st.sampled_from(PIECES), max_size=14).map("".join), st.text(max_size=60))
answers = st.one_of(st.sampled_from(["3", "7", "0", "0.5", "B", "\\frac{5}{2}", "change_color(0, red)", "", "nan"]), texts)


@SETTINGS
@given(texts, answers)
def test_checkers_never_raise_and_stay_in_0_1(text, answer):
    with checks.budget(2):
        for name in tasks.CHECKERS:
            score = tasks.checker(name)(text, answer)
            assert isinstance(score, float) and 0.0 <= score <= 1.0, (name, score)


@SETTINGS
@given(st.lists(st.one_of(texts, st.builds(lambda t: [{"role": "assistant", "content": t}], texts)), max_size=6),
       st.data())
def test_rewards_give_one_score_in_range_per_completion(completions, data):
    answer = [data.draw(answers) for _ in completions]
    for name, func in rewards.REWARDS.items():
        scores = func(completions, answer=answer)
        assert len(scores) == len(completions) and all(0.0 <= s <= 1.0 for s in scores), name


@SETTINGS
@given(texts)
def test_format_ok_is_the_papers_regex_full_match(text):
    stripped = SPECIAL_TOKEN.sub("", text).strip()
    assert format_ok(text) == bool(re.fullmatch(FORMAT_PATTERN, stripped, re.DOTALL))
    assert not format_ok_strict(text) or format_ok(text)


@SETTINGS
@given(texts)
def test_answer_text_is_the_first_answer_block_and_idempotent(text):
    match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    assert has_answer_tag(text) == (match is not None)
    assert answer_text(text) == (match.group(1) if match else text).strip()
    assert answer_text(answer_text(text)) == answer_text(text)


@SETTINGS
@given(texts)
def test_the_trance_scorers_answer_block_is_its_regex(text):
    match = re.search(r"<answer>(.*?)</answer>", text)
    assert spatial.paper_answer(text) == (match.group(1) if match else None)


@SETTINGS
@given(texts)
def test_a_text_matches_itself(text):
    assume(answer_text(text))
    for name in ("exact", "match", "math_verify", "tolerance"):
        assert tasks.checker(name)(text, text) == 1.0, name


def test_most_numbers_are_drawn_independently():
    """The dependent numbers left out above are few; the table test (test_config_ranges.py) covers them."""
    assert len(NUMBERS) > 40 and len(DEPENDENT) < 30
