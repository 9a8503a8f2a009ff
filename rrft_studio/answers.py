"""The text conventions of an answer: think / answer tags, special tokens, the answer text, the format check.

A Reason-RFT completion reads ``<think>\\n{reasoning}\\n</think>\\n<answer>\\n{answer}\\n</answer>``. The
rewards, the evaluation, the data loader, the studio and chat all read completions through this module, so
they agree on what "the answer" of a text is:

- ``answer_text``: the stripped text inside the first ``<answer>...</answer>`` (tag contents may span lines),
  or the whole stripped text where there is no complete pair.
- ``format_ok``: the paper's format regex ``<think>.*?</think>\\s*<answer>.*?</answer>`` as a full DOTALL
  match, after removing literal special tokens (``<|im_end|>``) and outer whitespace; checked without regex
  backtracking (the literal pattern is quadratic on adversarial inputs: 6 s on 200k characters).
- ``split_think``: reasoning and answer apart, for display; works on a still-streaming text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FORMAT_PATTERN = r"<think>.*?</think>\s*<answer>.*?</answer>"  # the paper's regex, full match, DOTALL
SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]{1,64}\|>")  # Qwen-style literal tokens: <|im_end|>, <|endoftext|>
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
_THINK_TO_ANSWER = re.compile(r"</think>\s*<answer>")  # linear: each try scans one whitespace run


def compose(reasoning: str, answer: str) -> str:
    """The CoT-SFT target layout: ``<think>\\n{reasoning}\\n</think>\\n<answer>\\n{answer}\\n</answer>``."""
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n{ANSWER_OPEN}\n{answer}\n{ANSWER_CLOSE}"


def completion_text(completion: Any) -> str:
    """Text of one completion: a string, or a conversational list of messages (content str or parts)."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(message) for message in completion)
    return str(completion)


def _content_text(content: Any) -> str:
    """Message content: a string, or a list of parts of which only text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(
            part if isinstance(part, str) else str(part.get("text") or "")
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type", "text") == "text")
        )
    return str(content)


def _answer_span(text: str) -> tuple[int, int] | None:
    """Start and end of the first ``<answer>...</answer>`` body, like a lazy DOTALL regex search."""
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    end = text.find(ANSWER_CLOSE, start + len(ANSWER_OPEN))
    # No closing tag after the first opening one means none after any later opening one either.
    return None if end < 0 else (start + len(ANSWER_OPEN), end)


def has_answer_tag(text: str) -> bool:
    """Whether the text holds a complete ``<answer>...</answer>`` pair."""
    return _answer_span(text) is not None


def answer_text(text: Any) -> str:
    """Stripped text inside the first ``<answer>...</answer>``, or the whole stripped text without one."""
    text = as_str(text)
    span = _answer_span(text)
    return (text if span is None else text[span[0]: span[1]]).strip()


def as_str(value: Any) -> str:
    """A record's answer or a completion as text (numbers in JSON files become their string)."""
    return "" if value is None else value if isinstance(value, str) else str(value)


def format_ok(text: str) -> bool:
    """Full DOTALL match of ``FORMAT_PATTERN`` after removing special tokens and outer whitespace.

    ``<think>A</think>W<answer>B</answer>`` with A, B anything and W whitespace is exactly: starts with
    ``<think>``, ends with ``</answer>``, and ``</think>\\s*<answer>`` occurs in between.
    """
    text = SPECIAL_TOKEN.sub("", text).strip()
    if not (text.startswith(THINK_OPEN) and text.endswith(ANSWER_CLOSE)):
        return False
    middle = text[len(THINK_OPEN): len(text) - len(ANSWER_CLOSE)]
    return len(text) >= len(THINK_OPEN) + len(ANSWER_CLOSE) and _THINK_TO_ANSWER.search(middle) is not None


def format_ok_strict(text: str) -> bool:
    """``format_ok`` with exactly one of each tag (the paper's regex also pays for nested answer blocks)."""
    return format_ok(text) and all(text.count(tag) == 1 for tag in TAGS)


@dataclass
class Parsed:
    think: str | None  # None when the text has no <think>
    answer: str  # the answer-tag text (tags removed), or whatever follows </think>
    thinking_done: bool  # False while a <think> is still open (streaming)


def split_think(text: str) -> Parsed:
    """Separate the reasoning from the answer; works on a partial, still-streaming text too."""
    text = SPECIAL_TOKEN.sub("", text)
    start = text.find(THINK_OPEN)
    if start < 0:
        return Parsed(None, _strip_answer_tags(text), True)
    body = text[start + len(THINK_OPEN):]
    end = body.find(THINK_CLOSE)
    if end < 0:
        return Parsed(body.strip(), "", False)
    rest = text[:start] + body[end + len(THINK_CLOSE):]
    return Parsed(body[:end].strip(), _strip_answer_tags(rest), True)


def _strip_answer_tags(text: str) -> str:
    if has_answer_tag(text):
        return answer_text(text)
    return text.replace(ANSWER_OPEN, "").replace(ANSWER_CLOSE, "").strip()
