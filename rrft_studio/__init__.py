"""rrft-studio: reproduce and extend Reason-RFT (CoT-SFT, then GRPO) on Qwen2-VL / Qwen2.5-VL with one GPU."""

__version__ = "0.1.0"
