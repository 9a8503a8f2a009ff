"""What every task family shares about the Reason-RFT record schema: the SFT target text built from a record.

The loader lives in tasks/counting.py (`load`) and serves all three families.
"""

from __future__ import annotations

import re

STYLES = ("cot", "ans")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def target(record: dict, style: str, task: str) -> str:
    """The SFT assistant text: cot -> `<think>\\n{cot}\\n</think>\\n<answer>\\n{answer}\\n</answer>`;
    ans -> the answer alone. A CoT that already holds a <think> block (as released CoT files do) gives
    only its body, so tags are never nested."""
    answer = str(record["answer"]).strip()
    if style == "ans":
        return answer
    if style != "cot":
        raise ValueError(f"{task}.target: unknown style {style!r}; use one of {', '.join(STYLES)}")
    cot = str(record.get("cot") or "").strip()
    match = _THINK.search(cot)
    cot = match.group(1).strip() if match else cot
    if not cot:
        raise ValueError(f"{task}.target: record {record.get('id', '?')!r} has no 'cot'; "
                         f"use style='ans' or add a chain of thought")
    return f"<think>\n{cot}\n</think>\n<answer>\n{answer}\n</answer>"
