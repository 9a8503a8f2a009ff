"""The built-in `tiny` model factory: a real Qwen2-VL / Qwen2.5-VL checkpoint directory built offline.

No machine here reaches a model hub, so the demo model, the CPU smoke runs and the tests use a checkpoint
built from nothing: a small seeded config with random weights, a byte-level BPE tokenizer trained locally
with the `tokenizers` package on the task's own text, Qwen's ChatML + vision special tokens, Qwen2-VL's chat
template (with `{% generation %}` markers, so assistant-only masks work) and a real `Qwen2VLProcessor`
(`Qwen2_5_VLProcessor` for Qwen2.5-VL). `AutoProcessor.from_pretrained(dir)` and
`AutoModelForImageTextToText.from_pretrained(dir)` load it, and TRL's SFTTrainer and GRPOTrainer train it,
through exactly the code paths of a hub checkpoint.

`build(spec, out_dir, corpus)` writes the directory; `ensure(spec, cache_dir, corpus)` caches it under a
name hashed from the spec and the corpus, built atomically. Same spec + corpus -> byte-identical weights and
tokenizer.

Departures from the hub checkpoints, on purpose: the vocabulary is the BPE size plus 14 special tokens (not
padded to Qwen's 151,936), the special-token ids follow that vocabulary, the weights are float32 with tied
embeddings, and the image pixel budget is small (a 112x112 image -> 64 patches -> 16 merged tokens).

    python -c "from rrft_studio import tiny; print(tiny.ensure(tiny.TinySpec(), '.cache/models', ['hi']))"
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from dataclasses import dataclass

# Bumped whenever the files `build` writes change, so `ensure` never reuses a stale cached model.
FORMAT_VERSION = 1

# Qwen2-VL's special tokens in Qwen's own order, so each id is `bpe_size + (offset Qwen uses from 151643)`.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Plain text on purpose: they must survive `skip_special_tokens=True`, the rewards parse them.
REASONING_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
DEFAULT_SYSTEM = "You are a helpful assistant."
# Repeats of the scaffolding text in the BPE training data, so tags and chat roles get their own merges.
SCAFFOLD_REPEATS = 64
MIN_PIXELS = 56 * 56
MAX_PIXELS = 512 * 512

# Qwen2-VL's ChatML template, plus `{% generation %}` around the assistant's content and its <|im_end|>.
# Newlines right after a block tag are written as {{ '\n' }}: transformers renders with trim_blocks=True.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% set body %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% endset %}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ body }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ body }}<|im_end|>{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

ARCHS = ("qwen2_vl", "qwen2_5_vl")


@dataclass(frozen=True)
class TinySpec:
    """The shape of a tiny model; every field feeds the cache hash."""

    arch: str = "qwen2_vl"  # or "qwen2_5_vl"
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 768
    vision_depth: int = 4
    vision_embed_dim: int = 128
    vision_heads: int = 4
    vocab_size: int = 1024  # BPE target size (special tokens added on top)
    seed: int = 0

    def __post_init__(self) -> None:
        # Shapes the model classes would reject deep inside __init__ (or silently mis-rotate) fail here.
        if self.arch not in ARCHS:
            raise ValueError(f"tiny model arch {self.arch!r} is unknown; use one of {', '.join(ARCHS)}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("tiny model: hidden_size must divide by num_heads, num_heads by num_kv_heads")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError("tiny model: hidden_size / num_heads (head_dim) must be even for rotary embeddings")
        if self.vision_embed_dim % self.vision_heads or (self.vision_embed_dim // self.vision_heads) % 4:
            raise ValueError("tiny model: vision_embed_dim / vision_heads must be a multiple of 4 (2-D rotary)")
        if self.vocab_size <= 256:
            raise ValueError("tiny model: vocab_size must exceed the 256 byte-level base tokens")


def build(spec: TinySpec, out_dir, corpus: list[str]) -> pathlib.Path:
    """Write a loadable checkpoint (config, safetensors, tokenizer, chat template, processor) into out_dir."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(spec, corpus)
    processor = _processor(spec, tokenizer)
    model = _model(spec, tokenizer)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def ensure(spec: TinySpec, cache_dir, corpus: list[str]) -> pathlib.Path:
    """The cached model for spec + corpus, built first if missing (atomically, safe across processes)."""
    cache_dir = pathlib.Path(cache_dir)
    final = cache_dir / f"tiny-{spec.arch}-{_digest(spec, corpus)}"
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A sibling temp dir on the same filesystem makes the final rename atomic: readers never see half a model.
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_dir))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is meant to be read like any model dir
    try:
        build(spec, tmp, corpus)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process renamed its (identical) build first; keep theirs.
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _digest(spec: TinySpec, corpus: list[str]) -> str:
    payload = json.dumps(
        {"format": FORMAT_VERSION, "spec": dataclasses.asdict(spec), "corpus": list(corpus)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _train_bpe(spec: TinySpec, corpus: list[str]):
    """A byte-level BPE with Qwen2's exact normalizer / pre-tokenizer, trained on corpus + chat scaffolding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    # Borrow the pipeline from a throwaway Qwen2Tokenizer: on reload, `Qwen2Tokenizer.__init__` rebuilds
    # normalizer/pre-tokenizer from its own code (not from tokenizer.json), so training must use the same.
    reference = Qwen2Tokenizer().backend_tokenizer
    bpe = Tokenizer(models.BPE())  # no unk token: the 256-byte alphabet covers any text
    bpe.normalizer = reference.normalizer
    bpe.pre_tokenizer = reference.pre_tokenizer
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    scaffold = "\n".join([DEFAULT_SYSTEM, "system", "user", "assistant", *REASONING_TAGS])
    bpe.train_from_iterator([*corpus, *[scaffold] * SCAFFOLD_REPEATS], trainer)
    return bpe


def _tokenizer(spec: TinySpec, corpus: list[str]):
    """Qwen2Tokenizer (what AutoTokenizer picks for Qwen2-VL) over the trained BPE + Qwen's special tokens."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    trained = json.loads(_train_bpe(spec, corpus).to_str())["model"]
    vocab = dict(trained["vocab"])
    # Specials get the ids right after the BPE vocabulary, in Qwen's order (endoftext first).
    vocab.update({token: len(trained["vocab"]) + i for i, token in enumerate(SPECIAL_TOKENS)})
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[tuple(merge) for merge in trained["merges"]],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>", "<|im_end|>")],
        model_max_length=32768,
        padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _processor(spec: TinySpec, tokenizer):
    """The real processor class for the arch, with a small pixel budget (112x112 -> 16 image tokens)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    # transformers 5 resizes by the `size` dict (passing it also avoids __init__ mutating the class-level
    # default dict); min/max_pixels are the hub files' spelling: __init__ consumes them, so they are set
    # again as attributes to be saved alongside `size`, and reloading maps them back onto `size`.
    pixels = dict(
        size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    image_processor, video_processor = Qwen2VLImageProcessor(**pixels), Qwen2VLVideoProcessor(**pixels)
    for part in (image_processor, video_processor):
        part.min_pixels, part.max_pixels = MIN_PIXELS, MAX_PIXELS
    processor_class = Qwen2VLProcessor if spec.arch == "qwen2_vl" else Qwen2_5_VLProcessor
    return processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _mrope_section(head_dim: int) -> list[int]:
    """(temporal, height, width) rotary split of head_dim/2, in Qwen's 1/4, 3/8, 3/8 proportions."""
    half = head_dim // 2
    temporal = max(1, half // 4)
    height = (half - temporal) // 2
    return [temporal, height, half - temporal - height]


def _config(spec: TinySpec, tokenizer):
    """Qwen2VLConfig / Qwen2_5_VLConfig with every special-token id taken from our tokenizer."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=32768,
        max_window_layers=spec.num_layers,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": _mrope_section(spec.hidden_size // spec.num_heads),
        },
        # Small configs keep Qwen's ids (151643, 151645), far outside this vocabulary.
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    shared = dict(
        text_config=text,
        vision_config=_vision_config(spec),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    config_class = Qwen2VLConfig if spec.arch == "qwen2_vl" else Qwen2_5_VLConfig
    return config_class(**shared)


def _vision_config(spec: TinySpec) -> dict:
    """The vision tower; its merger must project into the text hidden size."""
    patches = dict(patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    if spec.arch == "qwen2_vl":
        # Qwen2-VL names the tower width `embed_dim` and the merger's output width `hidden_size`.
        return dict(
            depth=spec.vision_depth,
            embed_dim=spec.vision_embed_dim,
            hidden_size=spec.hidden_size,
            num_heads=spec.vision_heads,
            mlp_ratio=4,
            **patches,
        )
    # Qwen2.5-VL names the tower width `hidden_size` and the merger's output `out_hidden_size`; windowed
    # attention everywhere except the last block of each group of 4 and the final block (as 7/15/23/31 of 32).
    depth = spec.vision_depth
    return dict(
        depth=depth,
        hidden_size=spec.vision_embed_dim,
        intermediate_size=4 * spec.vision_embed_dim,
        num_heads=spec.vision_heads,
        out_hidden_size=spec.hidden_size,
        window_size=112,
        fullatt_block_indexes=sorted({depth - 1, *range(3, depth, 4)}),
        tokens_per_second=2,
        **patches,
    )


def _model(spec: TinySpec, tokenizer):
    """The model with seeded random weights; the caller's RNG state is left untouched."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    config = _config(spec, tokenizer)
    model_class = Qwen2VLForConditionalGeneration if spec.arch == "qwen2_vl" else Qwen2_5_VLForConditionalGeneration
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = model_class(config).to(torch.float32)
    eot, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    # As Qwen's hub generation config: stop at end of turn or end of text; greedy unless a caller samples.
    model.generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot)
    return model
