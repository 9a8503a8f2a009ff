"""`rrft-studio chat CHECKPOINT --image PATH`: the studio's chat on a terminal, multi-turn, streaming.

The model runs in a worker process (rrft_studio.inference.Worker), as in the studio's Chat tab. Type a
message; `/image PATH` attaches an image to the next one, `/reset` starts over, `/quit` or Ctrl-D leaves,
Ctrl-C stops a reply. This module imports neither Gradio nor torch.

    rrft-studio chat runs/demo-20261124-101500 --image scene.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import ConfigError
from .inference import BASE_PREFIX, Settings, Turn, Worker, WorkerError

def checkpoint_of(target: str) -> str:
    """A checkpoint to load from what the user typed: a run directory (its last finished stage, else its
    base model), a checkpoint directory, or a hub id."""
    from .. import runs

    path = Path(target).expanduser()
    if runs.is_run(path):
        stage = runs.last_finished_stage(path)
        return str(runs.final_dir(path, stage)) if stage else f"{BASE_PREFIX}{path}"
    if (path / "config.json").is_file():
        return str(path)
    if path.exists() or target.startswith((".", "/", "~")):
        raise ConfigError(f"'{target}' is neither a run directory nor a checkpoint (no config.yaml or config.json)")
    return target  # a hub id


HELP = "/image PATH attaches an image to your next message, /reset starts over, /quit (or Ctrl-D) leaves"


def chat_terminal(target: str, images: list[str], settings: Settings, device: str = "auto",
                  trust_remote_code: bool = False, stdin=None, stdout=None) -> int:
    """A multi-turn chat on the terminal; the reply streams as it is generated. Ctrl-C stops a reply."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    checkpoint = checkpoint_of(target)
    for image in images:
        if not Path(image).expanduser().is_file():
            raise ConfigError(f"--image '{image}' not found: give an existing image file")
    print(f"loading {checkpoint} in a worker process…", file=stdout, flush=True)
    worker = Worker(checkpoint, device, trust_remote_code)
    try:
        info = worker.wait_ready()
        print(f"ready: {info['path']} on {info['device']} ({info['parameters']:,} parameters). {HELP}", file=stdout)
        _repl(worker, [str(Path(i).expanduser()) for i in images], settings, stdin, stdout)
    except WorkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        worker.close()
    return 0


def _repl(worker: Worker, pending: list[str], settings: Settings, stdin, stdout) -> None:
    turns: list[Turn] = []
    while True:
        print("you> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line or line.strip() in ("/quit", "/exit"):
            print(file=stdout)
            return
        line = line.strip()
        if line.startswith("/image "):
            path = Path(line[len("/image "):].strip()).expanduser()
            print(f"attached {path}" if path.is_file() else f"no such file: {path}", file=stdout)
            pending += [str(path)] if path.is_file() else []
            continue
        if line == "/reset":
            turns, pending = [], []
            print("(new conversation)", file=stdout)
            continue
        if not line:
            continue
        turns.append(Turn("user", line, pending))
        pending = []
        turns = _answer(worker, turns, settings, stdout)


def _answer(worker: Worker, turns: list[Turn], settings: Settings, stdout) -> list[Turn]:
    """Stream one reply to the terminal; returns the turns with the reply (or as much as came) appended."""
    print("model> ", end="", file=stdout, flush=True)
    text = ""
    try:
        for event in worker.stream(turns, settings):
            if "chunk" in event:
                text += event["chunk"]
                print(event["chunk"], end="", file=stdout, flush=True)
            else:
                speed = event["tokens"] / max(event["seconds"], 1e-6)
                print(f"\n[{event['tokens']} tokens, {speed:.0f} tokens/s]", file=stdout, flush=True)
    except KeyboardInterrupt:
        print("\n[stopped]", file=stdout, flush=True)
    return [*turns, Turn("assistant", text)]
