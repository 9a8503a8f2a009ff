"""The Train tab: pick a preset (the demo first on a machine without a GPU) or upload one, change the settings
people change most in a form (each change is an override line, as the CLI takes it), or edit the YAML itself
(validated as you type, every problem on its own line and placed at its line or in the overrides, field docs
beside it, the memory preflight's verdict for this machine below), choose how many processes (GPUs of this
machine) and how they share the model, show the equivalent command, launch it as a detached CLI process (see
launcher.py); the page then shows the run in the monitor.
"""

from __future__ import annotations

import html
import json
import threading
import typing
from pathlib import Path

import gradio as gr
import yaml

from .. import config, runs
from ..config import ConfigError
from ..rewards import REWARDS
from . import catalog, memory
from .launcher import NAME_OK, Launcher, command_text, tail


def field_rows(query: str = "") -> list[list[str]]:
    """key, default, 'type · doc' for every config field whose key or doc contains the query: three columns, as a
    fourth (type) column in that narrow table broke words in two."""
    defaults = config.Config()
    rows = []
    for key, (hint, doc) in config.all_keys().items():
        if typing.get_origin(hint) is typing.Literal:  # the choices, where the doc does not name them all
            kind, choices = "choice", list(map(str, typing.get_args(hint)))
            if not all(choice in doc for choice in choices):
                doc = f"{doc} (one of: {', '.join(choices)})"
        elif typing.get_origin(hint) is list:
            kind = f"list[{typing.get_args(hint)[0].__name__}]"
        else:
            kind = hint.__name__
        default = yaml.safe_dump(config.get(defaults, key), default_flow_style=True).strip()
        # a long key may break after a dot only (<wbr> is no text: a copied key is still the key)
        row = [key.replace(".", ".<wbr>"), default.removesuffix("...").strip(), f"{kind} · {doc}"]
        if query.lower() in (key + " " + row[2]).lower():
            rows.append(row)
    return rows


def overrides_of(text: str) -> list[str]:
    """One key=value per line (blank lines and # comments skipped)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip() and not line.strip().startswith("#")]


# The settings people change most, as a form. Each field is a config key: changing it writes (or replaces) its
# key=value line in the overrides, and a value equal to the preset's own removes the line again.
MODELS = ["tiny", "Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct",
          "Qwen/Qwen2.5-VL-7B-Instruct"]
FORM = ["model.name", "method", "data.task", "model.finetune", "sft.lr", "sft.max_steps", "grpo.lr",
        "grpo.max_steps", "grpo.num_generations", "grpo.temperature", "grpo.rewards"]


def override_value(value: object) -> str:
    """A value as an override line writes it (read back by YAML: lists in flow style, floats that stay floats)."""
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def edit(keys: tuple[str, ...], lines: list[str]) -> str:
    """A change to the overrides, for the page to make (MERGE) in the text as it is when the answer lands: every
    line of these keys replaced by these lines. Made from a field's value alone, never from the overrides text
    the event carried: an answer landing after the user typed there would undo what they typed."""
    return json.dumps({"keys": list(keys), "lines": lines})


def setting_edit(key: str, value: object, preset_value: object) -> str:
    """The edit that sets KEY to VALUE, or removes its line where VALUE is what the preset says already; '' (no
    change) for an empty field."""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(preset_value, float) and isinstance(value, (int, float)):
        value = float(value)
    return edit((key,), [f"{key}={override_value(value)}"] if value != preset_value else [])


def processes_edit(processes: float | None, strategy: str) -> str:
    """The Processes and Sharding fields' edit: run.processes / run.accelerate_config lines, none for 1."""
    n = int(processes or 1)
    return edit(("run.processes", "run.accelerate_config"),
                [f"run.processes={n}", f"run.accelerate_config={strategy or 'ddp'}"] if n > 1 else [])


# The page's half of an edit (inputs: the edit, the overrides; outputs: the overrides, the edit emptied): each
# line of the edit's keys gives way to the edit's line for that key (in its place), the rest go at the end.
MERGE = """(change, text) => {
  if (!change) return [text, ""];
  const {keys, lines} = JSON.parse(change), key = (line) => line.split("=")[0].trim(), left = [...lines], out = [];
  for (const line of (text || "").split("\\n").filter((l) => l.trim())) {
    if (!keys.includes(key(line))) { out.push(line); continue; }
    const i = left.findIndex((l) => key(l) === key(line));
    if (i >= 0) out.push(left.splice(i, 1)[0]);
  }
  return [[...out, ...left].join("\\n"), ""];
}"""


def form_values(cfg: config.Config | None) -> list:
    """Each form field's value in a validated config; None each where there is none (the preset does not
    validate: the form keeps what it shows)."""
    return [config.get(cfg, key) for key in FORM] if cfg else [None] * len(FORM)


def preset_value(launcher: Launcher, name: str, text: str, key: str) -> object:
    """What the preset itself (no overrides) gives KEY; None where it does not validate."""
    try:
        return config.get(launcher.validate(name, text), key)
    except ConfigError:
        return None


def form_field(key: str, value: object = None) -> gr.components.Component:
    """The field for a config key: a choice for a Literal, numbers for numbers, a list of rewards."""
    hint, doc = config.all_keys()[key]
    shown = {"value": value} if value is not None else {}
    info = doc.split(";")[0]  # its first clause: the whole doc is in the field reference
    label, info = key, info if len(info) < 64 else info[:61].rsplit(" ", 1)[0] + "…"
    elem_id = "train-form-" + key.replace(".", "-").replace("_", "-")
    if key == "model.name":
        return gr.Dropdown(MODELS, label=label, info="tiny, a hub id or a local checkpoint folder", scale=2,
                           allow_custom_value=True, elem_id=elem_id, **shown)  # wide enough for a hub id
    if key == "grpo.rewards":
        return gr.Dropdown(sorted(REWARDS), multiselect=True, allow_custom_value=True, label=label,
                           info="each a name, or package.module:function", elem_id=elem_id, **shown)
    if typing.get_origin(hint) is typing.Literal:
        return gr.Dropdown([str(c) for c in typing.get_args(hint)], label=label, info=info, elem_id=elem_id,
                           **shown)
    if hint in (int, float):
        return gr.Number(label=label, info=info, precision=0 if hint is int else None, elem_id=elem_id,
                         **shown)
    return gr.Textbox(label=label, info=info, elem_id=elem_id, **shown)


def read_upload(path: str | None) -> tuple:
    """(YAML text, run name, no preset picked) of an uploaded preset file: the Preset list no longer names the
    one it replaced. A file that is not UTF-8 text is refused in one line."""
    if not path:
        return gr.skip(), gr.skip(), gr.skip()
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise gr.Error(f"{Path(path).name} is not UTF-8 text: upload the preset's .yaml file") from None
    stem = Path(path).stem
    return text, stem if NAME_OK.match(stem) else "preset", None


def _escaped(error: Exception) -> str:
    """An error inside HTML: a '<stream end>' or '</answer>' it quotes stays text."""
    return html.escape(str(error), quote=False)


def check(launcher: Launcher, name: str, text: str, overrides: str,
          gpu: bool | None = None) -> tuple[str, str, config.Config | None]:
    """(validation message, resolved config with docs, the config) for the editor's current text: every problem
    found, one line each (and no config), or the summary of a valid preset with what it will not do on this
    machine. One validation for a valid preset; the search for every problem only where it is not."""
    try:
        cfg = launcher.validate(name, text, overrides_of(overrides))
    except ConfigError:
        problems = launcher.problems(name, text, overrides_of(overrides))
        head = "" if len(problems) == 1 else f"{len(problems)} problems:<br>"
        return ("<span class='rrft-bad'>" + head + "<br>".join(f"✗ {_escaped(p)}" for p in problems) + "</span>",
                "", None)
    stages = " → ".join(cfg.run.stages)
    summary = (f"<span class='rrft-ok'>✓ valid</span> · stages {stages} · model `{cfg.model.name}` "
               f"({cfg.model.finetune}) · task {cfg.data.task}")
    if cfg.model.name != "tiny" and not (catalog.has_gpu() if gpu is None else gpu):
        summary += (f"<br><span class='rrft-warn'>⚠ no CUDA GPU on this machine: `{cfg.model.name}` will not train "
                    "here in any useful time (a step takes minutes on a CPU). Launch it where a GPU is, or start "
                    "with the demo preset (the tiny model)</span>")
    if cfg.run.processes > 1:
        from ..ranks import split

        shares = ", ".join(f"{stage} {b.per_device} x {b.processes} x {b.accumulation}"
                           for stage, b in ((st, split(cfg, st)) for st in cfg.run.stages))
        summary += f" · {cfg.run.processes} processes ({cfg.run.accelerate_config or 'ddp'}): batch {shares}"
    summary += "".join(f"<br><span class='rrft-warn'>⚠ {w}</span>" for w in logging_warnings(cfg))
    return summary, config.describe(cfg), cfg


def logging_warnings(cfg: config.Config) -> list[str]:
    """What a stage will not log with its logging_steps (or GRPO's samples_every) past its max_steps: the tracker
    logs a stage's last step whatever logging_steps says, so the plots get one point, and rollouts are logged
    only at logged steps that are multiples of samples_every."""
    out = []
    for stage in cfg.run.stages:
        st = getattr(cfg, stage)
        if st.max_steps <= 0:
            continue
        if st.logging_steps > st.max_steps:
            out.append(f"{stage}.logging_steps={st.logging_steps} exceeds {stage}.max_steps={st.max_steps}: only "
                       f"its last step is logged (one point per plot); lower {stage}.logging_steps")
        if stage == "grpo" and not any(s % st.logging_steps == 0 or s == st.max_steps
                                       for s in range(st.samples_every, st.max_steps + 1, st.samples_every)):
            out.append(f"grpo.samples_every={st.samples_every} with grpo.logging_steps={st.logging_steps} and "
                       f"max_steps={st.max_steps} logs no rollouts (the Rollouts tab stays empty)")
    return out


def load_preset(path: str) -> tuple[str, str]:
    """(YAML text, default run name) of a preset file chosen in the dropdown."""
    if not path or not Path(path).is_file():
        return "", ""
    return Path(path).read_text(), Path(path).stem


def show_command(launcher: Launcher, picked: str | None, name: str, text: str, overrides: str) -> tuple[str, str]:
    """The command that runs the editor's preset from a terminal: the picked preset file itself when its text
    is unchanged, else a copy saved under RUNS/.studio/commands (not offered in the preset list: only a launch
    adds a preset there)."""
    try:
        launcher.validate(name, text, overrides_of(overrides))
    except ConfigError as e:
        return "", f"<span class='rrft-bad'>✗ {_escaped(e)}</span>"
    # the editor may drop the file's last newline: the text counts as unchanged
    if picked and Path(picked).is_file() and Path(picked).read_text().strip() == text.strip():
        preset, said = Path(picked), f"The preset `{picked}` as it is"
    else:
        preset = launcher.studio_dir / "commands" / f"{name}.yaml"
        preset.parent.mkdir(parents=True, exist_ok=True)
        runs.write_atomic(preset, text)
        said = f"Saved the edited preset to `{preset}`"
    cmd = command_text(launcher.train_command(preset, overrides_of(overrides)))
    return cmd, f"{said}; the command runs it from a terminal (in `{launcher.cwd}`)."


def launch(launcher: Launcher, name: str, text: str, overrides: str) -> tuple[str, str, int]:
    try:
        started = launcher.launch(name, text, overrides_of(overrides))
    except ConfigError as e:
        return "", f"<span class='rrft-bad'>✗ not launched: {_escaped(e)}</span>", 0
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


def preflight(launcher: Launcher, name: str, text: str, overrides: str, request: gr.Request | None = None):
    """The memory preflight of the editor's preset if it validates (memory.py); nothing for one that does not."""
    given = overrides_of(overrides)
    try:
        launcher.validate(name, text, given)
    except ConfigError:
        return ""
    found = memory.verdict(launcher, text, given, request.session_hash if request else None)
    return gr.skip() if found is None else found


def build(launcher: Launcher, presets_dir: Path, tab: gr.Tab, page: gr.Blocks | None = None) -> gr.State:
    """Lay out the tab; returns the pid of the last launch, which the monitor follows."""
    choices = catalog.presets(presets_dir, launcher.runs_dir)  # the demo first where there is no GPU
    first = choices[0][1] if choices else None
    text0, name0 = load_preset(first)
    verdict0, _, cfg0 = check(launcher, name0, text0, "") if text0 else ("", "", None)
    initial = form_values(cfg0)
    if text0:  # its estimate is ready when the first page asks
        threading.Thread(target=lambda: preflight(launcher, name0, text0, ""), daemon=True).start()
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                preset = gr.Dropdown(choices, value=first, label="Preset", scale=3, elem_id="train-preset")
                upload = gr.UploadButton("Upload a preset (.yaml)", file_types=[".yaml", ".yml"], size="md",
                                         scale=1, min_width=150, elem_id="train-upload")
                name = gr.Textbox(name0, label="Run name", info="the run folder is NAME-<time>", scale=2,
                                  elem_id="train-name")
            with gr.Accordion("Common settings: a change here is an override line below", open=True):
                fields_form = []
                for start in range(0, len(FORM), 4):
                    with gr.Row():
                        fields_form += [form_field(key, value) for key, value in
                                        zip(FORM[start:start + 4], initial[start:start + 4])]
            editor = gr.Code(text0, language="yaml", label="Preset (YAML): only what differs from the defaults",
                             lines=18, max_lines=30, interactive=True, wrap_lines=True, elem_id="train-editor")
            verdict = gr.Markdown(verdict0, elem_id="train-validation")
            memory_line = gr.Markdown(elem_id="train-preflight")
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
            changes = [gr.Textbox(visible=False) for _ in range(len(FORM) + 1)]  # the form's edits; the last: Processes
        with gr.Column(scale=2):
            with gr.Accordion("Field reference: every key, its type, default and meaning", open=True):
                search = gr.Textbox(placeholder="filter, e.g. lr or reward", show_label=False,
                                    elem_id="train-fields-search")
                fields = gr.Dataframe(field_rows(), headers=["key", "default", "type · meaning"], wrap=True,
                                      max_height=460, interactive=False, column_widths=["38%", "18%", "44%"],
                                      datatype=["html", "str", "str"],
                                      elem_id="train-fields")
            with gr.Accordion("Resolved config (defaults + preset + overrides), documented", open=False):
                resolved = gr.Code(language="yaml", interactive=False, lines=12, max_lines=40)
    pid = gr.State(0)
    poll = gr.Timer(2.0, active=False)  # follows the last launch until it has a run directory

    def estimated(name_, text, more, request: gr.Request):
        return preflight(launcher, name_, text, more, request)

    def checked(name_, text, more, request: gr.Request):
        """The verdict, the resolved config and, for a valid preset, the form's values (one validation)."""
        message, described, cfg = check(launcher, name_, text, more)
        if cfg is None:
            return message, described, *[gr.skip()] * len(FORM)
        memory.note(request.session_hash, text, overrides_of(more))  # this page's newest preset: its preflight follows
        return message, described, *form_values(cfg)

    inputs = [name, editor, overrides]

    def set_field(key):
        return lambda value, name_, text: setting_edit(key, value, preset_value(launcher, name_, text, key))

    # Each field's edit travels through its own hidden box, so two fields answering at once cannot take each
    # other's place (a dropdown reports its value twice on a pick: on the pick, and when it loses the focus).
    for key, field, change in zip(FORM, fields_form, changes):
        # a number is written when the user leaves the field or presses Enter, not at each keystroke
        for trigger in ((field.blur, field.submit) if isinstance(field, gr.Number) else (field.input,)):
            trigger(set_field(key), [field, name, editor], change, show_progress="hidden").then(
                None, [change, overrides], [overrides, change], js=MERGE, show_progress="hidden")
    upload.upload(read_upload, upload, [editor, name, preset])
    tab.select(lambda current: gr.Dropdown(choices=catalog.presets(presets_dir, launcher.runs_dir), value=current),
               preset, preset)  # presets edited and saved since the page was built
    # the preflight line is the previous preset's until the new one's estimate comes: say so at once. On a pick
    # (select), not on input, which the dropdown also sends when it loses the focus: typed edits were replaced
    # by the preset's text again.
    preset.select(lambda p: (*load_preset(p), "**Memory preflight:** estimating…"), preset, [editor, name, memory_line])
    # One queue for the three: checks run in the order of the edits, so a slow earlier check (the first one
    # imports the config machinery) cannot land after a later one and show a stale verdict. Then the memory
    # preflight of the newest valid one.
    for source in (editor, name, overrides):
        source.change(checked, inputs, [verdict, resolved, *fields_form], trigger_mode="always_last",
                      show_progress="hidden", concurrency_id="train-check", concurrency_limit=1).then(
            estimated, inputs, memory_line, show_progress="minimal", concurrency_id="train-preflight",
            concurrency_limit=1)
    if page is not None:
        page.load(estimated, inputs, memory_line, show_progress="minimal")
    for field in (processes, strategy):  # the two fields are the overrides' run.processes / run.accelerate_config
        field.change(processes_edit, [processes, strategy], changes[-1], show_progress="hidden").then(
            None, [changes[-1], overrides], [overrides, changes[-1]], js=MERGE, show_progress="hidden")
    search.change(field_rows, search, fields, show_progress="hidden")
    show.click(lambda *a: show_command(launcher, *a), [preset, *inputs], [command, message], api_name="show_command")
    go.click(lambda *a: launch(launcher, *a), inputs, [command, message, pid], api_name="launch").then(
        lambda p: (launch_progress(launcher, p), gr.Timer(active=bool(p))), pid, [progress, poll])
    poll.tick(lambda p: launch_progress(launcher, p), pid, progress, show_progress="hidden")
    return pid
