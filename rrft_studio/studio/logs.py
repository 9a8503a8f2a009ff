"""A run's metrics.jsonl and samples.jsonl as the studio reads them: incrementally, indexed by step, cached
within bounds.

The monitor looks at these files every second, and a long GRPO run writes 100,000 metric lines and 20,000
rollout lines (hundreds of MB). So each file is read once, then only what was appended since: the byte
offset is kept, a torn last line waits until its newline arrives, and a file that shrank or was replaced
(a resume rewrites both) is read again from the start. Metrics become numpy columns, one per key and stage.
samples.jsonl is never read whole: the Rollouts tab finds a step's line by bisecting the file (its steps
increase line by line) and the newest step at its tail, and the thinking/answer and reward-band plots parse
a thousand lines found at evenly spaced byte offsets. The cache holds a few runs and a bounded number of
bytes, and lets go of a run nobody looked at for a while (the monitor's timer touches what it shows).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import operator
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from .. import runs
from ..answers import split_think
from . import rl_series

CHUNK = 8 << 20  # bytes read at once: bounds the memory a first read of a large file takes
HEAD = re.compile(rb'\{"stage": "([^"\\]*)", "step": (\d+)[,}]')  # how train/progress.py starts a samples line
NOT_METRICS = {"stage", "step", "train_runtime"}


class Tail:
    """Complete lines appended to a file since the last call, with their byte offsets."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0  # everything before this byte was read, ending at a newline
        self.identity: tuple | None = None
        self.head = b""  # the file's first bytes: a file rewritten in place is noticed too
        self.generation = 0  # +1 each time the file is read again from the start

    def changed(self) -> bool:
        """Whether there may be new lines; starts over (generation + 1) when the file shrank or was replaced."""
        identity, size = _stat(self.path)
        if identity is None or identity != self.identity or size < self.offset \
                or not _same_head(self.path, self.head):
            if self.offset or self.identity:
                self.generation += 1
            self.offset, self.identity, self.head = 0, identity, b""
        return identity is not None and size > self.offset

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of the complete lines after the offset, a few MB at a time; the offset then moves
        past them. A torn last line stays for the next call."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            rest = b""
            while chunk := f.read(CHUNK):
                data = rest + chunk
                end = data.rfind(b"\n")
                if end < 0:
                    rest = data
                    continue
                if not self.head and self.offset == 0:
                    self.head = data[:64]
                start, rest = self.offset, data[end + 1:]
                self.offset += end + 1
                yield start, data[:end + 1]

    def lines(self) -> Iterator[list[tuple[int, bytes]]]:
        """Batches of (offset, line) of the complete lines after the offset (see chunks)."""
        for start, data in self.chunks():
            batch, pos = [], 0
            while pos < len(data):
                stop = data.index(b"\n", pos)
                if stop > pos:
                    batch.append((start + pos, data[pos:stop]))
                pos = stop + 1
            yield batch


def _loads(line: bytes):
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # a damaged line: skipped, as the CLI's readers do
        return None


class Column:
    """A growing float64 column: a buffer with room to spare, so appending a line does not copy the column."""

    def __init__(self, missing: int = 0):
        self.data = np.full(missing, np.nan)
        self.n = self.missing = missing  # rows, and rows without a value (NaN)

    def extend(self, values: np.ndarray) -> None:
        self.missing += int(np.isnan(values).sum())
        end = self.n + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, len(self.data) + len(self.data) // 4 + 1024))
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:end] = values
        self.n = end

    def values(self) -> np.ndarray:
        return self.data[:self.n]

    def trim(self) -> None:
        """Give back the room to spare (after a first read of a whole file: most runs stop growing)."""
        if len(self.data) > self.n:
            self.data = self.data[:self.n].copy()

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


def _table(rows: list[dict], keys: list[str]) -> np.ndarray:
    """(len(rows), len(keys)) floats; NaN where a row lacks a key or holds something else than a number."""
    try:  # the usual case, every row with every number: no Python loop over the values
        values = itertools.chain.from_iterable(map(operator.itemgetter(*keys), rows)) if len(keys) > 1 else \
            map(operator.itemgetter(*keys), rows)
        return np.fromiter(values, dtype=float, count=len(rows) * len(keys)).reshape(len(rows), len(keys))
    except (KeyError, TypeError, ValueError):
        return np.stack([_numbers(rows, key) for key in keys], axis=1)


def _numbers(rows: list[dict], key: str) -> np.ndarray:
    try:
        return np.array([r.get(key) for r in rows], dtype=float)  # a missing value (None) becomes NaN
    except (TypeError, ValueError):  # a string among the numbers
        return np.array([v if isinstance(v, (int, float)) else np.nan for v in (r.get(key) for r in rows)], dtype=float)


class Metrics:
    """metrics.jsonl as columns per stage: steps, and one column per metric (NaN where a row lacks it)."""

    def __init__(self, path: Path):
        self.tail = Tail(path)
        self.stages: dict[str, dict[str, Column]] = {}
        self.rows: dict[str, int] = {}  # rows per stage
        self.count = 0  # logged steps (end-of-training summaries left out)
        self.last_stage: str | None = None
        self.version = (0, 0)  # changes whenever what was read changes

    def update(self) -> None:
        generation = self.tail.generation
        if not self.tail.changed():
            self._reset_if(generation)
            return
        self._reset_if(generation)
        first_read = self.tail.offset == 0
        for _, block in self.tail.chunks():
            lines = [line for line in block.split(b"\n") if line]
            try:
                rows = list(map(orjson.loads, lines))
            except orjson.JSONDecodeError:  # a damaged line somewhere: parse them one by one
                rows = list(map(_loads, lines))
            rows = [r for r in rows if type(r) is dict and "stage" in r and "train_runtime" not in r]
            for stage in dict.fromkeys(r["stage"] for r in rows):
                self._add(stage, [r for r in rows if r["stage"] == stage])
            if rows:
                self.count += len(rows)
                self.last_stage = rows[-1]["stage"]
        if first_read:
            for columns in self.stages.values():
                for column in columns.values():
                    column.trim()
        self.version = (self.tail.generation, self.tail.offset)

    def _reset_if(self, generation: int) -> None:
        if self.tail.generation != generation:
            self.stages, self.rows, self.count, self.last_stage = {}, {}, 0, None
            self.version = (self.tail.generation, 0)

    def _add(self, stage: str, rows: list[dict]) -> None:
        columns = self.stages.setdefault(stage, {"step": Column()})
        before = self.rows.get(stage, 0)
        self.rows[stage] = before + len(rows)
        keys = sorted(set().union(*rows) - NOT_METRICS)
        for key in set(keys) - set(columns):
            columns[key] = Column(before)
        table = _table(rows, ["step", *keys])  # (rows, 1 + keys)
        for j, key in enumerate(["step", *keys]):
            columns[key].extend(table[:, j])
        for key in set(columns) - {"step", *keys}:
            columns[key].extend(np.full(len(rows), np.nan))

    def keys(self, stage: str) -> list[str]:
        return [k for k in self.stages.get(stage, {}) if k != "step"]

    def series(self, stage: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric in one stage, rows without it left out."""
        columns = self.stages.get(stage, {})
        if key not in columns:
            return np.empty(0), np.empty(0)
        steps, values = columns["step"].values(), columns[key].values()
        if not columns[key].missing:  # the usual case: views, nothing copied
            return steps, values
        present = ~np.isnan(values)
        return steps[present], values[present]

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for columns in self.stages.values() for c in columns.values())


class Samples:
    """samples.jsonl looked up by step without reading it whole, for the Rollouts tab. train/progress.py appends one
    line per logged step, steps increasing (a resume first cuts the file back to its checkpoint, which keeps
    the order), so a step's line is found by bisecting the file's bytes: a few dozen line heads read, whatever
    the file's size, and the newest step is the last complete line. A few records shown lately stay parsed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.identity: tuple | None = None
        self.head = b""  # the file's first bytes: a file rewritten in place is noticed too
        self.size = 0
        self.parsed: OrderedDict[int, dict] = OrderedDict()  # a few whole records, most recent last
        self.version = (0, 0)

    def update(self) -> None:
        """Notice a file replaced, cut back or rewritten (its parsed records dropped); appends keep them."""
        identity, size = _stat(self.path)
        if identity != self.identity or size < self.size or not _same_head(self.path, self.head):
            self.identity, self.head, self.parsed = identity, _read_head(self.path), OrderedDict()
            self.version = (self.version[0] + 1, 0)
        self.size = size
        self.version = (self.version[0], size)

    def bounds(self) -> tuple[int, int, int | None] | None:
        """(first step, last step, steps between the last two lines) of the complete lines; None without any."""
        with self._open() as (f, end):
            if not end:
                return None
            last = _start_before(f, end)
            before = _start_before(f, last) if last else None
            gap = _step_at(f, last) - _step_at(f, before) if before is not None else None
            return _step_at(f, 0), _step_at(f, last), gap

    def nearest(self, step: float) -> int | None:
        """The logged step closest to `step` (the earlier of two as close)."""
        with self._open() as (f, end):
            if not end:
                return None
            found = _lower(f, end, step)
            after = _step_at(f, found) if found is not None else None
            earlier = _start_before(f, found if found is not None else end)
            before = _step_at(f, earlier) if earlier is not None else None
            near = [s for s in (before, after) if s is not None]
            return min(near, key=lambda s: (abs(s - step), s)) if near else None

    def moved(self, step: int, lines: int) -> int | None:
        """The logged step `lines` lines after (or before, if negative) the line of `step`, stopping at the ends."""
        with self._open() as (f, end):
            start = _lower(f, end, step) if end else None
            if start is None:
                return None
            for _ in range(abs(lines)):
                if lines > 0:
                    f.seek(start)
                    f.readline()
                    if f.tell() >= end:
                        break
                    start = f.tell()
                else:
                    earlier = _start_before(f, start)
                    if earlier is None:
                        break
                    start = earlier
            return _step_at(f, start)

    def record(self, step: int) -> dict | None:
        """The step's rollouts (its last line), read from disk on demand."""
        if step in self.parsed:
            self.parsed.move_to_end(step)
            return self.parsed[step]
        with self._open() as (f, end):
            start = _lower(f, end, step) if end else None
            line = None
            while start is not None and start < end and _step_at(f, start) == step:  # logged twice: the last line
                f.seek(start)
                line = f.readline()
                start = f.tell()
        record = _loads(line) if line else None
        if not isinstance(record, dict):
            return None
        self.parsed[step] = record
        while len(self.parsed) > 8:
            self.parsed.popitem(last=False)
        return record

    @contextlib.contextmanager
    def _open(self):
        """The file and the end of its last complete line (0 when there is none)."""
        try:
            f = open(self.path, "rb")
        except OSError:
            yield None, 0
            return
        with f:
            yield f, _complete_end(f, self.size)

    @property
    def nbytes(self) -> int:
        return sum(32 * 1024 for _ in self.parsed)


def _stat(path: Path) -> tuple[tuple | None, int]:
    """((device, inode), size) of a file; (None, 0) when it is missing or unreadable."""
    try:
        stat = os.stat(path)
    except OSError:
        return None, 0
    return (stat.st_dev, stat.st_ino), stat.st_size


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(64)
    except OSError:
        return b""


def _same_head(path: Path, head: bytes) -> bool:
    return not head or _read_head(path)[:len(head)] == head


def _complete_end(f, size: int) -> int:
    """The byte after the file's last newline, looked for from `size` backwards (a torn line waits)."""
    end = size
    while end > 0:
        block = min(end, 1 << 16)
        f.seek(end - block)
        cut = f.read(block).rfind(b"\n")
        if cut >= 0:
            return end - block + cut + 1
        end -= block
    return 0


def _start_before(f, start: int) -> int | None:
    """The start of the line that ends just before `start` (None at the file's start)."""
    if start <= 0:
        return None
    return _complete_end(f, start - 1)  # the byte after the newline before the one ending that line


def _lower(f, end: int, step: float) -> int | None:
    """The start of the first line whose step is at least `step` (None: every line's step is smaller). Bisects
    the bytes: the step of the first line starting at or after a position grows with the position."""
    lo, hi = 0, end
    while lo < hi:
        mid = (lo + hi) // 2
        start = _start_at(f, mid, end)
        if start is None or _step_at(f, start) >= step:
            hi = mid
        else:
            lo = mid + 1
    return _start_at(f, lo, end)


def _start_at(f, pos: int, end: int) -> int | None:
    """The start of the first line that starts at or after `pos` and before `end`."""
    if pos > 0:
        f.seek(pos - 1)
        f.readline()  # the rest of the line `pos` falls in, or just the newline before it
        pos = f.tell()
    return pos if pos < end else None


def _step_at(f, start: int) -> int:
    """The step of the line starting at `start` (from its first bytes as train/progress.py writes them)."""
    f.seek(start)
    head = HEAD.match(f.read(200))
    if head:
        return int(head.group(2))
    f.seek(start)
    found = _step_of(f.readline())
    return found[1] if found else -1


def _step_of(line: bytes) -> tuple[str, int] | None:
    """(stage, step) of a samples line: from its first bytes as train/progress.py writes them, else parsed whole."""
    head = HEAD.match(line, 0, 200)
    if head:
        return head.group(1).decode(), int(head.group(2))
    record = _loads(line)
    if not isinstance(record, dict) or "step" not in record:
        return None
    return str(record.get("stage", "grpo")), int(record["step"])


class Spread:
    """Mean thinking and answer tokens of rollout lines spread evenly through samples.jsonl, for the monitor's
    plot, without indexing the file: the first line after each of at most max_points byte offsets on a grid
    (a power of two apart, so the grid stays put while the file grows), and the last line. A few thousand
    lines are read, wherever the file is hundreds of megabytes; each is parsed once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.identity: tuple | None = None
        self.size = 0
        self.head = b""
        self.rows: dict[int, tuple | None] = {}  # grid offset -> (stage, step, think, answer) or None
        self.last: tuple[int, tuple | None] = (-1, None)  # (file size it was read at, row of the last line)
        self.version = (0, 0)

    def update(self) -> None:
        identity, size = _stat(self.path)
        if identity != self.identity or size < self.size or not _same_head(self.path, self.head):
            self.identity, self.head, self.rows, self.last = identity, b"", {}, (-1, None)
            self.version = (self.version[0] + 1, 0)
        self.size = size
        self.version = (self.version[0], size)

    def think_answer(self, stage: str, max_points: int) -> list[dict]:
        if not self.size:
            return []
        stride = 1 << max(12, math.ceil(math.log2(self.size / max_points)))
        grid = range(0, self.size, stride)
        with open(self.path, "rb") as f:
            if not self.head:
                self.head = f.read(64)
            for offset in grid:
                if offset not in self.rows:
                    self.rows[offset] = _row(_line_after(f, offset, self.size))
            if self.last[0] != self.size:
                self.last = (self.size, _row(_last_line(f, self.size)))
        if len(self.rows) > 2 * len(grid):  # the grid's spacing doubled: keep what lies on it
            self.rows = {o: r for o, r in self.rows.items() if o % stride == 0}
        found = {r[1]: r for r in [*(self.rows[o] for o in grid), self.last[1]] if r and r[0] == stage}
        return [{"stage": stage, "step": step, "think_tokens": think, "answer_tokens": answer, **bands}
                for step, (_, _, think, answer, bands) in sorted(found.items())]

    @property
    def nbytes(self) -> int:
        return 400 * len(self.rows)


def _line_after(f, offset: int, size: int) -> bytes | None:
    """The first complete line starting at or after offset (None in a torn last line)."""
    f.seek(max(offset - 1, 0))
    if offset:
        f.readline()  # the rest of the line the offset falls in (or just its newline)
    if f.tell() >= size:
        return None
    line = f.readline()
    return line if line.endswith(b"\n") else None


def _last_line(f, size: int) -> bytes | None:
    block = min(size, 1 << 20)
    f.seek(size - block)
    lines = f.read(block).split(b"\n")  # the text after the last newline is a torn line, not yet complete
    return lines[-2] if len(lines) > 1 and (len(lines) > 2 or block == size) else None


def _row(line: bytes | None) -> tuple | None:
    """(stage, step, thinking tokens, answer tokens, the quantiles of the step's summed rewards) of a line."""
    record = _loads(line) if line else None
    if not isinstance(record, dict) or "step" not in record:
        return None
    bands = rl_series.reward_bands([{**record, "stage": "grpo"}])
    summary = {k: v for k, v in bands[0].items() if k != "step"} if bands else {}
    return (str(record.get("stage", "grpo")), int(record["step"]), *_split(record), summary)


def _split(record: dict) -> tuple[float, float]:
    """Mean tokens inside <think> and in the answer over a step's completions (by their share of the
    characters: the studio loads no tokenizer)."""
    think = answer = 0.0
    completions = record.get("completions") or []
    for c in completions:
        text = c.get("completion", "")
        parsed = split_think(text)
        chars = max(len(text), 1)
        think_chars = len(parsed.think or "")
        length = c.get("length", 0)
        think += length * think_chars / chars
        answer += length * (chars - think_chars) / chars if parsed.think is not None else length
    n = max(len(completions), 1)
    return think / n, answer / n


class RunLogs:
    def __init__(self, run_dir: Path):
        self.metrics = Metrics(runs.metrics_path(run_dir))
        self.samples = Samples(runs.samples_path(run_dir))  # looked up when the Rollouts tab asks
        self.spread = Spread(runs.samples_path(run_dir))
        self.lock = threading.Lock()
        self.used = time.monotonic()
        self.memo: dict = {}  # what the monitor computed from these logs, keyed by what it depends on

    @property
    def nbytes(self) -> int:
        return self.metrics.nbytes + self.samples.nbytes + self.spread.nbytes + sum(
            sum(getattr(v, "nbytes", 0) for v in value) for value in self.memo.values())


class Cache:
    """At most max_runs runs and about max_bytes of columns; a run unused for idle_s seconds is dropped."""

    def __init__(self, max_runs: int = 8, max_bytes: int = 256 << 20, idle_s: float = 30):
        self.max_runs, self.max_bytes, self.idle_s = max_runs, max_bytes, idle_s
        self.runs: OrderedDict[Path, RunLogs] = OrderedDict()
        self.lock = threading.Lock()
        self._janitor: threading.Thread | None = None
        self._sized = frozenset()  # what the runs held when their bytes were last added up

    def get(self, run_dir: Path, metrics: bool = True, samples: bool = False) -> RunLogs:
        """The run's logs brought up to date (only what was appended is read): the metrics and the spread of
        rollouts the monitor plots, and with samples=True the index of every rollout step."""
        run_dir = Path(run_dir)
        with self.lock:
            logs = self.runs.get(run_dir) or RunLogs(run_dir)
            self.runs[run_dir] = logs
            self.runs.move_to_end(run_dir)
            logs.used = time.monotonic()
            self._start_janitor()
        with logs.lock:
            if metrics:
                logs.metrics.update()
                logs.spread.update()
            if samples:
                logs.samples.update()
        self._trim(keep=run_dir)
        return logs

    def _trim(self, keep: Path) -> None:
        dropped = False
        with self.lock:
            if self._held() == self._sized:  # adding up the bytes walks every column: only after a read (the
                return                        # memos, a few kB a plot, bounded in number, are counted then too)
            while len(self.runs) > 1 and (len(self.runs) > self.max_runs or
                                          sum(r.nbytes for r in self.runs.values()) > self.max_bytes):
                oldest = next(iter(self.runs))
                if oldest == keep:
                    break
                del self.runs[oldest]
                dropped = True
            self._sized = self._held()
        if dropped:
            _give_back_memory()

    def _held(self) -> frozenset:
        """What each run has read (not in the order of use, which each get changes)."""
        return frozenset((id(r), r.metrics.version, r.spread.version, r.samples.version) for r in self.runs.values())

    def release_idle(self) -> None:
        now = time.monotonic()
        with self.lock:
            idle = [d for d, r in self.runs.items() if now - r.used > self.idle_s]
            for d in idle:
                del self.runs[d]
        if idle:
            _give_back_memory()

    def _start_janitor(self) -> None:
        if self._janitor is None:
            def loop():
                while True:
                    time.sleep(max(self.idle_s / 3, 1))
                    self.release_idle()
            self._janitor = threading.Thread(target=loop, name="rrft-logs-janitor", daemon=True)
            self._janitor.start()


def _give_back_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise); a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


CACHE = Cache()
