"""The studio's page: the header, the eight tabs, the timer that polls runs only while the monitor shows, and
the links between tabs: a run launched from Train is shown in the monitor, and a click on a point of a
GRPO plot opens Rollouts at that step."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..serve.inference import Pool
from . import chat, compare, data, export_tab, monitor, rewards_tab, rollouts, train
from .charts import LINK
from .folders import Folders
from .launcher import Launcher
from .serving import Servers

CSS = """
.rrft-bad { color: #b91c1c; font-weight: 600; }
.rrft-ok { color: #15803d; font-weight: 600; }
.rrft-warn { color: #b45309; font-weight: 600; }
.rrft-state-running, .rrft-state-stopping { color: #1d4ed8; font-weight: 600; }
.rrft-state-finished { color: #15803d; font-weight: 600; }
.rrft-state-stopped { color: #b45309; font-weight: 600; }
.rrft-state-failed, .rrft-state-killed { color: #b91c1c; font-weight: 600; }
.rrft-answer textarea { font-weight: 600; }
.rrft-mono textarea { font-family: ui-monospace, monospace; font-size: 0.85em; }
.rrft-banner { background: #fef3c7; border: 1px solid #d97706; border-radius: 6px; padding: 4px 12px; }
#rrft-header { margin-bottom: 0; }
#train-fields [role=gridcell][data-col="0"] span { overflow-wrap: normal !important; word-break: normal !important;
  font-size: 0.88em; }
#train-fields [role=gridcell][data-col="1"] .cell-wrap, #train-fields [role=gridcell][data-col="1"] span {
  white-space: nowrap !important; overflow: hidden; text-overflow: ellipsis; font-size: 0.92em; }
.rrft-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 8px; }
.rrft-card { border: 1px solid var(--border-color-primary); border-left-width: 4px; border-radius: 6px;
             padding: 6px 8px; font-size: 0.85em; }
.rrft-card pre { white-space: pre-wrap; max-height: 180px; overflow: auto; margin: 4px 0 0; font-size: 0.9em; }
.rrft-card.rrft-adv-pos { border-left-color: #16a34a; }
.rrft-card.rrft-adv-neg { border-left-color: #dc2626; }
.rrft-card.rrft-adv-zero { border-left-color: #9ca3af; }
.rrft-card.rrft-found { outline: 2px solid #2563eb; }
.rrft-card-scores { color: var(--body-text-color-subdued); }
/* Vega places the pointer from the canvas' border box: padding on the canvas put every tooltip and click on a
   point 6 pixels up and left of where the point is drawn */
.rrft-plot .altair canvas { padding: 0 !important; }
"""

# A point of a GRPO plot links to LINK + run + "@" + step (charts.py); following it only changes the page's
# hash, which this script writes into the hidden jump box, whose change opens the Rollouts tab at that step.
# A slider is released (Gradio's .release, on which Rollouts shows the slider's step) when the mouse lets go
# of it; this script releases it also after the arrow keys moved it and on Enter in its number box.
JS = """() => {
  const keys = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"];
  document.addEventListener("keyup", (e) => {
    const box = e.target;
    if (!(box instanceof HTMLInputElement) || !box.closest(".block")?.querySelector("input[type=range]")) return;
    if ((box.type === "range" && keys.includes(e.key)) || (box.type === "number" && e.key === "Enter"))
      box.dispatchEvent(new PointerEvent("pointerup", {bubbles: true}));
  });
  window.addEventListener("hashchange", () => {
    const prefix = "%s";
    if (!location.hash.startsWith(prefix)) return;
    const target = decodeURIComponent(location.hash.slice(prefix.length));
    history.replaceState(null, "", location.pathname + location.search);
    const box = document.querySelector("#rrft-jump textarea, #rrft-jump input");
    if (!box) return;
    box.value = target + "#" + Date.now();  // the same point clicked twice is two jumps
    box.dispatchEvent(new Event("input", {bubbles: true}));
  });
}""" % LINK

TABS = ("train", "monitor", "rollouts", "compare", "chat", "export", "rewards", "data")


def header(runs_dir: Path) -> str:
    return (f"## rrft-studio · Reason-RFT (CoT-SFT → GRPO) on Qwen2-VL\n"
            f"Runs folder `{runs_dir}`: runs started here keep going when this page or the studio closes.")


def jump_target(text: str) -> tuple[str, float] | None:
    """(run, step) of a plot point's link text "run@step#nonce"."""
    run, sep, rest = (text or "").partition("@")
    try:
        return (run, float(rest.split("#")[0])) if sep and run else None
    except ValueError:
        return None


def build(runs_dir: Path, presets_dir: Path, device: str = "auto", max_loaded: int = 4,
          folders: Folders | None = None) -> tuple[gr.Blocks, Pool, Servers]:
    """The app, the pool of model workers it uses and the API servers it starts (unload the pool and close the
    servers when the app stops). folders: what form fields may name (default: runs and presets as given, data,
    cache, exports in the runs folder and no models folder)."""
    runs_dir, presets_dir = Path(runs_dir).resolve(), Path(presets_dir).resolve()
    folders = folders or Folders.create(runs_dir, presets_dir)
    launcher, pool = Launcher(runs_dir, folders), Pool(max_loaded=max_loaded, device=device)
    servers = Servers(launcher, device)
    with gr.Blocks(title="rrft-studio") as demo:
        gr.Markdown(header(runs_dir), elem_id="rrft-header")
        jump_box = gr.Textbox(visible="hidden", elem_id="rrft-jump")
        # The monitor's timer ticks only while its tab is shown. Each tab's switch is registered before the tab's
        # own events, so it goes out first: registered after them, it went out once the browser had drawn the
        # last tick, and a tick or two more reached a page that had already left the monitor.
        monitor_timer = gr.Timer(1.0, active=False)
        tabs = {}

        def tab(label: str, key: str, switch: bool = True, **kwargs) -> gr.Tab:
            tabs[key] = gr.Tab(label, id=key, elem_id=f"tab-{key}", **kwargs)
            if switch:
                tabs[key].select(lambda: gr.Timer(active=key == "monitor"), None, monitor_timer)
            return tabs[key]

        with gr.Tabs() as tab_set:
            with tab("Train", "train"):
                launched = train.build(launcher, presets_dir, tabs["train"], demo)
            with tab("Runs / monitor", "monitor"):
                picked = monitor.build(launcher, tabs["monitor"], monitor_timer, launched)
            # render_children: laid out (hidden) with the page, so opening the tab only fills it: measured with
            # benchmarks/studio_load.py, building the tab on its first opening cost the browser about a second
            with tab("Rollouts", "rollouts", switch=False, render_children=True):  # its opening event switches
                at_step = rollouts.build(runs_dir, tabs["rollouts"], monitor_timer)
            with tab("Compare", "compare"):
                compare.build(runs_dir, pool, tabs["compare"], folders)
            with tab("Chat", "chat"):
                chat.build(runs_dir, pool, tabs["chat"], folders)
            with tab("Export & serve", "export"):
                export_tab.build(launcher, servers, tabs["export"])
            with tab("Rewards", "rewards"):
                rewards_tab.build(launcher, presets_dir, picked)
            with tab("Data", "data"):
                data.build(launcher, presets_dir)

        # A launch shows its run: the monitor follows the launched pid and selects the run once it exists.
        launched.change(lambda p: (gr.Tabs(selected="monitor"), gr.Timer(active=True)) if p else (gr.skip(),) * 2,
                        launched, [tab_set, monitor_timer])

        def to_rollouts(text, *settings):
            target = jump_target(text)
            if target is None:
                return [gr.skip()] * (2 + len(at_step["outputs"]))
            return [gr.Tabs(selected="rollouts"), gr.Timer(active=False), *rollouts.jump(runs_dir, *target, *settings)]

        # .change: a script's edit of a textbox is a change to Gradio, not an input
        jump_box.change(to_rollouts, [jump_box, *at_step["settings"]], [tab_set, monitor_timer, *at_step["outputs"]])
    return demo, pool, servers
