"""How long each checker takes on hostile completions (tests/hostile_inputs.py), on the main thread and off it.

The accuracy reward's math-verify fallback is the slow part: `match` (as trained: math-verify only where the
completion has no answer tag) and `math_verify` (the paper's scorer: math-verify on the answer text, tagged or
not). Each input is scored in a child process, on its main thread and then on a worker thread (as the studio's
Compare tab calls it); a child still busy after --cap seconds is killed, the input is shown as "> cap", and a
new child goes on with the next input. The other checkers (exact, tolerance, spatial_*, format) are timed on
the main thread, their slowest shown. Last, one `accuracy_reward` call scores the whole corpus at once: the
per-call budget bounds it.

    python benchmarks/rewards_hostile.py                 # the table (a few minutes on two cores)
    python benchmarks/rewards_hostile.py --cap 10 --only frac,tower
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # runs from a checkout, without `pip install -e`

SLOW = ("match", "math_verify")
FAST = ("exact", "tolerance", "spatial_exact", "spatial_partial", "spatial_paper")
ANSWER = "3"


def _timed(func, *args) -> float:
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def _on_thread(func, *args) -> float:
    box: list[float] = []
    thread = threading.Thread(target=lambda: box.append(_timed(func, *args)), daemon=True)
    thread.start()
    thread.join()
    return box[0]


def child(names: list[str], start: int) -> None:
    """Score inputs from `start` on, one JSON line per (input, column) as each finishes."""
    from hostile_inputs import corpus

    from rrft_studio import tasks
    from rrft_studio.answers import format_ok

    items = dict(corpus())
    tasks.checker("match")("warm up: import math-verify and sympy", ANSWER)  # not part of any input's time
    for i, name in enumerate(names[start:], start):
        text = items[name]
        for checker in SLOW:
            for where, run in (("main", _timed), ("thread", _on_thread)):
                print(json.dumps({"i": i, "col": f"{checker} {where}", "s": run(tasks.checker(checker), text, ANSWER)}),
                      flush=True)
        fast = max(_timed(tasks.checker(c), text, ANSWER) for c in FAST)
        fast = max(fast, _timed(format_ok, text))
        print(json.dumps({"i": i, "col": "others main", "s": fast}), flush=True)
        print(json.dumps({"i": i, "done": True}), flush=True)


def batch_child(where: str) -> None:
    """One accuracy_reward call over the whole corpus (bare and tagged) with the paper's scorer."""
    from hostile_inputs import corpus

    from rrft_studio import rewards

    texts = [text for _, text in corpus()]
    rewards.accuracy_reward(["warm up"], answer=[ANSWER])
    n = len(texts)
    call = lambda: rewards.accuracy_reward(texts, answer=[ANSWER] * n, task=["custom"] * n, checker=["math_verify"] * n)  # noqa: E731
    print(json.dumps({"n": n, "s": (_timed if where == "main" else _on_thread)(call)}), flush=True)


def batch(cap: float) -> dict:
    """The whole-corpus call on the main thread and off it, each in a child killed after `cap` seconds."""
    out: dict = {}
    for where in ("main", "thread"):
        try:
            done = subprocess.run([sys.executable, __file__, "--batch", where], capture_output=True, text=True,
                                  timeout=cap, cwd=ROOT)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            out.update(n=row["n"], **{where: row["s"]})
        except subprocess.TimeoutExpired:
            out[where] = None
    return out


def measure(names: list[str], cap: float) -> dict[str, dict[str, float | None]]:
    """{input: {column: seconds, or None when the child was killed at the cap}}."""
    rows: dict[str, dict[str, float | None]] = {name: {} for name in names}
    start = 0
    while start < len(names):
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(start), "--only", ",".join(names)],
                                stdout=subprocess.PIPE, text=True, bufsize=1, cwd=ROOT)
        deadline = None
        current = start
        while True:
            wait = 120.0 if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([proc.stdout], [], [], wait)
            if not ready:  # an input ran past the cap: note it, kill the child, go on with the next input
                rows[names[current]].setdefault("killed", None)
                proc.kill()
                proc.wait()
                start = current + 1
                break
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                start = len(names)
                break
            row = json.loads(line)
            current = row["i"]
            if row.get("done"):
                current += 1
            else:
                rows[names[row["i"]]][row["col"]] = row["s"]
            deadline = time.monotonic() + cap
            if current >= len(names):
                proc.wait()
                start = len(names)
                break
    return rows


COLUMNS = [f"{c} {w}" for c in SLOW for w in ("main", "thread")] + ["others main"]


def table(rows, cap: float) -> str:
    """Seconds per input and column; the column a child was killed in reads "> cap", later ones "-"."""
    from hostile_inputs import corpus

    sizes = {name: len(text) for name, text in corpus()}
    lines = ["| input | chars | " + " | ".join(COLUMNS) + " |", "|---|---:|" + "---:|" * len(COLUMNS)]
    for name, row in rows.items():
        missing = [c for c in COLUMNS if c not in row]
        cells = [f"{row[c]:.3f}" if c in row else f"> {cap:g}" if "killed" in row and c == missing[0] else "-"
                 for c in COLUMNS]
        lines.append(f"| {name} | {sizes[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=20.0, help="seconds before a busy child is killed")
    parser.add_argument("--only", default="", help="comma-separated name fragments to keep")
    parser.add_argument("--batch-cap", type=float, default=300.0, help="seconds before the whole-corpus call is killed")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", default="", help=argparse.SUPPRESS)
    parser.add_argument("--json", default="", help="also write the timings here")
    args = parser.parse_args()
    from hostile_inputs import corpus

    names = [name for name, _ in corpus()]
    if args.only:
        names = [n for n in names if any(k in n for k in args.only.split(","))]
    if args.batch:
        batch_child(args.batch)
        os._exit(0)
    if args.child is not None:
        child(names, args.child)
        os._exit(0)
    rows = measure(names, args.cap)
    print(table(rows, args.cap), flush=True)
    whole = batch(args.batch_cap)
    shown = {w: "> %g s" % args.batch_cap if whole.get(w) is None else f"{whole[w]:.2f} s" for w in ("main", "thread")}
    print(f"\naccuracy_reward over the whole corpus in one call (custom task, paper scorer): "
          f"main thread {shown['main']}, worker thread {shown['thread']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "batch": whole, "cap": args.cap}, indent=1))
    sys.stdout.flush()
    os._exit(0)  # a worker thread may still be inside sympy


if __name__ == "__main__":
    main()
