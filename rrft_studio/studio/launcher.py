"""Runs as detached processes of the project's own CLI: launch, stop, resume, and the logs they write.

A launch validates the edited preset with `settings.load`, writes it to `RUNS/.studio/presets/<name>.yaml`
and starts `python -m rrft_studio.cli train <that file> run.runs_dir=RUNS [key=value ...]` in a new session
(never through a shell), its output going to `RUNS/.studio/logs/`. The process outlives the browser and the
studio; the run directory it creates is found again by the pid in its status.json. Stop sends SIGTERM to
that pid (the CLI saves a checkpoint at the end of the step and marks the run `stopped`); resume starts
`train --resume RUN_DIR`. Every launch is recorded in `RUNS/.studio/launches.jsonl`, so a restarted studio
still knows each run's log. `run.processes=N` (the Train tab's Processes field) becomes `--processes N`
(with `--accelerate-config`): the CLI starts N processes on this machine through accelerate, and the run's
status names rank 0's pid and the launching process (launcher_pid). A run another machine writes into a shared
runs folder is never signalled from here. Validation imports no user code and confines every path the preset names to the
studio's folders (folders.py); with a rewards folder, the CLI gets `--rewards-dir` to import from it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import config, runs, settings
from ..config import ConfigError
from .folders import Folders

CLI = [sys.executable, "-m", "rrft_studio.cli"]
NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A problem of one key alone (config.py's words for an unknown key, a wrong type, a value out of range)
ONE_KEY = re.compile(r"^(unknown config key |[a-z_]+(\.[a-z_0-9]+)+(=\S*)? (must be|is not allowed))")


@dataclass
class Launch:
    pid: int
    log: Path
    command: str  # what a user would type in a terminal to do the same


def _is_ours(pid: int) -> bool:
    """Whether a pid still belongs to an rrft-studio process (pids are reused): never signal a stranger."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.is_dir():  # no /proc (macOS): the status file and pid_alive are all we have
        return True
    try:
        text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "rrft_studio" in text or "rrft-studio" in text


def line_of(text: str, key: str) -> int | None:
    """1-based line of a dotted key in YAML text, each part searched after the previous one (block or flow style)."""
    position = 0
    for part in key.split("."):
        match = re.compile(rf"(?:^|[\s{{,]){re.escape(part)}\s*:", re.M).search(text, position)
        if match is None:
            return None
        position = match.end()
    return text.count("\n", 0, position) + 1


def command_text(cmd: list[str]) -> str:
    """The terminal form of a CLI invocation: `rrft-studio ...` instead of `python -m rrft_studio.cli ...`."""
    return shlex.join(["rrft-studio", *cmd[len(CLI):]])


class Launcher:
    def __init__(self, runs_dir: Path, folders: Folders | None = None):
        self.runs_dir = Path(runs_dir).resolve()
        # The CLI runs where the studio runs: relative data paths in a preset mean the same to both.
        self.cwd = Path.cwd()
        self.folders = folders or Folders.create(self.runs_dir, cwd=self.cwd)
        self.studio_dir = self.runs_dir / ".studio"
        self.children: dict[int, subprocess.Popen] = {}

    # -- presets
    def validate(self, name: str, text: str, overrides: list[str] = ()) -> config.Config:
        """Parse and validate an edited preset as the CLI will, its paths and rewards checked first against the
        studio's folders, without importing user code; ConfigError (one line) otherwise."""
        try:
            return self._validate(name, text, overrides)
        except ConfigError as e:
            raise ConfigError(_placed_in(str(e), text, overrides)) from None

    def problems(self, name: str, text: str, overrides: list[str] = (), most: int = 10) -> list[str]:
        """Every problem of an edited preset, not only the first: after each one that names a key the preset or
        an override sets, that key is set aside (its default stands in) and the rest checked again. A problem of
        one key alone (unknown, wrong type, out of range) is always its own; after the first problem of a
        combination (rewards and their weights, paths and folders), only those are listed, as a combination
        met later may be the default standing in for a key set aside. Each is placed as validate() places it:
        a line of the preset, or the overrides."""
        found: list[str] = []
        rest = list(overrides)
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            tree = None  # the parser's own error (with its line) is the only one to give
        current, combined = text, False
        while len(found) < most:
            try:
                self._validate(name, current, rest)
                break
            except ConfigError as e:
                alone = bool(ONE_KEY.match(str(e)))
                if combined and not alone:
                    break
                combined = combined or not alone
                found.append(_placed_in(str(e), text, overrides))
                key = _key_named(str(e))
                if not key or not isinstance(tree, dict):
                    break
                kept = [o for o in rest if override_key(o) != key]
                if len(kept) < len(rest):
                    rest = kept
                elif _drop(tree, key):
                    current = yaml.safe_dump(tree, sort_keys=False)
                else:  # a combination whose key neither sets: the first problem is the one to fix
                    break
        return found

    def _validate(self, name: str, text: str, overrides: list[str]) -> config.Config:
        if not NAME_OK.match(name or ""):
            raise ConfigError(f"run name {name!r}: use letters, digits, '-', '_' or '.' (at most 64)")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(text)
            try:
                self.folders.check_config(self.folders.merged(path, list(overrides)))
                return settings.load(path, list(overrides) + self._placed(path, overrides), import_rewards=False)
            except ConfigError as e:
                message = re.sub(rf"preset '{re.escape(str(path))}' line (\d+)", r"line \1 of the preset", str(e))
                raise ConfigError(message.replace(f"'{path}'", "the preset")) from None

    def save_preset(self, name: str, text: str) -> Path:
        folder = self.studio_dir / "presets"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.yaml"
        runs.write_atomic(path, text)
        return path

    def train_command(self, preset: Path, overrides: list[str] = ()) -> list[str]:
        flags, rest = launch_flags(overrides)
        return [*CLI, "train", *flags, *self._rewards_flag(), str(preset), *rest, *self._placed(preset, overrides)]

    def _placed(self, preset: Path, overrides: list[str]) -> list[str]:
        """The overrides that put a run in the studio's folders: its runs folder, and its cache folder where
        the preset leaves run.cache_dir at its default."""
        out = [f"run.runs_dir={self.runs_dir}"]
        cache = self.folders.merged(preset, list(overrides)).run.cache_dir
        if cache == config.Run().cache_dir and self.folders.resolve(cache) != self.folders.cache:
            out.append(f"run.cache_dir={self.folders.cache}")
        return out

    def _rewards_flag(self) -> list[str]:
        return ["--rewards-dir", str(self.folders.rewards)] if self.folders.rewards else []

    # -- processes
    def launch(self, name: str, text: str, overrides: list[str] = ()) -> Launch:
        """Validate, save, start. Raises ConfigError before anything starts when the preset is wrong."""
        self.validate(name, text, overrides)
        preset = self.save_preset(name, text)
        return self._spawn(self.train_command(preset, overrides), name, preset=str(preset))

    def resume(self, run_dir: Path) -> Launch:
        run_dir = self.inside(run_dir)
        runs.may_resume(run_dir)
        return self._spawn([*CLI, "train", *self._rewards_flag(), "--resume", str(run_dir)], f"{run_dir.name}-resume",
                           run_dir=str(run_dir))

    def stop(self, run_dir: Path) -> str:
        """SIGTERM to the run's process: it checkpoints at the end of the step and exits as `stopped`."""
        run_dir = self.inside(run_dir)
        status = runs.read_status(run_dir)
        pid = status.get("pid")
        if runs.is_foreign(status) and runs.is_alive(status):
            return f"{run_dir.name} runs on {status['host']}: stop it there (kill -TERM {pid} on that machine)"
        if runs.effective_state(status) not in runs.LIVE_STATES:
            return f"{run_dir.name} is not running ({runs.effective_state(status)})"
        if not _is_ours(int(pid)):
            return f"pid {pid} of {run_dir.name} is no longer an rrft-studio process: nothing was signalled"
        os.kill(int(pid), signal.SIGTERM)
        return f"asked {run_dir.name} (pid {pid}) to stop: it saves a checkpoint at the end of this step"

    def start_logged(self, cmd: list[str], label: str, session: bool = True) -> tuple[subprocess.Popen, Path]:
        """Start `cmd` (no shell) in the studio's folder, its output into `.studio/logs/<label>-<time>.log`;
        `session`: in a session of its own (a run or a server outlives a signal to the studio's group)."""
        logs = self.studio_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        with open(log, "ab") as out:  # the child keeps its own handle; ours can close
            proc = subprocess.Popen(cmd, cwd=self.cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=session)
        return proc, log

    def _spawn(self, cmd: list[str], label: str, **record) -> Launch:
        proc, log = self.start_logged(cmd, label)
        self.children[proc.pid] = proc
        launch = Launch(proc.pid, log, command_text(cmd))
        runs.append_jsonl(self.studio_dir / "launches.jsonl",
                          {"pid": proc.pid, "time": time.time(), "log": str(log), "command": launch.command, **record})
        return launch

    def reap(self) -> None:
        """Collect our finished children, so a dead run is not mistaken for a live one (zombie pids)."""
        for pid, proc in list(self.children.items()):
            if proc.poll() is not None:
                del self.children[pid]

    def run_cli(self, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
        """A short CLI command (data generation) run to completion, its output captured."""
        return subprocess.run([*CLI, *args], cwd=self.cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    # -- what was launched
    def launches(self) -> list[dict]:
        return runs.read_jsonl(self.studio_dir / "launches.jsonl")

    def log_of(self, run_dir: Path) -> Path | None:
        """The log of the process that last wrote the run's status (or of its last resume)."""
        pid = runs.read_status(run_dir).get("pid")
        launcher_pid = runs.read_status(run_dir).get("launcher_pid")
        for record in reversed(self.launches()):
            if record.get("pid") in (pid, launcher_pid) or record.get("run_dir") == str(run_dir):
                return Path(record["log"])
        return None

    def unclaimed(self, max_age_s: float = 3600) -> list[dict]:
        """Recent new-run launches no run directory claims yet: still starting, or failed before creating one."""
        self.reap()
        statuses = [runs.read_status(d) for d in self.runs_dir.iterdir() if runs.status_path(d).is_file()] \
            if self.runs_dir.is_dir() else []
        claimed = {s.get(key) for s in statuses for key in ("pid", "launcher_pid")}
        now = time.time()
        return [{**r, "alive": runs.pid_alive(r["pid"])} for r in self.launches()
                if not r.get("run_dir") and r["pid"] not in claimed and now - r["time"] < max_age_s]

    def inside(self, run_dir: Path) -> Path:
        """The run directory, refused unless it lies in the runs folder (the studio acts on nothing else)."""
        path = (self.runs_dir / Path(run_dir).name) if not Path(run_dir).is_absolute() else Path(run_dir).resolve()
        if path.parent != self.runs_dir or not runs.is_run(path):
            raise ConfigError(f"'{run_dir}' is not a run in {self.runs_dir}")
        return path


def launch_flags(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(--processes / --accelerate-config flags, the other overrides): the launch reads as the CLI writes it."""
    names = {"run.processes": "--processes", "run.accelerate_config": "--accelerate-config"}
    flags, rest = [], []
    for text in overrides:
        key, _, value = text.partition("=")
        if key.strip() in names:
            flags += [names[key.strip()], value.strip()]
        else:
            rest.append(text)
    return flags, rest


def override_key(line: str) -> str:
    """The key an override line sets (`grpo.lr=1e-5` -> `grpo.lr`)."""
    return line.partition("=")[0].strip()


def _key_named(message: str) -> str | None:
    """The dotted config key an error is about (its first word, or the key of 'unknown config key ...')."""
    match = re.search(r"(?:key '|^)([a-z_]+(?:\.[a-z_0-9]+)+)", message)
    return match.group(1) if match else None


def _placed_in(message: str, text: str, overrides: list[str] = ()) -> str:
    """Where the user wrote what an error is about: 'in the overrides:' when an override sets its key (the
    preset may set it too: the override is what counts), else 'line N:' of the preset where the key is."""
    if re.search(r"\bline \d+", message):
        return message
    key = _key_named(message)
    if key and any(override_key(o) == key for o in overrides):
        return f"in the overrides: {message}"
    number = line_of(text, key) if key else None
    return f"line {number}: {message}" if number else message


def _drop(tree: dict, key: str) -> bool:
    """Remove a dotted key from a preset's tree (a section given as a bare name, like model: tiny, counts as its
    name); whether it was there."""
    *parents, last = key.split(".")
    node = tree
    for part in parents:
        if isinstance(node, dict) and isinstance(node.get(part), str) and last == "name":
            del node[part]
            return True
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False


def tail(path: Path | None, lines: int = 40) -> str:
    """The last lines of a log; progress-bar carriage returns collapsed to the latest update."""
    if path is None or not Path(path).is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64_000))
        text = f.read().decode(errors="replace")
    # splitlines() would also split at \r: split at \n only, then keep each line's last \r-separated update.
    rows = [row.rstrip("\r").rsplit("\r", 1)[-1] for row in text.rstrip("\n").split("\n")]
    return "\n".join(rows[-lines:])
