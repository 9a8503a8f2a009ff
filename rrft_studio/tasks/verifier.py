"""math-verify off the main thread in a worker process, and a time budget per reward call on any thread.

math-verify (sympy underneath) can run for minutes on a short completion: nested ``\\frac``, power towers,
factorials (tests/hostile_inputs.py). Its own time limit (``OP_TIMEOUT_S`` per parse and per comparison) is
``signal.alarm``, which works only on the main thread: there ``checks.math_equal`` calls math-verify in its own
process, as the released code does. The studio scores from worker threads, where no alarm can fire; there each
verdict ``verify(parse(gold), parse(target))`` is asked of one persistent child process (``python -m
rrft_studio.tasks.verifier``, started on first use, about 1.5 s to import sympy) whose main thread keeps the
same alarms, so both threads give the same verdicts. A verdict not back within ``KILL_AFTER_S`` (a computation
inside a C extension, which no alarm interrupts) scores 0 and its worker is killed; the next verdict starts a
new one. Threads share the worker, one verdict at a time.

``budget(seconds)`` bounds all verdicts of one reward call (a GRPO step's batch), on any thread: once they have
used it up, the remaining ones are not asked and score 0. Starting a worker is charged to neither. Where no
worker can be started, verdicts off the main thread run in-process as before, without a time limit (one warning).

    python -m rrft_studio.tasks.verifier     # the worker: one JSON [gold, target] per line in, "1" or "0" out
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

OP_TIMEOUT_S = 3  # math-verify's own alarm per parse and per comparison (whole seconds), on a main thread
KILL_AFTER_S = 10.0  # a worker's verdict not back by then (past its alarms) scores 0 and the worker is killed
BUDGET_S = 10.0  # all verdicts of one reward call, where the caller opened a budget
STARTUP_TIMEOUT_S = 120.0  # importing sympy on a busy machine; not charged to a verdict

_state = threading.local()  # .remaining: seconds left in the current budget (absent: no budget)
log = logging.getLogger(__name__)


@contextlib.contextmanager
def budget(seconds: float | None = None) -> Iterator[None]:
    """Bound the total time of the verdicts asked inside the block on this thread (default ``BUDGET_S``);
    nested blocks share the smaller remainder."""
    seconds = BUDGET_S if seconds is None else seconds
    outer = getattr(_state, "remaining", None)
    start = _state.remaining = seconds if outer is None else min(outer, seconds)
    try:
        yield
    finally:
        if outer is None:
            del _state.remaining
        else:  # time spent inside counts against the outer budget too
            _state.remaining = outer - (start - _state.remaining)


def remaining() -> float | None:
    """Seconds left in this thread's budget, or None outside any budget."""
    return getattr(_state, "remaining", None)


def spent() -> bool:
    """Whether this thread's budget is used up (never outside a budget)."""
    left = remaining()
    return left is not None and left <= 0


def charge(seconds: float) -> None:
    """Count `seconds` of verdicts against this thread's budget, if one is open."""
    left = remaining()
    if left is not None:
        _state.remaining = left - seconds


class Worker:
    """One child process answering verdicts; restarted after a timeout, a crash, or a fork of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner = 0  # pid that started _proc: a forked copy of this object must not share its pipes
        self.broken: str | None = None  # why no worker could be started, once that happened

    def equal(self, gold: str, target: str, timeout: float) -> tuple[bool | None, float]:
        """(verdict, seconds it took, a worker's start left out); the verdict is False when it did not come back
        within `timeout` seconds (the worker is then killed), None when no worker can be started."""
        start = time.monotonic()
        with self._lock:
            waited = time.monotonic()
            proc = self._ready()
            start += time.monotonic() - waited  # a start is not charged
            if proc is None:
                return None, 0.0
            try:
                proc.stdin.write(json.dumps([gold, target]) + "\n")
                proc.stdin.flush()
                answer = _readline(proc, timeout - (time.monotonic() - start))
            except OSError:  # the worker died (killed from outside, out of memory): ask a new one next time
                answer = None
            if answer is None:
                self._kill()
            return answer is not None and answer.strip() == "1", time.monotonic() - start

    def _ready(self) -> subprocess.Popen | None:
        if self._proc is not None and self._owner == os.getpid() and self._proc.poll() is None:
            return self._proc
        self._proc = None
        if self.broken:
            return None
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            proc = subprocess.Popen([sys.executable, "-m", "rrft_studio.tasks.verifier"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1, env=env)
        except OSError as e:
            return self._give_up(f"cannot start {sys.executable}: {e}")
        if (_readline(proc, STARTUP_TIMEOUT_S) or "").strip() != "ready":
            proc.kill()
            proc.wait()
            return self._give_up(f"`{sys.executable} -m rrft_studio.tasks.verifier` did not start")
        self._proc, self._owner = proc, os.getpid()
        return proc

    def _give_up(self, why: str) -> None:
        self.broken = why
        log.warning("math-verify runs in this process, without a time limit off the main thread: %s", why)
        return None

    def _kill(self) -> None:
        if self._proc is not None and self._owner == os.getpid():
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def close(self) -> None:
        with self._lock:
            self._kill()


def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
    """One line from the worker within `timeout` seconds; None on timeout or when it died."""
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, timeout))
    if not ready:
        return None
    line = proc.stdout.readline()
    return line or None


WORKER = Worker()
atexit.register(WORKER.close)


def equal(gold: str, target: str) -> bool | None:
    """The worker's verdict (False when it did not come back within KILL_AFTER_S nor this thread's budget),
    charged to the budget; None when no worker can be started."""
    left = remaining()
    verdict, seconds = WORKER.equal(gold, target, KILL_AFTER_S if left is None else min(KILL_AFTER_S, left))
    charge(seconds)
    return verdict


def _watch_parent(parent: int) -> None:
    """Exit when the process that started this worker is gone, even in the middle of a computation."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def serve() -> None:
    """The worker's loop: read [gold, target] lines, answer 1 or 0 (0 also on any error or timeout)."""
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    replies, sys.stdout = sys.stdout, sys.stderr  # anything a library prints stays out of the replies
    print("ready", file=replies, flush=True)
    for line in sys.stdin:
        try:
            gold, target = json.loads(line)
            gold_parsed = parse(gold, parsing_timeout=OP_TIMEOUT_S)
            target_parsed = parse(target, parsing_timeout=OP_TIMEOUT_S)
            ok = bool(gold_parsed and target_parsed and verify(gold_parsed, target_parsed, timeout_seconds=OP_TIMEOUT_S))
        except (Exception, TimeoutException):
            ok = False
        print("1" if ok else "0", file=replies, flush=True)


if __name__ == "__main__":
    serve()
