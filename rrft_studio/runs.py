"""A run is a directory, and the directory is the API.

    runs/<name>-<time>/
      config.yaml       resolved config, written first
      status.json       state, stage, step, pid, backend and why, base_model (the starting checkpoint)
      metrics.jsonl     one line per logging step of each stage (every metric TRL logs, plus stage and time)
      samples.jsonl     GRPO rollouts: prompt, image, each completion with its rewards and advantage
      checkpoints/<stage>/checkpoint-N/
      final/<stage>/    each stage's output, a plain checkpoint the next stage, eval and chat load
      eval/<label>.json accuracy of the starting model and of each stage's output
      report.json, *.png

Resume, listing, chaining SFT into GRPO, evaluation and the studio read this and nothing else.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from . import config as config_mod

STATES = ("created", "running", "stopping", "stopped", "failed", "finished")


def write_atomic(path: Path, text: str) -> None:
    """Write through a temp file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def create(cfg: config_mod.Config) -> Path:
    """Make a new run directory and write the resolved config into it first."""
    root = Path(cfg.run.runs_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{cfg.run.name or 'run'}-{stamp}"
    run_dir, n = root / base, 1
    while True:
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            n += 1
            run_dir = root / f"{base}-{n}"
    write_atomic(run_dir / "config.yaml", config_mod.dump(cfg))
    write_status(run_dir, state="created", stage=None, step=0)
    return run_dir


def load_config(run_dir: Path) -> config_mod.Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise config_mod.ConfigError(f"'{run_dir}' is not a run directory (no config.yaml): give a folder under runs/")
    return config_mod.from_dict(yaml.safe_load(path.read_text()))


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge fields into status.json (state, stage, step, max_steps, pid, backend, backend_why, ...)."""
    status = read_status(run_dir)
    status.update(fields, pid=os.getpid(), updated=time.time())
    write_atomic(Path(run_dir) / "status.json", json.dumps(status, indent=1))
    return status


def is_alive(status: dict[str, Any]) -> bool:
    """Whether the process that last wrote this status still runs (a killed run leaves 'running' behind)."""
    if status.get("state") not in ("running", "stopping") or not status.get("pid"):
        return False
    try:
        os.kill(int(status["pid"]), 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written while we read
            continue
    return rows


def stage_dir(run_dir: Path, kind: str, stage: str) -> Path:
    """checkpoints/<stage> or final/<stage>."""
    return Path(run_dir) / kind / stage


def last_checkpoint(run_dir: Path, stage: str) -> Path | None:
    """The newest complete checkpoint of a stage (TRL writes trainer_state.json last)."""
    ckpts = [p for p in stage_dir(run_dir, "checkpoints", stage).glob("checkpoint-*")
             if (p / "trainer_state.json").is_file()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[1]), default=None)


def is_done(run_dir: Path, stage: str) -> bool:
    return (stage_dir(run_dir, "final", stage) / "config.json").is_file()


def drop_rows_after(path: Path, stage: str, step: int) -> None:
    """On resume: forget a stage's rows logged after the checkpoint we go back to, so no step repeats."""
    if not Path(path).is_file():
        return
    keep = [r for r in read_jsonl(path) if r.get("stage") != stage or r.get("step", 0) <= step]
    write_atomic(Path(path), "".join(json.dumps(r) + "\n" for r in keep))
