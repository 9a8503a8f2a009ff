"""The Export & serve tab's helpers, without a browser: every refusal of an export or a server as one line before
anything is written or started, a failed export leaving nothing, the servers' states (starting, ready, exited,
stopped), and Stop (or the studio closing) ending exactly the processes it started."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from rrft_studio import config, runs
from rrft_studio.config import ConfigError
from rrft_studio.studio import export_tab
from rrft_studio.studio.folders import Folders
from rrft_studio.studio.launcher import Launcher
from rrft_studio.studio.serving import Servers


def _run(runs_dir: Path, name: str, finished: tuple[str, ...] = ("sft", "grpo"), overrides=(), state="finished"):
    """A run directory as the CLI leaves it (its resolved config.yaml, status), with the given stages done."""
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    runs.write_atomic(runs.config_path(run_dir), config.dump(config.load(None, list(overrides))))
    runs.status_path(run_dir).write_text(json.dumps({"state": state}))
    for stage in finished:
        runs.final_dir(run_dir, stage).mkdir(parents=True)
        (runs.final_dir(run_dir, stage) / "config.json").write_text("{}")
    return run_dir


@pytest.fixture
def folders(tmp_path) -> Folders:
    (tmp_path / "runs").mkdir()
    return Folders.create(tmp_path / "runs", cwd=tmp_path)


def _one_line(err) -> str:
    text = str(err.value) if hasattr(err, "value") else str(err)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# ---------------------------------------------------------------- export

def test_export_lists_runs_and_their_stages(folders):
    _run(folders.runs, "done-1")
    _run(folders.runs, "young-1", finished=(), state="running")
    labels = dict(export_tab.sources(folders.runs))
    assert set(labels.values()) >= {str(folders.runs / "done-1"), str(runs.final_dir(folders.runs / "done-1", "sft"))}
    by_value = {v: k for k, v in export_tab.sources(folders.runs)}
    assert by_value[str(folders.runs / "done-1")] == "done-1 (its last finished stage, grpo)"
    assert by_value[str(folders.runs / "done-1" / "final" / "sft")] == "done-1 · after sft"
    assert by_value[str(folders.runs / "young-1")].startswith("young-1 (no finished stage")
    assert export_tab.default_source(folders.runs) == str(folders.runs / "done-1")


def test_export_plans_the_cli_command(folders):
    run_dir = _run(folders.runs, "done-1")
    src, out, args = export_tab.plan(folders, str(run_dir), "merged", "saved", "demo")
    assert src.stage == "grpo" and out == folders.runs / "exports" / "demo" and not out.exists()
    assert args == ["export", str(run_dir), "--format", "merged", "--out", str(out)]
    _, _, args = export_tab.plan(folders, str(runs.final_dir(run_dir, "sft")), "merged", "bf16", "demo-sft")
    assert args[1] == str(runs.final_dir(run_dir, "sft")) and args[-2:] == ["--dtype", "bf16"]
    assert export_tab.default_name(src, "merged") == "done-1-grpo-merged"


@pytest.mark.parametrize("case, words", [
    ("no finished stage", "has no finished stage to export: wait for it or resume it"),
    ("outside", "is outside the studio's folders"),
    ("not a run", "is neither a run nor a stage's final checkpoint"),
    ("bad name", "folder name '../escape': use letters, digits"),
    ("empty name", "folder name '': use letters"),
    ("existing", "'taken' already exists in the exports folder"),
    ("lora of a full fine-tune", "lora: run"),
    ("gguf without llama.cpp", "gguf: llama.cpp's converter is not installed here"),
    ("bad dtype", "weights 'fp8': choose as saved, bf16 or fp16"),
    ("nothing picked", "pick a run or a stage's checkpoint to export"),
])
def test_export_refusals_are_one_line(folders, tmp_path, monkeypatch, case, words):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no convert_hf_to_gguf.py on it
    done = _run(folders.runs, "done-1")
    young = _run(folders.runs, "young-1", finished=(), state="running")
    (folders.exports / "taken").mkdir(parents=True)
    (folders.runs / "not-a-run").mkdir()
    value, fmt, dtype, name = str(done), "merged", "saved", "new"
    if case == "no finished stage":
        value = str(young)
    elif case == "outside":
        value = str(tmp_path)
    elif case == "not a run":
        value = str(folders.runs / "not-a-run")
    elif case == "bad name":
        name = "../escape"
    elif case == "empty name":
        name = ""
    elif case == "existing":
        name = "taken"
    elif case == "lora of a full fine-tune":
        fmt = "lora"
    elif case == "gguf without llama.cpp":
        fmt = "gguf"
    elif case == "bad dtype":
        dtype = "fp8"
    else:
        value = ""
    before = sorted(p.name for p in folders.exports.iterdir())
    with pytest.raises(ConfigError) as err:
        export_tab.plan(folders, value, fmt, dtype, name)
    assert words in _one_line(err)
    launcher = Launcher(folders.runs, folders)
    (message, files, card), = list(export_tab.run_export(launcher, value, fmt, dtype, name))  # one answer: nothing ran
    assert message == f"✗ {err.value}" and files == card == ""
    assert sorted(p.name for p in folders.exports.iterdir()) == before  # nothing written


def test_export_says_why_a_format_is_unavailable(folders, tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    full = export_tab.source(folders, str(_run(folders.runs, "full-1")))
    why = export_tab.formats(full)
    assert why["merged"] is None and "LLAMA_CPP_DIR" in why["gguf"]
    assert why["lora"] == "run 'full-1' fine-tuned all weights (model.finetune=full): there are no adapters; pick merged"
    lora = _run(folders.runs, "lora-1", overrides=["model.finetune=lora"])
    assert "run 'lora-1' has no adapters in final/sft/lora: pick merged" in \
        export_tab.formats(export_tab.source(folders, str(lora)))["lora"]
    for stage in ("sft", "grpo"):
        (runs.final_dir(lora, stage) / "lora").mkdir()
        (runs.final_dir(lora, stage) / "lora" / "adapter_config.json").write_text("{}")
    assert export_tab.formats(export_tab.source(folders, str(lora)))["lora"] is None
    converter = tmp_path / "llama.cpp"
    converter.mkdir()
    (converter / "convert_hf_to_gguf.py").write_text("")
    monkeypatch.setenv("LLAMA_CPP_DIR", str(converter))
    assert export_tab.formats(full)["gguf"] is None


def test_a_failed_export_leaves_nothing_and_says_so_in_one_line(folders):
    """The CLI itself fails (a checkpoint that is no model): the page gets its last line, the folder is not there."""
    run_dir = _run(folders.runs, "broken-1", finished=("sft", "grpo"))
    answers = list(export_tab.run_export(Launcher(folders.runs, folders), str(run_dir), "merged", "saved", "broken",
                                         poll_s=0.2))
    message = answers[-1][0]
    assert message.startswith("✗ export failed after ") and "\n" not in message and "Traceback" not in message
    assert all(a[0].startswith("Exporting (merged, weights as saved) into ") for a in answers[:-1])
    assert sorted(p.name for p in folders.exports.iterdir()) == []  # no folder, no temporary one


def test_written_lists_files_with_sizes(tmp_path):
    out = tmp_path / "demo"
    (out / "sub").mkdir(parents=True)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# demo\n")
    (out / "model.safetensors").write_bytes(b"\0" * 2_500_000)
    (out / "sub" / "x.json").write_text("{}")
    files, card = export_tab.written(out)
    assert f"**Written:** `{out}` · 3 files, 2.5 MB" in files
    assert "| `model.safetensors` | 2.5 MB |" in files and "| `sub/x.json` | 2 B |" in files
    assert card.startswith("---\nlicense: apache-2.0")


# ---------------------------------------------------------------- servers

FAKE_SERVER = """import http.server, json, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "fake/sft"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("listening on", port, flush=True)
http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
"""
FAILING_SERVER = "import sys; print('loading'); sys.exit('error: the model folder holds no weights')"


def _wait(servers, server, state: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        now, detail = servers.state(server)
        if now == state:
            return detail
        time.sleep(0.1)
    raise AssertionError(f"never {state}: {servers.state(server)}")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_servers_refuse_what_is_not_the_studios(folders, tmp_path):
    servers = Servers(Launcher(folders.runs, folders), "cpu", cli=[sys.executable, "-c", FAKE_SERVER])
    (folders.runs / "plain").mkdir()
    for value, words in (("", "pick a run or a checkpoint to serve"), (str(tmp_path), "outside the studio's folders"),
                         (str(folders.runs / "plain"), "is neither a run nor a checkpoint")):
        with pytest.raises(ConfigError) as err:
            servers.start(value)
        assert words in _one_line(err)
    assert servers.listed() == []
    assert servers.stop(os.getpid()) == f"pid {os.getpid()} is not a server this studio started: nothing was signalled"


def test_a_server_starts_is_ready_and_stops(folders):
    run_dir = _run(folders.runs, "done-1")
    servers = Servers(Launcher(folders.runs, folders), "cpu", cli=[sys.executable, "-c", FAKE_SERVER])
    server = servers.start(str(run_dir))
    assert server.checkpoint == str(runs.final_dir(run_dir, "grpo")) and server.model_id == "done-1/grpo"
    assert server.command.startswith("rrft-studio ") and f"--port {server.port}" in server.command
    assert "--host 127.0.0.1" in server.command and "--device cpu" in server.command
    with pytest.raises(ConfigError) as err:  # the same checkpoint twice
        servers.start(str(runs.final_dir(run_dir, "grpo")))
    assert f"'done-1/grpo' is already served at {server.url}" in _one_line(err)
    assert _wait(servers, server, "ready") == f"answering at http://127.0.0.1:{server.port}/v1"
    assert server.model_id == "fake/sft"  # as /v1/models names it
    assert servers.stop(server.pid) == f"stopped 'fake/sft' (pid {server.pid})"
    assert servers.state(server)[0] == "stopped" and _gone(server.pid)
    assert "had already ended" in servers.stop(server.pid)


def test_an_exited_server_shows_its_last_line_and_close_stops_the_rest(folders):
    first, second = _run(folders.runs, "a-1"), _run(folders.runs, "b-1")
    failing = Servers(Launcher(folders.runs, folders), "cpu", cli=[sys.executable, "-c", FAILING_SERVER])
    server = failing.start(str(first))
    assert _wait(failing, server, "exited") == "exited with code 1: error: the model folder holds no weights"
    servers = Servers(Launcher(folders.runs, folders), "cpu", cli=[sys.executable, "-c", FAKE_SERVER])
    started = [servers.start(str(first)), servers.start(str(second))]
    assert all(servers.state(s)[0] in ("starting", "ready") for s in started)
    servers.close()  # the studio closing
    assert all(_gone(s.pid) and servers.state(s)[0] == "stopped" for s in started)
