"""The OpenAI chat-completions format on our side: a request read into turns and settings, each mistake as one
`ApiError`, and the model's text split into `reasoning_content` (inside `<think>`) and `content` (the answer,
`<answer>` tags removed) as it streams, cut at the first `stop` string. No HTTP here (server.py has that).

Images come as `image_url` parts: a data URL (`data:image/png;base64,...`) or a local file (`file:///...` or a
path) inside a folder the server was allowed to read. Remote URLs are not fetched: the server never reaches out.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from .inference import Settings, Turn

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
IMAGE_TYPES = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "gif": "gif", "bmp": "bmp"}


class ApiError(Exception):
    """One bad request: HTTP status and an OpenAI-shaped error body."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Limits:
    """What one request may ask of the server."""

    allowed_dirs: list[Path] = field(default_factory=list)  # local image files must lie inside one of these
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000  # decoded width x height: beyond it PIL's decompression-bomb territory
    max_images: int = 8
    max_tokens: int = 4096
    default_max_tokens: int = 768  # the paper's evaluation budget
    require_image: bool = True  # the models answer questions about images


@dataclass
class ChatRequest:
    model: str
    turns: list[Turn]
    settings: Settings
    stop: list[str]
    stream: bool
    include_usage: bool
    max_tokens_given: bool = True  # False: the server may lower the default to what the context leaves


def _number(body: dict, key: str, default: float, low: float, high: float, integer: bool = False) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, f"{key} must be {kind} from {low:g} to {high:g}, got {value!r}", "invalid_value", key)
    return value


def parse(body: object, limits: Limits, image_dir: Path) -> ChatRequest:
    """Read a chat-completions body; images from data URLs are written under image_dir. Raises ApiError."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object with model and messages")
    for key, why in (("tools", "tool calls"), ("functions", "function calls"), ("audio", "audio output")):
        if body.get(key):
            raise ApiError(400, f"{key} is not supported: this server answers with text ({why} are not available)",
                           "unsupported_parameter", key)
    if body.get("n", 1) not in (1, None):
        raise ApiError(400, f"n must be 1 (one completion per request), got {body['n']!r}", "unsupported_parameter", "n")
    if body.get("logprobs"):
        raise ApiError(400, "logprobs are not supported by this server", "unsupported_parameter", "logprobs")
    fmt = (body.get("response_format") or {}).get("type", "text") if isinstance(body.get("response_format"), dict) else "text"
    if fmt != "text":
        raise ApiError(400, f"response_format {fmt!r} is not supported: only text", "unsupported_parameter", "response_format")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = int(_number(body, key, limits.default_max_tokens, 1, limits.max_tokens, integer=True))
    temperature = float(_number(body, "temperature", 1.0, 0.0, 2.0))
    top_p = float(_number(body, "top_p", 1.0, 0.0, 1.0))
    if top_p == 0:
        temperature = 0.0  # nothing but the top token: greedy
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "stop must be a string or a list of up to 4 non-empty strings", "invalid_value", "stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream must be true or false, got {stream!r}", "invalid_value", "stream")
    options = body.get("stream_options") or {}
    turns = _turns(body.get("messages"), limits, image_dir)
    return ChatRequest(model=str(body.get("model") or ""), turns=turns,
                       settings=Settings(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=0),
                       stop=stop, stream=stream, include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
                       max_tokens_given=body.get(key) is not None)


def _turns(messages: object, limits: Limits, image_dir: Path) -> list[Turn]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects", "invalid_value", "messages")
    system, turns, n_images = [], [], 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with role and content", "invalid_value", where)
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            raise ApiError(400, f"{where}.role {role!r} is not supported: use system, user or assistant",
                           "invalid_value", f"{where}.role")
        text, images = _content(message.get("content"), where, role == "user", limits, image_dir)
        n_images += len(images)
        if n_images > limits.max_images:
            raise ApiError(400, f"too many images: at most {limits.max_images} per request", "too_many_images", where)
        if role in ("system", "developer"):
            system.append(text)
        else:
            turns.append(Turn(role, text, images))
    if turns[-1:] and turns[-1].role != "user" or not turns:
        raise ApiError(400, "the last message must come from the user", "invalid_value", "messages")
    if system:  # training had no system prompt: its text leads the first user turn
        first = next(t for t in turns if t.role == "user")
        first.text = "\n\n".join([*system, first.text]).strip()
    if limits.require_image and not n_images:
        raise ApiError(400, "no image: this model answers questions about images; add an image_url part to a user "
                            "message (data:image/png;base64,... or a file under an allowed folder)", "image_required",
                       "messages")
    return turns


def _content(content: object, where: str, images_allowed: bool, limits: Limits, image_dir: Path) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise ApiError(400, f"{where}.content must be a string or a list of parts", "invalid_value", f"{where}.content")
    texts, images = [], []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and images_allowed:
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str) or not url:
                raise ApiError(400, f"{at}.image_url.url must be a string", "invalid_value", at)
            images.append(image_file(url, at, limits, image_dir))
        elif kind == "image_url":
            raise ApiError(400, f"{at}: images go in user messages only", "unsupported_content", at)
        else:
            raise ApiError(400, f"{at}: unsupported content part type {kind!r}: send text and image_url parts",
                           "unsupported_content", at)
    return "\n".join(texts), images


def image_file(url: str, at: str, limits: Limits, image_dir: Path) -> str:
    """A readable image file for an image_url: a data URL written out, or an allowed local file."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        subtype = header[5:].split(";")[0].removeprefix("image/")
        if ";base64" not in header or subtype not in IMAGE_TYPES:
            raise ApiError(400, f"{at}: a data URL must be data:image/<png|jpeg|webp|gif|bmp>;base64,...",
                           "invalid_image", at)
        if len(payload) * 3 // 4 > limits.max_image_bytes:
            raise _too_large(at, len(payload) * 3 // 4, limits)
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"{at}: the data URL is not valid base64", "invalid_image", at) from None
        path = image_dir / f"{uuid.uuid4().hex}.{IMAGE_TYPES[subtype]}"
        path.write_bytes(raw)
    else:
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https"):
            raise ApiError(400, f"{at}: remote image URLs are not fetched by this server: send the image as a data "
                                "URL (data:image/png;base64,...)", "unsupported_image_url", at)
        if parsed.scheme not in ("", "file"):
            raise ApiError(400, f"{at}: image_url scheme {parsed.scheme!r} is not supported: use a data URL",
                           "unsupported_image_url", at)
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else url).expanduser().resolve()
        if not any(path.is_relative_to(d) for d in limits.allowed_dirs):
            hint = "start the server with --allow-dir FOLDER" if not limits.allowed_dirs else "use a file under --allow-dir"
            raise ApiError(403, f"{at}: '{path}' is outside the folders this server may read: {hint}, or send a "
                                "data URL", "image_not_allowed", at, "permission_error")
        if not path.is_file():
            raise ApiError(400, f"{at}: image file '{path}' not found", "invalid_image", at)
        if path.stat().st_size > limits.max_image_bytes:
            raise _too_large(at, path.stat().st_size, limits)
    _check_image(path, at, limits)
    return str(path)


def _too_large(at: str, size: int, limits: Limits) -> ApiError:
    return ApiError(413, f"{at}: image too large: {size / 2**20:.1f} MiB, the limit is "
                         f"{limits.max_image_bytes / 2**20:.0f} MiB", "image_too_large", at)


def _check_image(path: Path, at: str, limits: Limits) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size  # read from the header: no decoding yet
    except (UnidentifiedImageError, OSError):
        raise ApiError(400, f"{at}: not a readable image (PNG, JPEG, WebP, GIF or BMP)", "invalid_image", at) from None
    if width * height > limits.max_image_pixels:
        raise ApiError(413, f"{at}: image too large: {width}x{height} pixels, the limit is "
                            f"{limits.max_image_pixels:,} pixels", "image_too_large", at)


# ---------------------------------------------------------------- the reply as it streams

class Decoder:
    """Raw text chunks -> ("reasoning" | "content", text) deltas, cut at the first stop string. Streaming and
    non-streaming replies both go through it, so they agree. Text that may still turn into a tag or a stop string
    is held back until the next chunk decides it; whitespace around each part is trimmed, as split_think does."""

    def __init__(self, stop: list[str] = ()):
        self.stop, self.raw, self.fed, self.stopped = list(stop), "", 0, False
        self.buffer, self.mode = "", "content"
        self.started = {"content": False, "reasoning": False}
        self.pending_ws = ""  # whitespace held back: emitted only if more text follows in the same part

    def feed(self, chunk: str) -> list[tuple[str, str]]:
        if self.stopped:
            return []
        self.raw += chunk
        cut = min((i for s in self.stop if (i := self.raw.find(s, max(0, self.fed - len(s)))) >= 0), default=None)
        if cut is not None:
            self.stopped, self.raw = True, self.raw[:cut]
            end = cut
        else:
            end = len(self.raw) - _held(self.raw, self.stop)
        out = self._split(self.raw[self.fed:end])
        self.fed = max(self.fed, end)
        return out

    def finish(self) -> list[tuple[str, str]]:
        out = self._split(self.raw[self.fed:]) if not self.stopped else []
        self.fed = len(self.raw)
        text, self.buffer = self.buffer, ""
        return out + self._emit(text)

    def _split(self, text: str) -> list[tuple[str, str]]:
        self.buffer += text
        out: list[tuple[str, str]] = []
        while True:
            tags = (THINK_CLOSE,) if self.mode == "reasoning" else (THINK_OPEN, ANSWER_OPEN, ANSWER_CLOSE)
            found = min(((i, t) for t in tags if (i := self.buffer.find(t)) >= 0), default=None)
            if found is None:
                keep = _held(self.buffer, tags)
                out += self._emit(self.buffer[:len(self.buffer) - keep])
                self.buffer = self.buffer[len(self.buffer) - keep:]
                return out
            i, tag = found
            out += self._emit(self.buffer[:i])
            self.buffer = self.buffer[i + len(tag):]
            if tag in (THINK_OPEN, THINK_CLOSE):
                self.pending_ws = ""  # whitespace before a part's end is trimmed
                self.mode = "reasoning" if tag == THINK_OPEN else "content"

    def _emit(self, text: str) -> list[tuple[str, str]]:
        if not self.started[self.mode]:
            text = text.lstrip()
            if not text:
                return []
            self.started[self.mode] = True
        text = self.pending_ws + text
        body = text.rstrip()
        self.pending_ws = text[len(body):]
        return [(self.mode, body)] if body else []


def _held(text: str, markers) -> int:
    """Length of the longest end of `text` that begins one of the markers (it may complete in the next chunk)."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if marker.startswith(text[-n:]):
                best = n
                break
    return best


def joined(deltas: list[tuple[str, str]]) -> tuple[str | None, str]:
    """(reasoning or None, content) from all of a reply's deltas."""
    reasoning = "".join(t for kind, t in deltas if kind == "reasoning")
    content = "".join(t for kind, t in deltas if kind == "content")
    return (reasoning or None), content
