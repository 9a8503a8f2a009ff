"""`rrft-studio serve CHECKPOINT`: an OpenAI-compatible API over a trained checkpoint.

    rrft-studio serve runs/demo-20261124-101500 --port 8000 [--api-key KEY] [--allow-dir data/]

Routes: POST /v1/chat/completions (streaming as server-sent events, or one JSON reply), GET /v1/models. The
reply's `<think>` part comes apart as `message.reasoning_content` (as reasoning models return it), the answer
as `content`. The model runs in a worker process (inference.Worker, as the studio's Chat tab), one request at a
time; at most --max-queue requests wait or run, more get 429. It binds to 127.0.0.1; any other address needs
--api-key, which is then required on every route. Every bad request is one JSON error (chat_api.ApiError).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request  # module level: FastAPI reads the handlers' annotations from these globals

from .. import runs
from ..config import ConfigError
from .chat_api import ApiError, ChatRequest, Decoder, Limits, joined, parse


def check_bind(host: str, api_key: str | None) -> None:
    """Loopback by default: serving a model to the network without a key lets anyone use it."""
    if api_key:
        return
    loopback = host == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if not loopback:
        raise ConfigError(f"--host {host} serves the model beyond this machine and there is no --api-key: add "
                          "--api-key KEY (clients send it as a bearer token), or keep --host 127.0.0.1")


class Gate:
    """At most `limit` requests waiting or running; the rest are refused at once (429) rather than queued."""

    def __init__(self, limit: int):
        self.limit, self.count, self._lock = limit, 0, threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


@dataclass
class Served:
    """What the HTTP layer needs: the worker and a token counter (the processor, in this process)."""

    model_id: str
    worker: object  # inference.Worker, or anything with .stream(turns, settings)
    count_tokens: Callable[[list], int]  # (turns) -> prompt tokens, images included
    context_length: int
    limits: Limits
    api_key: str | None = None
    max_queue: int = 8
    tokenizer: object = None  # counts a reply cut at a stop string (the worker counts the others)


def _error(exc: ApiError):
    from fastapi.responses import JSONResponse

    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def app(served: Served):
    """The FastAPI application (no docs routes: nothing but the API, every route behind the key when set)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    gate = Gate(served.max_queue)
    created = int(time.time())
    max_body = served.limits.max_images * served.limits.max_image_bytes * 4 // 3 + 1024 * 1024

    @api.middleware("http")
    async def authorize(request: Request, call_next):
        if served.api_key:
            sent = request.headers.get("authorization", "")
            token = sent[7:] if sent.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
            if not hmac.compare_digest(token.encode(), served.api_key.encode()):
                return _error(ApiError(401, "missing or wrong API key: send the header Authorization: Bearer KEY",
                                       "invalid_api_key", kind="authentication_error"))
        return await call_next(request)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = {404: f"no route {request.method} {request.url.path}: this server has POST /v1/chat/completions "
                        "and GET /v1/models", 405: f"{request.method} is not allowed on {request.url.path}"}
        return _error(ApiError(exc.status_code, message.get(exc.status_code, str(exc.detail)), "not_found"
                               if exc.status_code == 404 else "method_not_allowed"))

    def model_card() -> dict:
        return {"id": served.model_id, "object": "model", "created": created, "owned_by": "rrft-studio"}

    @api.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @api.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != served.model_id:
            return _error(ApiError(404, f"model '{model_id}' is not served here: '{served.model_id}' is",
                                   "model_not_found", "model"))
        return model_card()

    @api.post("/v1/chat/completions")
    async def chat(request: Request):
        image_dir = Path(tempfile.mkdtemp(prefix="rrft-serve-"))
        try:
            body = await _read_json(request, max_body)
            req = parse(body, served.limits, image_dir)
            if req.model != served.model_id:
                raise ApiError(404, f"model '{req.model}' is not served here: use '{served.model_id}' "
                                    "(GET /v1/models)", "model_not_found", "model")
            prompt = await asyncio.to_thread(served.count_tokens, req.turns)
            if not req.max_tokens_given:  # no max_tokens: as much of the default as the context leaves
                req.settings.max_new_tokens = max(1, min(req.settings.max_new_tokens, served.context_length - prompt))
            if prompt + req.settings.max_new_tokens > served.context_length:
                raise ApiError(400, f"prompt too long: {prompt} prompt tokens + max_tokens {req.settings.max_new_tokens} "
                                    f"exceed this model's context of {served.context_length} tokens: shorten the "
                                    "messages, send smaller images, or lower max_tokens", "context_length_exceeded",
                               "messages")
            if not gate.enter():
                raise ApiError(429, f"server busy: {served.max_queue} requests are already waiting or running; "
                                    "retry shortly", "server_busy", kind="rate_limit_error")
        except ApiError as e:
            shutil.rmtree(image_dir, ignore_errors=True)
            return _error(e)
        reply = Reply(served, req, prompt)
        if not req.stream:
            try:
                return JSONResponse(await asyncio.to_thread(reply.complete))
            except ApiError as e:
                return _error(e)
            finally:
                gate.leave()
                shutil.rmtree(image_dir, ignore_errors=True)

        async def events():
            try:
                async for event in reply.stream():
                    yield f"data: {json.dumps(event)}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                gate.leave()
                shutil.rmtree(image_dir, ignore_errors=True)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return api


async def _read_json(request, limit: int) -> object:
    size = request.headers.get("content-length")
    if size and size.isdigit() and int(size) > limit:
        raise ApiError(413, f"request too large: {int(size) / 2**20:.1f} MiB, the limit is {limit / 2**20:.0f} MiB",
                       "request_too_large")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"request too large: over {limit / 2**20:.0f} MiB", "request_too_large")
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", "invalid_json") from None


class Reply:
    """One completion: the worker's chunks through the Decoder, as one JSON reply or as SSE chunks."""

    def __init__(self, served: Served, req: ChatRequest, prompt_tokens: int):
        self.served, self.req, self.prompt_tokens = served, req, prompt_tokens
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def _run(self, out: queue.Queue, cancel: threading.Event) -> None:
        """In a thread: feed the decoder, put deltas on `out`; end with ("end", finish_reason, tokens)."""
        from .inference import WorkerError

        decoder, tokens, finish = Decoder(self.req.stop), None, "stop"
        stream = self.served.worker.stream(self.req.turns, self.req.settings)
        try:
            for event in stream:
                if "chunk" in event:
                    for delta in decoder.feed(event["chunk"]):
                        out.put(delta)
                    if decoder.stopped or cancel.is_set():
                        break
                else:
                    tokens = event["tokens"]
                    finish = "length" if tokens >= self.req.settings.max_new_tokens else "stop"
            for delta in decoder.finish():
                out.put(delta)
            out.put(("end", finish, tokens if tokens is not None else self._count(decoder.raw)))
        except WorkerError as e:
            out.put(("error", str(e), None))
        finally:
            stream.close()  # an unfinished stream tells the worker to stop generating

    def _count(self, text: str) -> int:
        tokenizer = getattr(self.served, "tokenizer", None)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer else 0

    def _usage(self, tokens: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": tokens,
                "total_tokens": self.prompt_tokens + tokens}

    def complete(self) -> dict:
        out: queue.Queue = queue.Queue()
        self._run(out, threading.Event())
        deltas, end = [], None
        while not out.empty():
            item = out.get()
            if item[0] in ("end", "error"):
                end = item
            else:
                deltas.append(item)
        if end[0] == "error":
            raise ApiError(500, f"generation failed: {end[1]}", "generation_failed", kind="server_error")
        reasoning, content = joined(deltas)
        message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.served.model_id,
                "choices": [{"index": 0, "message": message, "finish_reason": end[1], "logprobs": None}],
                "usage": self._usage(end[2])}

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.served.model_id, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                                             "logprobs": None}]}

    async def stream(self):
        """SSE events: the role, then reasoning/content deltas, then the finish reason (and usage if asked)."""
        out: queue.Queue = queue.Queue()
        cancel = threading.Event()
        thread = threading.Thread(target=self._run, args=(out, cancel), daemon=True)
        thread.start()
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while True:
                kind, text, extra = await asyncio.to_thread(_get, out)
                if kind == "error":
                    yield ApiError(500, f"generation failed: {text}", "generation_failed", kind="server_error").body()
                    return
                if kind == "end":
                    yield self._chunk({}, text)
                    if self.req.include_usage:
                        yield {**self._chunk({}), "choices": [], "usage": self._usage(extra)}
                    return
                yield self._chunk({"reasoning_content" if kind == "reasoning" else "content": text})
        finally:
            cancel.set()  # the client left early: the thread stops at the next chunk and the worker with it


def _get(out: queue.Queue) -> tuple:
    item = out.get()
    return item if len(item) == 3 else (*item, None)


# ---------------------------------------------------------------- running it

def model_id(checkpoint: str) -> str:
    """The name clients send as `model`: <run>/<stage> for a run's checkpoint, else the folder's name."""
    from .inference import BASE_PREFIX

    if checkpoint.startswith(BASE_PREFIX):
        return f"{Path(checkpoint[len(BASE_PREFIX):]).name}/base"
    path = Path(checkpoint)
    if runs.final_stage(path):
        return f"{path.parent.parent.name}/{path.name}"
    return path.name if path.exists() else checkpoint


def token_counter(processor) -> Callable[[list], int]:
    """Prompt tokens of a conversation as the worker will build it: chat template, images expanded."""
    from PIL import Image

    from .inference import conversation

    def count(turns: list) -> int:
        messages, images = conversation(turns)
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        loaded = [Image.open(p).convert("RGB") for p in images]
        return int(processor(text=[text], images=loaded or None, return_tensors="pt")["input_ids"].shape[1])

    return count


def context_of(path: str, trust_remote_code: bool) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    text = getattr(config, "text_config", None) or config
    return int(getattr(text, "max_position_embeddings", None) or getattr(config, "max_position_embeddings", 32768))


def serve(target: str, host: str, port: int, api_key: str | None, allow_dirs: list[str], device: str = "auto",
          max_queue: int = 8, context_length: int | None = None, limits: Limits | None = None,
          trust_remote_code: bool = False, name: str | None = None) -> int:
    """Check the arguments, load the model in a worker, then serve until Ctrl-C (or SIGTERM)."""
    check_bind(host, api_key)
    if max_queue < 1:
        raise ConfigError(f"--max-queue {max_queue}: at least 1 request must be able to wait or run")
    limits = limits or Limits()
    for folder in allow_dirs:
        if not Path(folder).expanduser().is_dir():
            raise ConfigError(f"--allow-dir '{folder}' is not a folder: give an existing folder of images")
    limits.allowed_dirs = [Path(f).expanduser().resolve() for f in allow_dirs]
    import uvicorn

    from .. import models
    from . import inference
    from .terminal import checkpoint_of

    checkpoint = target if target.startswith(inference.BASE_PREFIX) else checkpoint_of(target)
    path, run_pixels = inference.resolve(checkpoint)
    pixels = run_pixels or 480000  # the GRPO stage's default image budget (config.GRPO.max_pixels)
    print(f"loading {checkpoint} in a worker process…", flush=True)
    worker = inference.Worker(checkpoint, device, trust_remote_code, max_pixels=pixels)
    try:
        info = worker.wait_ready()
        processor = models.load_processor(path, pixels, trust_remote_code)
        served = Served(name or model_id(checkpoint), worker, token_counter(processor),
                        context_length or context_of(path, trust_remote_code), limits, api_key, max_queue,
                        processor.tokenizer)
        print(f"serving '{served.model_id}' ({info['device']}) at http://{host}:{port}/v1 "
              f"(OpenAI-compatible; {'key required' if api_key else 'no key'}); Ctrl-C stops", flush=True)
        uvicorn.run(app(served), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    except inference.WorkerError as e:
        print(f"error: {e}", flush=True)
        return 1
    finally:
        worker.close()
    return 0


def snippet(checkpoint: str, port: int = 8000) -> str:
    """Markdown: the command that serves a checkpoint, and a curl and a Python call to it (the studio's Chat tab)."""
    if not checkpoint:
        return "Pick a checkpoint to see how to call it from an application."
    return f"""Serve this checkpoint behind an OpenAI-compatible API:

```bash
rrft-studio serve {checkpoint} --port {port}
```

{calls(model_id(checkpoint), port)}"""


def calls(served: str, port: int) -> str:
    """Markdown: a curl and an `openai` client call to the model `served` at 127.0.0.1:port (Chat's snippet, and
    the Export & serve tab's for a server it started)."""
    url = f"http://127.0.0.1:{port}/v1"
    return f"""```bash
curl {url}/chat/completions -H 'Content-Type: application/json' -d '{{
  "model": "{served}",
  "messages": [{{"role": "user", "content": [
    {{"type": "image_url", "image_url": {{"url": "data:image/png;base64,'$(base64 -w0 scene.png)'"}}}},
    {{"type": "text", "text": "How many objects are there?"}}]}}]}}'
```

```python
import base64
from openai import OpenAI

client = OpenAI(base_url="{url}", api_key="unused")  # the --api-key value, if the server has one
image = "data:image/png;base64," + base64.b64encode(open("scene.png", "rb").read()).decode()
reply = client.chat.completions.create(model="{served}", messages=[{{"role": "user", "content": [
    {{"type": "image_url", "image_url": {{"url": image}}}},
    {{"type": "text", "text": "How many objects are there?"}}]}}])
print(reply.choices[0].message.content)  # the answer; its reasoning: reply.choices[0].message.reasoning_content
```"""
