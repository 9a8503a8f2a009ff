"""The Export & serve tab: a run's model as a folder other tools load (what `rrft-studio export` writes), and an
OpenAI-compatible API over it (what `rrft-studio serve` runs), both from the browser.

Export: a run (its last finished stage) or one stage's final checkpoint, a format (merged; lora where the run
trained LoRA adapters; gguf where llama.cpp's converter is installed: each unavailable one says why), a dtype and
a folder name. Every check the CLI makes runs here first, in one line (export.py's own checks, reused), then the
Export button runs `rrft-studio export` as a child process inside the event, the page showing the seconds it has
taken; the CLI writes the folder complete or not at all. The folder lies in the studio's exports folder
(folders.py: `exports/` in the runs folder unless app.py names another), never anywhere a name could reach.
The page then shows the folder, its files with their sizes, and the model card.

Serve: serving.py starts and stops the servers; this tab shows each one's state, URL, model id and how to call
it (a curl and an `openai` snippet).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import gradio as gr

from .. import config, runs
from ..config import ConfigError
from ..serve import export
from ..serve import server as api
from . import catalog
from .folders import Folders
from .launcher import CLI, NAME_OK, Launcher, tail
from .serving import Server, Servers

DTYPES = [("as saved", "saved"), ("bf16", "bf16"), ("fp16", "fp16")]  # export.DTYPES, and the checkpoint's own
_exporting: set[Path] = set()  # folders an export is writing now: a second one to the same name is refused
_exporting_lock = threading.Lock()


# ---------------------------------------------------------------- what can be exported

def sources(runs_dir: Path) -> list[tuple[str, str]]:
    """(label, value) of every run (its last finished stage, or none yet) and each stage's final checkpoint."""
    out = []
    for info in catalog.list_runs(runs_dir):
        stages = _stages(info.path)
        last = runs.last_finished_stage(info.path, stages)
        note = f"its last finished stage, {last}" if last else f"no finished stage, {info.state}"
        out.append((f"{info.name} ({note})", str(info.path)))
        out += [(f"{info.name} · after {stage}", str(runs.final_dir(info.path, stage)))
                for stage in stages if runs.is_done(info.path, stage)]
    return out


def default_source(runs_dir: Path) -> str | None:
    """The newest finished run, else the newest run with a finished stage."""
    infos = sorted(catalog.list_runs(runs_dir), key=lambda i: i.state != "finished")  # stable: newest first
    return next((str(i.path) for i in infos if runs.last_finished_stage(i.path, _stages(i.path))), None)


def _stages(run_dir: Path) -> list[str]:
    """The run's stages as its config names them (both, where the config cannot be read)."""
    cfg = runs.read_config(run_dir)
    return list(cfg.run.stages) if cfg else list(config.STAGES)


def source(folders: Folders, value: str) -> export.Source:
    """The run or checkpoint picked, resolved as `rrft-studio export` resolves it; only from the runs folder."""
    if not value:
        raise ConfigError("pick a run or a stage's checkpoint to export")
    path = folders.confine(value, "export", ("runs",))
    if not (runs.is_run(path) or runs.final_stage(path)):
        raise ConfigError(f"'{value}' is neither a run nor a stage's final checkpoint in {folders.runs}")
    return export.resolve(str(path))


def formats(src: export.Source) -> dict[str, str | None]:
    """Each format and why it is unavailable for this source (None where it is available)."""
    why: dict[str, str | None] = {"merged": None}
    try:
        export.check_lora(src)
        why["lora"] = None
    except ConfigError as e:  # said as the page says it: the run by its name, the format picked rather than a flag
        text = re.sub(r"use --format (\w+)", r"pick \1", str(e))
        why["lora"] = text.replace(f"'{src.run_dir}'", f"'{src.run_dir.name}'") if src.run_dir else text
    why["gguf"] = None if export.gguf_converter() else (
        "llama.cpp's converter is not installed here: set LLAMA_CPP_DIR to a llama.cpp clone (with its "
        "requirements installed) before starting the studio")
    return why


def output(folders: Folders, name: str) -> Path:
    """The new folder an export writes: a plain name in the exports folder, which must not exist yet."""
    name = (name or "").strip()
    if not NAME_OK.match(name):
        raise ConfigError(f"folder name {name!r}: use letters, digits, '-', '_' or '.' (at most 64), starting with a "
                          "letter or digit")
    out = folders.confine(str(folders.exports / name), "export folder", ("exports",))
    if out.exists() or out.is_symlink():
        raise ConfigError(f"'{name}' already exists in the exports folder {folders.exports}: choose another name "
                          "(nothing is overwritten)")
    return out


def plan(folders: Folders, value: str, fmt: str, dtype: str, name: str) -> tuple[export.Source, Path, list[str]]:
    """(source, folder, CLI arguments) of an export, after every check; ConfigError (one line) otherwise."""
    src = source(folders, value)
    why = formats(src)
    if fmt not in why:
        raise ConfigError(f"format {fmt!r}: choose one of {', '.join(why)}")
    if why[fmt]:
        raise ConfigError(f"{fmt}: {why[fmt]}")
    if dtype not in ("saved", *export.DTYPES):
        raise ConfigError(f"weights {dtype!r}: choose as saved, bf16 or fp16")
    out = output(folders, name)
    args = ["export", str(folders.resolve(value)), "--format", fmt, "--out", str(out)]
    return src, out, args + (["--dtype", dtype] if dtype != "saved" else [])


def default_name(src: export.Source, fmt: str) -> str:
    """<run>-<stage>-<format>, cut to the 64 characters a folder name may have (its end kept)."""
    title = src.run_dir.name if src.run_dir else Path(src.checkpoint).name
    end = f"-{src.stage}-{fmt}" if src.stage else f"-{fmt}"
    return title[: 64 - len(end)] + end


def size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def written(out: Path) -> tuple[str, str]:
    """(Markdown: the folder, each file with its size, the total; the model card's text)."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    rows = "\n".join(f"| `{p.relative_to(out)}` | {size_text(p.stat().st_size)} |" for p in files)
    card = out / "README.md"
    return (f"**Written:** `{out}` · {len(files)} files, {size_text(total)}\n\n| file | size |\n|---|---|\n{rows}",
            card.read_text() if card.is_file() else "")


def run_export(launcher: Launcher, value: str, fmt: str, dtype: str, name: str, poll_s: float = 0.5):
    """Check, then run `rrft-studio export` to its end: yields (message, written, card) while it runs and once done."""
    try:
        src, out, args = plan(launcher.folders, value, fmt, dtype, name)
    except ConfigError as e:
        yield f"✗ {e}", "", ""
        return
    with _exporting_lock:
        if out in _exporting:
            yield f"✗ an export into '{out.name}' is already running: wait for it, or choose another name", "", ""
            return
        _exporting.add(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        started, what = time.time(), f"{fmt}, {dtype if dtype != 'saved' else 'weights as saved'}"
        proc, log = launcher.start_logged([*CLI, *args], f"export-{out.name}", session=False)
        try:
            while proc.poll() is None:
                yield f"Exporting ({what}) into `{out}`… {time.time() - started:.0f} s", "", ""
                time.sleep(poll_s)
        finally:
            if proc.poll() is None:  # the page went away mid-export: the CLI leaves nothing half-written
                proc.terminate()
                proc.wait()
        seconds = time.time() - started
        if proc.returncode != 0 or not out.is_dir():
            last = tail(log, 1).removeprefix("error: ") or f"exit code {proc.returncode}"
            yield f"✗ export failed after {seconds:.0f} s: {last}", "", ""
            return
        files, card = written(out)
        yield f"✓ Exported ({what}) in {seconds:.0f} s.", files, card
    finally:
        with _exporting_lock:
            _exporting.discard(out)


# ---------------------------------------------------------------- the servers

def server_choices(states: dict[int, tuple[Server, str, str]]) -> list[tuple[str, str]]:
    """(label, pid) of each server, newest first: its model, port, pid and state."""
    return [(f"{s.model_id} · port {s.port} · pid {s.pid} · {state}", str(s.pid)) for s, state, _ in states.values()]


def server_markdown(server: Server | None, state: str = "", detail: str = "") -> tuple[str, str]:
    """(state line, how to call it) of one server; how to call it only while it is starting or ready."""
    if server is None:
        return "No server started yet: pick a run or checkpoint and press Serve.", ""
    mark = {"starting": "⏳", "ready": "✓", "exited": "✗", "stopped": "■"}[state]
    head = (f"{mark} **{state}** · {detail}\n\nBase URL `{server.url}` · model id `{server.model_id}` · "
            f"pid {server.pid} · log `{server.log.name}`")
    if state not in ("starting", "ready"):
        return head, ""
    return head, f"`{server.command}`\n\n{api.calls(server.model_id, server.port)}"


# ---------------------------------------------------------------- the tab

def build(launcher: Launcher, servers: Servers, tab: gr.Tab) -> None:
    folders, runs_dir = launcher.folders, launcher.runs_dir
    picked = gr.Dropdown([], label="Run or checkpoint", elem_id="export-source",
                         info="a run exports and serves its last finished stage; or pick one stage's output")
    about = gr.Markdown(elem_id="export-about")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=360):
            gr.Markdown(f"### Export\nA folder other tools load, written into the exports folder `{folders.exports}`.")
            with gr.Row():
                fmt = gr.Radio(["merged"], value="merged", label="Format", elem_id="export-format", scale=1)
                dtype = gr.Radio(DTYPES, value="saved", label="Weights", elem_id="export-dtype", scale=1)
            unavailable = gr.Markdown(elem_id="export-unavailable")
            name = gr.Textbox(label="Folder name (new, in the exports folder)", elem_id="export-name", max_lines=1)
            go = gr.Button("Export", variant="primary", elem_id="export-go")
            message = gr.Markdown(elem_id="export-message")
            result = gr.Markdown(elem_id="export-result")
            card = gr.Textbox(label="Model card (README.md)", lines=12, max_lines=24, interactive=False, visible=False,
                              elem_id="export-card", elem_classes=["rrft-mono"], buttons=["copy"])
        with gr.Column(scale=1, min_width=360):
            gr.Markdown("### Serve\nAn OpenAI-compatible API (`/v1/chat/completions`) on this machine only, "
                        "until you stop it or the studio closes.")
            with gr.Row():
                serve = gr.Button("Serve", variant="primary", elem_id="serve-go")
                stop = gr.Button("Stop", variant="stop", elem_id="serve-stop")
            served = gr.Dropdown([], label="Servers started here", elem_id="serve-pick")
            serve_message = gr.Markdown(elem_id="serve-message")
            state = gr.Markdown(elem_id="serve-state")
            calls = gr.Markdown(elem_id="serve-calls")
    timer = gr.Timer(1.0, active=False)

    def describe(value):
        """The formats this pick allows (and why the others are not), and a folder name for it."""
        if not value and not sources(runs_dir):
            return "No run in the runs folder yet: launch one from Train.", gr.Radio(["merged"]), "", gr.skip()
        try:
            src = source(folders, value)
        except ConfigError as e:
            return f"✗ {e}", gr.Radio(["merged"], value="merged"), "", gr.skip()
        why = formats(src)
        allowed = [f for f, reason in why.items() if reason is None]
        lines = [f"- **{f}** unavailable: {reason}" for f, reason in why.items() if reason]
        text = f"Exports and serves `{src.checkpoint}`"
        if src.run_dir:
            text = (f"Exports and serves **{src.run_dir.name}** `{Path(src.checkpoint).relative_to(src.run_dir)}` "
                    f"(model.finetune={src.cfg.model.finetune})")
        return text, gr.Radio(allowed, value="merged"), "\n".join(lines), default_name(src, "merged")

    def refresh(value, current_name):
        choices = sources(runs_dir)
        values = {v for _, v in choices}
        value = value if value in values else default_source(runs_dir)
        about_text, radio, why, default = describe(value)
        return (gr.Dropdown(choices=choices, value=value), about_text, radio, why, current_name or default,
                *show_servers(None))

    def renamed(value, chosen):
        try:
            return default_name(source(folders, value), chosen)
        except ConfigError:
            return gr.skip()

    def show_servers(pid):
        """The servers' list, the picked one's (else the newest's) state and calls; the timer ticks while one starts."""
        states = {s.pid: (s, *servers.state(s)) for s in servers.listed()}  # each read once: a probe per starting one
        chosen = servers.get(pid) if pid else None
        chosen = chosen if chosen and chosen.pid in states else next(iter(states.values()), (None,))[0]
        head, how = server_markdown(*states[chosen.pid]) if chosen else server_markdown(None)
        return (gr.Dropdown(choices=server_choices(states), value=str(chosen.pid) if chosen else None), head, how,
                gr.Timer(active=any(state == "starting" for _, state, _ in states.values())))

    def start(value):
        try:
            server = servers.start(value)
        except ConfigError as e:
            return f"✗ {e}", *show_servers(None)
        return f"started `{server.model_id}` on port {server.port}", *show_servers(server.pid)

    def stop_server(pid):
        if not pid:
            return "✗ no server to stop", *show_servers(None)
        return servers.stop(pid), *show_servers(pid)

    def exported(value, chosen, weights, folder):
        for text, files, card_text in run_export(launcher, value, chosen, weights, folder):
            yield text, files, gr.Textbox(value=card_text, visible=bool(card_text))

    server_outputs = [served, state, calls, timer]
    tab.select(refresh, [picked, name], [picked, about, fmt, unavailable, name, *server_outputs])
    picked.input(describe, picked, [about, fmt, unavailable, name])
    fmt.input(renamed, [picked, fmt], name)
    go.click(exported, [picked, fmt, dtype, name], [message, result, card], api_name="export", concurrency_limit=2)
    serve.click(start, picked, [serve_message, *server_outputs], api_name="serve")
    stop.click(stop_server, served, [serve_message, *server_outputs], api_name="serve_stop")
    served.input(show_servers, served, server_outputs)
    timer.tick(show_servers, served, server_outputs)
