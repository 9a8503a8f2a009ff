"""What the paper's presets keep: the paper's two rewards with weight 1 each, the released code's prompts word for
word, and the scorers of the released evaluation. A change to a default, a family or a preset that moves any of
them fails here, with the value it moved to (compare with the paper before updating the pin)."""

from __future__ import annotations

import hashlib

import pytest

from conftest import ROOT
from rrft_studio import data, rewards, settings, tasks

PAPER_PRESETS = ["counting_2b", "counting_7b", "structure_2b", "structure_7b", "spatial_2b", "spatial_7b"]
# family -> (the training reward's checker, the evaluation's scorers), as the paper trains and evaluates
CHECKERS = {"counting": ("match", {"paper": "math_verify", "strict": "match"}),
            "structure": ("match", {"paper": "math_verify", "strict": "match"}),
            "spatial": ("spatial_exact", {"paper": "spatial_paper", "strict": "spatial_partial"})}
# sha256 of every prompt a family builds for the records below, each style and split (prompts=reason_rft)
PROMPTS = {"counting": "100c6c9342b4b7ce", "structure": "bbac42a6f33630c3", "spatial": "dc6b552453354d9b"}
RECORDS = [{"problem": "How many objects are there?", "answer": "3"},
           {"problem": "Find x.\nChoices: A. 1 B. 2 C. 3 D. 4", "answer": "B"},
           {"problem": "[(0, 'cube', 'large', 'brown', 'rubber')]", "answer": "change_color(0, red)"}]


def prompts_digest(cfg) -> str:
    task = data.task_of(cfg)
    texts = [data.prompt_of(task, record, style, cfg, split) for record in RECORDS
             for style in ("cot", "bare", "ans") for split in ("train", *task.benchmarks)]
    return hashlib.sha256("\n\x00\n".join(texts).encode()).hexdigest()[:16]


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_a_paper_preset_keeps_the_papers_rewards_prompts_and_scorers(preset):
    cfg = settings.load(ROOT / "presets" / f"{preset}.yaml")
    task = tasks.get(cfg.data.task)
    assert cfg.method == "rft" and cfg.run.stages == ["sft", "grpo"] and cfg.sft.style == "cot"
    assert cfg.grpo.rewards == ["format", "accuracy"], cfg.grpo.rewards
    assert cfg.grpo.reward_weights == [1.0, 1.0], cfg.grpo.reward_weights
    assert [rewards.resolve(n) for n in cfg.grpo.rewards] == [rewards.format_reward, rewards.accuracy_reward]
    assert cfg.data.prompts == "reason_rft" and cfg.eval.style == "cot" and cfg.eval.scorer == "paper"
    assert task.checker_names(getattr(cfg.data, task.name)) == CHECKERS[task.name]
    assert prompts_digest(cfg) == PROMPTS[task.name], f"{task.name}'s prompts changed: {prompts_digest(cfg)}"
