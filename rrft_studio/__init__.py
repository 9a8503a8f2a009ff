"""rrft-studio: reproduce and extend Reason-RFT (CoT-SFT, then GRPO) on Qwen2-VL / Qwen2.5-VL with one GPU."""

__version__ = "0.1.0"


def quiet_library_warnings() -> None:
    """Silence import-time warnings of libraries that are about their own internals, not the user's run:
    torchao (pulled in by transformers) about torch's enum registration, and bitsandbytes, on CPUs with
    AVX512-BF16, about an optional kernel package."""
    import logging

    for name in ("torch.utils._pytree", "bitsandbytes.backends.cpu.ops"):
        logging.getLogger(name).setLevel(logging.ERROR)
