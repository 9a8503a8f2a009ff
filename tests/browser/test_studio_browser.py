"""The studio's tabs driven in headless Chromium, as a user would: launch, watch, stop, resume, browse
rollouts, compare, chat, preview data. Each test keeps a screenshot of its tab."""

from __future__ import annotations

import re
import time


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown by its visible text."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def points(page) -> int:
    text = page.locator("#monitor-points").inner_text(timeout=60_000)
    return int(text)


def wait_for_points(page, above: int, timeout: float = 90) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.locator("#monitor-points").count() and points(page) > above:
            return points(page)
        time.sleep(0.5)
    raise AssertionError(f"the monitor never showed more than {above} logged steps")


def test_train_launch_monitor_stop_resume(page, shot):
    open_tab(page, "Runs / monitor")  # the monitor shows a run already: the launch below must take its place
    page.wait_for_selector("#monitor-summary:has-text('logged steps')")
    open_tab(page, "Train")
    choose(page, "train-preset", "micro_long")
    page.wait_for_function("document.querySelector('#train-name input, #train-name textarea').value === 'micro_long'")
    # A wrong override is reported inline, on one line, before anything starts.
    page.fill("#train-overrides textarea", "sft.lrr=1")
    page.wait_for_selector("#train-validation:has-text(\"unknown config key 'sft.lrr'\")")
    page.fill("#train-overrides textarea", "")
    page.wait_for_selector("#train-validation:has-text('valid')")
    page.click("#train-show")
    page.wait_for_function("document.querySelector('#train-command textarea').value.startsWith('rrft-studio train')")
    shot("train")
    page.click("#train-launch")
    # the page shows the launched run in the monitor, which picks it once its directory exists
    page.wait_for_selector("#monitor-summary:has-text('micro_long')", timeout=90_000)
    first = wait_for_points(page, 0)
    later = wait_for_points(page, first + 2)  # the plots gain points while the run trains
    page.wait_for_selector("#monitor-plot-0 canvas")  # a Vega chart drawn on a canvas
    assert page.locator("#monitor-plot-0").is_visible()
    shot("monitor")

    page.click("#monitor-stop")
    page.wait_for_selector("#monitor-summary .rrft-state-stopped", timeout=60_000)
    stopped_at = points(page)
    assert stopped_at >= later
    page.click("#monitor-resume")
    page.wait_for_selector("#monitor-summary .rrft-state-running", timeout=90_000)
    wait_for_points(page, stopped_at)  # continues from its checkpoint, logging new steps
    page.click("#monitor-stop")
    page.wait_for_selector("#monitor-summary .rrft-state-stopped", timeout=60_000)
    shot("monitor-stopped")


def test_rollouts_show_images_and_scores(page, shot):
    open_tab(page, "Rollouts")
    page.wait_for_selector("#rollouts-images img", timeout=60_000)
    page.wait_for_selector("#rollouts-table :text('advantage')")
    page.wait_for_selector("#rollouts-summary:has-text('prompts ×')")
    assert page.input_value("#rollouts-truth textarea, #rollouts-truth input")
    assert int(page.get_attribute("#rollouts-table [role=grid]", "aria-rowcount")) >= 2  # a header, completions
    page.locator("#rollouts-table [role=gridcell]:visible").nth(2).click()
    page.wait_for_selector("#rollouts-detail:has-text('Raw completion')")
    shot("rollouts")


def test_rollouts_step_follows_the_keys(page, studio):
    """The step shown is the slider's: arrow keys on the slider and Enter in its number box show their step."""
    run = next(p for p in sorted(studio["runs_dir"].iterdir()) if p.name.startswith("micro-")
               and (p / "samples.jsonl").is_file())  # steps 1 and 2 logged
    open_tab(page, "Rollouts")
    choose(page, "rollouts-run", run.name)
    page.wait_for_selector("#rollouts-summary:has-text('step 2 ·')")
    page.focus("#rollouts-step input[type=range]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#rollouts-summary:has-text('step 1 ·')")
    page.click("#rollouts-next")  # on from the step shown, which is the slider's
    page.wait_for_selector("#rollouts-summary:has-text('step 2 ·')")
    assert page.input_value("#rollouts-step input[type=range]") == "2"
    page.fill("#rollouts-step input[type=number]", "1")
    page.press("#rollouts-step input[type=number]", "Enter")
    page.wait_for_selector("#rollouts-summary:has-text('step 1 ·')")


def test_compare_two_answers_side_by_side(page, shot, studio):
    from rrft_studio.studio import catalog

    runs_dir = studio["runs_dir"]
    run = min((p for p in runs_dir.iterdir() if (p / "final" / "grpo").is_dir()), key=lambda p: p.stat().st_mtime)
    labels = {value: label for label, value in catalog.all_checkpoints(runs_dir)}
    open_tab(page, "Compare")
    # The default pair is the newest finished run's (catalog.default_checkpoints): for a run through both stages,
    # its SFT and GRPO outputs, what GRPO added. (Other tests of this studio may add newer runs.)
    page.wait_for_selector("#compare-checkpoints .token")
    chosen = [" ".join(c.split()) for c in page.locator("#compare-checkpoints .token").all_inner_texts()]
    assert chosen == [labels[v] for v in catalog.default_checkpoints(runs_dir)], chosen
    pair = [f"{run.name} · after sft", f"{run.name} · after grpo"]
    if chosen != pair:  # the studio's micro run, which went through both stages
        page.click("#compare-checkpoints .remove-all")
        for label in pair:
            choose(page, "compare-checkpoints", label)
        page.keyboard.press("Escape")
    page.click("#compare-load")
    page.wait_for_function("document.querySelector('#compare-question textarea').value.length > 0")
    page.wait_for_selector("#compare-image img")
    page.fill("#compare-temperature input[type=number]", "1")  # sampled: a random micro model's greedy text is blank
    page.press("#compare-temperature input[type=number]", "Enter")
    page.click("#compare-go")
    for slot in (0, 1):
        page.wait_for_selector(f"#compare-slot-{slot} .rrft-scores:has-text('tokens')", timeout=120_000)
    assert page.locator("#compare-slot-2").is_hidden()
    page.wait_for_timeout(500)  # the event has ended: no column keeps Gradio's orange "generating" border
    assert page.locator("#tab-compare .generating").count() == 0
    shot("compare")


def test_compare_results_read_a_sweep_as_one_entry(page, shot, studio):
    """A sweep folder (sweep.json over two finished runs, as `rrft-studio sweep --seeds` writes it) is one entry of
    the results table, its stages' accuracies as mean ± sd over its runs; a run beside it is a row of its own."""
    import json

    from rrft_studio.eval import sweep

    run = next(p for p in studio["runs_dir"].iterdir() if (p / "report.json").is_file())
    folder = studio["runs_dir"] / "micro-sweep-seeds"
    folder.mkdir(exist_ok=True)
    points = [sweep.result({"seed": seed}, run) for seed in (0, 1)]
    (folder / "sweep.json").write_text(json.dumps({"points": points, "spread": sweep.spread(points)}))
    open_tab(page, "Compare")
    page.get_by_role("tab", name="Results: runs and sweeps").click()
    table = "#compare-results-table"
    page.wait_for_selector(f"{table}:has-text('micro-sweep-seeds grpo (mean ± sd over 2 runs)')", timeout=60_000)
    page.wait_for_selector(f"{table}:has-text('{run.name} grpo')")
    assert " ± 0.00" in page.inner_text(table)  # the same run twice: no spread
    page.wait_for_selector(f"{table}:has-text('micro-sweep-seeds: GRPO - SFT')")
    shot("compare-results")


STREAM_PROBE = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const bots = document.querySelectorAll('#chat-bot .message.bot, #chat-bot [data-testid="bot"]');
    const text = Array.from(bots).map(b => b.innerText).join('');
    window.__lengths.push(text.length);
  }).observe(document.querySelector('#chat-bot'), {subtree: true, childList: true, characterData: true});
}"""


def test_chat_streams_text(page, shot, cache_dir, studio):
    import json

    image = next(cache_dir.glob("data/counting-*/images/*/*.png"))
    open_tab(page, "Chat")
    page.wait_for_function("document.querySelector('#chat-checkpoint input').value.length > 0")
    chosen = page.input_value("#chat-checkpoint input")  # a finished run's last stage, as its label shows
    run = next(p for p in studio["runs_dir"].iterdir() if chosen.startswith(p.name + " · "))
    stages = [s for s in ("grpo", "sft") if (run / "final" / s / "config.json").is_file()]
    assert json.loads((run / "status.json").read_text())["state"] == "finished" and chosen.endswith(f"after {stages[0]}")
    page.check("#chat-instruction input")  # the task's instruction appended, as in training
    page.set_input_files("#chat-input input[type=file]", str(image))
    page.wait_for_selector("#chat-input img")
    page.evaluate(STREAM_PROBE)
    page.fill("#chat-input textarea", "How many objects are there?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat-footnote:has-text('tokens/s')", timeout=120_000)
    lengths = page.evaluate("window.__lengths")
    grown = sorted({n for n in lengths if n > 0})
    assert len(grown) >= 3, f"the reply did not stream in: text lengths seen {grown}"
    page.wait_for_selector("#chat-bot img")  # the user's turn shows its image
    asked = " ".join(page.locator("#chat-bot [data-testid=user]").all_inner_texts())  # the image is a bubble too
    assert "Output the thinking process in <think>" in asked, asked
    page.evaluate("document.querySelectorAll('#chat-bot *').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    shot("chat")
    page.get_by_text("Use it from an application (API)").click()  # the API snippet for this checkpoint
    page.wait_for_selector("#chat-api:has-text('rrft-studio serve')")
    api = page.locator("#chat-api").inner_text()
    assert "curl http://127.0.0.1:8000/v1/chat/completions" in api and "from openai import OpenAI" in api
    shot("chat_api")


def test_data_preview(page, shot, studio):
    from .conftest import ROOT

    open_tab(page, "Data")
    page.click("#data-preview")
    page.wait_for_selector("#data-gallery img")
    page.wait_for_selector("#data-summary:has-text('first 12')")
    assert page.get_attribute("#data-table [role=grid]", "aria-rowcount") == "13"  # a header and 12 records
    # Each thumbnail is the whole scene with its caption in a band beneath it, not laid over the picture (where it
    # hid the objects at the bottom edge), and shown whole (contained, not cropped).
    page.wait_for_function("() => { const imgs = document.querySelectorAll('#data-gallery img');"
                           " return imgs.length === 12 && Array.from(imgs).every((i) => i.complete && i.naturalWidth > 0); }")
    shown = page.eval_on_selector_all("#data-gallery img", "(imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight,"
                                      " getComputedStyle(i).objectFit])")
    assert shown == [[224, 250, "contain"]] * 12, shown  # 112-pixel scenes at twice their size, and the band
    assert page.locator("#data-gallery .caption-label").count() == 0
    shot("data")
    page.get_by_role("tab", name="Generate a synthetic dataset").click()  # into the data folder, not the checkout
    out = page.input_value("#generate-out textarea, #generate-out input")
    assert out == str(studio["data_dir"].resolve() / "counting") and not out.startswith(str(ROOT))


def test_data_check_of_the_real_layout(page, shot, studio):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import layout

    top = layout.build(studio["data_dir"])
    open_tab(page, "Data")
    page.get_by_role("tab", name="Check a data file").click()
    page.fill("#check-path textarea, #check-path input", str(top))
    page.click("#check-go")
    page.wait_for_selector("#check-verdict:has-text('no problems found')", timeout=120_000)
    report = page.input_value("#check-report textarea")
    assert "A3-Visual-Counting-train-35k-cot.json (counting, train): 4 records" in report
    assert "answers: function calls 4" in report
    shot("data_check")
    rows = json.loads((top / "test_jsons" / "Visual-Counting-id-test-1k.json").read_text())
    (top / "images" / "test_images" / rows[0]["image"]).unlink()
    page.click("#check-go")
    page.wait_for_selector("#check-verdict:has-text('1 missing image')", timeout=120_000)
    assert "unzip" in page.inner_text("#check-verdict")
    shot("data_check_problem")

    # A dataset the tab generates, named by a path relative to the data folder, is checked as what it is: the
    # counting task's (it was "custom"), each split file of the folder.
    page.get_by_role("tab", name="Generate a synthetic dataset").click()
    page.fill("#generate-out textarea, #generate-out input", "mine")
    page.fill("#generate-count input", "6")
    page.click("#generate-go")
    page.wait_for_function("document.querySelector('#generate-result').innerText.includes('wrote 6 records')",
                           timeout=120_000)
    assert (studio["data_dir"] / "mine" / "train.json").is_file()
    page.get_by_role("tab", name="Check a data file").click()
    for typed in ("mine/train.json", "mine"):
        page.fill("#check-path textarea, #check-path input", typed)
        page.click("#check-go")
        command = f"data check {studio['data_dir'] / typed}\n"  # the report opens with the command it ran
        page.wait_for_function("t => document.querySelector('#check-report textarea').value.includes(t)",
                               arg=command, timeout=120_000)
        assert "train.json (counting, train): 6 records" in page.input_value("#check-report textarea")
        page.wait_for_selector("#check-verdict:has-text('no problems found')")
