"""The Export & serve tab and Compare's config diff in headless Chromium, as a user would: export the finished
micro run to a merged folder (and be refused that folder a second time), serve it and ask the server with the
`openai` client, stop it, leave a server running and close the studio (which ends it), and read what two runs'
configs differ in. Each test keeps a screenshot."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import free_port  # tests/conftest.py, the suite's own

from .conftest import ROOT
from .test_studio_browser import choose, open_tab


def finished_run(runs_dir):
    """The session's finished micro run (SFT then GRPO)."""
    from rrft_studio import runs

    return next(p for p in sorted(runs_dir.iterdir()) if p.name.startswith("micro-")
                and runs.is_done(p, "grpo") and runs.read_status(p).get("state") == "finished")


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (a server's model worker)."""
    found = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat))
    return found


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def type_name(page, text: str) -> None:
    """Type the export's folder name; again if the answer to picking the run (which suggests a name) arrived after
    the typing and replaced it."""
    for _ in range(5):
        page.fill("#export-name input", text)
        page.wait_for_timeout(700)
        if page.input_value("#export-name input") == text:
            return
    raise AssertionError("the folder name did not stay typed")


def test_export_a_finished_run_merged(page, shot, studio):
    run = finished_run(studio["runs_dir"])
    exports = studio["runs_dir"] / "exports"
    open_tab(page, "Export & serve")
    page.wait_for_function("document.querySelector('#export-source input').value.length > 0")
    choose(page, "export-source", f"{run.name} (its last finished stage, grpo)")
    page.wait_for_function(f"document.querySelector('#export-name input').value === '{run.name}-grpo-merged'")
    assert "lora unavailable: run" in page.inner_text("#export-unavailable")  # a full fine-tune: no adapters
    type_name(page, "micro-merged")
    page.click("#export-go")
    page.wait_for_selector("#export-message:has-text('Exported')", timeout=180_000)
    out = (exports / "micro-merged").resolve()
    result = page.inner_text("#export-result")
    assert f"Written: {out}" in result and "config.json" in result and "model.safetensors" in result, result
    card = page.input_value("#export-card textarea")
    assert card.startswith("---\nlicense: apache-2.0") and f"# {run.name}" in card
    assert (out / "config.json").is_file() and (out / "README.md").read_text() == card
    shot("export")

    page.click("#export-go")  # the same folder again: refused, nothing touched
    page.wait_for_selector("#export-message:has-text('already exists')")
    message = page.inner_text("#export-message")
    assert message.startswith("✗ 'micro-merged' already exists in the exports folder") and "\n" not in message.strip()
    assert sorted(p.name for p in exports.iterdir()) == ["micro-merged"]


def test_serve_a_run_call_it_and_stop_it(page, shot, studio, cache_dir):
    from openai import OpenAI

    run = finished_run(studio["runs_dir"])
    open_tab(page, "Export & serve")
    page.wait_for_function("document.querySelector('#export-source input').value.length > 0")
    choose(page, "export-source", f"{run.name} (its last finished stage, grpo)")
    page.click("#serve-go")
    page.wait_for_selector("#serve-message:has-text('started')")
    page.wait_for_selector("#serve-state:has-text('ready')", timeout=240_000)
    state = page.inner_text("#serve-state")
    url, model, pid = re.search(r"Base URL (\S+) · model id (\S+) · pid (\d+)", state).groups()
    assert model == f"{run.name}/grpo" and re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url), state
    calls = page.inner_text("#serve-calls")
    assert f"curl {url}/chat/completions" in calls and "from openai import OpenAI" in calls
    assert f'base_url="{url}"' in calls and f'"model": "{model}"' in calls

    image = next(cache_dir.glob("data/counting-*/images/*/*.png"))
    data_url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    client = OpenAI(base_url=url, api_key="unused")
    reply = client.chat.completions.create(model=model, max_tokens=8, temperature=1.0, messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                     {"type": "text", "text": "How many objects are there?"}]}])
    assert reply.model == model and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens >= 1
    shot("export-serve")

    worker = children(int(pid))  # the model's worker process
    page.click("#serve-stop")
    page.wait_for_selector("#serve-state:has-text('stopped')", timeout=60_000)
    assert page.inner_text("#serve-message").startswith(f"stopped '{model}' (pid {pid})")
    assert gone(int(pid), timeout=1), f"the server (pid {pid}) is still running"
    assert all(gone(w) for w in worker), f"its worker {worker} outlived it"
    shot("export-serve-stopped")


def test_closing_the_studio_stops_its_servers(browser, studio):
    """A second studio over the same runs folder starts a server; a polite stop of the studio (SIGTERM, as a
    service manager sends it) ends that server and its worker too."""
    run = finished_run(studio["runs_dir"])
    port, log = free_port(), studio["root"] / "app-closing.log"
    app = subprocess.Popen([sys.executable, "app.py", "--runs-dir", str(studio["runs_dir"]), "--presets-dir",
                            str(studio["root"] / "presets"), "--data-dir", str(studio["data_dir"]), "--port", str(port),
                            "--device", "cpu"], cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                assert app.poll() is None, log.read_text()
                time.sleep(0.25)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"http://127.0.0.1:{port}/")
        open_tab(page, "Export & serve")
        page.wait_for_function("document.querySelector('#export-source input').value.length > 0")
        choose(page, "export-source", f"{run.name} · after sft")
        page.click("#serve-go")
        page.wait_for_selector("#serve-state:has-text('ready')", timeout=240_000)
        pid = int(re.search(r"pid (\d+)", page.inner_text("#serve-state")).group(1))
        assert f"model id {run.name}/sft" in page.inner_text("#serve-state")
        worker = children(pid)
        context.close()
        app.send_signal(signal.SIGTERM)
        assert app.wait(60) == 0, log.read_text()[-3000:]
        assert gone(pid, timeout=1), f"the server (pid {pid}) outlived the studio"
        assert all(gone(w) for w in worker), f"its worker {worker} outlived the studio"
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if app.poll() is None:
            app.kill()


def test_compare_shows_what_two_configs_differ_in(page, shot, studio):
    import yaml

    from rrft_studio import runs

    run = finished_run(studio["runs_dir"])
    other = studio["runs_dir"] / "micro-hotter-1"  # the same run, sampled hotter in GRPO
    tree = yaml.safe_load(runs.config_path(run).read_text())
    before = tree["grpo"]["temperature"]
    tree["grpo"]["temperature"] = 0.25 if before != 0.25 else 0.5
    other.mkdir()
    try:
        runs.config_path(other).write_text(yaml.safe_dump(tree, sort_keys=False))
        runs.status_path(other).write_text('{"state": "finished"}')
        old = runs.config_path(run).stat().st_mtime - 60
        os.utime(runs.config_path(other), (old, old))  # the oldest run: the newest stays the other tests' default
        open_tab(page, "Compare")
        page.get_by_role("tab", name="Configs: what differs").click()
        page.wait_for_function("document.querySelector('#config-diff-b input').value.length > 0")
        choose(page, "config-diff-a", run.name)
        choose(page, "config-diff-b", other.name)
        page.wait_for_selector("#config-diff-summary:has-text('1 key differs')")
        assert re.search(r"1 key differs; \d+ keys are equal\.", page.inner_text("#config-diff-summary"))
        page.wait_for_selector("#config-diff-table [role=gridcell]:visible:has-text('grpo.temperature')")
        cells = [c.strip() for c in page.locator("#config-diff-table [role=gridcell]:visible").all_inner_texts()]
        assert cells == ["grpo.temperature", str(before), str(tree["grpo"]["temperature"])], cells
        shot("compare-config-diff")
    finally:
        shutil.rmtree(other)
