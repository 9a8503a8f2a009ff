"""What a user meets in the studio's first hour, driven in Chromium: the Train tab's defaults and messages, a
live GRPO run in the monitor (its banner, ETA, a click from a plot to that step's rollouts, the group view,
search and order), renaming, deleting and filtering runs, and the Rewards tab's check. Each test keeps a
screenshot of what it looked at."""

from __future__ import annotations

import json
import re
import shutil
import time

from .conftest import ROOT
from .test_studio_browser import choose, open_tab

# Points where a plot's line is drawn (saturated pixels of its canvas, one per 3-pixel column, from the top).
LINE_PIXELS = """(sel) => { const c = document.querySelector(sel + ' canvas'); const r = c.getBoundingClientRect();
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, sx = c.width / r.width, out = [];
  for (let x = 0; x < c.width; x += Math.max(1, Math.round(3 * sx))) for (let y = 0; y < c.height; y++) {
    const i = (y * c.width + x) * 4;
    if (d[i + 3] > 200 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 30) {
      out.push([r.left + x / sx, r.top + y * r.height / c.height]); break; } }
  return out; }"""
# Every event's request held 1.5 s on its way to the server (window.__fetch: the page's own fetch)
SLOW_EVENTS = """() => { const f = window.__fetch = window.fetch;
  window.fetch = (url, options) => String(url).includes('/queue/join')
    ? new Promise((done) => setTimeout(done, 1500)).then(() => f(url, options)) : f(url, options); }"""
TOOLTIP = "() => { const t = document.querySelector('#vg-tooltip-element'); return t && t.classList.contains('visible') ? t.innerText : ''; }"


def editor_text(page, text: str) -> None:
    """Replace the preset editor's text as a user would: a click into it, select all, type. A click that lands
    while the page is still settling after a tab switch can leave the focus outside the editor (the keys then
    went nowhere): the text is typed again until the editor holds it."""
    for _ in range(3):
        page.click("#train-editor .cm-content")
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(text)
        if page.inner_text("#train-editor .cm-content").strip() == text.strip():
            return
        page.wait_for_timeout(500)
    raise AssertionError("the preset editor did not take the typed text")


def test_train_offers_the_demo_and_says_what_will_go_wrong(page, shot, studio):
    assert page.input_value("#train-preset input") == "demo"  # no GPU here: the demo first (on a GPU: alphabetical)
    page.wait_for_selector("#train-preflight:has-text('Memory preflight on this machine')", timeout=120_000)
    verdict = page.inner_text("#train-preflight")
    assert re.search(r"sft: (no GPU: estimate only|fits on|does not fit on)", verdict), verdict

    # The field table's default column stays on one line per cell.
    lines = page.evaluate("""() => Array.from(document.querySelectorAll('#train-fields [role=gridcell][data-col="1"] span'))
        .map(s => [getComputedStyle(s).whiteSpace, s.getClientRects().length])""")
    assert lines and all(space == "nowrap" and rects <= 1 for space, rects in lines), lines
    # A key breaks after a dot only, and fits its column (the longest segments: the gradient_checkpointing keys).
    page.fill("#train-fields-search textarea", "gradient")
    page.wait_for_function("document.querySelectorAll('#train-fields [role=gridcell][data-col=\"0\"]').length == 2")
    keys = page.evaluate("""() => Array.from(document.querySelectorAll('#train-fields [role=gridcell][data-col="0"] span'))
        .map(s => { const walk = document.createTreeWalker(s, NodeFilter.SHOW_TEXT), texts = [];
                    while (walk.nextNode()) if (walk.currentNode.textContent.trim()) texts.push(walk.currentNode);
                    const last = document.createRange(); last.selectNodeContents(texts[texts.length - 1]);
                    return [s.innerText.replace(/\\s/g, ''), last.getClientRects().length,
                            s.scrollWidth <= s.parentElement.clientWidth]; })""")
    assert keys == [["sft.gradient_checkpointing", 1, True], ["grpo.gradient_checkpointing", 1, True]], keys
    page.fill("#train-fields-search textarea", "")

    # A stage whose logging_steps exceeds its max_steps is said before the launch.
    page.fill("#train-overrides textarea", "sft.logging_steps=5")
    page.wait_for_selector("#train-validation:has-text('sft.logging_steps=5 exceeds sft.max_steps=2')")
    page.fill("#train-overrides textarea", "")
    # the verdict shrinks back to one line: a click before it does can land where the button was
    page.wait_for_function("!document.querySelector('#train-validation').innerText.includes('exceeds')")

    # "Show command" runs the shipped preset as it is, and adds nothing to the preset list.
    page.click("#train-show")
    page.wait_for_function("document.querySelector('#train-command textarea').value.startsWith('rrft-studio train')")
    assert "presets/demo.yaml" in page.input_value("#train-command textarea")
    open_tab(page, "Data")
    open_tab(page, "Train")  # the list is read again when the tab opens
    page.click("#train-preset input")
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert options and not [o for o in options if "edited in the studio" in o], options
    assert not (studio["runs_dir"] / ".studio" / "presets" / "demo.yaml").exists()

    # A YAML error names its line once.
    editor_text(page, "sft: {lr: [1\n")
    page.wait_for_selector("#train-validation:has-text('line 2 of the preset is not valid YAML')")
    assert "preset the preset" not in page.inner_text("#train-validation")
    shot("train_first_hour")


def test_train_form_upload_and_every_problem(page, shot, studio, tmp_path):
    """The form writes override lines (and removes one set back to the preset's value); every problem is listed,
    an override's at the overrides, a preset line's at its line; an uploaded 2B preset is valid but said not to
    train on this machine without a GPU."""
    field = "#train-form-grpo-num-generations input"
    page.wait_for_selector(field)
    page.wait_for_function(f"document.querySelector('{field}').value === '4'")  # the micro preset's G
    page.fill(field, "1")
    page.keyboard.press("Tab")
    page.wait_for_function("document.querySelector('#train-overrides textarea').value === 'grpo.num_generations=1'")
    page.wait_for_selector("#train-validation:has-text('in the overrides: grpo.num_generations=1 must be at least 2')")
    assert "line " not in page.inner_text("#train-validation")  # not blamed on the preset's own line
    page.fill(field, "4")
    page.keyboard.press("Tab")
    page.wait_for_function("document.querySelector('#train-overrides textarea').value === ''")
    choose(page, "train-form-model-finetune", "lora")
    page.wait_for_function("document.querySelector('#train-overrides textarea').value === 'model.finetune=lora'")
    choose(page, "train-form-model-finetune", "full")
    page.wait_for_function("document.querySelector('#train-overrides textarea').value === ''")
    # A slow server: the form's answer lands after the user typed in the overrides, and keeps what they typed
    page.evaluate(SLOW_EVENTS)
    choose(page, "train-form-model-finetune", "lora")
    page.fill("#train-overrides textarea", "sft.lrr=1")
    page.wait_for_function("document.querySelector('#train-overrides textarea').value === 'sft.lrr=1\\nmodel.finetune=lora'")
    page.evaluate("() => { window.fetch = window.__fetch; }")
    page.fill("#train-processes input", "2")
    page.keyboard.press("Tab")
    choose(page, "train-strategy", "zero3")
    page.wait_for_function("document.querySelector('#train-overrides textarea').value === "
                           "'sft.lrr=1\\nmodel.finetune=lora\\nrun.processes=2\\nrun.accelerate_config=zero3'")
    page.fill("#train-processes input", "1")
    page.keyboard.press("Tab")
    page.wait_for_function("document.querySelector('#train-overrides textarea').value === 'sft.lrr=1\\nmodel.finetune=lora'")

    text = page.inner_text("#train-editor .cm-content")
    editor_text(page, text.replace("lr: 1.0e-3", "lr: fast").replace("max_completion_length: 16",
                                                                   "max_completion_length: 0"))
    try:
        page.wait_for_function("document.querySelector('#train-validation').innerText.includes('3 problems')")
    except Exception:
        raise AssertionError(f"the verdict: {page.inner_text('#train-validation')!r}; the overrides: "
                             f"{page.input_value('#train-overrides textarea')!r}") from None
    verdict = page.inner_text("#train-validation")
    assert re.search(r"line \d+: sft.lr must be float", verdict), verdict
    assert re.search(r"line \d+: grpo.max_completion_length=0 must be", verdict), verdict
    assert "in the overrides: unknown config key 'sft.lrr'" in verdict, verdict
    page.fill("#train-overrides textarea", "")

    preset = tmp_path / "counting_2b.yaml"
    shutil.copy(ROOT / "presets" / "counting_2b.yaml", preset)
    with page.expect_file_chooser() as chooser:
        page.click("#train-upload")
    chooser.value.set_files(str(preset))
    page.wait_for_function("document.querySelector('#train-name input, #train-name textarea').value === 'counting_2b'")
    assert page.input_value("#train-preset input") == ""  # not the preset the upload replaced
    page.wait_for_selector("#train-validation:has-text('valid')")
    page.wait_for_selector("#train-validation:has-text('no CUDA GPU on this machine')")
    page.wait_for_function("document.querySelector('#train-form-model-name input').value === 'Qwen/Qwen2-VL-2B-Instruct'")
    shot("train_form")


def _click_a_point(page, slot: int, tries: int = 4) -> str:
    """Hover along a plot's line until a point's tooltip shows, click it; returns the tooltip's step. A live
    run's plot is redrawn every few seconds, and a pass that met a redraw is made again on the new drawing."""
    page.locator(f"#monitor-plot-{slot}").scroll_into_view_if_needed()
    for _ in range(tries):
        for x, y in page.evaluate(LINE_PIXELS, f"#monitor-plot-{slot}"):
            page.mouse.move(x, y)
            tip = page.evaluate(TOOLTIP)
            if "click: its rollouts" in tip:
                page.mouse.click(x, y)
                return re.search(r"click: its rollouts\)\s+(\d+)", tip).group(1)
        page.wait_for_timeout(2500)  # the next redraw (monitor.LIVE_REDRAW_S) may have more points
    raise AssertionError(f"no point of plot {slot} showed its link")


def test_a_live_grpo_run_in_the_monitor_and_its_rollouts(page, shot, live_grpo):
    open_tab(page, "Runs / monitor")
    choose(page, "monitor-run", live_grpo.name)
    # Every group has zero spread and the reward never changes: the banner says so while the run is live.
    page.wait_for_selector("#monitor-banner:has-text('had zero spread in each of the last 10 steps')", timeout=120_000)
    assert "constant_reward has been 0.50" in page.inner_text("#monitor-banner")
    eta = page.inner_text("#monitor-eta")
    assert re.fullmatch(r"(≥ )?\d+(h\d\dm|m\d\ds).*|estimating…", eta) and eta != "0m00s", eta
    page.wait_for_selector("#monitor-plot-7 canvas")  # Entropy, a line that moves
    shot("monitor_live")

    step = _click_a_point(page, 7)  # a point of a GRPO plot opens that step's rollouts
    page.wait_for_selector(f"#rollouts-summary:has-text('step {step} ·')", timeout=30_000)
    assert page.get_by_role("tab", name="Rollouts").get_attribute("aria-selected") == "true"
    assert page.input_value("#rollouts-run input") == live_grpo.name
    cards = page.locator("#rollouts-group-view .rrft-card")
    assert cards.count() == 4  # G = 4: every completion of the prompt, side by side
    assert page.locator("#rollouts-histogram").inner_text() == "0.5 ×8"

    # Order by length: the table's first row is the longest completion.
    choose(page, "rollouts-order", "length, long first")
    page.wait_for_function("""() => { const cells = Array.from(document.querySelectorAll('#rollouts-table [role=gridcell][data-col="4"]'))
        .map(c => Number(c.innerText)); return cells.length === 4 && cells.every((v, i) => i === 0 || cells[i - 1] >= v); }""")
    # Search: the completions holding the text are marked in the group view.
    text = page.locator("#rollouts-group-view pre").first.inner_text().strip()[:3]
    page.fill("#rollouts-search textarea, #rollouts-search input", text)
    page.press("#rollouts-search textarea, #rollouts-search input", "Enter")
    page.wait_for_selector("#rollouts-summary:has-text('match')")
    page.wait_for_selector("#rollouts-group-view .rrft-found")
    shot("rollouts_group")


def test_runs_are_filtered_renamed_and_deleted(page, shot, studio):
    runs_dir = studio["runs_dir"]
    original = next(p for p in runs_dir.iterdir() if p.name.startswith("micro-") and (p / "final" / "sft").is_dir())
    copy = runs_dir / "copy-of-micro"
    shutil.copytree(original, copy)
    for path in [copy / "report.json", *copy.glob("eval/*/*.json")]:  # as if it had been trained there
        path.write_text(path.read_text().replace(str(original), str(copy)))
    open_tab(page, "Runs / monitor")
    page.fill("#monitor-filter textarea, #monitor-filter input", "copy finished")
    page.wait_for_function("document.querySelector('#monitor-runs [role=grid]').getAttribute('aria-rowcount') === '2'")
    choose(page, "monitor-run", "copy-of-micro")
    # tags and a note: saved in the run, shown in the table, found by the filter; a bad tag refused in one line
    page.click("#monitor-notes button:has-text('Tags and note')")
    page.fill("#monitor-tags textarea, #monitor-tags input", "a/b")
    page.click("#monitor-notes-save")
    page.wait_for_selector("#monitor-note:has-text(\"tag 'a/b': use letters\")")
    page.fill("#monitor-tags textarea, #monitor-tags input", "baseline, lr-sweep")
    page.fill("#monitor-note-text textarea", "the copy, to rename")
    page.click("#monitor-notes-save")
    page.wait_for_selector("#monitor-note:has-text(\"Saved copy-of-micro's tags baseline, lr-sweep and its note\")")
    assert json.loads((copy / "notes.json").read_text()) == {"tags": ["baseline", "lr-sweep"],
                                                             "note": "the copy, to rename"}
    tags_shown = "document.querySelector('#monitor-tags textarea, #monitor-tags input').value === 'baseline lr-sweep'"
    page.wait_for_function(tags_shown)  # the box shows the tags as saved
    page.fill("#monitor-filter textarea, #monitor-filter input", "lr-sweep")
    page.wait_for_selector("#monitor-runs [role=gridcell]:has-text('baseline lr-sweep')")
    page.wait_for_function("document.querySelector('#monitor-runs [role=grid]').getAttribute('aria-rowcount') === '2'")
    shot("monitor_tags")
    page.fill("#monitor-new-name textarea, #monitor-new-name input", "renamed-micro")
    page.click("#monitor-rename")
    page.wait_for_selector("#monitor-question:has-text('Rename copy-of-micro to renamed-micro?')")
    page.click("#monitor-yes")
    page.wait_for_selector("#monitor-note:has-text('Renamed copy-of-micro to renamed-micro')")
    renamed = runs_dir / "renamed-micro"
    assert renamed.is_dir() and not copy.exists()
    result = json.loads((renamed / "eval" / "sft" / "id.json").read_text())
    assert result["checkpoint"] == str(renamed / "final" / "sft")  # its own paths followed it
    page.fill("#monitor-filter textarea, #monitor-filter input", "renamed")
    page.wait_for_selector("#monitor-runs [role=gridcell]:has-text('renamed-micro')")
    assert json.loads((renamed / "notes.json").read_text())["tags"] == ["baseline", "lr-sweep"]  # moved with it
    page.wait_for_selector("#monitor-runs [role=gridcell]:has-text('baseline lr-sweep')")
    page.wait_for_function(tags_shown)
    shot("monitor_rename")

    page.click("#monitor-delete")
    page.wait_for_selector("#monitor-question:has-text('Delete renamed-micro')")
    page.click("#monitor-cancel")
    time.sleep(0.5)
    assert renamed.is_dir()
    page.click("#monitor-delete")
    page.click("#monitor-yes")
    page.wait_for_selector("#monitor-note:has-text('Deleted renamed-micro')")
    assert not renamed.exists()
    page.wait_for_function("document.querySelector('#monitor-runs [role=grid]').getAttribute('aria-rowcount') === '1'")


def test_the_rewards_tab_checks_a_preset(page, shot):
    open_tab(page, "Rewards")
    box = page.get_by_label("number input for Prompts (N)", exact=True)
    box.fill("2")
    box.press("Enter")
    page.click("#rewards-check")
    page.wait_for_selector("#rewards-verdict:has-text('weak')", timeout=240_000)
    assert "format never matched in 8 samples" in page.inner_text("#rewards-verdict")
    page.wait_for_selector("#rewards-histograms [data-testid=matplotlib] img")  # not the label's (hidden) icon
    shot("rewards")


def test_the_rewards_tab_starts_from_the_picked_runs_sft_and_says_which_tag(page, shot, studio):
    run = next(p for p in sorted(studio["runs_dir"].iterdir()) if p.name.startswith("micro-")
               and (p / "final" / "sft" / "config.json").is_file())
    open_tab(page, "Runs / monitor")
    choose(page, "monitor-run", run.name)
    page.wait_for_selector(f"#monitor-summary:has-text('{run.name}')")
    open_tab(page, "Rewards")  # the check starts where the run's GRPO did: its Stage-1 output, not the base model
    page.wait_for_function(f"document.querySelector('#rewards-checkpoint input').value === '{run.name} · after sft'")
    # Each slider's maximum is shown in full, inside its box (a narrow box cut "128" to "12").
    ends = page.evaluate("""() => Array.from(document.querySelectorAll('#tab-rewards [data-testid=max-value]'))
        .filter(m => m.offsetParent).map(m => { const r = document.createRange(); r.selectNodeContents(m);
            const text = r.getBoundingClientRect(), box = m.closest('.block').getBoundingClientRect();
            return [m.innerText, text.right <= box.right && text.left >= box.left]; })""")
    assert ends == [["128", True]], ends
    shot("rewards_start")

    page.get_by_role("tab", name="Score a completion").click()
    page.fill("#rewards-answer textarea, #rewards-answer input", "3")
    page.fill("#rewards-completion textarea", "3 objects")
    page.click("#rewards-score")
    page.wait_for_selector("#rewards-scores table", timeout=120_000)
    rows = page.locator("#rewards-scores tr").all_inner_texts()
    assert any(r.split("\t")[:3] == ["format", "0.00", "no <think> tag"] for r in rows), rows
    assert any("compared no <answer> tag: the whole text" in r for r in rows), rows
    shot("rewards_score")


TOASTS = """() => { window.__toasts = []; new MutationObserver(() => document.querySelectorAll('.toast-body')
    .forEach(t => { if (!window.__toasts.includes(t.innerText)) window.__toasts.push(t.innerText); }))
    .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def test_renaming_and_deleting_over_a_slow_connection(page, shot, studio):
    """The monitor's ticks that left with a run's old name reach the studio after the rename or delete: no
    error for them. A finished run has nothing to stop or resume."""
    runs_dir = studio["runs_dir"]
    original = next(p for p in sorted(runs_dir.iterdir()) if p.name.startswith("micro-") and (p / "final" / "sft").is_dir())
    for name in ("slow-a", "slow-b"):
        shutil.copytree(original, runs_dir / name)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")  # 400 ms each way: an answer arrives after the next tick has left
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 400, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    page.evaluate(TOASTS)
    open_tab(page, "Runs / monitor")
    choose(page, "monitor-run", original.name)
    page.wait_for_selector(f"#monitor-summary:has-text('{original.name}')")
    page.wait_for_function("document.querySelector('#monitor-stop').disabled && document.querySelector('#monitor-resume').disabled")

    choose(page, "monitor-run", "slow-a")
    page.wait_for_selector("#monitor-summary:has-text('slow-a')")
    page.fill("#monitor-new-name textarea, #monitor-new-name input", "slow-c")
    page.click("#monitor-rename")
    page.click("#monitor-yes")
    page.wait_for_selector("#monitor-note:has-text('Renamed slow-a to slow-c')")
    page.wait_for_timeout(2500)
    for name in ("slow-b", "slow-c"):
        choose(page, "monitor-run", name)
        page.wait_for_selector(f"#monitor-summary:has-text('{name}')")
        page.click("#monitor-delete")
        page.click("#monitor-yes")
        page.wait_for_selector(f"#monitor-note:has-text('Deleted {name}')")
        page.wait_for_timeout(2500)  # a few ticks
    assert page.evaluate("window.__toasts") == []
    page.click("#monitor-run input")  # the runs gone are no longer offered
    offered = [o.split("\n")[-1] for o in page.get_by_role("option").all_inner_texts()]  # after the chosen one's ✓
    page.keyboard.press("Escape")
    assert not [o for o in offered if o.startswith("slow-")] and original.name in offered, offered


PLOT_WIDTHS = """() => Array.from(document.querySelectorAll('.rrft-plot')).filter(p => p.offsetParent)
    .map(p => [p.id, p.querySelector('.altair').offsetWidth, p.querySelector('canvas').getBoundingClientRect().width])"""


def test_plots_drawn_while_rollouts_showed_get_their_width_back(page, shot, studio):
    """A switch to Rollouts while the monitor's plots are being drawn, and back: each plot has its full width
    and its lines (a plot drawn, or resized, in the hidden tab was left without a width)."""
    open_tab(page, "Runs / monitor")
    page.wait_for_selector("#monitor-plot-0 canvas", state="attached")  # the first drawn, the others on their way
    open_tab(page, "Rollouts")
    page.wait_for_timeout(1500)
    open_tab(page, "Runs / monitor")
    page.wait_for_function(f"({PLOT_WIDTHS})().length > 1 && ({PLOT_WIDTHS})().every(([, box, drawn]) => drawn > 0.9 * box)",
                           timeout=15_000)
    assert page.evaluate(LINE_PIXELS, "#monitor-plot-0"), "plot 0 has no line drawn"
    shot("monitor_back_from_rollouts")


def test_a_run_of_one_logged_step_shows_a_dot_and_a_zero_bar_its_label(page, shot, studio):
    """A run whose stage logged one step shows that point (a line of one point drew nothing: the plot looked
    empty), and the untrained model's 0% evaluation is named on its bar's label (a bar of no height)."""
    run = studio["runs_dir"] / "one-point"
    (run / "eval" / "base").mkdir(parents=True)
    (run / "config.yaml").write_text("run: {stages: [grpo]}\n")
    (run / "status.json").write_text(json.dumps({"state": "finished", "stage": None, "step": 1}))
    (run / "metrics.jsonl").write_text(json.dumps({"stage": "grpo", "step": 1, "time": 1000.0, "reward": 1.25}) + "\n")
    (run / "eval" / "base" / "id.json").write_text(json.dumps({"accuracy": 0.0, "n": 10, "predictions": []}))
    try:
        open_tab(page, "Runs / monitor")
        choose(page, "monitor-run", "one-point")
        page.wait_for_selector("#monitor-summary:has-text('one-point')")
        page.wait_for_selector("#monitor-plot-0 canvas")
        page.wait_for_function(f"({LINE_PIXELS})('#monitor-plot-0').length > 0", timeout=15_000)
        page.wait_for_selector("#monitor-eval:has-text('base · id (0%)')")
        shot("monitor_one_point")
    finally:
        shutil.rmtree(run)


# Per colour (r, g, b), how many canvas pixels have it (each channel within 12), and the horizontal extent (CSS
# pixels) of the dark text in the canvas's bottom `rows` pixels (where the runs' legend is).
CANVAS_READING = """([sel, colours, rows]) => { const c = document.querySelector(sel + ' canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, sx = c.width / c.getBoundingClientRect().width;
  const counts = colours.map(() => 0); let left = Infinity, right = -Infinity;
  const bottom = c.height - Math.round(rows * sx);
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
    const i = (y * c.width + x) * 4; if (d[i + 3] < 200) continue;
    colours.forEach(([r, g, b], k) => { if (Math.abs(d[i] - r) < 12 && Math.abs(d[i + 1] - g) < 12 && Math.abs(d[i + 2] - b) < 12) counts[k]++; });
    const grey = Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) < 20;
    if (y >= bottom && grey && d[i] < 110) { left = Math.min(left, x); right = Math.max(right, x); } }
  return {counts, text: (right - left) / sx}; }"""


def test_overlaid_runs_draw_a_colour_each_and_their_whole_names(page, shot, studio):
    """Two runs overlaid: each run its own colour (the metrics a dash each, not more colours of the same palette)
    and its whole name in the legend under the plot (Vega cuts a label at 160 pixels by default)."""
    from rrft_studio.studio.charts import LEGEND_ROW, PALETTE

    runs_dir = studio["runs_dir"]
    original = next(p for p in runs_dir.iterdir() if p.name.startswith("micro-") and (p / "final" / "sft").is_dir())
    long_name = "overlaid-copy-whose-name-is-long-enough-to-be-cut-short"
    copy = runs_dir / long_name
    shutil.copytree(original, copy)
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # its own values, so that both lines show
        for key in ("reward", "kl"):
            if isinstance(row.get(key), (int, float)):
                row[key] = row[key] * 0.5 + 0.1
    (copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rgb = [[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in PALETTE]
    try:
        open_tab(page, "Runs / monitor")
        choose(page, "monitor-run", original.name)
        page.wait_for_selector(f"#monitor-summary:has-text('{original.name}')")
        choose(page, "monitor-overlay", long_name)
        page.keyboard.press("Escape")
        reading = f"({CANVAS_READING})(['#monitor-plot-0', {rgb}, {2 * LEGEND_ROW}])"
        page.wait_for_function(f"{reading}.counts.filter((n) => n > 20).length >= 2", timeout=30_000)
        reading = page.evaluate(CANVAS_READING, ["#monitor-plot-0", rgb, 2 * LEGEND_ROW])
        shot("monitor_overlay")
        # plot 0 draws four metrics of each run: two colours, one a run (the metrics told apart by their dashes)
        assert len([n for n in reading["counts"] if n > 20]) == 2, reading
        assert reading["text"] > 200, reading  # the long name's whole width, not 160 pixels of it
    finally:
        shutil.rmtree(copy)
