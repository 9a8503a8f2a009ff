"""A user's own reward, plugged in by `module:function` (grpo.rewards), as the tests' micro runs do.

The micro model's completions are noise, so format and accuracy are almost always 0 for the whole group:
zero advantages and no update. A dense reward gives every group a spread, so GRPO really trains.
"""

from rrft_studio.rewards import completion_text


def length_reward(completions, **kwargs) -> list[float]:
    return [min(len(completion_text(c)), 64) / 64 for c in completions]


def contains_answer(text: str, answer: str) -> float:
    """A user's own checker (data.custom.checker=module:function): the answer anywhere in the completion."""
    return 1.0 if str(answer) in text else 0.0
