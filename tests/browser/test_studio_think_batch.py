"""Two paths that need a model which really writes the Reason-RFT layout: Chat folding `<think>` apart from
the answer, and Compare's batch mode over the eval split (accuracy table, answers per sample, table copied
as CSV). Both use `think_run` (conftest.py): an SFT-only run trained until its greedy replies are
`<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>`. Decoding is greedy throughout, so the replies are the
same from one run of the suite to the next."""

from __future__ import annotations

import csv
import io
import re

from .test_studio_browser import choose, open_tab

TAGS = re.compile(r"</?(think|answer)>")


def first_eval_prompt(run_dir):
    """(image path, question, prompt) of the run's first eval record: the prompt worded as in training (the
    instruction appended)."""
    from rrft_studio import data, runs
    cfg = runs.load_config(run_dir)
    record = data.records(cfg, cfg.eval.splits[0])[0]
    prompt = data.task_of(cfg).prompt(record["problem"], cfg.eval.style)
    return str(data.images_of(record)[0]), record["problem"], prompt


def set_slider(page, label: str, value: float) -> None:
    """Type a value into the number box of the Gradio slider labelled `label`."""
    box = page.get_by_label(f"number input for {label}", exact=True)
    box.fill(str(value))
    box.press("Enter")


def grid_rows(page, grid) -> list[list[str]]:
    """The cells of a Gradio dataframe as shown, header first (its rows are role=row, not plain <tr>)."""
    return grid.evaluate("""g => Array.from(g.querySelectorAll('[role=row]'))
        .map(r => Array.from(r.querySelectorAll('[role=columnheader], [role=gridcell]')).map(c => c.innerText.trim()))
        .filter(r => r.some(c => c))""")


def test_chat_folds_thinking_apart_from_the_answer(page, shot, think_run):
    image, question, prompt = first_eval_prompt(think_run)
    open_tab(page, "Chat")
    choose(page, "chat-checkpoint", f"{think_run.name} · after sft")
    # As Compare asks: greedy, the instruction appended to the question as in training, without touching a setting.
    assert page.is_checked("#chat-instruction input")
    assert page.input_value("#chat-temperature input[type=number]") == "0"
    page.set_input_files("#chat-input input[type=file]", image)
    page.wait_for_selector("#chat-input img")
    page.fill("#chat-input textarea", question)
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat-footnote:has-text('tokens/s')", timeout=120_000)
    asked = page.locator("#chat-bot [data-testid=user]").last.inner_text()
    assert " ".join(asked.split()) == " ".join(prompt.split()), asked

    bots = page.locator("#chat-bot [data-testid=bot]")
    assert bots.count() == 2, f"expected a thinking block and an answer, got {bots.all_inner_texts()}"
    thought, answer = bots.nth(0), bots.nth(1)
    group = thought.locator(".thought-group")
    assert group.count() == 1 and "Thinking" in group.locator(".title").inner_text()
    # The reasoning is folded: its title shows, its text does not, until the user opens it. (It is open while
    # it streams and folds once </think> arrives; the folding slides, so wait for the text to leave the page.)
    page.wait_for_function("() => !document.querySelector('#chat-bot .thought-group .title').classList.contains('expanded')",
                           timeout=5_000)
    group.locator(".content").wait_for(state="detached", timeout=5_000)
    thinking = (thought.get_attribute("aria-label") or "").removeprefix("bot's message: ")
    assert thinking and not TAGS.search(thinking), thinking
    assert thinking not in thought.inner_text()
    answer_text = answer.inner_text().strip()
    assert re.fullmatch(r"\d+", answer_text), f"the answer is not shown alone: {answer_text!r}"
    shot("chat_think")
    group.locator(".title").click()
    content = group.locator(".content")
    content.wait_for(state="visible")
    assert content.inner_text().strip() == thinking  # opened: the reasoning, without its tags
    assert answer.inner_text().strip() == answer_text
    page.wait_for_timeout(600)  # let the unfolding animation end before the screenshot
    shot("chat_think_open")


def test_compare_batch_accuracy_table_and_csv(page, shot, think_run):
    base, sft = f"{think_run.name} · base model", f"{think_run.name} · after sft"
    open_tab(page, "Compare")
    page.get_by_role("tab", name="Batch over the eval split").click()
    page.wait_for_selector(f"#compare-checkpoints:has-text('{think_run.name}')")
    page.click("#compare-checkpoints .remove-all")
    choose(page, "compare-checkpoints", base)
    choose(page, "compare-checkpoints", sft)
    page.keyboard.press("Escape")
    set_slider(page, "Samples (the first N of the split; more than it holds: all of it)", 4)
    set_slider(page, "Temperature (0 = greedy, comparable)", 0)
    page.get_by_role("button", name="Run batch").click()

    summary = page.locator("#tab-compare [role=grid]:has(th:has-text('mean tokens'))")
    summary.locator("[role=gridcell]:has-text('final/sft')").wait_for(timeout=120_000)
    rows = grid_rows(page, summary)
    assert rows[0] == ["checkpoint", "accuracy", "format", "mean tokens"]
    assert [r[0] for r in rows[1:]] == [f"{think_run.name} · base", f"{think_run.name} · final/sft"]
    for name, accuracy, fmt, tokens in rows[1:]:
        assert re.fullmatch(r"\d+\.\d%", accuracy) and re.fullmatch(r"\d\.\d\d", fmt) and tokens.isdigit()
    assert rows[2][2] == "1.00", f"the SFT checkpoint should answer in the trained format: {rows}"

    per_sample = page.locator("#tab-compare [role=grid]:has(th:has-text('truth'))")
    per_sample.locator("[role=gridcell]:has-text('counting-id-000003')").wait_for()
    samples = grid_rows(page, per_sample)
    assert samples[0] == ["sample", "truth", f"{think_run.name} · base", f"{think_run.name} · final/sft"]
    assert len(samples) == 1 + 4 and all(re.fullmatch(r"counting-id-\d+", r[0]) for r in samples[1:])
    assert all(c[0] in "✓✗" for r in samples[1:] for c in r[2:])

    # The table's copy button gives it as CSV: the same rows as shown.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("#tab-compare button[aria-label='Copy table data']").first.click()  # the accuracy table's
    page.wait_for_selector("#tab-compare button[aria-label='Copied to clipboard']")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert list(csv.reader(io.StringIO(copied))) == rows[1:]  # Gradio copies the rows, without the header
    shot("compare_batch")

    # The whole split (more samples asked than it holds), then only the samples where the two answers differ.
    set_slider(page, "Samples (the first N of the split; more than it holds: all of it)", 1000)
    page.get_by_role("button", name="Run batch").click()
    per_sample.locator("[role=gridcell]:has-text('counting-id-000007')").wait_for(timeout=120_000)
    everything = grid_rows(page, per_sample)[1:]
    assert len(everything) == 8, everything  # the micro run's eval split: 8 records
    page.click("#compare-only-different input")
    different = [r for r in everything if r[2] != r[3]]
    page.wait_for_function("n => document.querySelectorAll('#compare-per-sample [role=row]').length - 1 === n",
                           arg=len(different))
    if different:
        assert grid_rows(page, per_sample)[1:] == different
    page.click("#compare-only-different input")
    page.wait_for_function("n => document.querySelectorAll('#compare-per-sample [role=row]').length - 1 === n", arg=8)

    # A row clicked opens that sample side by side: its question and truth filled in.
    row = grid_rows(page, per_sample)[3]
    per_sample.locator(f"[role=gridcell]:has-text('{row[0]}')").click()
    page.wait_for_selector("#compare-question textarea:visible")
    page.wait_for_function("t => document.querySelector('#compare-truth textarea, #compare-truth input').value === t",
                           arg=row[1])
    assert page.input_value("#compare-question textarea")
    shot("compare_batch_opened")
