"""Model inference in a worker process: the studio's Chat and Compare tabs and `rrft-studio chat` use it.

`Worker(checkpoint)` starts a `multiprocessing` process (spawn: a clean interpreter, no inherited CUDA state)
that loads the checkpoint with plain transformers (`models.load_for_inference`) and answers requests sent
over a queue: `stream()` generates one reply token by token (a `TextIteratorStreamer` inside the worker,
each chunk sent back over the queue), `batch()` answers many prompts at once. `close()` ends the process,
which is the one reliable way to give back all of its memory, GPU memory included. `Pool` keeps one worker
per checkpoint, at most a few at a time, and says what is loaded.

The prompt is built as in training: each user turn holds its image(s) first, then the text
(`data.user_turn`); earlier turns, with their images, stay in the conversation.

Checkpoints: a directory with config.json, a hub id, or `base:RUN_DIR` (the model a run started from,
resolved in the worker, which builds the tiny model if its cache was cleared).

    rrft-studio chat runs/demo-20261124-101500/final/grpo --image scene.png   (the terminal chat: serve/terminal.py)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import data

BASE_PREFIX = "base:"
READY_TIMEOUT_S = 600  # loading a 7B model from a slow disk can take minutes
POLL_S = 0.2  # how often a waiting client checks that its worker is still alive


class WorkerError(RuntimeError):
    """The worker could not load its model, or died, or a request failed inside it."""


@dataclass
class Settings:
    """Generation settings; temperature 0 means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    text: str
    images: list[str] = field(default_factory=list)  # image file paths, user turns only


# ---------------------------------------------------------------- prompts and display (pure)

def conversation(turns: list[Turn]) -> tuple[list[dict], list[str]]:
    """Chat-template messages (images first in each user turn, as in training) and the image paths in order."""
    messages, images = [], []
    for turn in turns:
        if turn.role == "user":
            messages.append(data.user_turn(turn.text, len(turn.images)))
            images.extend(str(p) for p in turn.images)
        else:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.text}]})
    return messages, images


# ---------------------------------------------------------------- inside the worker process

def resolve(checkpoint: str) -> tuple[str, int | None]:
    """(path or hub id to load, max_pixels of the run it comes from or None). Runs in the worker."""
    from .. import models, runs

    run_dir = Path(checkpoint[len(BASE_PREFIX):]) if checkpoint.startswith(BASE_PREFIX) else None
    if run_dir is None:
        # A checkpoint inside a run directory shows images at that run's GRPO pixel budget.
        owner = runs.run_of(Path(checkpoint))
        pixels = runs.load_config(owner).grpo.max_pixels if owner else None
        return checkpoint, pixels
    cfg = runs.load_config(run_dir)
    path = runs.read_status(run_dir).get("base_model")  # where the run itself started from
    if path and ((Path(path) / "config.json").is_file() or cfg.model.name != "tiny"):
        return path, cfg.grpo.max_pixels
    # As the pipeline does: the tiny model is rebuilt (identically) from the run's data when its cache is gone.
    corpus = data.corpus(cfg) if cfg.model.name == "tiny" else None
    return models.source(cfg, corpus), cfg.grpo.max_pixels


def _load(checkpoint: str, device: str, trust_remote_code: bool, max_pixels: int | None):
    from .. import config, models

    path, run_pixels = resolve(checkpoint)
    cfg = config.Config()
    cfg.run.device = device
    cfg.model.trust_remote_code = trust_remote_code
    model, processor = models.load_for_inference(path, cfg, max_pixels or run_pixels or cfg.grpo.max_pixels)
    return model, processor, {"path": path, "device": str(model.device), "dtype": str(model.dtype).removeprefix("torch."),
                              "parameters": sum(p.numel() for p in model.parameters())}


def _inputs(processor, model, conversations: list[list[dict]], images: list[list[str]]):
    from PIL import Image

    texts = processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
    flat = [Image.open(p).convert("RGB") for group in images for p in group]
    return processor(text=texts, images=flat or None, padding=True, return_tensors="pt").to(model.device)


def _sampling(settings: Settings) -> dict:
    if settings.temperature <= 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": settings.top_k}


def _stream(model, processor, payload: dict, rid: str, replies, cancel) -> None:
    """Generate in a thread; forward the streamer's text chunks over the queue as they come."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    class Cancelled(StoppingCriteria):  # the client went away: stop spending compute on it
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    settings = Settings(**payload["settings"])
    inputs = _inputs(processor, model, [payload["messages"]], [payload["images"]])
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def generate():
        try:
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=settings.max_new_tokens, streamer=streamer,
                                     stopping_criteria=StoppingCriteriaList([Cancelled()]), **_sampling(settings))
            result["tokens"] = int(out.shape[1] - inputs["input_ids"].shape[1])  # (1, L + new)
        except BaseException as e:  # reported to the client below; the streamer must still end
            result["error"] = f"{type(e).__name__}: {e}"
            streamer.end()

    started = time.time()
    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    text = ""
    for chunk in streamer:
        text += chunk
        if chunk:
            replies.put(("chunk", rid, chunk))
    thread.join()
    if "error" in result:
        raise WorkerError(result["error"])
    replies.put(("done", rid, {"text": text, "tokens": result["tokens"], "seconds": time.time() - started}))


def _batch(model, processor, payload: dict, rid: str, replies) -> None:
    """Many single-turn prompts at once, in chunks of `batch_size`; no streaming."""
    import torch

    settings = Settings(**payload["settings"])
    prompts = payload["prompts"]  # [(messages, images), ...]
    outputs = []
    for start in range(0, len(prompts), payload.get("batch_size", 8)):
        chunk = prompts[start: start + payload.get("batch_size", 8)]
        inputs = _inputs(processor, model, [m for m, _ in chunk], [i for _, i in chunk])
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=settings.max_new_tokens, **_sampling(settings))
        new = out[:, inputs["input_ids"].shape[1]:]  # (B, new)
        pad = processor.tokenizer.pad_token_id
        for row, text in zip(new, processor.batch_decode(new, skip_special_tokens=True)):
            outputs.append({"text": text, "tokens": int((row != pad).sum()) if pad is not None else len(row)})
    replies.put(("done", rid, {"outputs": outputs}))


def _exit_with_parent(parent: int) -> None:
    """A client killed outright (SIGKILL, SIGTERM) cannot close us: leave when it is gone, freeing the memory."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def serve(checkpoint: str, device: str, trust_remote_code: bool, max_pixels: int | None,
          requests, replies, cancel) -> None:
    """The worker's main loop: load once, then answer requests until told to stop (None)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Ctrl-C in the terminal reaches the whole process group: it is for the client (stop a reply, quit),
    # which closes this worker itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    from .. import quiet_library_warnings

    quiet_library_warnings()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the client reports errors itself: no library chatter on its terminal
        hf_logging.disable_progress_bar()
        model, processor, info = _load(checkpoint, device, trust_remote_code, max_pixels)
    except BaseException as e:
        replies.put(("failed", None, f"{type(e).__name__}: {e}"))
        return
    replies.put(("ready", None, info))
    while (request := requests.get()) is not None:
        op, rid, payload = request
        cancel.clear()
        try:
            if op == "stream":
                _stream(model, processor, payload, rid, replies, cancel)
            else:
                _batch(model, processor, payload, rid, replies)
        except Exception as e:  # one bad request (a broken image) must not take the model down
            replies.put(("error", rid, f"{type(e).__name__}: {e}"))


# ---------------------------------------------------------------- the client side

class Worker:
    """One checkpoint loaded in its own process. Thread-safe: requests are served one at a time."""

    def __init__(self, checkpoint: str, device: str = "auto", trust_remote_code: bool = False,
                 max_pixels: int | None = None):
        ctx = mp.get_context("spawn")
        self.checkpoint, self.device = str(checkpoint), device
        self.requests, self.replies, self.cancel = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.process = ctx.Process(target=serve, daemon=True, name="rrft-worker",
                                   args=(self.checkpoint, device, trust_remote_code, max_pixels,
                                         self.requests, self.replies, self.cancel))
        self.process.start()
        self.info: dict[str, Any] | None = None
        self.started = time.time()
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if not self.process.is_alive():
            return "stopped"
        return "ready" if self.info is not None else "loading"

    def _get(self, timeout: float) -> tuple:
        """The next reply, raising WorkerError if the process dies while we wait."""
        deadline = time.time() + timeout
        while True:
            try:
                return self.replies.get(timeout=POLL_S)
            except queue.Empty:
                if not self.process.is_alive():
                    raise WorkerError(f"the worker for {self.checkpoint} exited (code {self.process.exitcode})") from None
                if time.time() > deadline:
                    raise WorkerError(f"the worker for {self.checkpoint} did not answer in {timeout:.0f} s") from None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Block until the model is loaded; WorkerError with the reason if loading failed."""
        with self._lock:
            if self.info is None:
                kind, _, value = self._get(timeout)
                if kind == "failed":
                    self.close()
                    raise WorkerError(f"could not load {self.checkpoint}: {value}")
                self.info = value
        return self.info

    def _request(self, op: str, payload: dict, timeout: float) -> Iterator[tuple[str, Any]]:
        """Send one request and yield its replies until done; stale replies of abandoned requests are dropped."""
        self.wait_ready()
        with self._lock:
            rid = uuid.uuid4().hex
            self.requests.put((op, rid, payload))
            finished = False
            try:
                while True:
                    kind, reply_rid, value = self._get(timeout)
                    if reply_rid != rid:
                        continue
                    if kind == "error":
                        finished = True
                        raise WorkerError(value)
                    yield kind, value
                    if kind == "done":
                        finished = True
                        return
            finally:
                if not finished:  # abandoned mid-stream (a Stop button): let the worker stop generating
                    self.cancel.set()

    def stream(self, turns: list[Turn], settings: Settings = Settings(), timeout: float = 600) -> Iterator[dict]:
        """Yield {"chunk": text} as tokens arrive, then {"done": True, "text", "tokens", "seconds"}."""
        messages, images = conversation(turns)
        payload = {"messages": messages, "images": images, "settings": vars(settings)}
        for kind, value in self._request("stream", payload, timeout):
            yield {"chunk": value} if kind == "chunk" else {"done": True, **value}

    def batch(self, prompts: list[tuple[str, list[str]]], settings: Settings = Settings(), batch_size: int = 8,
              timeout: float = 3600) -> list[dict]:
        """Answer single-turn (text, image paths) prompts; returns [{"text", "tokens"}] in order."""
        payload = {"prompts": [conversation([Turn("user", text, images)]) for text, images in prompts],
                   "settings": vars(settings), "batch_size": batch_size}
        for kind, value in self._request("batch", payload, timeout):
            if kind == "done":
                return value["outputs"]
        raise WorkerError("the worker ended the batch without an answer")

    def memory_mb(self) -> float | None:
        """Resident memory of the worker process (Linux), to show what a loaded model costs."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def close(self, timeout: float = 5.0) -> None:
        """End the process (its memory goes with it); terminate it if it does not leave in time."""
        if self.process.is_alive() and self.info is not None:  # a loaded worker can leave cleanly
            self.cancel.set()
            try:
                self.requests.put(None)
            except (ValueError, OSError):  # queue already closed
                pass
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        for q in (self.requests, self.replies):
            q.cancel_join_thread()
            q.close()


class Pool:
    """One worker per checkpoint, the least recently used closed beyond `max_loaded`. Thread-safe."""

    def __init__(self, max_loaded: int = 4, device: str = "auto"):
        self.max_loaded, self.device = max_loaded, device
        self._workers: OrderedDict[tuple[str, bool], Worker] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, checkpoint: str, trust_remote_code: bool = False, max_pixels: int | None = None) -> Worker:
        key = (str(checkpoint), bool(trust_remote_code))
        evicted = []
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and worker.state == "stopped":
                del self._workers[key]
                worker = None
            if worker is None:
                worker = Worker(checkpoint, self.device, trust_remote_code, max_pixels)
                self._workers[key] = worker
            self._workers.move_to_end(key)
            while len(self._workers) > self.max_loaded:
                evicted.append(self._workers.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return worker

    def unload(self, checkpoint: str | None = None) -> int:
        """Close the workers of one checkpoint (any trust setting), or all of them; returns how many."""
        with self._lock:
            keys = [k for k in self._workers if checkpoint is None or k[0] == str(checkpoint)]
            closing = [self._workers.pop(k) for k in keys]
        for worker in closing:
            worker.close()
        return len(closing)

    def loaded(self) -> list[dict[str, Any]]:
        with self._lock:
            workers = list(self._workers.values())
        return [{"checkpoint": w.checkpoint, "state": w.state, "pid": w.process.pid, "memory_mb": w.memory_mb(),
                 "device": (w.info or {}).get("device", w.device)} for w in workers]

