"""The studio in a real browser: headless Chromium (Debian's package) driven by Playwright.

The app runs as `python app.py` in a subprocess on a free port, over a temporary runs folder that already
holds one finished micro run, and a presets folder with the micro preset (plus a longer, SFT-only variant
to stop and resume, and a copy named demo.yaml, the preset the Train tab offers first where there is no GPU);
tests/data is its rewards folder, so the demo copy's own reward is allowed. Screenshots of each tab go to
test-artifacts/screenshots/<tab>.png (or the folder RRFT_STUDIO_SCREENSHOTS names).

Without /usr/bin/chromium (or RRFT_STUDIO_CHROMIUM) these tests are skipped and the terminal summary says
so loudly; with RRFT_STUDIO_REQUIRE_BROWSER=1 (CI) a missing browser stops the run instead.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port  # tests/conftest.py, the suite's own

ROOT = Path(__file__).resolve().parents[2]
MICRO = ROOT / "tests" / "data" / "micro.yaml"
REWARDS = ROOT / "tests" / "data"  # the studio's --rewards-dir: rewards.py, a user's reward module
CHROMIUM = Path(os.environ.get("RRFT_STUDIO_CHROMIUM", "/usr/bin/chromium"))  # Debian's package
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("RRFT_STUDIO_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots")
INSTALL_HINT = (f"no Chromium at {CHROMIUM}: the studio's browser tests did NOT run. Install it with "
                "`apt-get install -y chromium` (as root; or point RRFT_STUDIO_CHROMIUM at one), then run `make test` again")
_skipped: list[str] = []


def _missing() -> str | None:
    if not CHROMIUM.is_file():
        return INSTALL_HINT
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install playwright (the browser tests did NOT run)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("RRFT_STUDIO_REQUIRE_BROWSER") == "1":  # CI: a missing browser is a failure, not a skip
        raise pytest.UsageError(reason)
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))
            _skipped.append(item.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _skipped:
        terminalreporter.write_sep("!", "BROWSER TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"{len(_skipped)} studio browser tests skipped: {_missing()}", red=True)


def _presets(folder: Path, cache_dir: Path) -> Path:
    """micro.yaml (the test preset) and micro_long.yaml (SFT only, long enough to stop mid-way)."""
    folder.mkdir()
    text = MICRO.read_text() + f"run: {{cache_dir: {cache_dir}}}\n"
    (folder / "micro.yaml").write_text(text)
    long = (text.replace("run: {", "run: {stages: [sft], ").replace("sft: {max_steps: 2,", "sft: {max_steps: 300,")
            .replace("save_steps: 1}", "save_steps: 1000}", 1))
    (folder / "micro_long.yaml").write_text(re.sub(r"(?m)^eval: \{", "eval: {enabled: false, ", long))
    # The micro run again, its own reward named as the studio's rewards folder (REWARDS) holds it: the studio
    # validates, preflights and checks it, as it does presets/demo.yaml.
    (folder / "demo.yaml").write_text("# The tests' stand-in for presets/demo.yaml: the micro run.\n"
                                      + text.replace("tests.data.rewards:", "rewards:"))
    return folder


@pytest.fixture(scope="session")
def studio(tmp_path_factory, cache_dir):
    """URL of a running studio over a runs folder holding one finished micro run."""
    root = tmp_path_factory.mktemp("studio")
    runs_dir, presets = root / "runs", _presets(root / "presets", cache_dir)
    done = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "train", str(presets / "micro.yaml"),
                           f"run.runs_dir={runs_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    port = free_port()
    log = open(root / "app.log", "w")
    data_dir = root / "data"
    data_dir.mkdir()
    app = subprocess.Popen([sys.executable, "app.py", "--runs-dir", str(runs_dir), "--presets-dir", str(presets),
                            "--cache-dir", str(cache_dir), "--data-dir", str(data_dir), "--rewards-dir", str(REWARDS),
                            "--port", str(port), "--device", "cpu"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            assert app.poll() is None, (root / "app.log").read_text()
            time.sleep(0.25)
    yield {"url": url, "runs_dir": runs_dir, "root": root, "data_dir": data_dir}
    app.send_signal(signal.SIGINT)
    try:
        app.wait(15)
    except subprocess.TimeoutExpired:
        app.kill()
    _stop_launched(runs_dir)
    log.close()


# An SFT-only run whose greedy replies really have the <think>...</think><answer>...</answer> layout: the
# micro model (hidden 64, 300-token vocabulary) cannot learn it in seconds, this slightly wider one with the
# default 1024-token vocabulary does (80 steps, grid scenes; about 15 s on two CPU cores).
THINK_OVERRIDES = ["run.name=think", "run.stages=[sft]", "eval.enabled=false", "data.sft_samples=40",
                   "data.counting.layout=grid", "sft.max_steps=80", "sft.batch_size=16", "sft.lr=3e-3",
                   "sft.weight_decay=0", "sft.save_steps=1000", "model.tiny.hidden_size=128",
                   "model.tiny.intermediate_size=256", "model.tiny.num_heads=4", "model.tiny.num_kv_heads=2",
                   "model.tiny.vocab_size=1024"]


@pytest.fixture(scope="session")
def think_run(studio) -> Path:
    """A finished run in the studio's runs folder whose checkpoint writes <think> then <answer> (greedy)."""
    runs_dir = studio["runs_dir"]
    before = set(runs_dir.iterdir())
    done = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "train", str(studio["root"] / "presets" / "micro.yaml"),
                           f"run.runs_dir={runs_dir}", *THINK_OVERRIDES], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in runs_dir.iterdir() if p not in before and p.name.startswith("think-")]
    return run_dir


# A GRPO-only micro run that stays live for a few minutes, rewarded by a constant: every group has zero spread,
# which the monitor's banner must say while it runs (about 4 steps a second on two CPU cores).
LIVE_OVERRIDES = ["run.name=constant", "run.stages=[grpo]", "eval.enabled=false", "grpo.max_steps=2000",
                  "grpo.save_steps=100000", "grpo.rewards=[tests.data.rewards:constant_reward]", "grpo.reward_weights=[1]"]


@pytest.fixture
def live_grpo(studio):
    """A live GRPO run in the studio's runs folder whose only reward is constant; stopped after the test."""
    runs_dir = studio["runs_dir"]
    before = set(runs_dir.iterdir())
    log = open(studio["root"] / "live.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "rrft_studio.cli", "train", str(studio["root"] / "presets" / "micro.yaml"),
                             f"run.runs_dir={runs_dir}", *LIVE_OVERRIDES], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    run_dir = None
    for _ in range(480):
        found = [p for p in runs_dir.iterdir() if p not in before and p.name.startswith("constant-")]
        if found and (found[0] / "metrics.jsonl").is_file():
            run_dir = found[0]
            break
        assert proc.poll() is None, (studio["root"] / "live.log").read_text()[-3000:]
        time.sleep(0.25)
    assert run_dir is not None, "the live run logged nothing in two minutes"
    yield run_dir
    proc.send_signal(signal.SIGTERM)  # a stop: it saves a checkpoint and exits
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _stop_launched(runs_dir: Path) -> None:
    """Training processes the tests launched through the studio: end them (they outlive the app on purpose)."""
    from rrft_studio import runs

    for record in runs.read_jsonl(runs_dir / ".studio" / "launches.jsonl"):
        try:
            os.kill(record["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, studio):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(studio["url"])
    page.wait_for_selector("#tab-train", state="attached")
    yield page
    context.close()


@pytest.fixture
def shot(page):
    """shot(tab): a full-page screenshot kept as a test artifact, SCREENSHOTS/<tab>.png."""
    def take(tab: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{tab}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return take
