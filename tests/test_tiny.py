"""The tiny model factory: a micro Qwen2-VL / Qwen2.5-VL built offline loads and runs like a hub checkpoint."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLForConditionalGeneration,
)

from rrft_studio import tiny

MODEL_CLASSES = {"qwen2_vl": Qwen2VLForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration}
CORPUS = [
    "How many shapes are in the image? <think>I see a red circle and two blue squares.</think> <answer>3</answer>",
    "Which shape is left of the circle? <think>The square is on the left.</think> <answer>square</answer>",
]


def micro(arch: str = "qwen2_vl") -> tiny.TinySpec:
    return tiny.TinySpec(
        arch=arch,
        hidden_size=64,
        num_layers=2,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=128,
        vision_depth=1,
        vision_embed_dim=32,
        vision_heads=2,
        vocab_size=300,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One micro checkpoint per arch, built once for the module: {arch: directory}."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: tiny.build(micro(arch), root / arch, CORPUS) for arch in MODEL_CLASSES}


def image(color=(200, 30, 30)) -> Image.Image:
    return Image.new("RGB", (112, 112), color)


def user_turn(n_images: int = 1) -> dict:
    return {"role": "user", "content": [*[{"type": "image"}] * n_images, {"type": "text", "text": "How many?"}]}


def load(directory):
    return AutoProcessor.from_pretrained(directory), AutoModelForImageTextToText.from_pretrained(directory)


@pytest.mark.parametrize("arch", list(MODEL_CLASSES))
def test_loads_as_the_real_classes(built, arch):
    processor, model = load(built[arch])
    assert type(model) is MODEL_CLASSES[arch]
    assert type(processor).__name__ == {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor"}[arch]
    assert model.config.get_text_config().vocab_size == len(processor.tokenizer)
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert processor.tokenizer.chat_template == processor.chat_template == tiny.CHAT_TEMPLATE


@pytest.mark.parametrize("arch", list(MODEL_CLASSES))
def test_forward_with_labels_and_generate(built, arch):
    processor, model = load(built[arch])
    answer = {"role": "assistant", "content": [{"type": "text", "text": "<answer>3</answer>"}]}
    text = processor.apply_chat_template([user_turn(), answer])
    batch = processor(text=[text], images=[image()], return_tensors="pt")
    # 112x112 -> 8x8 patches of 14 px -> 2x2 merge -> 16 image tokens.
    assert batch["image_grid_thw"].tolist() == [[1, 8, 8]]
    assert (batch["input_ids"] == model.config.image_token_id).sum() == 16
    loss = model(**batch, labels=batch["input_ids"]).loss
    assert torch.isfinite(loss)

    prompt = processor.apply_chat_template([user_turn()], add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    batch = processor(text=[prompt], images=[image()], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert 0 < out.shape[1] - batch["input_ids"].shape[1] <= 5


def test_two_images_in_one_prompt(built):
    processor, model = load(built["qwen2_vl"])
    prompt = processor.apply_chat_template([user_turn(2)], add_generation_prompt=True)
    assert prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    batch = processor(text=[prompt], images=[image(), image((30, 30, 200))], return_tensors="pt")
    assert (batch["input_ids"] == model.config.image_token_id).sum() == 32
    assert torch.isfinite(model(**batch, labels=batch["input_ids"]).loss)
    model.generate(**batch, max_new_tokens=3, do_sample=False)


def test_reasoning_tags_are_plain_text(built):
    tokenizer = AutoProcessor.from_pretrained(built["qwen2_vl"]).tokenizer
    text = "<think>a red circle</think> <answer>3</answer>"
    ids = tokenizer.encode(text + "<|im_end|>", add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    # Trained on the tags many times, so each is a few tokens, not one per byte.
    assert len(tokenizer.encode("<answer>", add_special_tokens=False)) <= 3
    assert tokenizer.decode(tokenizer.encode("ünïcødé ✓ 数", add_special_tokens=False)) == "ünïcødé ✓ 数"


def test_assistant_mask_covers_content_and_im_end(built):
    processor = AutoProcessor.from_pretrained(built["qwen2_vl"])
    tokenizer = processor.tokenizer
    conversation = [user_turn(), {"role": "assistant", "content": "<think>one</think> <answer>1</answer>"}]
    out = tokenizer.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [i for i, keep in zip(out["input_ids"], out["assistant_masks"]) if keep]
    assert tokenizer.decode(masked) == "<think>one</think> <answer>1</answer><|im_end|>"


def test_ensure_caches_and_builds_are_deterministic(built, tmp_path):
    first = tiny.ensure(micro(), tmp_path / "cache", CORPUS)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = tiny.ensure(micro(), tmp_path / "cache", CORPUS)
    assert again == first and first.name.startswith("tiny-qwen2_vl-")
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no temp dir left behind
    assert tiny.ensure(micro(), tmp_path / "cache", CORPUS[:1]) != first  # the corpus is part of the key

    # The fixture built the same spec + corpus into another directory: identical weights and tokenizer.
    ours, theirs = load_file(first / "model.safetensors"), load_file(built["qwen2_vl"] / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert (first / "tokenizer.json").read_bytes() == (built["qwen2_vl"] / "tokenizer.json").read_bytes()


def test_spec_rejects_bad_shapes():
    with pytest.raises(ValueError, match="qwen2_vl"):
        tiny.TinySpec(arch="llava")
    with pytest.raises(ValueError, match="num_heads"):
        tiny.TinySpec(hidden_size=250, num_heads=4)
