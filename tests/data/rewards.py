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


# Rewards for the reward workbench's tests (rrft-studio rewards check --completions).
def zero_reward(completions, **kwargs) -> list[float]:
    return [0.0] * len(completions)


def constant_reward(completions, **kwargs) -> list[float]:
    return [0.5] * len(completions)


def raising_reward(completions, answer, **kwargs) -> list[float]:
    return [float(a) / 0 for a in answer]


def short_reward(completions, **kwargs) -> list[float]:
    return [1.0] * (len(completions) - 1)


def text_reward(completions, **kwargs) -> list:
    return ["good"] * len(completions)


def odd_records_reward(completions, id, **kwargs) -> list[float]:
    """Dynamic sampling's tests: the same reward for every completion of an even-numbered record (a group with
    no spread), the completion's length for an odd-numbered one."""
    return [length_reward([c])[0] if int(i.rsplit("-", 1)[1]) % 2 else 0.0 for c, i in zip(completions, id)]
