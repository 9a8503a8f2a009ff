"""The studio as an attacker on the network meets it: real `python app.py` processes, driven over HTTP with
httpx. What a form field names stays in the studio's folders, validation imports no user code, a password
shows nothing but the login form, files are served inline only for the kinds the studio shows, an upload
request is limited as a whole, and a non-loopback address needs a password."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, free_port
from rrft_studio.config import ConfigError
from rrft_studio.studio.folders import Folders

ZEN = "Beautiful is better than ugly"  # what `import this` prints
PRESET = "method: cot_sft\nmodel:\n  tiny: {hidden_size: 64, num_layers: 2}\n"
GRPO = "run: {stages: [grpo]}\nmodel: {tiny: {hidden_size: 64, num_layers: 2}}\n"


def _folders(root: Path) -> dict[str, Path]:
    folders = {name: root / name for name in ("runs", "presets", "data", "models", "cache", "rewards")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    (folders["presets"] / "p.yaml").write_text(PRESET)
    (folders["data"] / "train.json").write_text("[]")
    marker = root / "imported"
    (folders["rewards"] / "myrewards.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('yes')\n\n"
        "def bonus(completions, **kwargs):\n    return [1.0 for _ in completions]\n")
    run = folders["runs"] / "r-1"
    run.mkdir()
    (run / "config.yaml").write_text("run: {stages: [sft]}\n")
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    (run / "evil.html").write_text("<script>document.title = 'owned'</script>")
    (run / "report.json").write_text('{"accuracy": 0.5}')
    (run / "weights.bin").write_bytes(b"\0" * 64)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(run / "plot.png")
    return folders


class Studio:
    def __init__(self, root: Path, *extra: str, **popen):
        self.folders = _folders(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "app.log"
        cmd = [sys.executable, "app.py", "--port", str(self.port), "--device", "cpu", "--max-upload-mb", "1",
               *(x for k in ("runs", "presets", "data", "models", "cache") for x in (f"--{k}-dir", str(self.folders[k]))),
               *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, **popen)
        for _ in range(400):
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                assert self.proc.poll() is None, self.log()
                time.sleep(0.25)
        raise AssertionError("the studio did not start")

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def call(client: httpx.Client, url: str, api: str, *data) -> tuple[str, list]:
    """Run one of the studio's events as any HTTP client can: ('complete', outputs) or ('error', message)."""
    started = client.post(f"{url}/gradio_api/call/{api}", json={"data": list(data)})
    assert started.status_code == 200, started.text
    stream = client.get(f"{url}/gradio_api/call/{api}/{started.json()['event_id']}", timeout=120).text
    event = [line.split(": ", 1)[1] for line in stream.splitlines() if line.startswith("event: ")][-1]
    payload = [line.split(": ", 1)[1] for line in stream.splitlines() if line.startswith("data: ")][-1]
    return event, json.loads(payload)


@pytest.fixture(scope="module")
def open_studio(tmp_path_factory):
    """No password, no rewards folder."""
    studio = Studio(tmp_path_factory.mktemp("open"))
    yield studio
    studio.close()


@pytest.fixture(scope="module")
def locked_studio(tmp_path_factory):
    """A password, and a rewards folder."""
    root = tmp_path_factory.mktemp("locked")
    studio = Studio(root, "--auth", "alice:s3cret", "--rewards-dir", str(root / "rewards"))
    yield studio
    studio.close()


@pytest.fixture
def alice(locked_studio):
    with httpx.Client() as client:
        assert client.post(locked_studio.url + "/login", data={"username": "alice", "password": "s3cret"}).status_code == 200
        yield client


def test_a_public_address_needs_a_password():
    done = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--port", str(free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--insecure-no-auth" in done.stderr


def test_before_login_only_the_login_form(locked_studio):
    url = locked_studio.url
    page = httpx.get(url + "/")
    assert page.status_code == 200 and 'type="password"' in page.text
    for leak in ("gradio_config", "dependencies", "p.yaml", "presets", "hidden_size", "api_name", "launch"):
        assert leak not in page.text, leak
    refused = [httpx.get(url + path) for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json",
                                                  "/gradio_api/heartbeat/x", "/gradio_api/queue/data?session_hash=x",
                                                  "/theme.css", "/gradio_api/app_id", "/monitoring/x",
                                                  f"/gradio_api/file={locked_studio.folders['runs']}/r-1/report.json")]
    refused += [httpx.post(url + path, json={"session_hash": "x", "fn_index": 0, "event_id": "x"})
                for path in ("/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/queue/join", "/gradio_api/upload",
                             "/gradio_api/call/show_command")]
    assert [r.status_code for r in refused] == [401] * len(refused), [(r.url.path, r.status_code) for r in refused]
    assert httpx.post(url + "/login", data={"username": "alice", "password": "wrong"}).status_code == 400


def test_after_login_the_studio(alice, locked_studio):
    page = alice.get(locked_studio.url + "/")
    assert "gradio_config" in page.text and alice.get(locked_studio.url + "/config").status_code == 200


def test_files_are_shown_inline_only_for_the_kinds_the_studio_shows(open_studio):
    run = open_studio.folders["runs"] / "r-1"

    def get(name):
        return httpx.get(f"{open_studio.url}/gradio_api/file={run / name}")

    for name, kind in (("plot.png", "image/png"), ("report.json", "application/json")):
        answer = get(name)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert answer.headers["content-disposition"] == "inline" and answer.headers["x-content-type-options"] == "nosniff"
    for name in ("evil.html", "weights.bin"):  # an .html page in the runs folder must not run in the studio's origin
        answer = get(name)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
        assert answer.headers["content-disposition"].startswith("attachment")
    assert httpx.get(f"{open_studio.url}/gradio_api/file={open_studio.folders['presets'] / 'p.yaml'}").status_code == 403


def test_an_upload_request_is_limited_as_a_whole(open_studio):
    part = b"x" * 600_000  # each under the 1 MB limit, three together over it
    one = httpx.post(open_studio.url + "/gradio_api/upload", files=[("files", ("a.png", part))])
    assert one.status_code == 200
    three = httpx.post(open_studio.url + "/gradio_api/upload", files=[("files", (f"{i}.png", part)) for i in range(3)])
    assert three.status_code == 413


@pytest.mark.parametrize("override, words", [
    ("run.name=../../escaped", "run.name='../../escaped' must be a plain folder name"),
    ("data.train_file=/etc/hostname", "data.train_file: '/etc/hostname' is outside the studio's folders"),
    ("data.eval_files=[/etc/hostname]", "data.eval_files: '/etc/hostname' is outside"),
    ("data.image_root=/etc", "data.image_root: '/etc' is outside"),
    ("run.cache_dir=/tmp/elsewhere-cache", "run.cache_dir: '/tmp/elsewhere-cache' is outside"),
    ("run.runs_dir=/tmp/elsewhere-runs", "the studio launches runs into its runs folder"),
    ("model.name=/etc", "model.name: '/etc' is outside"),
    ("model.name=../../models", "model.name: '../../models' is outside"),
])
def test_launch_refuses_paths_outside_the_studio_folders(open_studio, override, words):
    with httpx.Client() as client:
        event, (command, message, pid) = call(client, open_studio.url, "launch", "p", PRESET, override)
    assert event == "complete" and words in message and "not launched" in message and not pid, message
    assert not list(Path("/tmp").glob("escaped-*")) and not Path("/tmp/elsewhere-cache").exists()


def test_paths_inside_the_studio_folders_are_accepted(open_studio):
    data = open_studio.folders["data"]
    with httpx.Client() as client:
        event, (command, message) = call(client, open_studio.url, "show_command", None, "p", PRESET,
                                         f"data.train_file={data / 'train.json'}\nrun.cache_dir={open_studio.folders['cache']}")
    assert event == "complete" and command.startswith("rrft-studio train"), message


def test_show_command_with_several_processes(open_studio):
    """The Train tab's Processes and Sharding fields are run.processes / run.accelerate_config: the command
    launches them through accelerate on the studio's machine."""
    with httpx.Client() as client:
        event, (command, message) = call(client, open_studio.url, "show_command", None, "p", PRESET,
                                         "run.processes=2\nrun.accelerate_config=ddp")
    assert event == "complete" and command.startswith("rrft-studio train --processes 2 --accelerate-config ddp "), \
        (command, message)


def test_generate_writes_only_into_the_data_folder(open_studio, tmp_path):
    outside = tmp_path / "elsewhere"
    with httpx.Client() as client:
        _, (refused,) = call(client, open_studio.url, "generate_data", "counting", 2, 0, "train", str(outside))
        _, (escaped,) = call(client, open_studio.url, "generate_data", "counting", 2, 0, "train",
                             str(open_studio.folders["data"] / ".." / "escaped"))
        _, (done,) = call(client, open_studio.url, "generate_data", "counting", 2, 0, "train",
                          str(open_studio.folders["data"] / "counting"))
    assert "outside the studio's folders" in refused and not outside.exists()
    assert "outside" in escaped and not (open_studio.folders["data"].parent / "escaped").exists()
    assert "wrote 2 records" in done and (open_studio.folders["data"] / "counting" / "train.json").is_file()


def test_without_a_rewards_folder_no_user_reward(open_studio):
    with httpx.Client() as client:
        for reward in ("this:s", "os:system"):
            _, (command, message) = call(client, open_studio.url, "show_command", None, "g", GRPO,
                                         f"grpo.rewards=[{reward}]\ngrpo.reward_weights=[1]")
            assert command == "" and "--rewards-dir" in message and "user code" in message, message
    assert ZEN not in open_studio.log()  # `import this` never ran in the studio


def test_rewards_come_from_the_rewards_folder_unimported(alice, locked_studio):
    url, rewards = locked_studio.url, locked_studio.folders["rewards"]
    _, (command, message) = call(alice, url, "show_command", None, "g", GRPO, "grpo.rewards=[myrewards:bonus]\ngrpo.reward_weights=[1]")
    assert f"--rewards-dir {rewards}" in command, message
    assert not (rewards.parent / "imported").exists()  # checked by reading the file, not by importing it
    for reward, words in (("os:system", "no module os in the rewards folder"), ("this:s", "no module this"),
                          ("myrewards:missing", "defines no 'missing'")):
        _, (command, message) = call(alice, url, "show_command", None, "g", GRPO, f"grpo.rewards=[{reward}]\ngrpo.reward_weights=[1]")
        assert command == "" and words in message, message
    assert ZEN not in locked_studio.log()


@pytest.mark.parametrize("checkpoint", ["/etc", "base:/tmp", "../../secret-model", "~/.ssh"])
def test_chat_loads_only_the_studio_checkpoints(open_studio, checkpoint):
    with httpx.Client() as client:
        event, outputs = call(client, open_studio.url, "chat_reply", checkpoint, False, 8, 0.0, 0.9, 50)
    assert event == "complete" and "outside the studio's folders" in outputs[-1], outputs
    assert not _model_workers(open_studio.proc.pid)


def _model_workers(pid: int) -> list[str]:
    """Command lines of the studio's child processes that load models (multiprocessing spawns them)."""
    return [c for c in _children(pid) if "spawn_main" in c]


def test_compare_loads_only_the_studio_checkpoints(open_studio):
    with httpx.Client() as client:
        event, message = call(client, open_studio.url, "compare", ["/etc", "base:/tmp"], None, "q", "", True, 8, 0.0, False)
    assert event == "error" and not _model_workers(open_studio.proc.pid), message
    # Refused before the studio's own check: the picker takes only the checkpoints it lists (none, to this client).
    assert message["error"] == "Value: '/etc' (type: <class 'str'>) is not in the list of choices: []", message


@pytest.mark.parametrize("api, data", [
    ("export", ["/etc", "merged", "saved", "../../evil"]),  # a source outside, a folder name that climbs out
    ("export", ["base:/tmp", "merged", "saved", "x"]),
    ("serve", ["/etc"]),
    ("serve", ["~/.ssh"]),
    ("serve_stop", ["1"]),  # a pid this studio did not start
    ("compared", ["/etc", "/tmp"]),  # the config diff
    ("save_notes", ["../outside", "evil", "note"]),
])
def test_export_serve_config_diff_and_notes_take_only_what_the_studio_lists(open_studio, api, data):
    """The Export & serve tab, the config diff and the run notes over HTTP: a value the studio did not list is
    refused (the pickers take only their choices, none to this client), and nothing is written, started or
    signalled."""
    before = sorted(p.relative_to(open_studio.folders["runs"].parent) for p in open_studio.folders["runs"].parent.rglob("*"))
    with httpx.Client() as client:
        event, message = call(client, open_studio.url, api, *data)
    assert event == "error", (event, message)
    assert "is not in the list of choices: []" in message["error"], message
    after = sorted(p.relative_to(open_studio.folders["runs"].parent) for p in open_studio.folders["runs"].parent.rglob("*"))
    assert after == before  # no export folder, no notes.json, no log of a started server
    assert not (ROOT / "evil").exists()
    assert not [c for c in _children(open_studio.proc.pid) if " serve " in c or " export " in c]


def _children(pid: int) -> list[str]:
    """Command lines of the studio's child processes."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return found


def _confined(tmp_path: Path) -> Folders:
    """Studio folders under tmp_path, each beside a folder outside them."""
    for name in ("runs", "presets", "data", "cache", "outside"):
        (tmp_path / name).mkdir()
    (tmp_path / "outside" / "train.json").write_text("[]")
    return Folders.create("runs", "presets", "data", "cache", cwd=tmp_path)


def test_a_sibling_folder_that_shares_the_name_is_outside(tmp_path):
    folders = _confined(tmp_path)
    (tmp_path / "data-evil").mkdir()
    (tmp_path / "data-evil" / "train.json").write_text("[]")
    for value in (str(tmp_path / "data-evil" / "train.json"), "data-evil/train.json", "data/../data-evil"):
        with pytest.raises(ConfigError, match=f"data.train_file: '{value}' is outside the studio's folders"):
            folders.confine(value, "data.train_file", ("data",))
    (tmp_path / "runs-evil" / "r-1").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is outside the studio's folders"):
        folders.checkpoint(f"base:{tmp_path / 'runs-evil' / 'r-1'}")
    assert folders.confine("data/train.json", "data.train_file", ("data",)) == tmp_path / "data" / "train.json"


def test_a_link_in_a_studio_folder_that_leads_out_is_outside(tmp_path):
    folders = _confined(tmp_path)
    (tmp_path / "data" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "data" / "train.json").symlink_to(tmp_path / "outside" / "train.json")
    for value in ("data/link/train.json", str(tmp_path / "data" / "link"), "data/train.json"):
        with pytest.raises(ConfigError, match=f"data.train_file: '{value}' is outside the studio's folders"):
            folders.confine(value, "data.train_file", ("data",))
    (tmp_path / "outside" / "model").mkdir()
    (tmp_path / "runs" / "r-1").symlink_to(tmp_path / "outside")
    for value in (str(tmp_path / "runs" / "r-1" / "model"), f"base:{tmp_path / 'runs' / 'r-1'}"):
        with pytest.raises(ConfigError, match="is outside the studio's folders"):
            folders.checkpoint(value)
