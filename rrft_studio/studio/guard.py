"""What the studio's web server answers, decided before any Gradio route runs (an ASGI middleware on
Gradio's FastAPI app, installed by app.py).

- With a password (`--auth`), a visitor who has not logged in gets the login form and nothing else. Gradio's
  own page embeds its whole API description for such a visitor (every endpoint, with the preset paths and
  YAML in the config), and `/heartbeat`, `/cancel` and `/reset` answer without a login; here every request
  but the form (`/`), its `POST /login` and the bare true/false of `/gradio_api/startup-events` (which
  Gradio's launch asks itself) answers 401 until it carries the session cookie Gradio sets at login.
- Files (Gradio's `/file=` routes) are served inline only for the kinds the studio shows: images, JSON and
  JSONL, text and CSV, with `nosniff` and a sandboxing content policy. Anything else is a download, so an
  `.html` file in the runs folder never renders as a page of the studio's origin.
- A request whose body is larger than the upload limit is refused with 413, however many files it holds
  (Gradio's own limit counts each file on its own).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from starlette.requests import cookie_parser

INLINE = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".bmp": "image/bmp", ".json": "application/json", ".jsonl": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
    ".yaml": "text/plain; charset=utf-8", ".yml": "text/plain; charset=utf-8", ".csv": "text/csv; charset=utf-8",
}
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/", "/file=")
FILE_POLICY = b"sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
REPLACED = {b"content-type", b"content-disposition", b"x-content-type-options", b"content-security-policy"}
OVERHEAD = 64 * 1024  # multipart boundaries and headers around the files
STARTUP = "/gradio_api/startup-events"


class TooLarge(Exception):
    pass


class Guard:
    def __init__(self, app, max_body: int, login: bool):
        self.app, self.max_body, self.login = app, max_body + OVERHEAD, login

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope.get("method", "GET")
        if self.login and not logged_in(scope):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            if path == "/" and method in ("GET", "HEAD"):
                return await _answer(send, 200, LOGIN_PAGE.encode(), b"text/html; charset=utf-8")
            if not ((method == "POST" and path.rstrip("/") == "/login") or (method == "GET" and path == STARTUP)):
                return await _answer(send, 401, b'{"error": "Not authenticated"}', b"application/json")
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            return await _too_large(send, self.max_body)
        started = False

        async def counted_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        if path.startswith(FILE_ROUTES):
            counted_send = _file_headers(counted_send, path)
        try:
            await self.app(scope, self._limited(receive), counted_send)
        except TooLarge:
            if not started:
                await _too_large(send, self.max_body)

    def _limited(self, receive):
        """receive() that stops a body once it passes the limit (chunked uploads state no length)."""
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise TooLarge()
            return message
        return limited


def logged_in(scope) -> bool:
    """Whether the request carries a session cookie that Gradio's login handed out."""
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None) or {}, getattr(app, "cookie_id", "")
    header = dict(scope.get("headers", [])).get(b"cookie", b"").decode("latin-1")
    cookies = cookie_parser(header)
    return any(cookies.get(name) in tokens
               for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"))


def _file_headers(send, path: str):
    """send() that serves a file inline only when its kind is one the studio shows."""
    kind = INLINE.get(PurePosixPath(path).suffix.lower())

    async def rewritten(message):
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in REPLACED]
            headers += [(b"content-type", kind.encode()), (b"content-disposition", b"inline")] if kind else \
                [(b"content-type", b"application/octet-stream"), (b"content-disposition", b"attachment")]
            headers += [(b"x-content-type-options", b"nosniff"), (b"content-security-policy", FILE_POLICY)]
            message = {**message, "headers": headers}
        await send(message)
    return rewritten


async def _answer(send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send, limit: int) -> None:
    body = f'{{"error": "request larger than {limit // 2**20} MB: send fewer or smaller files"}}'.encode()
    await _answer(send, 413, body, b"application/json")


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>rrft-studio · log in</title>
<style>
 body { font-family: system-ui, sans-serif; background: #f3f4f6; display: flex; align-items: center;
        justify-content: center; min-height: 100vh; margin: 0; }
 form { background: white; padding: 2rem 2.2rem; border-radius: 10px; box-shadow: 0 2px 12px #0002; width: 20rem; }
 h1 { font-size: 1.2rem; margin: 0 0 1.2rem; }
 label { display: block; font-size: .9rem; margin: .8rem 0 .3rem; color: #374151; }
 input { width: 100%; box-sizing: border-box; padding: .55rem; border: 1px solid #d1d5db; border-radius: 6px;
         font-size: 1rem; }
 button { margin-top: 1.3rem; width: 100%; padding: .6rem; border: 0; border-radius: 6px; background: #ea580c;
          color: white; font-size: 1rem; cursor: pointer; }
 #error { color: #b91c1c; font-size: .9rem; min-height: 1.2rem; margin-top: .8rem; }
</style></head>
<body><form id="login">
 <h1>rrft-studio</h1>
 <label for="username">User</label><input id="username" name="username" autocomplete="username" required>
 <label for="password">Password</label>
 <input id="password" name="password" type="password" autocomplete="current-password" required>
 <button type="submit">Log in</button><div id="error"></div>
</form>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = new URLSearchParams(new FormData(event.target));
  const answer = await fetch("login", {method: "POST", body, credentials: "same-origin"});
  if (answer.ok) { location.reload(); } else { document.getElementById("error").textContent = "Wrong user or password."; }
});
</script></body></html>
"""
