"""The studio's page: the header, the six tabs, and the timer that polls runs only while the monitor shows."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..inference import Pool
from . import chat, compare, data, monitor, rollouts, train
from .folders import Folders
from .launcher import Launcher

CSS = """
.rrft-bad { color: #b91c1c; font-weight: 600; }
.rrft-ok { color: #15803d; font-weight: 600; }
.rrft-state-running, .rrft-state-stopping { color: #1d4ed8; font-weight: 600; }
.rrft-state-finished { color: #15803d; font-weight: 600; }
.rrft-state-stopped { color: #b45309; font-weight: 600; }
.rrft-state-failed, .rrft-state-killed { color: #b91c1c; font-weight: 600; }
.rrft-answer textarea { font-weight: 600; }
.rrft-mono textarea { font-family: ui-monospace, monospace; font-size: 0.85em; }
#rrft-header { margin-bottom: 0; }
"""

TABS = ("train", "monitor", "rollouts", "compare", "chat", "data")


def header(runs_dir: Path) -> str:
    return (f"## rrft-studio · Reason-RFT (CoT-SFT → GRPO) on Qwen2-VL\n"
            f"Runs folder `{runs_dir}`: runs started here keep going when this page or the studio closes.")


def build(runs_dir: Path, presets_dir: Path, device: str = "auto", max_loaded: int = 4,
          folders: Folders | None = None) -> tuple[gr.Blocks, Pool]:
    """The app and the pool of model workers it uses (close the pool when the app stops). folders: what form
    fields may name (default: runs and presets as given, data, cache and no models folder)."""
    runs_dir, presets_dir = Path(runs_dir).resolve(), Path(presets_dir).resolve()
    folders = folders or Folders.create(runs_dir, presets_dir)
    launcher, pool = Launcher(runs_dir, folders), Pool(max_loaded=max_loaded, device=device)
    with gr.Blocks(title="rrft-studio") as demo:
        gr.Markdown(header(runs_dir), elem_id="rrft-header")
        with gr.Tabs():
            tabs = {}
            with gr.Tab("Train", id="train", elem_id="tab-train") as tabs["train"]:
                train.build(launcher, presets_dir, tabs["train"])
            with gr.Tab("Runs / monitor", id="monitor", elem_id="tab-monitor") as tabs["monitor"]:
                monitor_timer = monitor.build(launcher, tabs["monitor"])
            with gr.Tab("Rollouts", id="rollouts", elem_id="tab-rollouts") as tabs["rollouts"]:
                rollouts.build(runs_dir, tabs["rollouts"])
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as tabs["compare"]:
                compare.build(runs_dir, pool, tabs["compare"], folders)
            with gr.Tab("Chat", id="chat", elem_id="tab-chat") as tabs["chat"]:
                chat.build(runs_dir, pool, tabs["chat"], folders)
            with gr.Tab("Data", id="data", elem_id="tab-data") as tabs["data"]:
                data.build(launcher, presets_dir)
        # The monitor polls the disk only while it is on screen.
        for name, tab in tabs.items():
            tab.select(lambda on=(name == "monitor"): gr.Timer(active=on), None, monitor_timer)
    return demo, pool
