"""A run is a directory, and the directory is the API.

    runs/<name>-<time>/
      config.yaml       resolved config, written first
      status.json       state, stage, step, pid, backend and why, base_model (the starting checkpoint)
      metrics.jsonl     one line per logging step of each stage (every metric TRL logs, plus stage and time)
      samples.jsonl     GRPO rollouts: prompt, image, each completion with its rewards and advantage
      checkpoints/<stage>/checkpoint-N/
      final/<stage>/    each stage's output, a plain checkpoint the next stage, eval and chat load
      eval/<label>/<split>.json  accuracy of the starting model and of each stage's output
      eval/table.md     the results in the paper's layout
      report.json, rewards.png, length.png, sft_loss.png
      tensorboard/<stage>/  with run.report_to=[tensorboard]
      notes.json        the user's tags and note (the studio's Runs tab), if any

Resume, listing, chaining SFT into GRPO, evaluation and the studio read this and nothing else, and this module
is the only code that knows the layout (every path of a run is named below: `config_path`, `final_dir`, ...)
and the life cycle: where a stage's checkpoints and final weights are,
the step of a checkpoint, which stage finished last, whether a run is alive, was killed or may be resumed, and
how a stage's rows are rewound to the checkpoint it resumes from.

Several processes (ranks) may train one run (ranks.py): only the main one writes here, and the writers
refuse to run on another rank. A run may be written by another machine on shared storage: status.json names
the host, and a run of another host is judged alive by its heartbeat (status rewritten every HEARTBEAT_S),
never by a pid that means nothing here.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from . import config as config_mod
from . import ranks

STATES = ("created", "running", "stopping", "stopped", "failed", "finished")


HOST = socket.gethostname()
HEARTBEAT_S = 30  # a running run rewrites its status at least this often
STALE_S = 300  # a run of another host whose status is older than this is taken for dead
_STATUS_LOCK = threading.Lock()  # the heartbeat thread and the training thread both merge into status.json


def _main_only(what: str) -> None:
    """The run directory is written by the main process alone: a write from another rank is a bug."""
    if not ranks.is_main():
        raise RuntimeError(f"rank {ranks.rank()} tried to write {what}: only the main process writes the run")


# ---------------------------------------------------------------- the layout: every path of a run

PLOTS = ("rewards", "length", "sft_loss")  # the report's plots: <name>.png


def config_path(run_dir: Path) -> Path:
    """config.yaml: the resolved config, written first."""
    return Path(run_dir) / "config.yaml"


def status_path(run_dir: Path) -> Path:
    """status.json: state, stage, step, pid, host, backend and why, ..."""
    return Path(run_dir) / "status.json"


def metrics_path(run_dir: Path) -> Path:
    """metrics.jsonl: one row per logging step of each stage."""
    return Path(run_dir) / "metrics.jsonl"


def samples_path(run_dir: Path) -> Path:
    """samples.jsonl: GRPO's rollouts, one line per logged step."""
    return Path(run_dir) / "samples.jsonl"


def report_path(run_dir: Path) -> Path:
    """report.json: the run's results, written when it finishes."""
    return Path(run_dir) / "report.json"


def plot_path(run_dir: Path, name: str) -> Path:
    """<name>.png, one of PLOTS."""
    return Path(run_dir) / f"{name}.png"


def notes_path(run_dir: Path) -> Path:
    """notes.json: the user's tags and note on the run (the studio's Runs tab writes it; training never does)."""
    return Path(run_dir) / "notes.json"


def final_dir(run_dir: Path, stage: str) -> Path:
    """final/<stage>: the stage's output, a plain checkpoint the next stage, eval and chat load."""
    return Path(run_dir) / "final" / stage


def checkpoints_dir(run_dir: Path, stage: str) -> Path:
    """checkpoints/<stage>: the trainer's resumable checkpoints, checkpoint-N."""
    return Path(run_dir) / "checkpoints" / stage


def eval_dir(run_dir: Path) -> Path:
    """eval/: the evaluations and the results table."""
    return Path(run_dir) / "eval"


def eval_path(run_dir: Path, label: str, split: str) -> Path:
    """eval/<label>/<split>.json: a checkpoint's predictions and accuracy on a split."""
    return eval_dir(run_dir) / label / f"{split}.json"


def eval_table_path(run_dir: Path) -> Path:
    """eval/table.md: the results in the paper's layout."""
    return eval_dir(run_dir) / "table.md"


def evaluations(run_dir: Path) -> dict[str, Path]:
    """'label/split' -> its eval file; older runs' eval/<label>.json count as split 'id'."""
    folder = eval_dir(run_dir)
    found = {f"{p.parent.name}/{p.stem}": p for p in folder.glob("*/*.json")}
    found.update({f"{p.stem}/id": p for p in folder.glob("*.json") if f"{p.stem}/id" not in found})
    return found


def tracker_dir(run_dir: Path, tracker: str, stage: str) -> Path:
    """<tracker>/<stage>: where a tracker that writes into the run (TensorBoard) keeps a stage's logs."""
    return Path(run_dir) / tracker / stage


def stage_of(checkpoints: Path) -> tuple[Path, str]:
    """(run directory, stage) of a stage's checkpoints folder, checkpoints/<stage>."""
    return Path(checkpoints).parent.parent, Path(checkpoints).name


def final_stage(path: Path) -> str | None:
    """The stage whose final checkpoint a folder is (final/<stage> of a run), else None."""
    path = Path(path)
    return path.name if path.parent.name == "final" and is_run(path.parent.parent) else None


RESERVE = ".reserve"  # a few kilobytes kept in each run directory, given back when the disk is full
RESERVE_BYTES = 256 * 1024


class DiskFull(OSError):
    """No space left for a write of the run: one line naming the folder and the free space."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def write_atomic(path: Path, text: str) -> None:
    """Write through a temp file and rename, so a reader never sees half a file (nor a temp file left)."""
    _main_only(path.name)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise disk_full(path.parent) from e
        raise


def disk_full(folder: Path) -> DiskFull:
    free = shutil.disk_usage(folder).free / 2**20
    return DiskFull(errno.ENOSPC, f"disk full: {free:.0f} MB free in {folder}: free some space, then resume")


def release_reserve(run_dir: Path) -> None:
    """Give back the reserve so the final status can still be written on a full disk."""
    (Path(run_dir) / RESERVE).unlink(missing_ok=True)


def keep_reserve(run_dir: Path) -> None:
    _main_only(RESERVE)
    try:
        (Path(run_dir) / RESERVE).write_bytes(b"\0" * RESERVE_BYTES)
    except OSError:  # no room for it now: the run will fail at its first real write anyway
        pass


def create(cfg: config_mod.Config) -> Path:
    """Make a new run directory and write the resolved config into it first."""
    _main_only("a new run directory")
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
    write_atomic(config_path(run_dir), config_mod.dump(cfg))
    write_status(run_dir, state="created", stage=None, step=0)
    return run_dir


def load_config(run_dir: Path, overrides: list[str] = ()) -> config_mod.Config:
    """The run's resolved config, with key=value overrides applied and validated."""
    path = config_path(run_dir)
    if not path.is_file():
        raise config_mod.ConfigError(f"'{run_dir}' is not a run directory (no config.yaml): give a folder under runs/")
    tree = yaml.safe_load(path.read_text())
    for text in overrides:
        _merge(tree, config_mod.parse_override(text))
    return config_mod.from_dict(tree)


_configs: dict[Path, tuple[tuple, config_mod.Config | None]] = {}


def read_config(run_dir: Path) -> config_mod.Config | None:
    """The run's config as recorded, or None where it cannot be read, for readers that list runs (the studio asks
    for every live run's each second): parsed again only when the file changed."""
    path = config_path(run_dir)
    try:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        if path not in _configs or _configs[path][0] != key:
            if len(_configs) > 4096:
                _configs.clear()
            _configs[path] = (key, config_mod.from_dict(yaml.safe_load(path.read_text())))
        return _configs[path][1]
    except (config_mod.ConfigError, OSError, ValueError, TypeError, yaml.YAMLError):
        return None


def _merge(tree: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = value


def save_config(run_dir: Path, cfg: config_mod.Config) -> None:
    write_atomic(config_path(run_dir), config_mod.dump(cfg))


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads(status_path(run_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_status(run_dir: Path, *, drop: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """Merge fields into status.json (state, stage, step, max_steps, pid, backend, backend_why, ...); `drop`
    removes keys (an old error once the run goes on)."""
    with _STATUS_LOCK:
        status = read_status(run_dir)
        for key in drop:
            status.pop(key, None)
        status.update(fields, pid=os.getpid(), host=HOST, updated=time.time())
        write_atomic(status_path(run_dir), json.dumps(status, indent=1))
    return status


def record_trainer(run_dir: Path, stage: str, trainer: Any) -> None:
    """status.json's `trainers`: the class that trains each stage (UnslothGRPOTrainer or TRL's GRPOTrainer, ...)."""
    if ranks.is_main():
        write_status(run_dir, trainers={**read_status(run_dir).get("trainers", {}), stage: type(trainer).__name__})


class Heartbeat:
    """Rewrites status.json every HEARTBEAT_S while a run lives (long steps and evaluations included), so a
    studio on another machine sharing the runs folder can tell a live run from a dead one."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.done = Path(run_dir), threading.Event()
        self.thread = threading.Thread(target=self._beat, name="rrft-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            try:
                if read_status(self.run_dir).get("state") in ("running", "stopping"):
                    write_status(self.run_dir)
            except OSError:  # a full disk: the run's own writes say so
                pass

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


LIVE_STATES = ("created", "running", "stopping")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    return True


def is_foreign(status: dict[str, Any]) -> bool:
    """Whether another machine wrote this status (a shared runs folder): its pid means nothing here."""
    return bool(status.get("host")) and status["host"] != HOST


def _writer_alive(status: dict[str, Any]) -> bool:
    if is_foreign(status):  # judged by its heartbeat; the machines' clocks are assumed to agree (NTP)
        return time.time() - float(status.get("updated") or 0) < STALE_S
    return pid_alive(status.get("pid"))


def is_alive(status: dict[str, Any]) -> bool:
    """Whether the process that last wrote this status still runs (a killed run leaves 'running' behind)."""
    return status.get("state") in LIVE_STATES and _writer_alive(status)


def effective_state(status: dict[str, Any]) -> str:
    """The status file's state, or 'killed' when it claims to be live but its process is gone."""
    state = status.get("state", "unknown")
    return "killed" if state in LIVE_STATES and not _writer_alive(status) else state


def may_resume(run_dir: Path, own: tuple[int, ...] = ()) -> None:
    """ConfigError unless the run can be resumed: not finished, and not still running (pids in `own` are this
    launch's, e.g. the launcher that created the run for its ranks)."""
    status = read_status(run_dir)
    if status.get("state") == "finished":
        raise config_mod.ConfigError(f"run '{run_dir}' is already finished: start a new run with rrft-studio train PRESET")
    if is_alive(status) and is_foreign(status):
        raise config_mod.ConfigError(f"run '{run_dir}' is still running on {status['host']} (pid {status.get('pid')}, "
                                     f"status {time.time() - float(status['updated']):.0f} s old): stop it there first")
    if is_alive(status) and status["pid"] not in (os.getpid(), *own):
        raise config_mod.ConfigError(f"run '{run_dir}' is still running (pid {status['pid']}): stop it first "
                                     "(Ctrl-C or kill -TERM)")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    _main_only(Path(path).name)
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full(Path(path).parent) from e
        raise


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


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint folder (checkpoint-N) was saved at."""
    return int(Path(path).name.split("-")[1])


def _checkpoints(run_dir: Path, stage: str) -> list[Path]:
    return sorted(checkpoints_dir(run_dir, stage).glob("checkpoint-*"), key=checkpoint_step)


def last_checkpoint(run_dir: Path, stage: str) -> Path | None:
    """The newest complete checkpoint of a stage (the trainer writes trainer_state.json last)."""
    done = checkpoints(run_dir, stage)
    return done[-1] if done else None


def planned_steps(checkpoint: Path, max_steps: int) -> int:
    """The stage's last step: the configured max_steps, else the one the trainer planned (in the checkpoint)."""
    if max_steps > 0:
        return max_steps
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("max_steps", 0)) or 10**12


def is_done(run_dir: Path, stage: str) -> bool:
    return (final_dir(run_dir, stage) / "config.json").is_file()


def last_finished_stage(run_dir: Path, stages: list[str] | None = None) -> str | None:
    """The last of the run's stages (or of `stages`) whose final checkpoint exists."""
    stages = load_config(run_dir).run.stages if stages is None else stages
    return next((s for s in reversed(stages) if is_done(run_dir, s)), None)


def is_run(path: Path) -> bool:
    return config_path(path).is_file()


def list_runs(root: Path) -> list[Path]:
    """The run directories in a runs folder, newest first (by when their config was written)."""
    root = Path(root)
    found = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and is_run(d)] \
        if root.is_dir() else []
    return sorted(found, key=lambda d: config_path(d).stat().st_mtime, reverse=True)


def run_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint folder lies in (final/<stage>, checkpoints/<stage>/checkpoint-N), if any."""
    return next((p for p in Path(checkpoint).parents if is_run(p)), None)


def checkpoints(run_dir: Path, stage: str) -> list[Path]:
    """A stage's complete checkpoints, oldest first."""
    return [p for p in _checkpoints(run_dir, stage) if (p / "trainer_state.json").is_file()]


def resume_point(run_dir: Path, stage: str) -> Path | None:
    """The checkpoint a stage resumes from (None: from its start), the run rewound to it."""
    checkpoint = last_checkpoint(run_dir, stage)
    rewind(run_dir, stage, checkpoint_step(checkpoint) if checkpoint else 0)
    return checkpoint


def rewind(run_dir: Path, stage: str, step: int) -> None:
    """Before a stage (re)starts at `step` (0: from scratch): forget its rows logged after that step, a torn last
    line anywhere, and checkpoint folders a kill left half-written, so no step is logged twice."""
    _main_only(f"the rows of {stage}")
    for path in (metrics_path(run_dir), samples_path(run_dir)):
        if not path.is_file():
            continue
        keep = [r for r in read_jsonl(path) if r.get("stage") != stage or r.get("step", 0) <= step]
        text = "".join(json.dumps(r) + "\n" for r in keep)
        if text != path.read_text():
            write_atomic(path, text)
    for ckpt in _checkpoints(run_dir, stage):
        if checkpoint_step(ckpt) > step:
            shutil.rmtree(ckpt)  # incomplete (no trainer_state.json), or past the step we go back to


# ---------------------------------------------------------------- the user's tags and note

TAG = re.compile(r"^[\w.+-]{1,32}$")
MAX_TAGS, MAX_NOTE = 16, 4000


def read_notes(run_dir: Path) -> dict[str, Any]:
    """{"tags": [...], "note": "..."}: empty where the run has none (or its file does not read)."""
    try:
        found = json.loads(notes_path(run_dir).read_text())
        tags, note = found.get("tags", []), found.get("note", "")
        if isinstance(tags, list) and all(isinstance(t, str) for t in tags) and isinstance(note, str):
            return {"tags": tags, "note": note}
    except (OSError, ValueError, AttributeError):
        pass
    return {"tags": [], "note": ""}


def parse_tags(text: str) -> list[str]:
    """Tags from what a user typed: separated by commas or spaces, each once, in the order typed; a tag that is
    not letters, digits, '.', '_', '+' or '-' (at most 32), or more than MAX_TAGS of them: ConfigError."""
    tags = list(dict.fromkeys(t for t in re.split(r"[,\s]+", text or "") if t))
    bad = next((t for t in tags if not TAG.match(t)), None)
    if bad is not None:
        raise config_mod.ConfigError(f"tag {bad[:40]!r}: use letters, digits, '.', '_', '+' or '-' (at most 32), "
                                     "tags separated by commas or spaces")
    if len(tags) > MAX_TAGS:
        raise config_mod.ConfigError(f"{len(tags)} tags: at most {MAX_TAGS} a run; keep the ones you filter by")
    return tags


def write_notes(run_dir: Path, tags: list[str], note: str) -> dict[str, Any]:
    """Set a run's tags and note (any state: a live run's too; the file is the user's alone), or ConfigError."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise config_mod.ConfigError(f"the note has {len(note)} characters: at most {MAX_NOTE}; shorten it")
    if not is_run(run_dir) or Path(run_dir).is_symlink():
        raise config_mod.ConfigError(f"'{Path(run_dir).name}' is not a run directory: nothing to note")
    notes = {"tags": list(tags), "note": note}
    write_atomic(notes_path(run_dir), json.dumps(notes, ensure_ascii=False, indent=1) + "\n")
    return notes


# ---------------------------------------------------------------- renaming and deleting a run

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# The files of a run that may name its own folder: eval results and the report (the checkpoint evaluated),
# peft adapters (the stage's starting model), trainer states. The logs and the weights do not.
OWN_PATHS = ("*.json", "*.yaml", "eval/*/*.json", "eval/*.json", "eval/*.md", "final/*/lora/adapter_config.json",
             "checkpoints/*/checkpoint-*/adapter_config.json", "checkpoints/*/checkpoint-*/trainer_state.json")


def _path_in(path: Path) -> re.Pattern:
    """The folder's path where a text names it or something inside it (not a longer name that starts alike)."""
    return re.compile(re.escape(str(path)) + r"(?=[/\\\"'\s,\]}]|$)", re.M)


def referrers(run_dir: Path) -> list[Path]:
    """The other runs of the folder whose config or status names this run's folder (they start from one of its
    checkpoints, or chain from it): renaming or deleting it would break them."""
    own = _path_in(Path(run_dir).resolve())
    out = []
    for other in list_runs(Path(run_dir).parent):
        if other.resolve() == Path(run_dir).resolve():
            continue
        for path in (config_path(other), status_path(other)):
            try:
                if own.search(path.read_text(errors="replace")):
                    out.append(other)
                    break
            except OSError:
                continue
    return out


def _may_change(run_dir: Path, what: str) -> None:
    """ConfigError unless the run may be renamed or deleted: not live (here or on another host), not a link,
    and no other run depends on it."""
    status = read_status(run_dir)
    if is_alive(status):
        raise config_mod.ConfigError(f"{run_dir.name} is {effective_state(status)}: stop it before you {what} it")
    if Path(run_dir).is_symlink() or not is_run(run_dir):
        raise config_mod.ConfigError(f"'{run_dir}' is not a run directory: nothing to {what}")
    users = referrers(run_dir)
    if users:
        raise config_mod.ConfigError(f"{', '.join(u.name for u in users)} start(s) from {run_dir.name}'s checkpoints: "
                                     f"{what} that run first")


def rename(run_dir: Path, name: str) -> Path:
    """Rename a run that is not live, within its runs folder; the paths its own files hold (OWN_PATHS: eval
    results, report, adapters, trainer states) follow it, so it resumes, evaluates and chats as before."""
    run_dir = Path(run_dir)
    if not RUN_NAME.match(name or ""):
        raise config_mod.ConfigError(f"new name {name!r}: use letters, digits, '-', '_' or '.' (at most 128), "
                                     "starting with a letter or digit")
    _may_change(run_dir, "rename")
    new = run_dir.with_name(name)
    if new.exists():
        raise config_mod.ConfigError(f"'{name}' already exists in {run_dir.parent}: pick another name")
    old = _path_in(run_dir.resolve())
    os.rename(run_dir, new)
    for pattern in OWN_PATHS:
        for path in new.glob(pattern):
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError):  # not a text file after all: it names no path
                continue
            changed = old.sub(lambda _: str(new.resolve()), text)
            if changed != text:
                write_atomic(path, changed)
    return new


def delete(run_dir: Path) -> None:
    """Delete a run that is not live, and everything in its folder."""
    _may_change(Path(run_dir), "delete")
    shutil.rmtree(run_dir)
