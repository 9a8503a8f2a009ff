"""The Train tab's memory preflight: `rrft-studio preflight` on the edited preset, its verdict for this machine
one line per stage.

The estimate needs transformers (image token counts) and torch (the GPU at hand): seconds of imports and
hundreds of MB that the studio's own process does without, so the CLI runs it in a subprocess at low
priority, once per distinct preset text and overrides (kept in a small cache), and only for the newest edit of
a page: an earlier one still waiting is dropped.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from .launcher import CLI, Launcher

TIMEOUT_S = 180
_cache: OrderedDict[str, str] = OrderedDict()  # key -> markdown
_newest: dict[str, str] = {}  # page -> the key of its newest edit
_lock = threading.Lock()


def key_of(text: str, overrides: list[str]) -> str:
    return hashlib.sha256("\n".join([text, *overrides]).encode()).hexdigest()[:16]


def note(page: str, text: str, overrides: list[str]) -> None:
    """Record a page's newest valid edit (the validation calls this): older preflights of that page are dropped."""
    _newest[page] = key_of(text, overrides)


def cached(text: str, overrides: list[str]) -> str | None:
    return _cache.get(key_of(text, overrides))


def verdict(launcher: Launcher, text: str, overrides: list[str], page: str | None = None) -> str | None:
    """The preflight's markdown for a valid preset text, or None when a newer edit of the same page came since
    (its own preflight follows)."""
    key = key_of(text, overrides)
    if page is not None and _newest.get(page, key) != key:
        return None
    with _lock:  # one estimate at a time: two cores are shared with the training runs
        if key not in _cache:
            _cache[key] = _run(launcher, text, overrides)
            while len(_cache) > 64:
                _cache.popitem(last=False)
        return _cache[key]


def _run(launcher: Launcher, text: str, overrides: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        preset = Path(tmp) / "preset.yaml"
        preset.write_text(text)
        try:
            # The rewards weigh nothing in memory, and a module:function one is imported only where training runs.
            quiet = [*overrides, "grpo.rewards=[format]", "grpo.reward_weights=[1]"]
            done = subprocess.run([*CLI, "preflight", str(preset), *quiet], cwd=launcher.cwd, capture_output=True,
                                  text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, preexec_fn=_nice)
        except subprocess.TimeoutExpired:
            return f"**Memory preflight:** no answer in {TIMEOUT_S} s"
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["it failed"])[-1].removeprefix("error: ")
        return f"**Memory preflight:** {error.replace(str(preset), 'the preset')}"
    return summary(done.stdout)


def _nice() -> None:
    os.nice(10)  # below the studio and the runs: an estimate can wait


def summary(report: str) -> str:
    """One line per stage (its peak and the verdict for this machine's GPU), the full tables folded below."""
    lines = []
    for block in report.strip().split("\n\n"):
        rows = block.strip().splitlines()
        if not rows or not rows[0].startswith("preflight "):
            continue
        stage = rows[0].split(":", 1)[0].removeprefix("preflight ")
        lines.append(f"- **{stage}**: {rows[-1]}")
    if not lines:
        return "**Memory preflight:** no estimate in its output"
    return ("**Memory preflight on this machine** (an estimate of each stage's peak GPU memory, nothing loaded):\n"
            + "\n".join(lines) + f"\n\n<details><summary>the estimate, part by part</summary>\n\n{report.strip()}\n\n</details>")
