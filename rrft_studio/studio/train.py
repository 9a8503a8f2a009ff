"""The Train tab: pick a preset, edit its YAML (validated as you type, one line per error, field docs beside
it), choose how many processes (GPUs of this machine) and how they share the model, show the equivalent
command, launch it as a detached CLI process (see launcher.py).
"""

from __future__ import annotations

import typing
from pathlib import Path

import gradio as gr
import yaml

from .. import config
from ..config import ConfigError
from . import catalog
from .launcher import Launcher, command_text, tail, with_processes


def field_rows(query: str = "") -> list[list[str]]:
    """key, type, default, doc for every config field whose key or doc contains the query."""
    defaults = config.Config()
    rows = []
    for key, (hint, doc) in config.all_keys().items():
        if typing.get_origin(hint) is typing.Literal:
            kind = "one of " + ", ".join(map(str, typing.get_args(hint)))
        elif typing.get_origin(hint) is list:
            kind = f"list[{typing.get_args(hint)[0].__name__}]"
        else:
            kind = hint.__name__
        default = yaml.safe_dump(config.get(defaults, key), default_flow_style=True).strip()
        row = [key, kind, default.removesuffix("...").strip(), doc]
        if query.lower() in (key + " " + doc).lower():
            rows.append(row)
    return rows


def overrides_of(text: str) -> list[str]:
    """One key=value per line (blank lines and # comments skipped)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip() and not line.strip().startswith("#")]


def check(launcher: Launcher, name: str, text: str, overrides: str) -> tuple[str, str]:
    """(validation message, resolved config with docs) for the editor's current text."""
    try:
        cfg = launcher.validate(name, text, overrides_of(overrides))
    except ConfigError as e:
        return f"<span class='rrft-bad'>✗ {e}</span>", ""
    stages = " → ".join(cfg.run.stages)
    summary = (f"<span class='rrft-ok'>✓ valid</span> · stages {stages} · model `{cfg.model.name}` "
               f"({cfg.model.finetune}) · task {cfg.data.task}")
    if cfg.run.processes > 1:
        from ..distributed import split

        shares = ", ".join(f"{stage} {b.per_device} x {b.processes} x {b.accumulation}"
                           for stage, b in ((st, split(cfg, st)) for st in cfg.run.stages))
        summary += f" · {cfg.run.processes} processes ({cfg.run.accelerate_config or 'ddp'}): batch {shares}"
    return summary, config.describe(cfg)


def load_preset(path: str) -> tuple[str, str]:
    """(YAML text, default run name) of a preset file chosen in the dropdown."""
    if not path or not Path(path).is_file():
        return "", ""
    return Path(path).read_text(), Path(path).stem


def show_command(launcher: Launcher, name: str, text: str, overrides: str) -> tuple[str, str]:
    """Save the edited preset and return the command that runs it from a terminal."""
    try:
        launcher.validate(name, text, overrides_of(overrides))
    except ConfigError as e:
        return "", f"<span class='rrft-bad'>✗ {e}</span>"
    preset = launcher.save_preset(name, text)
    cmd = command_text(launcher.train_command(preset, overrides_of(overrides)))
    return cmd, f"Saved the edited preset to `{preset}`; the command runs it from a terminal (in `{launcher.cwd}`)."


def launch(launcher: Launcher, name: str, text: str, overrides: str) -> tuple[str, str, int]:
    try:
        started = launcher.launch(name, text, overrides_of(overrides))
    except ConfigError as e:
        return "", f"<span class='rrft-bad'>✗ not launched: {e}</span>", 0
    message = (f"Launched **{name}** (pid {started.pid}); it runs on its own and survives closing this page. "
               f"Follow it in **Runs / monitor**. Log: `{started.log}`")
    return started.command, message, started.pid


def launch_progress(launcher: Launcher, pid: int) -> str:
    """What became of the last launch: its run directory, or the log of a start that failed."""
    if not pid:
        return ""
    for info in catalog.list_runs(launcher.runs_dir):
        if pid in (info.status.get("pid"), info.status.get("launcher_pid")):  # rank 0, or the accelerate launcher
            return f"Run directory: `{info.path}` · state **{info.state}** · stage {info.status.get('stage') or '-'}"
    for record in launcher.unclaimed():
        if record["pid"] == pid:
            if record["alive"]:
                return "Starting (loading libraries, checking the data)…"
            return "✗ The process ended before creating a run directory:\n```\n" + tail(Path(record["log"]), 12) + "\n```"
    return ""


def build(launcher: Launcher, presets_dir: Path, tab: gr.Tab) -> None:
    choices = catalog.presets(presets_dir, launcher.runs_dir)
    first = choices[0][1] if choices else None
    text0, name0 = load_preset(first)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row():
                preset = gr.Dropdown(choices, value=first, label="Preset", scale=2, elem_id="train-preset")
                name = gr.Textbox(name0, label="Run name", info="the run folder is NAME-<time>", scale=1,
                                  elem_id="train-name")
            editor = gr.Code(text0, language="yaml", label="Preset (YAML): only what differs from the defaults",
                             lines=18, max_lines=30, interactive=True, wrap_lines=True, elem_id="train-editor")
            verdict = gr.Markdown(check(launcher, name0, text0, "")[0] if text0 else "", elem_id="train-validation")
            overrides = gr.Textbox(label="Overrides, one key=value per line (like the CLI's)", lines=2,
                                   placeholder="sft.lr=5e-4", elem_id="train-overrides")
            with gr.Row():
                processes = gr.Number(1, label="Processes (GPUs of this machine)", precision=0, minimum=1,
                                      maximum=64, elem_id="train-processes",
                                      info="more than 1: accelerate launch; the global batch is kept")
                strategy = gr.Dropdown(["ddp", "fsdp2", "zero2", "zero3"], value="ddp", label="Sharding",
                                       elem_id="train-strategy",
                                       info="ddp: 2B full, 7B LoRA; zero3 / fsdp2: 7B full (README)")
            with gr.Row():
                show = gr.Button("Show command", elem_id="train-show")
                go = gr.Button("Launch", variant="primary", elem_id="train-launch")
            command = gr.Textbox(label="Command", interactive=False, buttons=["copy"], elem_id="train-command")
            message = gr.Markdown(elem_id="train-message")
            progress = gr.Markdown(elem_id="train-progress")
        with gr.Column(scale=2):
            with gr.Accordion("Field reference: every key, its type, default and meaning", open=True):
                search = gr.Textbox(placeholder="filter, e.g. lr or reward", show_label=False)
                fields = gr.Dataframe(field_rows(), headers=["key", "type", "default", "doc"], wrap=True,
                                      max_height=460, interactive=False, column_widths=["26%", "21%", "13%", "40%"])
            with gr.Accordion("Resolved config (defaults + preset + overrides), documented", open=False):
                resolved = gr.Code(language="yaml", interactive=False, lines=12, max_lines=40)
    pid = gr.State(0)
    poll = gr.Timer(2.0, active=False)  # follows the last launch until it has a run directory

    inputs = [name, editor, overrides]
    tab.select(lambda current: gr.Dropdown(choices=catalog.presets(presets_dir, launcher.runs_dir), value=current),
               preset, preset)  # presets edited and saved since the page was built
    preset.input(load_preset, preset, [editor, name])
    # One queue for the three: checks run in the order of the edits, so a slow earlier check (the first one
    # imports the config machinery) cannot land after a later one and show a stale verdict.
    for source in (editor, name, overrides):
        source.change(lambda *a: check(launcher, *a), inputs, [verdict, resolved], trigger_mode="always_last",
                      show_progress="hidden", concurrency_id="train-check", concurrency_limit=1)
    for field in (processes, strategy):  # the two fields are the overrides' run.processes / run.accelerate_config
        field.change(with_processes, [overrides, processes, strategy], overrides, show_progress="hidden")
    search.change(field_rows, search, fields, show_progress="hidden")
    show.click(lambda *a: show_command(launcher, *a), inputs, [command, message], api_name="show_command")
    go.click(lambda *a: launch(launcher, *a), inputs, [command, message, pid], api_name="launch").then(
        lambda p: (launch_progress(launcher, p), gr.Timer(active=bool(p))), pid, [progress, poll])
    poll.tick(lambda p: launch_progress(launcher, p), pid, progress, show_progress="hidden")
