"""The API servers the Export & serve tab starts: `rrft-studio serve` processes, their state, and Stop.

Serve starts `python -m rrft_studio.cli serve CHECKPOINT --host 127.0.0.1 --port PORT --device DEVICE` (never
through a shell) on a port free at that moment, in a session of its own, its output going to
`RUNS/.studio/logs/serve-<run>-<time>.log`. A server is the studio's own, unlike a training run: it listens on
this machine only, Stop ends exactly that process (SIGTERM: uvicorn shuts down and closes the model's worker;
SIGKILL after STOP_WAIT_S), and the studio stops every server it started when it closes (app.py). Its state is
read, never stored: starting until GET /v1/models answers, then ready; exited (with the log's last line) once
the process has ended on its own; stopped after Stop.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import runs
from ..config import ConfigError
from ..serve import server as api
from ..serve.terminal import checkpoint_of
from .launcher import CLI, Launcher, command_text, tail

HOST = "127.0.0.1"
STOP_WAIT_S = 10  # a polite stop first: uvicorn closes its connections and the worker gives its memory back
PROBE_S = 0.5  # how long a state check waits for /v1/models
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a proxy from the environment never sees it


def free_port() -> int:
    """A TCP port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    checkpoint: str
    model_id: str
    port: int
    log: Path
    command: str  # what a user would type in a terminal to do the same
    started: float
    ready: bool = False
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


class Servers:
    """The servers this studio started, newest first. Thread-safe: every page's events share it."""

    def __init__(self, launcher: Launcher, device: str = "auto", cli: list[str] | None = None):
        self.launcher, self.device, self.cli = launcher, device, list(cli or CLI)
        self._servers: dict[int, Server] = {}
        self._lock = threading.Lock()

    def checkpoint(self, value: str) -> str:
        """What Serve loads for a run or a checkpoint in the runs folder, as `rrft-studio serve` reads it: a run's
        last finished stage (else its base model), or the checkpoint itself. ConfigError otherwise."""
        if not value:
            raise ConfigError("pick a run or a checkpoint to serve")
        path = self.launcher.folders.confine(value, "serve", ("runs",))
        if not (runs.is_run(path) or (path / "config.json").is_file()):
            raise ConfigError(f"'{value}' is neither a run nor a checkpoint in {self.launcher.runs_dir}")
        return checkpoint_of(str(path))

    def start(self, value: str) -> Server:
        """Start a server for a run or checkpoint; ConfigError (one line) before anything starts when it cannot."""
        checkpoint = self.checkpoint(value)
        model = api.model_id(checkpoint)
        with self._lock:
            running = next((s for s in self._servers.values() if s.checkpoint == checkpoint and not s.stopped
                            and s.proc.poll() is None), None)
            if running:
                raise ConfigError(f"'{model}' is already served at {running.url} (pid {running.pid}): use it, or "
                                  "stop it first")
            port = free_port()
            cmd = [*self.cli, "serve", checkpoint, "--host", HOST, "--port", str(port), "--device", self.device]
            proc, log = self.launcher.start_logged(cmd, f"serve-{model.replace('/', '-')}")
            server = Server(proc, checkpoint, model, port, log, command_text(cmd), time.time())
            self._servers[proc.pid] = server
        return server

    def listed(self) -> list[Server]:
        with self._lock:
            return sorted(self._servers.values(), key=lambda s: s.started, reverse=True)

    def get(self, pid) -> Server | None:
        try:
            return self._servers.get(int(pid))
        except (TypeError, ValueError):
            return None

    def state(self, server: Server) -> tuple[str, str]:
        """(state, detail): starting, ready, exited or stopped, and what a user reads beside it."""
        code = server.proc.poll()
        if server.stopped:
            return "stopped", "stopped from the studio"
        if code is not None:
            return "exited", f"exited with code {code}: {tail(server.log, 1) or 'no output'}"
        if not server.ready:
            try:
                with _DIRECT.open(f"{server.url}/models", timeout=PROBE_S) as reply:
                    served = [m.get("id") for m in json.loads(reply.read()).get("data", [])]
                server.ready = bool(served)
                server.model_id = served[0] if served else server.model_id
            except (OSError, ValueError, AttributeError):
                pass
        if server.ready:
            return "ready", f"answering at {server.url}"
        waited = time.time() - server.started
        return "starting", f"{waited:.0f} s: {tail(server.log, 1) or 'starting Python'}"

    def stop(self, pid) -> str:
        """End exactly that server: SIGTERM, then SIGKILL after STOP_WAIT_S. Only a process this studio started."""
        server = self.get(pid)
        if server is None:
            return f"pid {pid} is not a server this studio started: nothing was signalled"
        if server.proc.poll() is not None:
            return f"'{server.model_id}' (pid {server.pid}) had already ended"
        server.proc.terminate()
        try:
            server.proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
        server.stopped = True
        return f"stopped '{server.model_id}' (pid {server.pid})"

    def close(self) -> None:
        """Stop every server still running, all at once (the studio is closing)."""
        alive = [s for s in self.listed() if s.proc.poll() is None]
        for server in alive:
            server.proc.terminate()
        deadline = time.time() + STOP_WAIT_S
        for server in alive:
            try:
                server.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
            server.stopped = True
