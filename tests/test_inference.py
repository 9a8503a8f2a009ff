"""The worker-process model server behind Chat, Compare and `rrft-studio chat`: prompts, the think/answer split,
streaming, batches, failures, unloading (the process ends), and the terminal chat."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT
from rrft_studio import runs, tiny
from rrft_studio.answers import split_think
from rrft_studio.config import ConfigError
from rrft_studio.serve import inference, terminal
from rrft_studio.serve.inference import Settings, Turn

MICRO = tiny.TinySpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128,
                      vision_depth=1, vision_embed_dim=32, vision_heads=2, vocab_size=300)
CORPUS = ["How many objects are there? <think>I see 3.</think> <answer>3</answer>"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny.build(MICRO, tmp_path_factory.mktemp("ckpt") / "micro", CORPUS)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (56, 56), (200, 30, 30)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def worker(checkpoint):
    w = inference.Worker(str(checkpoint), device="cpu")
    yield w
    w.close()


# ---------------------------------------------------------------- pure

def test_split_think_separates_reasoning_from_answer():
    done = split_think("<think>\n3 cubes, minus 1\n</think>\n<answer>\n2\n</answer><|im_end|>")
    assert (done.think, done.answer, done.thinking_done) == ("3 cubes, minus 1", "2", True)
    streaming = split_think("<think>\nstill count")
    assert (streaming.think, streaming.answer, streaming.thinking_done) == ("still count", "", False)
    plain = split_think("just 4")
    assert (plain.think, plain.answer) == (None, "just 4")
    assert split_think("<think>a</think><answer>5").answer == "5"  # answer still streaming


def test_conversation_puts_images_first_in_each_user_turn():
    turns = [Turn("user", "How many?", ["a.png", "b.png"]), Turn("assistant", "<answer>2</answer>"),
             Turn("user", "And here?", ["c.png"])]
    messages, images = inference.conversation(turns)
    assert images == ["a.png", "b.png", "c.png"]
    assert [p["type"] for p in messages[0]["content"]] == ["image", "image", "text"]
    assert messages[1] == {"role": "assistant", "content": [{"type": "text", "text": "<answer>2</answer>"}]}
    assert [p["type"] for p in messages[2]["content"]] == ["image", "text"]


def test_checkpoint_of_reads_runs_checkpoints_and_hub_ids(tmp_path, checkpoint):
    run_dir = tmp_path / "run"
    (run_dir / "final" / "sft").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("run: {stages: [sft, grpo]}\n")
    assert terminal.checkpoint_of(str(run_dir)) == f"base:{run_dir}"  # nothing finished yet
    (run_dir / "final" / "sft" / "config.json").write_text("{}")
    assert terminal.checkpoint_of(str(run_dir)) == str(runs.final_dir(run_dir, "sft"))
    assert terminal.checkpoint_of(str(checkpoint)) == str(checkpoint)
    assert terminal.checkpoint_of("Qwen/Qwen2-VL-2B-Instruct") == "Qwen/Qwen2-VL-2B-Instruct"
    with pytest.raises(ConfigError, match="neither a run directory nor a checkpoint"):
        terminal.checkpoint_of(str(tmp_path))


# ---------------------------------------------------------------- the worker process

def test_stream_sends_chunks_then_done(worker, image):
    events = list(worker.stream([Turn("user", "How many objects?", [image])],
                                Settings(max_new_tokens=48, temperature=0.0)))
    chunks = [e["chunk"] for e in events if "chunk" in e]
    done = events[-1]
    assert done["done"] and 1 <= done["tokens"] <= 48
    assert len(chunks) >= 2 and "".join(chunks) == done["text"]
    assert worker.info["device"] == "cpu" and worker.state == "ready"


def test_abandoned_stream_does_not_leak_into_the_next_request(worker, image):
    stream = worker.stream([Turn("user", "count", [image])], Settings(max_new_tokens=200, temperature=1.0))
    next(stream)
    stream.close()  # like a Stop button: the worker is told to stop, its stale replies are dropped
    outputs = worker.batch([("How many?", [image]), ("And now?", [image, image])], Settings(8, 0.0))
    assert len(outputs) == 2 and all(o["tokens"] <= 8 for o in outputs)


def test_a_bad_request_is_an_error_not_a_dead_worker(worker):
    with pytest.raises(inference.WorkerError, match="No such file|FileNotFoundError"):
        list(worker.stream([Turn("user", "hi", ["/nonexistent.png"])], Settings(4)))
    assert worker.state == "ready"


def test_a_checkpoint_that_cannot_load_says_why(tmp_path):
    w = inference.Worker(str(tmp_path / "missing"), device="cpu")
    with pytest.raises(inference.WorkerError, match="could not load"):
        w.wait_ready(timeout=120)
    assert w.state == "stopped"


def test_pool_keeps_one_worker_per_checkpoint_and_unloading_ends_processes(checkpoint, tmp_path):
    pool = inference.Pool(max_loaded=1, device="cpu")
    first = pool.get(str(checkpoint))
    assert pool.get(str(checkpoint)) is first
    second = pool.get(str(tmp_path / "other"))  # over the limit: the least recently used is closed
    assert first.state == "stopped" and [r["checkpoint"] for r in pool.loaded()] == [str(tmp_path / "other")]
    assert pool.unload() == 1 and second.state == "stopped" and pool.loaded() == []


def test_terminal_chat_streams_and_takes_several_turns(checkpoint, image):
    done = subprocess.run(
        [sys.executable, "-m", "rrft_studio.cli", "chat", str(checkpoint), "--image", image, "--device", "cpu",
         "--max-new-tokens", "12"], input="How many objects?\n/reset\nAnd now?\n/quit\n", cwd=ROOT,
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("model> ") == 2 and len(re.findall(r"\[\d+ tokens, ", done.stdout)) == 2, done.stdout
    assert "(new conversation)" in done.stdout


def test_terminal_chat_refuses_a_missing_image(checkpoint):
    done = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "chat", str(checkpoint), "--image", "nope.png"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--image 'nope.png' not found" in done.stderr


ORPHAN = """
import sys, time
from rrft_studio.serve import inference
if __name__ == "__main__":
    w = inference.Worker(sys.argv[1], device="cpu")
    w.wait_ready()
    print(w.process.pid, flush=True)
    time.sleep(120)
"""


def test_a_worker_leaves_when_its_client_is_killed(checkpoint):
    client = subprocess.Popen([sys.executable, "-c", ORPHAN, str(checkpoint)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    worker_pid = int(client.stdout.readline())
    client.kill()  # no chance to close its workers
    client.wait()
    for _ in range(50):
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker_pid, 9)
    raise AssertionError("the worker outlived its client: its model memory would never be freed")
