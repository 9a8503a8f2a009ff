"""The studio under load: 50 runs as long GRPO runs leave them, measured in a real browser.

    python benchmarks/studio_load.py                       # 50 runs x 100,000 metric lines, 20,000 rollout lines
    python benchmarks/studio_load.py --runs 4 --steps 2000 # a small folder, for a quick look
    python benchmarks/studio_load.py --folder /big/disk/studio-load --json results/studio-load.json

It builds a runs folder once (reused while --runs and --steps stay the same): each run has a config, a
status, evaluations with every prediction, metrics.jsonl with --steps lines (a tenth SFT, the rest GRPO,
every metric TRL logs) and samples.jsonl with --steps / 5 GRPO steps of 16 rollouts each (about 366 MB a
run at full size). Four distinct pairs of files are written and hard-linked into the runs (the studio reads
each run's files through its own path, with its own cache entry), except for the newest run, which has its
own copies because it plays a live run: during the tick measurements a thread appends a metric line every
0.5 s and a rollout line every 5th step, and the run's status says `running`.

Then it starts `python app.py` on the folder and drives headless Chromium (Playwright, /usr/bin/chromium,
the browser tests' flags): time from a click on the monitor tab to the runs table, to all plots drawn, the
server time and payload of a timer tick (idle, then with the live run writing) and the share of that time
the browser's main thread spent in long tasks (over 50 ms: drawing the plots), 4 runs overlaid, the
Rollouts tab's first step and the next one; the studio's peak RSS, and its RSS after the browser closed.
Ticks are read off the page's own event stream (the browser's fetch of Gradio's queue is wrapped to count
each message's bytes; the server time is the `duration` Gradio reports for each event). Prints a table
against the goals; --json also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = os.environ.get("RRFT_STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VARIANTS = 4
ROLLOUTS_PER_LINE = 16  # 4 prompts x 4 completions
GENERATIONS = 4
GOALS = {"table_s": 1.0, "plots_s": 3.0, "rollouts_s": 1.0, "rollouts_next_s": 1.0, "tick_ms": 100.0,
         "tick_kb": 1000.0, "rss_mb": 600.0}

# ---------------------------------------------------------------- the runs folder

GRPO_KEYS = ["loss", "grad_norm", "learning_rate", "num_tokens", "completions/mean_length", "completions/min_length",
             "completions/max_length", "completions/clipped_ratio", "completions/mean_terminated_length",
             "completions/min_terminated_length", "completions/max_terminated_length", "rewards/format_reward/mean",
             "rewards/format_reward/std", "rewards/accuracy_reward/mean", "rewards/accuracy_reward/std", "reward",
             "reward_std", "frac_reward_zero_std", "kl", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean",
             "clip_ratio/region_mean", "clip_ratio/low_min", "clip_ratio/high_max", "step_time"]
SFT_KEYS = ["loss", "grad_norm", "learning_rate", "entropy", "num_tokens", "mean_token_accuracy", "step_time"]


def _metric_lines(stage: str, keys: list[str], first: int, n: int, rng: random.Random, t0: float,
                  level: list[float] | None = None) -> str:
    """n metric lines of one stage, values drifting as a run's would (from `level`, updated in place),
    floats at full precision."""
    template = ('{"stage": "%s", "step": %%d, "epoch": %%.16g, "time": %%.17g, ' % stage
                + ", ".join(f'"{k}": %.16g' for k in keys) + "}")
    level = level if level is not None else [rng.random() for _ in keys]
    out = []
    for i in range(n):
        level[:] = [v + rng.gauss(0, 0.01) for v in level]
        out.append(template % (first + i, (first + i) / 1000, t0 + 2 * (first + i), *level))
    return "\n".join(out) + "\n"


COMPLETIONS = [
    "<think>\nThere are {n} objects. The {c} cubes: 1. {n} - 1 = {a}.\n</think>\n<answer>\n{a}\n</answer>",
    "<think>\nThere are {n} objects. Adding 2: {n} + 2 = {a}.\n</think>\n<answer>\n{a}\n</answer>",
    "<think>\nI count the objects one by one: {n} in all, and the question asks for {a}.\n</think> {a}",
    "There are {a} objects.",
]
PROMPT = ("system\nYou are a helpful assistant.\nuser\n{q} Output the thinking process in <think> </think> and "
          "final answer (number) in <answer> </answer> tags.\nassistant\n")
QUESTIONS = ["Subtract all {c} cylinders. How many objects are left?", "Add 2 {c} spheres. How many objects exist?",
             "How many objects are there?"]
COLORS = ["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"]


def _rollout_pool(rng: random.Random, images: list[Path], size: int = 32) -> list[str]:
    """JSON texts of prompt groups: GENERATIONS rollouts of one prompt (its completion, rewards, advantage,
    length, answer, id, image), as train/progress.py writes them."""
    pool = []
    for i in range(size):
        n, c = rng.randint(2, 9), rng.choice(COLORS)
        a = n - 1
        prompt = PROMPT.format(q=rng.choice(QUESTIONS).format(c=c))
        group = []
        for _ in range(GENERATIONS):
            text = rng.choice(COMPLETIONS).format(n=n, c=c, a=rng.choice([a, a, a + 1])) + " " + "filler " * rng.randint(40, 70)
            fmt = float(text.startswith("<think>") and "</answer>" in text)
            group.append(json.dumps({
                "prompt": prompt, "completion": text,
                "rewards": {"format_reward": fmt, "accuracy_reward": float(f"<answer>\n{a}\n" in text)},
                "advantage": rng.gauss(0, 1), "length": len(text) // 4, "answer": str(a),
                "id": f"counting-train-{i:06d}", "image": [str(images[i % len(images)])]}))
        pool.append(", ".join(group))
    return pool


def _sample_lines(steps: list[int], pool: list[str], rng: random.Random, t0: float) -> str:
    return "".join(f'{{"stage": "grpo", "step": {s}, "time": {t0 + 2 * s!r}, "completions": ['
                   + ", ".join(rng.choice(pool) for _ in range(ROLLOUTS_PER_LINE // GENERATIONS)) + "]}\n"
                   for s in steps)


def _sizes(steps: int) -> tuple[int, int, list[int]]:
    """(SFT lines, GRPO lines, GRPO steps with rollouts) for a run of `steps` metric lines."""
    sft = steps // 10
    grpo = steps - sft
    every = max(1, grpo // max(1, steps // 5))
    return sft, grpo, list(range(every, grpo + 1, every))[: max(1, steps // 5)]


def _write_variant(folder: Path, steps: int, seed: int, images: list[Path]) -> None:
    rng, t0 = random.Random(seed), 1.79e9
    sft, grpo, sample_steps = _sizes(steps)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w") as f:
        f.write(_metric_lines("sft", SFT_KEYS, 1, sft, rng, t0))
        for first in range(1, grpo + 1, 10_000):
            f.write(_metric_lines("grpo", GRPO_KEYS, first, min(10_000, grpo - first + 1), rng, t0))
    pool = _rollout_pool(rng, images)
    with open(folder / "samples.jsonl", "w") as f:
        for i in range(0, len(sample_steps), 1000):
            f.write(_sample_lines(sample_steps[i: i + 1000], pool, rng, t0))


def _images(folder: Path) -> list[Path]:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(8):
        image = Image.new("RGB", (112, 112), (200, 200, 200))
        draw = ImageDraw.Draw(image)
        for j in range(i % 5 + 2):
            x, y = 8 + 26 * (j % 4), 8 + 26 * (j // 4 + i % 3)
            draw.rectangle([x, y, x + 18, y + 18], fill=(40 * j % 255, 90, 200 - 30 * j))
        out.append(folder / f"scene-{i}.png")
        image.save(out[-1])
    return out


def _run_files(run_dir: Path, name: str, steps: int, rng: random.Random) -> None:
    from rrft_studio import config

    cfg = config.load(None, [f"run.name={name}", f"run.runs_dir={run_dir.parent}", "model.name=tiny",
                             "grpo.rewards=[format,accuracy]", "grpo.reward_weights=[1,1]"])
    (run_dir / "config.yaml").write_text(config.dump(cfg))
    sft, grpo, _ = _sizes(steps)
    (run_dir / "status.json").write_text(json.dumps({
        "state": "finished", "stage": None, "step": grpo, "max_steps": grpo, "pid": 1, "updated": time.time(),
        "backend": "transformers", "backend_why": "benchmark folder", "eta_s": 0.0}))
    for label, accuracy in (("base", 0.02), ("sft", 0.6 + rng.random() / 5), ("grpo", 0.7 + rng.random() / 5)):
        predictions = [{"id": f"counting-id-{i:06d}", "answer": "3", "prediction": COMPLETIONS[0], "correct": True}
                       for i in range(300)]
        (run_dir / "eval" / label).mkdir(parents=True, exist_ok=True)
        (run_dir / "eval" / label / "id.json").write_text(json.dumps(
            {"label": label, "split": "id", "accuracy": accuracy, "n": 300, "predictions": predictions}))


def build(folder: Path, runs: int, steps: int) -> list[Path]:
    """The runs folder (built once, reused): run directories, oldest first; the last one plays the live run."""
    marker = folder / ".complete"
    wanted = {"runs": runs, "steps": steps, "variants": VARIANTS, "rollouts_per_line": ROLLOUTS_PER_LINE,
              "generations": GENERATIONS}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: (p / "config.yaml").stat().st_mtime)
    if folder.exists():
        shutil.rmtree(folder)
    started = time.time()
    images = _images(folder / ".images")
    variants = [folder / ".variants" / f"v{i}" for i in range(min(VARIANTS, runs))]
    for i, v in enumerate(variants):
        _write_variant(v, steps, seed=i, images=images)
    rng, out = random.Random(0), []
    for i in range(runs):
        run_dir = folder / f"load-{i:02d}"
        run_dir.mkdir()
        _run_files(run_dir, f"load-{i:02d}", steps, rng)
        live = i == runs - 1
        for name in ("metrics.jsonl", "samples.jsonl"):
            source = variants[i % len(variants)] / name
            (shutil.copyfile if live else os.link)(source, run_dir / name)
        os.utime(run_dir / "config.yaml", (started + i, started + i))  # listed newest first: the live run on top
        out.append(run_dir)
    marker.write_text(json.dumps(wanted))
    size = sum(f.stat().st_size for f in variants[0].iterdir())
    print(f"built {folder}: {runs} runs, {size / 2**20:.0f} MB of logs each, in {time.time() - started:.0f} s")
    return out


# ---------------------------------------------------------------- the live run

class LiveRun:
    """Appends to the newest run's logs as a training process would, and puts everything back afterwards."""

    def __init__(self, run_dir: Path, last_step: int):
        self.run_dir, self.step = run_dir, last_step
        self.sizes = {n: (run_dir / n).stat().st_size for n in ("metrics.jsonl", "samples.jsonl")}
        self.status = (run_dir / "status.json").read_text()
        self.stop_flag = threading.Event()
        self.thread: threading.Thread | None = None
        self.rng = random.Random(1)
        last = (run_dir / "metrics.jsonl").read_bytes()[-4000:].split(b"\n")[-2]
        self.level = [json.loads(last)[k] for k in GRPO_KEYS]

    def start(self) -> None:
        status = {**json.loads(self.status), "state": "running", "stage": "grpo", "pid": os.getpid()}
        (self.run_dir / "status.json").write_text(json.dumps(status))
        self.stop_flag.clear()
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        pool = _rollout_pool(self.rng, [self.run_dir.parent / ".images" / "scene-0.png"], size=4)
        while not self.stop_flag.wait(0.5):
            self.step += 1
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(_metric_lines("grpo", GRPO_KEYS, self.step, 1, self.rng, 1.79e9, self.level))
            if self.step % 5 == 0:
                with open(self.run_dir / "samples.jsonl", "a") as f:
                    f.write(_sample_lines([self.step], pool, self.rng, 1.79e9))

    def stop(self) -> None:
        self.stop_flag.set()
        if self.thread:
            self.thread.join()

    def restore(self) -> None:
        self.stop()
        for name, size in self.sizes.items():
            os.truncate(self.run_dir / name, size)
        (self.run_dir / "status.json").write_text(self.status)


# ---------------------------------------------------------------- the studio and the browser

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Studio:
    """`python app.py` on the folder, its resident memory sampled every 0.1 s."""

    def __init__(self, folder: Path, root: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--runs-dir", str(folder), "--presets-dir",
                                      str(ROOT / "presets"), "--port", str(self.port), "--device", "cpu"],
                                     cwd=root, stdout=self.log, stderr=subprocess.STDOUT)
        self.peak_mb, self.stopped = 0.0, threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()
        import urllib.request
        for _ in range(600):
            try:
                urllib.request.urlopen(self.url, timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the studio did not start: see {log}")
                time.sleep(0.2)
        self.started_mb = self.rss_mb()

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _sample(self) -> None:
        while not self.stopped.wait(0.1):
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def close(self) -> None:
        self.stopped.set()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# Counts every message of Gradio's event stream: its bytes, its event, and the server time Gradio reports.
RECORDER = """(() => {
  const rec = window.__rrft = {joins: {}, messages: [], busy: []};
  try {  // the main thread's long tasks (over 50 ms): the time the page could not answer a click
    new PerformanceObserver(list => { for (const e of list.getEntries()) rec.busy.push([e.startTime, e.duration]); })
      .observe({type: "longtask", buffered: true});
  } catch (e) {}
  const original = window.fetch.bind(window);
  const note = (block) => {
    const data = block.split("\\n").filter(l => l.startsWith("data:")).map(l => l.slice(5).trim()).join("\\n");
    let msg = {}; try { msg = JSON.parse(data); } catch (e) {}
    rec.messages.push({t: performance.now(), bytes: new TextEncoder().encode(block).length + 2,
                       event_id: msg.event_id, msg: msg.msg, duration: msg.output && msg.output.duration});
  };
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    const response = await original(input, init);
    if (url.includes("/queue/join")) {
      let fn = null; try { fn = JSON.parse(init.body).fn_index; } catch (e) {}
      response.clone().json().then(j => { rec.joins[j.event_id] = {fn, t: performance.now()}; }).catch(() => {});
    }
    if (url.includes("/queue/data") && response.body) {
      const [mine, theirs] = response.body.tee();
      (async () => {
        const reader = mine.getReader(), decoder = new TextDecoder(); let buffer = "";
        for (;;) {
          const {done, value} = await reader.read(); if (done) break;
          buffer += decoder.decode(value, {stream: true});
          let cut; while ((cut = buffer.indexOf("\\n\\n")) >= 0) { note(buffer.slice(0, cut)); buffer = buffer.slice(cut + 2); }
        }
      })();
      return new Response(theirs, {status: response.status, statusText: response.statusText, headers: response.headers});
    }
    return response;
  };
})();"""

# fn ids of what the monitor's timer runs at each tick, the runs table's event first, from the page's config
TICK_FNS = """() => {
  const config = window.gradio_config;
  const timers = config.components.filter(c => c.type === "timer").map(c => c.id);
  const table = config.components.find(c => c.props && c.props.elem_id === "monitor-runs").id;
  const deps = config.dependencies;
  const head = deps.find(d => d.targets.some(t => timers.includes(t[0]) && t[1] === "tick") && d.outputs.includes(table));
  const timer = head.targets.find(t => timers.includes(t[0]))[0];
  const fns = new Set(deps.filter(d => d.targets.some(t => t[0] === timer && t[1] === "tick")).map(d => d.id));
  let grown = true;  // and whatever follows them with .then
  while (grown) { grown = false; for (const d of deps) if (d.trigger_after !== null && fns.has(d.trigger_after) && !fns.has(d.id)) { fns.add(d.id); grown = true; } }
  return [head.id, ...Array.from(fns).filter(f => f !== head.id)];
}"""

FN_OF = """([elemId, event]) => {
  const config = window.gradio_config;
  const component = config.components.find(c => c.props && c.props.elem_id === elemId);
  const dep = config.dependencies.find(d => d.targets.some(t => t[0] === component.id && t[1] === event));
  return dep.id;
}"""


def _ticks(page, seconds: float) -> dict:
    """Server time and payload of the monitor's ticks during `seconds` with nobody touching the page: each
    tick's events (those joined from one table event's to the next) summed."""
    chain = page.evaluate(TICK_FNS)
    since = page.evaluate("performance.now()")
    time.sleep(seconds)
    rec = page.evaluate("() => window.__rrft")
    events: dict[str, dict] = {}
    for m in rec["messages"]:
        join = rec["joins"].get(m["event_id"] or "")
        if join and join["fn"] in chain and join["t"] >= since:
            e = events.setdefault(m["event_id"], {"fn": join["fn"], "t": join["t"], "bytes": 0, "ms": 0.0})
            e["bytes"] += m["bytes"]
            e["ms"] += 1000 * (m["duration"] or 0)
    heads = sorted(e["t"] for e in events.values() if e["fn"] == chain[0])
    per_tick = []
    for start, end in zip(heads, heads[1:]):  # complete ticks only
        group = [e for e in events.values() if start - 50 <= e["t"] < end - 50]
        per_tick.append((sum(e["ms"] for e in group), sum(e["bytes"] for e in group)))
    window_ms = 1000 * seconds
    busy = sum(min(start + d, since + window_ms) - max(start, since) for start, d in rec["busy"]
               if start < since + window_ms and start + d > since) / window_ms
    if not per_tick:
        return {"ticks": 0, "ms": float("nan"), "ms_max": float("nan"), "kb": float("nan"), "kb_max": float("nan"),
                "busy": busy}
    return {"ticks": len(per_tick), "ms": sum(t[0] for t in per_tick) / len(per_tick),
            "ms_max": max(t[0] for t in per_tick), "kb": sum(t[1] for t in per_tick) / len(per_tick) / 1000,
            "kb_max": max(t[1] for t in per_tick) / 1000, "busy": busy}


def _server_s(page, since: float) -> float:
    """Seconds the server spent on the events the page started since `since`, the timer's left out."""
    ticks = set(page.evaluate(TICK_FNS))
    rec = page.evaluate("() => window.__rrft")
    ours = {e for e, j in rec["joins"].items() if j["t"] >= since and j["fn"] not in ticks}
    return sum(m["duration"] or 0 for m in rec["messages"] if m["event_id"] in ours and m["msg"] == "process_completed")


PLOTS_DRAWN = """(slots) => slots.map((i) => document.querySelector('#monitor-plot-' + i))
    .every(el => el && el.offsetParent !== null && el.querySelector('canvas, svg'))"""
TABLE_ROWS = """(n) => { const g = document.querySelector('#monitor-runs [role=grid]');
    return g && Number(g.getAttribute('aria-rowcount')) === n + 1; }"""


def measure(url: str, runs: list[Path], live: LiveRun, studio: Studio, tick_s: float, shots: Path | None,
            len_steps: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        context.add_init_script(RECORDER)
        page = context.new_page()
        page.set_default_timeout(180_000)
        page.goto(url)
        page.wait_for_selector("#tab-train", state="attached")
        from rrft_studio.studio.monitor import PLOTS

        # Every GRPO plot but those of what these runs do not log, which stay hidden: GPU memory (no CUDA wrote
        # them), the sampling gap (no vLLM) and the reasoning check (their rollouts carry none).
        unlogged = ("gpu_memory", "sampling/", "consistency", "dynamic_sampling/")  # not in the synthetic runs
        drawn = [i for i, spec in enumerate(PLOTS["grpo"]) if not any(k.startswith(unlogged) for k in spec[1])]
        out["plots"] = len(drawn)
        since, started = page.evaluate("performance.now()"), time.perf_counter()
        page.get_by_role("tab", name="Runs / monitor").click()
        page.wait_for_function(TABLE_ROWS, arg=len(runs), polling="raf")
        out["table_s"] = time.perf_counter() - started
        page.wait_for_function(PLOTS_DRAWN, arg=drawn, polling="raf")
        out["plots_s"] = time.perf_counter() - started
        out["open_server_s"] = _server_s(page, since)  # the table's event and the plots' (side by side)
        time.sleep(2)
        out["tick_idle"] = _ticks(page, tick_s)
        live.start()
        time.sleep(1.5)
        out["tick_live"] = _ticks(page, tick_s)
        if shots:
            page.screenshot(path=str(shots / "monitor-load.png"), full_page=True)

        # Three more runs overlaid on the live one: the time until the plots event for the last one is back.
        page.click("#monitor-overlay input")  # the list stays open while options are picked
        for run in runs[-2:-5:-1]:
            since = page.evaluate("performance.now()")
            started = time.perf_counter()
            page.get_by_role("option", name=run.name, exact=True).click()
        page.keyboard.press("Escape")
        fn = page.evaluate(FN_OF, ["monitor-overlay", "input"])
        page.wait_for_function("""([since, fn]) => window.__rrft.messages.some(m => m.msg === 'process_completed'
            && window.__rrft.joins[m.event_id] && window.__rrft.joins[m.event_id].fn === fn
            && window.__rrft.joins[m.event_id].t > since)""", arg=[since, fn])  # the event for the last pick
        page.wait_for_timeout(50)
        out["overlay_s"] = time.perf_counter() - started
        out["overlay_server_s"] = _server_s(page, since)
        time.sleep(2)
        out["tick_overlay"] = _ticks(page, tick_s)
        live.stop()
        if shots:
            page.screenshot(path=str(shots / "monitor-overlay.png"), full_page=True)

        since, started = page.evaluate("performance.now()"), time.perf_counter()
        page.get_by_role("tab", name="Rollouts").click()
        page.wait_for_selector("#rollouts-summary:has-text('prompts ×')")
        page.wait_for_selector("#rollouts-images img")
        out["rollouts_s"] = time.perf_counter() - started
        out["rollouts_server_s"] = _server_s(page, since)
        # A step far from the shown one (the newest), typed into the slider's box (a logged step: the live run logs
        # every 4th); from there, the next step
        logged = _sizes(len_steps)[2]
        target = logged[len(logged) // 2]
        since, started = page.evaluate("performance.now()"), time.perf_counter()
        page.fill("#rollouts-step input[type=number]", str(target))
        page.press("#rollouts-step input[type=number]", "Tab")
        page.wait_for_selector(f"#rollouts-summary:has-text('step {target} ·')")
        out["rollouts_jump_s"] = time.perf_counter() - started
        out["rollouts_jump_server_s"] = _server_s(page, since)
        first = page.locator("#rollouts-summary").inner_text().split("·")[0].strip()
        since, started = page.evaluate("performance.now()"), time.perf_counter()
        page.get_by_role("button", name="next step ▶").click()
        page.wait_for_function("(first) => { const s = document.querySelector('#rollouts-summary');"
                               " return s && s.innerText.includes('prompts ×') && !s.innerText.startsWith(first + ' '); }",
                               arg=first, polling="raf")
        out["rollouts_next_s"] = time.perf_counter() - started
        out["rollouts_next_server_s"] = _server_s(page, since)
        if shots:
            page.screenshot(path=str(shots / "rollouts-load.png"), full_page=True)
        out["rss_open_mb"] = studio.rss_mb()
        context.close()
        browser.close()
    return out


# ---------------------------------------------------------------- the table

def table(figures: dict, runs: int, steps: int) -> str:
    t = figures

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    def tick(key: str) -> tuple[str, str]:
        k = t[key]
        return (f"{k['ms']:.0f} ms (max {k['ms_max']:.0f}) / {k['kb']:.0f} kB (max {k['kb_max']:.0f}); browser "
                f"busy {100 * k['busy']:.0f}% of the time",
                met(k["ms_max"] < GOALS["tick_ms"] and k["kb_max"] < GOALS["tick_kb"]))

    rows = [
        ("runs table: click on the tab until it shows", f"{t['table_s']:.2f} s", "< 1 s", met(t["table_s"] < GOALS["table_s"])),
        (f"all {t['plots']} plots drawn (same click; server part)",
         f"{t['plots_s']:.2f} s ({t['open_server_s']:.2f} s)", "< 3 s", met(t["plots_s"] < GOALS["plots_s"])),
        ("a tick, nothing changed: server time / payload", *tick("tick_idle")[:1], "< 100 ms, < 1 MB",
         tick("tick_idle")[1]),
        ("a tick, the shown run writing 2 steps/s", *tick("tick_live")[:1], "< 100 ms, < 1 MB", tick("tick_live")[1]),
        ("4 runs overlaid: plots after picking the 4th (server part)",
         f"{t['overlay_s']:.2f} s ({t['overlay_server_s']:.2f} s)", "", ""),
        ("a tick, 4 runs overlaid, one writing", *tick("tick_overlay")[:1], "< 100 ms, < 1 MB", tick("tick_overlay")[1]),
        ("Rollouts: the tab's first step shown (server part)",
         f"{t['rollouts_s']:.2f} s ({t['rollouts_server_s']:.2f} s)", "< 1 s", met(t["rollouts_s"] < GOALS["rollouts_s"])),
        ("Rollouts: the next step (server part)",
         f"{t['rollouts_next_s']:.2f} s ({t['rollouts_next_server_s']:.2f} s)", "< 1 s", met(t["rollouts_next_s"] < GOALS["rollouts_next_s"])),
        ("Rollouts: a step typed into the slider, far from the shown one (server part)",
         f"{t['rollouts_jump_s']:.2f} s ({t['rollouts_jump_server_s']:.2f} s)", "< 1 s",
         met(t["rollouts_jump_s"] < GOALS["rollouts_next_s"])),
        ("studio RSS: at start / peak", f"{t['rss_start_mb']:.0f} / {t['rss_peak_mb']:.0f} MB", "< 600 MB",
         met(t["rss_peak_mb"] < GOALS["rss_mb"])),
        (f"studio RSS {t['released_after_s']:.0f} s after the browser closed", f"{t['rss_after_mb']:.0f} MB", "", ""),
    ]
    head = (f"{runs} runs x {steps:,} metric lines, {len(_sizes(steps)[2]):,} rollout lines each; load average "
            f"{t['load_before']:.1f} before, {t['load_after']:.1f} after (2 cores)")
    lines = [head, "", "| measure | result | goal | met |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--steps", type=int, default=100_000, help="metric lines per run (rollout lines: a fifth)")
    p.add_argument("--folder", type=Path, default=None,
                   help="where the runs folder is built and kept (default: ~/.cache/rrft-studio/studio-load/R-S)")
    p.add_argument("--tick-seconds", type=float, default=8, help="how long each tick measurement watches")
    p.add_argument("--release-seconds", type=float, default=45, help="wait after closing the browser, then read RSS")
    p.add_argument("--studio-root", type=Path, default=ROOT, help="the checkout whose app.py runs (to compare versions)")
    p.add_argument("--screenshots", type=Path, default=None, help="save the monitor and Rollouts tabs here")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.runs < 2 or args.steps < 20:
        raise SystemExit("--runs 2 or more, --steps 20 or more")
    folder = args.folder or Path("~/.cache/rrft-studio/studio-load").expanduser() / f"{args.runs}x{args.steps}"
    run_dirs = build(folder, args.runs, args.steps)
    live = LiveRun(run_dirs[-1], _sizes(args.steps)[1])
    studio = Studio(folder, args.studio_root, folder / ".studio-app.log")
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    try:
        figures = measure(studio.url, run_dirs, live, studio, args.tick_seconds, args.screenshots, args.steps)
        time.sleep(args.release_seconds)
        figures.update(rss_start_mb=studio.started_mb, rss_peak_mb=studio.peak_mb, rss_after_mb=studio.rss_mb(),
                       released_after_s=args.release_seconds, load_before=load_before, load_after=os.getloadavg()[0])
    finally:
        live.restore()
        studio.close()
    print(table(figures, args.runs, args.steps))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": args.runs, "steps": args.steps, **figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
