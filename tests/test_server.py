"""`rrft-studio serve`: the official openai client against a real server process on the micro model (streaming
and not), plain HTTP for each bad request, the API key on every route, loopback by default, the bounded queue,
and the reasoning/answer split as it streams."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import ROOT, free_port
from rrft_studio import tiny
from rrft_studio.serve import chat_api, server
from rrft_studio.serve.chat_api import ApiError, Decoder, Limits

MICRO = tiny.TinySpec(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128,
                      vision_depth=1, vision_embed_dim=32, vision_heads=2, vocab_size=300)
CORPUS = ["How many objects are there? <think>I see 3.</think> <answer>3</answer>"]
KEY = "test-key-123"


def _png(size=(56, 56), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _data_url(raw: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A real `rrft-studio serve` process on a random micro model, with a key and an allowed image folder."""
    root = tmp_path_factory.mktemp("serve")
    checkpoint = tiny.build(MICRO, root / "micro", CORPUS)
    allowed = root / "images"
    allowed.mkdir()
    (allowed / "red.png").write_bytes(_png())
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rrft_studio.cli", "serve", str(checkpoint), "--port", str(port),
                             "--api-key", KEY, "--allow-dir", str(allowed), "--device", "cpu", "--max-queue", "4",
                             "--context-length", "400"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()[-3000:]}")
        try:
            if httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("server did not answer in time")
    yield base, allowed, root
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture(scope="module")
def client(live):
    from openai import OpenAI

    return OpenAI(base_url=f"{live[0]}/v1", api_key=KEY, max_retries=0)


def _messages(url: str, text: str = "How many objects are there?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": text}]}]


# ---------------------------------------------------------------- the openai client

def test_models_lists_the_served_checkpoint(client):
    (model,) = client.models.list().data
    assert model.id == "micro" and model.owned_by == "rrft-studio"


def test_chat_completion_and_its_stream_agree(client):
    messages = _messages(_data_url(_png()))
    reply = client.chat.completions.create(model="micro", messages=messages, max_tokens=12, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 16 and 1 <= reply.usage.completion_tokens <= 12  # image tokens counted
    assert hasattr(choice.message, "reasoning_content")
    chunks = list(client.chat.completions.create(model="micro", messages=messages, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content  # one decoder for both paths, greedy decoding
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_sampling_settings_stop_and_an_allowed_file(client, live):
    _, allowed, _ = live
    file_url = (allowed / "red.png").as_uri()
    sampled = client.chat.completions.create(model="micro", messages=_messages(file_url), max_tokens=8,
                                             temperature=1.2, top_p=0.8)
    assert 1 <= sampled.usage.completion_tokens <= 8
    # Greedy, the random micro model repeats a newline and never ends: max_tokens ends it, or a stop string.
    full = client.chat.completions.create(model="micro", messages=_messages(file_url), max_tokens=16, temperature=0)
    assert full.choices[0].finish_reason == "length" and full.usage.completion_tokens == 16
    cut = client.chat.completions.create(model="micro", messages=_messages(file_url), max_tokens=16, temperature=0,
                                         stop=["\n\n"])
    assert cut.choices[0].finish_reason == "stop" and cut.usage.completion_tokens < 16


def test_bad_requests_raise_the_client_errors(client, live):
    import openai

    with pytest.raises(openai.BadRequestError, match="no image"):
        client.chat.completions.create(model="micro", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=_messages(_data_url(_png())))


# ---------------------------------------------------------------- plain HTTP: one JSON error per bad request

def _post(live, body, key=KEY, raw: bytes | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if raw is not None:
        return httpx.post(f"{live[0]}/v1/chat/completions", content=raw,
                          headers={**headers, "Content-Type": "application/json"}, timeout=60)
    return httpx.post(f"{live[0]}/v1/chat/completions", json=body, headers=headers, timeout=60)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and "\n" not in error["message"]
    return error["message"]


@pytest.mark.parametrize("content, status, code, words", [
    ("hi", 400, "image_required", "no image"),
    ([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}], 400, "unsupported_content", "input_audio"),
    ([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}], 400, "unsupported_image_url", "data URL"),
    ([{"type": "image_url", "image_url": {"url": "file:///etc/hostname"}}], 403, "image_not_allowed", "--allow-dir"),
    ([{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}], 400, "invalid_image",
     "not a readable image"),
    ("huge", 413, "image_too_large", "too large"),
], ids=["no-image", "unsupported-part", "remote-url", "outside-allowed", "not-an-image", "too-many-pixels"])
def test_each_bad_content_is_one_error(live, content, status, code, words):
    if content == "huge":  # built here, not at collection: 49 megapixels, over the server's 40
        content = [{"type": "image_url", "image_url": {"url": _data_url(_png((7000, 7000)))}}]
    message = _error(_post(live, {"model": "micro", "messages": [{"role": "user", "content": content}]}), status, code)
    assert words in message


def test_prompt_too_long_malformed_json_and_bad_values(live):
    long = _messages(_data_url(_png()), "count " * 500)
    assert "prompt too long" in _error(_post(live, {"model": "micro", "messages": long}), 400, "context_length_exceeded")
    _error(_post(live, None, raw=b'{"model": "micro", "messages": ['), 400, "invalid_json")
    _error(_post(live, {"model": "micro", "messages": _messages(_data_url(_png())), "temperature": 9}), 400,
           "invalid_value")
    _error(_post(live, {"model": "micro", "messages": _messages(_data_url(_png())), "n": 3}), 400, "unsupported_parameter")
    _error(_post(live, {"model": "micro", "messages": [{"role": "assistant", "content": "hi"}]}), 400, "invalid_value")


def test_the_key_is_required_on_every_route(live):
    base = live[0]
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/models/micro"), ("POST", "/v1/chat/completions"),
                         ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/nothing")):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(method, base + path, headers=headers, json={} if method == "POST" else None)
            _error(response, 401, "invalid_api_key")
    ok = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert httpx.get(f"{base}/docs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404  # no docs routes


def test_non_loopback_without_a_key_is_refused_before_loading(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "serve", str(tmp_path), "--host", "0.0.0.0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--api-key" in done.stderr, done.stderr
    server.check_bind("127.0.0.1", None)
    server.check_bind("::1", None)
    server.check_bind("localhost", None)
    server.check_bind("0.0.0.0", "a-key")


# ---------------------------------------------------------------- the queue, with a worker that waits

class _SlowWorker:
    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()

    def stream(self, turns, settings):
        self.started.set()
        self.release.wait(30)
        for chunk in ("<thi", "nk>two ", "cubes</th", "ink>\n<ans", "wer>2</answer>"):  # tags split over chunks
            yield {"chunk": chunk}
        yield {"done": True, "text": "", "tokens": 5, "seconds": 0.1}


def test_a_full_queue_answers_429_then_serves_again(tmp_path):
    from fastapi.testclient import TestClient

    worker = _SlowWorker()
    served = server.Served("slow", worker, lambda turns: 10, 1000, Limits(), max_queue=1)
    body = {"model": "slow", "messages": _messages(_data_url(_png()))}
    with TestClient(server.app(served)) as http:
        first: dict = {}
        thread = threading.Thread(target=lambda: first.update(r=http.post("/v1/chat/completions", json=body)))
        thread.start()
        assert worker.started.wait(30)
        busy = http.post("/v1/chat/completions", json=body)
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "server_busy"
        worker.release.set()
        thread.join(30)
        message = first["r"].json()["choices"][0]["message"]
        assert (message["reasoning_content"], message["content"]) == ("two cubes", "2")
        assert http.post("/v1/chat/completions", json=body).status_code == 200
        events = [line[6:] for line in http.post("/v1/chat/completions", json={**body, "stream": True}).text.splitlines()
                  if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
        assert deltas[0]["role"] == "assistant"
        assert "".join(d.get("reasoning_content", "") for d in deltas) == "two cubes"
        assert "".join(d.get("content", "") for d in deltas) == "2"


# ---------------------------------------------------------------- pure

def test_decoder_splits_reasoning_from_the_answer_across_any_chunking():
    text = "<think>\nThere are 3 cubes. 3 - 1 = 2.\n</think>\n<answer>\n2\n</answer>"
    for size in (1, 2, 3, 7, len(text)):
        decoder = Decoder()
        deltas = [d for i in range(0, len(text), size) for d in decoder.feed(text[i:i + size])] + decoder.finish()
        assert chat_api.joined(deltas) == ("There are 3 cubes. 3 - 1 = 2.", "2"), size
    plain = Decoder()
    assert chat_api.joined(plain.feed("just 4 ") + plain.feed("objects") + plain.finish()) == (None, "just 4 objects")


def test_decoder_cuts_at_a_stop_string_split_over_chunks():
    decoder = Decoder(stop=["END"])
    deltas = decoder.feed("<answer>5</answer> E") + decoder.feed("N") + decoder.feed("D and more")
    deltas += decoder.finish()
    assert decoder.stopped and chat_api.joined(deltas) == (None, "5")


def test_parse_reads_settings_and_folds_the_system_prompt(tmp_path):
    body = {"model": "m", "max_completion_tokens": 20, "temperature": 0.5, "top_p": 0.7, "stop": "\n",
            "messages": [{"role": "system", "content": "Answer briefly."},
                         {"role": "user", "content": [{"type": "text", "text": "How many?"},
                                                      {"type": "image_url", "image_url": {"url": _data_url(_png())}}]}]}
    req = chat_api.parse(body, Limits(), tmp_path)
    assert (req.settings.max_new_tokens, req.settings.temperature, req.settings.top_p) == (20, 0.5, 0.7)
    assert req.stop == ["\n"] and len(req.turns) == 1 and req.turns[0].text == "Answer briefly.\n\nHow many?"
    assert Path(req.turns[0].images[0]).parent == tmp_path
    with pytest.raises(ApiError, match="image too large"):
        chat_api.parse(body, Limits(max_image_bytes=100), tmp_path)


def test_snippet_names_the_checkpoint_for_curl_and_python(tmp_path):
    run = tmp_path / "demo-1"
    (run / "final" / "grpo").mkdir(parents=True)
    (run / "config.yaml").write_text("{}")
    text = server.snippet(str(run / "final" / "grpo"))
    assert f"rrft-studio serve {run / 'final' / 'grpo'}" in text and '"model": "demo-1/grpo"' in text
    assert "curl http://127.0.0.1:8000/v1/chat/completions" in text and "from openai import OpenAI" in text
