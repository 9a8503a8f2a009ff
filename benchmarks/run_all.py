"""The whole benchmark: every arm of every model, each in its own process (`bench.py`), one markdown table,
the parity between arms, and one JSON (results/<date>-<device>.json) with the device, versions and date.

Arms that cannot run here are skipped with the reason (no CUDA GPU, vllm not installed, a fast_inference
limit); an arm that fails (an out-of-memory, say) is a row with its error. Without a GPU the matrix is the
tiny model; with one, the real shapes (Qwen2-VL-2B full and LoRA, Qwen2-VL-7B LoRA, Qwen2.5-VL-3B / 7B LoRA).

    python benchmarks/run_all.py                                     # the matrix for this machine
    python benchmarks/run_all.py --models tiny --steps 2 --image-size 112 --gen-len 16
    python benchmarks/run_all.py --models qwen2_vl_2b --modes full --stages grpo --steps 6

The JSON is rewritten after every arm, and `--deadline` gives each arm the time left: a run under a time
limit (benchmarks/gpu_once.sh) keeps every arm it finished and records the one cut off as failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench

HERE = Path(__file__).resolve().parent
GPU_MATRIX = [("qwen2_vl_2b", "full"), ("qwen2_vl_2b", "lora"), ("qwen2_vl_7b", "lora"),
              ("qwen2_5_vl_3b", "lora"), ("qwen2_5_vl_7b", "lora")]
CPU_MATRIX = [("tiny", "full"), ("tiny", "lora")]
MIN_ARM_S = 20  # an arm started with less time than this before --deadline could not even load its model


def plan(a, cuda: bool) -> list[tuple[str, str, str, str]]:
    """(model, mode, stage, arm) in run order, a model's arms together (its checkpoint is built once).
    --models picks from both matrices (their modes, or --modes); none: this machine's matrix."""
    if a.models and a.modes:
        matrix = [(m, mode) for m in a.models for mode in a.modes]
    elif a.models:
        matrix = [(m, mode) for m, mode in GPU_MATRIX + CPU_MATRIX if m in a.models]
    else:
        matrix = [(m, mode) for m, mode in (GPU_MATRIX if cuda else CPU_MATRIX) if not a.modes or mode in a.modes]
    return [(m, mode, stage, arm) for m, mode in matrix for stage in a.stages for arm in a.arms]


class Stopped(Exception):
    """SIGTERM (a time limit's kill) while an arm ran: the arm is recorded as cut off, the JSON written."""


def _stop(signum, frame):
    raise Stopped()


def run_one(a, model: str, mode: str, stage: str, arm: str) -> dict:
    head = {"arm": arm, "model": model, "mode": mode, "stage": stage}
    reason = bench.skip_reason(arm, model, mode, stage)
    if reason:
        return {**head, "skipped": reason}
    timeout, why = a.timeout, f"timed out after {a.timeout} s"
    if a.deadline is not None:  # each arm gets the time left, so the arms after a slow one are still recorded
        left = a.deadline - time.time()
        if left < MIN_ARM_S:
            return {**head, "failed": f"not started: {max(left, 0):.0f} s left before --deadline"}
        if left < timeout:
            timeout, why = left, f"cut off at --deadline after {left:.0f} s"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, str(HERE / "bench.py"), "--arm", arm, "--model", model, "--mode", mode,
                   "--stage", stage, "--steps", str(a.steps), "--image-size", str(a.image_size),
                   "--gen-len", str(a.gen_len), "--batch", str(a.batch), "--generations", str(a.generations),
                   "--prompts", str(a.prompts), "--cache", str(a.cache), "--out", str(out)]
        print(f"... {model} {mode} {stage} {arm}", flush=True)
        env = dict(os.environ)
        if not a.cuda:  # a tiny model on shared cores: more threads than free cores make each op wait (~100x)
            env["OMP_NUM_THREADS"] = str(a.cpu_threads)
        # The arm's output is read as it comes (and shown with --stream), so a kill still leaves its last lines;
        # its own process group, so that a timeout ends whatever the arm started too.
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        tail: collections.deque[str] = collections.deque(maxlen=40)
        reader = threading.Thread(target=_read, args=(proc.stdout, tail, a.stream), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return {**head, "failed": why, "last_lines": _last(tail)}
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            reader.join(timeout=5)
        if proc.returncode != 0 or not out.is_file():
            lines = _last(tail)
            return {**head, "failed": lines[-1][:300] if lines else f"exit {proc.returncode}", "last_lines": lines}
        return json.loads(out.read_text())


def _read(stream, tail: collections.deque, echo: bool) -> None:
    for line in stream:
        tail.append(line.rstrip("\n"))
        if echo:
            print(f"    {line}", end="", flush=True)


def _last(tail: collections.deque, n: int = 12) -> list[str]:
    return [line for line in tail if line.strip()][-n:]


# ---------------------------------------------------------------- comparison

def parity(results: list[dict]) -> list[dict]:
    """Each arm against the transformers arm of the same model, mode and stage: SFT losses step by step (the
    same data and seed), GRPO mean reward and KL (sampling differs between backends: a tolerance, not equality)."""
    done = [r for r in results if "step_time_s" in r]
    out = []
    for r in done:
        base = next((b for b in done if b["arm"] == "transformers" and
                     (b["model"], b["mode"], b["stage"]) == (r["model"], r["mode"], r["stage"])), None)
        if base is None or base is r:
            continue
        row = {"model": r["model"], "mode": r["mode"], "stage": r["stage"], "arm": r["arm"]}
        if r["stage"] == "sft":
            pairs = list(zip(r["losses"], base["losses"]))
            row["max_loss_rel_diff"] = max((abs(x - y) / max(abs(y), 1e-8) for x, y in pairs), default=None)
        else:
            for key in ("rewards", "kl"):
                mine, theirs = bench.mean_of(r[key]), bench.mean_of(base[key])
                row[f"{key}_mean_diff"] = abs(mine - theirs) if mine is not None and theirs is not None else None
        out.append(row)
    return out


def parity_table(rows: list[dict]) -> str:
    if not rows:
        return "parity: no arm besides transformers ran here"
    lines = ["| model | mode | stage | arm | vs transformers |", "|---|---|---|---|---|"]
    for r in rows:
        if r["stage"] == "sft":
            what = f"max loss difference {bench.cell(r['max_loss_rel_diff'], '.2%')}"
        else:
            what = f"mean reward diff {bench.cell(r['rewards_mean_diff'], '.3f')}, mean KL diff {bench.cell(r['kl_mean_diff'], '.2g')}"
        lines.append(f"| {r['model']} | {r['mode']} | {r['stage']} | {r['arm']} | {what} |")
    return "\n".join(lines)


def ratios(results: list[dict]) -> list[dict]:
    """Unsloth against transformers for each model, mode and stage where both arms ran: step time (median),
    peak memory and throughput (SFT tokens/s, GRPO rollout tokens/s), as unsloth / transformers."""
    done = {(r["model"], r["mode"], r["stage"], r["arm"]): r for r in results if "step_time_s" in r}
    rows = []
    for (model, mode, stage, arm), r in done.items():
        base = done.get((model, mode, stage, "transformers"))
        if arm != "unsloth" or base is None:
            continue
        speed = "tokens_per_s" if stage == "sft" else "rollout_tokens_per_s"
        rows.append({"model": model, "mode": mode, "stage": stage,
                     "step_s": (base["step_time_s"]["median"], r["step_time_s"]["median"]),
                     "peak_gib": (base["peak_memory_gib"], r["peak_memory_gib"]),
                     "throughput": (base.get(speed), r.get(speed))})
    return rows


def _ratio(pair: tuple) -> str:
    base, mine = pair
    return f"{bench.cell(base)} / {bench.cell(mine)} ({mine / base:.2f}x)" if base and mine is not None else \
        f"{bench.cell(base)} / {bench.cell(mine)}"


def ratio_table(results: list[dict]) -> str:
    rows = ratios(results)
    if not rows:
        return "unsloth / transformers: no model, mode and stage with both arms measured"
    lines = ["| model | mode | stage | step s: transformers / unsloth (ratio) | peak GiB (ratio) | "
             "tokens/s (ratio; SFT: trained, GRPO: rollout) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['mode']} | {r['stage']} | {_ratio(r['step_s'])} | "
                     f"{_ratio(r['peak_gib'])} | {_ratio(r['throughput'])} |")
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    """Through a temp file and a rename: a kill between two arms never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", choices=list(bench.MODELS), help="default: the matrix for this machine")
    p.add_argument("--modes", nargs="*", choices=["full", "lora"])
    p.add_argument("--stages", nargs="+", choices=["sft", "grpo"], default=["sft", "grpo"])
    p.add_argument("--arms", nargs="+", choices=list(bench.ARMS), default=list(bench.ARMS))
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--image-size", type=int, default=448)
    p.add_argument("--gen-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--cache", type=Path, default=HERE / ".cache")
    p.add_argument("--results-dir", type=Path, default=HERE / "results")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per arm")
    p.add_argument("--keep-models", action="store_true", help="keep the built real-shape checkpoints (GBs)")
    p.add_argument("--cpu-threads", type=int, default=1, help="without CUDA: OMP_NUM_THREADS of each arm")
    p.add_argument("--deadline", type=float, help="Unix time by which every arm must end: each arm gets the time "
                   "left (recorded as failed when cut off), and arms with too little left are not started")
    p.add_argument("--json", type=Path, help="write the results here (default: --results-dir/<date>-<device>.json)")
    p.add_argument("--append", action="store_true", help="keep the results already in --json and add these")
    p.add_argument("--stream", action="store_true", help="show each arm's output as it runs")
    a = p.parse_args(argv)

    import torch

    cuda = a.cuda = torch.cuda.is_available()
    device = bench.device_figures()[0]
    date = time.strftime("%Y%m%d-%H%M%S")
    slug = "cpu" if not cuda else "".join(c if c.isalnum() else "-" for c in device.lower()).strip("-")
    path = a.json or a.results_dir / f"{date}-{slug}.json"
    earlier = json.loads(path.read_text())["results"] if a.append and path.is_file() else []
    settings = {k: v for k, v in vars(a).items() if k not in ("cache", "results_dir", "cuda", "json")}
    results: list[dict] = []

    def save() -> None:  # after every arm: a run cut off at a time limit keeps every arm it finished
        every = earlier + results
        write_json(path, {"date": date, "device": device, "versions": bench.versions(), "settings": settings,
                          "results": every, "parity": parity(every)})

    signal.signal(signal.SIGTERM, _stop)
    todo = plan(a, cuda)
    for i, (model, mode, stage, arm) in enumerate(todo):
        try:
            results.append(run_one(a, model, mode, stage, arm))
        except Stopped:
            results.append({"arm": arm, "model": model, "mode": mode, "stage": stage,
                            "failed": "cut off: run_all was stopped (SIGTERM) while this arm ran"})
            save()
            print(f"stopped; wrote {path}", flush=True)
            return 1
        save()
        last_of_model = i + 1 == len(todo) or todo[i + 1][0] != model
        if last_of_model and model != "tiny" and not a.keep_models:
            shutil.rmtree(a.cache / "models" / model, ignore_errors=True)
    every = earlier + results
    threads = "" if cuda else f", {a.cpu_threads} thread(s) per arm"
    print(f"\n{device}{threads}; {a.steps} steps, images {a.image_size}x{a.image_size}, {a.gen_len}-token completions\n")
    print(bench.table(every))
    print("\n" + parity_table(parity(every)))
    print("\n" + ratio_table(every))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
