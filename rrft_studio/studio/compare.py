"""The Compare tab: two to four checkpoints (a run's base model, after SFT, after GRPO, any saved step)
answer the same image and question side by side: reasoning and answer apart, each scored by the task's
rewards, with lengths. Batch mode runs N samples of a run's eval split through each and reports accuracy,
a progress bar following the samples answered. The results table puts runs and sweeps (a sweep as one entry:
mean ± standard deviation over its seeds) in the paper's layout, as `rrft-studio eval --compare` does; beside it,
two runs' configs show the keys they differ in (config_diff.py).

Each checkpoint answers in its own worker process (inference.Pool), all at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr

from .. import config, data, rewards, runs, tasks
from ..answers import answer_text as answers_text
from ..answers import split_think
from ..config import ConfigError
from ..eval import report
from ..serve.inference import Pool, Settings, Turn, WorkerError
from . import catalog, config_diff
from .chat import loaded_markdown, short_name
from .rollouts import REASONING
from .folders import Folders

SLOTS = 4


def score(text: str, truth: str, reward_names: list[str], task: str | None = None) -> dict[str, float]:
    """The run's rewards for one completion, given the columns training gives them (answer, task);
    rewards that need the truth are skipped without one, and module:function ones too (the studio's process
    imports no user code)."""
    out = {}
    for name in [n for n in reward_names if ":" not in n]:
        fn = rewards.resolve(name)
        try:
            out[name] = fn([text], answer=[truth], task=[task])[0] if truth else fn([text])[0]
        except TypeError:  # this reward needs a column we do not have (the truth)
            continue
    return out


def reward_label(name: str) -> str:
    """format, accuracy, or a custom reward's function name (module path dropped)."""
    return name.rsplit(":", 1)[-1].removesuffix("_reward")


def lengths(text: str, tokens: int) -> str:
    """Token count, split into thinking and answer by their share of the characters."""
    parsed = split_think(text)
    if parsed.think is None or not text:
        return f"{tokens} tokens"
    think = round(tokens * len(parsed.think) / len(text))
    return f"{tokens} tokens (thinking ≈{think}, answer ≈{tokens - think})"


def run_settings(checkpoint: str) -> tuple[list[str], str | None]:
    """(reward names, task) of the run a checkpoint belongs to; the paper's two rewards otherwise."""
    run_dir = catalog.run_of(checkpoint)
    cfg = runs.read_config(run_dir) if run_dir else None
    return (list(cfg.grpo.rewards), cfg.data.task) if cfg else (["format", "accuracy"], None)


def split_records(checkpoints: list[str], split: str | None = None) -> tuple[config.Config, list[dict], str]:
    """(config, records, split) of an evaluation split of the first chosen checkpoint's run (its first by
    default); gr.Error for no run or a split the run's task does not have."""
    cfg = catalog.first_config(checkpoints)
    if cfg is None:
        raise gr.Error("Pick a checkpoint of a run first: its eval split is used.")
    split, known = split or (cfg.eval.splits or ["id"])[0], eval_splits(cfg)
    if split not in known:
        raise gr.Error(f"the run's task has no split {split!r}: pick one of {', '.join(known)}")
    return cfg, data.records(cfg, split), split


def eval_splits(cfg: config.Config | None) -> list[str]:
    """The evaluation splits a run can be compared on: its eval.splits, then its task's other benchmarks that
    have data."""
    if cfg is None:
        return ["id"]
    return list(dict.fromkeys([*(cfg.eval.splits or []), *catalog.benchmarks_with_data(cfg)])) or ["id"]


def split_picker(checkpoints: list[str] | None, current: str | None) -> gr.Dropdown:
    """The split dropdown for the first chosen checkpoint's run, the current split kept where it has it."""
    known = eval_splits(catalog.first_config(checkpoints or []))
    return gr.Dropdown(choices=known, value=current if current in known else known[0])


def _shown(record: dict):
    return catalog.open_image(data.images_of(record)[0]), record["problem"], record["answer"]


def eval_sample(checkpoints: list[str], index: int, split: str | None = None):
    """(image, problem, truth) of eval record `index` of the first chosen checkpoint's run."""
    _, rows, _ = split_records(checkpoints, split)
    return _shown(rows[int(index) % len(rows)])


def sample_by_id(checkpoints: list[str], split: str | None, sample_id: str):
    """(image, problem, truth, its index) of the record with this id in the split: a batch row opened."""
    _, rows, _ = split_records(checkpoints, split)
    for i, record in enumerate(rows):
        if record["id"] == sample_id:
            return (*_shown(record), i)
    raise gr.Error(f"no record {sample_id!r} in the split")


def disagreeing(rows: list[list[str]]) -> list[list[str]]:
    """The batch rows where the checkpoints' answers differ (a cell is the ✓/✗ mark and the answer text)."""
    return [r for r in rows if len(set(r[2:])) > 1]


def _slot(value: str | None, state: dict | None, truth: str) -> list:
    """header, reasoning, answer, scores of one column."""
    if value is None:
        return [gr.Column(visible=False), "", "", "", ""]
    text = state["text"]
    parsed = split_think(text)
    head = f"#### {short_name(value)}"
    if state["error"]:
        return [gr.Column(visible=True), head, "", "", f"✗ {state['error']}"]
    if state["done"] is None:
        note = "loading…" if not text else "generating…"
        return [gr.Column(visible=True), head, parsed.think or "", parsed.answer, note]
    names, task = run_settings(value)
    scores = " · ".join(f"{reward_label(k)} **{v:.2g}**" for k, v in score(text, truth, names, task).items())
    checked = tasks.consistent(task, text)
    reasoning = f" · {REASONING[checked]}" if checked is not None else ""  # does its reasoning lead to its answer
    return [gr.Column(visible=True), head, parsed.think if parsed.think is not None else "(no <think> block)",
            parsed.answer or "(empty)", f"{scores}{reasoning} · {lengths(text, state['done']['tokens'])}"]


def run_side_by_side(pool: Pool, checkpoints: list[str], image: str | None, question: str, truth: str,
                     settings: Settings, trust: bool):
    """Generate with every checkpoint at once; yield all slots each time any of them progresses."""
    chosen = list(checkpoints or [])[:SLOTS]
    if len(chosen) < 2:
        raise gr.Error("Choose two to four checkpoints.")
    turns = [Turn("user", question, [image] if image else [])]
    states = {v: {"text": "", "done": None, "error": None} for v in chosen}

    def work(value):
        try:
            for event in pool.get(value, trust).stream(turns, settings):
                if "chunk" in event:
                    states[value]["text"] += event["chunk"]
                else:
                    states[value]["done"] = event
        except WorkerError as e:
            states[value]["error"] = str(e)

    threads = [threading.Thread(target=work, args=(v,), daemon=True) for v in chosen]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        yield _all_slots(chosen, states, truth)
        time.sleep(0.25)
    yield _all_slots(chosen, states, truth)


def _all_slots(chosen: list[str], states: dict, truth: str) -> list:
    """Every column; a finished answer word for word the same as another column's says so in its scores line."""
    padded = chosen + [None] * (SLOTS - len(chosen))
    done = {v: states[v]["text"] for v in chosen if states.get(v) and states[v]["done"] and not states[v]["error"]}
    out = []
    for v in padded:
        slot = _slot(v, states.get(v), truth)
        same = [short_name(o) for o in done if v in done and o != v and done[o] == done[v]]
        if same:
            slot[4] += " · ≡ **same text as** " + ", ".join(same)
        out += slot
    return out


BATCH = 8  # prompts per request to a worker, as it batches them: the progress bar moves by this much


def run_batch(pool: Pool, checkpoints: list[str], n: int, settings: Settings, trust: bool, progress=None,
              split: str | None = None):
    """Accuracy, format and mean length per checkpoint on the first n records of an eval split of the first run
    (all of them where n is more); progress (a gr.Progress) follows the samples answered."""
    cfg, rows, split = split_records(checkpoints, split)
    task, rows = data.task_of(cfg), rows[: int(n)]
    prompts = [(data.prompt_of(task, r, cfg.eval.style, cfg, split), data.images_of(r)) for r in rows]
    check = tasks.checker(task.checker_names(getattr(cfg.data, task.name))[1][cfg.eval.scorer])
    summary, answers = [], {r["id"]: [r["id"], r["answer"]] for r in rows}
    total, done = len(checkpoints) * len(prompts), 0
    for value in checkpoints:
        outputs = []
        for start in range(0, len(prompts), BATCH):
            if progress is not None:
                progress(done / max(total, 1), desc=f"{short_name(value)}: {start} of {len(prompts)} samples")
            outputs += pool.get(value, trust).batch(prompts[start:start + BATCH], settings, batch_size=BATCH)
            done += len(prompts[start:start + BATCH])
        correct = [check(o["text"], r["answer"]) for o, r in zip(outputs, rows)]  # the evaluator's scorer
        formats = rewards.format_reward([o["text"] for o in outputs])
        summary.append([short_name(value), f"{100 * sum(correct) / len(rows):.1f}%",
                        f"{sum(formats) / len(rows):.2f}", f"{sum(o['tokens'] for o in outputs) / len(rows):.0f}"])
        for o, r, ok in zip(outputs, rows, correct):
            answers[r["id"]].append(f"{'✓' if ok >= 1 else '✗'} {answers_text(o['text'])[:40]}")
    headers = ["sample", "truth", *(short_name(v) for v in checkpoints)]
    return summary, headers, list(answers.values()), loaded_markdown(pool)


def refresh(runs_dir: Path, pool: Pool, current: list[str] | None):
    """Checkpoints on disk now (the chosen ones kept, else the newest run's SFT and GRPO outputs, or its base and
    last stage), and what is loaded."""
    choices = catalog.all_checkpoints(runs_dir)
    values = {v for _, v in choices}
    kept = [c for c in current or [] if c in values] or catalog.default_checkpoints(runs_dir)
    return gr.Dropdown(choices=choices, value=kept), loaded_markdown(pool)


def placeholders(values: list[str] | None) -> list:
    """A column per chosen checkpoint, headed by its name, before anything is generated."""
    chosen = list(values or [])[:SLOTS]
    chosen += [None] * (SLOTS - len(chosen))
    return [x for v in chosen for x in ([gr.Column(visible=False), "", "", "", ""] if v is None else
            [gr.Column(visible=True), f"#### {short_name(v)}", "", "", "*press Compare*"])]


def build(runs_dir: Path, pool: Pool, tab: gr.Tab, folders: Folders | None = None) -> None:
    folders = folders or Folders.create(runs_dir)
    with gr.Row():
        checkpoints = gr.Dropdown([], multiselect=True, max_choices=SLOTS, scale=4, elem_id="compare-checkpoints",
                                  label="Checkpoints to compare (two to four)")
        trust = gr.Checkbox(False, label="Trust remote code", scale=1)
    with gr.Row():
        max_new = gr.Slider(8, 2048, value=128, step=8, label="Max new tokens")
        temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="Temperature (0 = greedy, comparable)",
                                elem_id="compare-temperature")
        split = gr.Dropdown(["id"], value="id", label="Eval split (of the first checkpoint's run)",
                            elem_id="compare-split")
    with gr.Tabs(elem_id="compare-views") as views:
        with gr.Tab("One image, side by side", id="side"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    image = gr.Image(type="filepath", label="Image", height=220, sources=["upload"], elem_id="compare-image")
                    question = gr.Textbox(label="Question", lines=2, elem_id="compare-question")
                    truth = gr.Textbox(label="Truth (optional: scores accuracy)", elem_id="compare-truth")
                    instruction = gr.Checkbox(True, label="Append the task's think/answer instruction (as in training)")
                    with gr.Row():
                        index = gr.Number(0, label="Eval sample #", precision=0, min_width=80, scale=1,
                                          elem_id="compare-index")
                        load = gr.Button("Load eval sample", size="sm", min_width=80, scale=1, elem_id="compare-load")
                    go = gr.Button("Compare", variant="primary", elem_id="compare-go")
                with gr.Column(scale=4):
                    with gr.Row(equal_height=True):
                        slots = []
                        for i in range(SLOTS):
                            with gr.Column(visible=False, elem_id=f"compare-slot-{i}", min_width=200) as column:
                                head = gr.Markdown()
                                think = gr.Textbox(label="Reasoning", lines=7, max_lines=14, interactive=False)
                                answer = gr.Textbox(label="Answer", interactive=False, elem_classes=["rrft-answer"])
                                scores = gr.Markdown(elem_classes=["rrft-scores"])
                            slots += [column, head, think, answer, scores]
        with gr.Tab("Batch over the eval split", id="batch"):
            with gr.Row():
                n = gr.Slider(1, 1000, value=8, step=1, elem_id="compare-n",
                              label="Samples (the first N of the split; more than it holds: all of it)")
                batch = gr.Button("Run batch", variant="primary", scale=0, min_width=140)
            summary = gr.Dataframe(headers=["checkpoint", "accuracy", "format", "mean tokens"], interactive=False)
            only_different = gr.Checkbox(False, label="Only the samples where the answers differ",
                                         elem_id="compare-only-different")
            per_sample = gr.Dataframe(interactive=False, max_height=360, elem_id="compare-per-sample",
                                      label="Answers per sample (click a row to open it side by side)")
            batch_rows, batch_headers = gr.State([]), gr.State([])
        with gr.Tab("Results: runs and sweeps"):
            targets = gr.Dropdown([], multiselect=True, label="Runs and sweeps (a sweep is one entry: mean ± sd over "
                                  "its runs)", elem_id="compare-results-targets")
            results = gr.Markdown(elem_id="compare-results-table")
        with gr.Tab("Configs: what differs"):
            config_diff.build(runs_dir, folders, tab)
    loaded = gr.Markdown(loaded_markdown(pool))

    def confined(values):
        try:
            return [folders.checkpoint(v) for v in values or []]
        except ConfigError as e:
            raise gr.Error(str(e)) from None

    def side_by_side(values, img, q, t, add, tokens, temp, trusted):
        settings = Settings(int(tokens), float(temp))
        values = confined(values)
        yield from run_side_by_side(pool, values, img, catalog.prompt_text(q, add, values or []), t, settings, trusted)

    def results_table(values):
        try:
            chosen = [folders.confine(v, "results", ("runs",)) for v in values or []]
        except ConfigError as e:
            raise gr.Error(str(e)) from None
        return report.results_table(chosen) if chosen else "*choose runs or sweeps*"

    def refresh_results(current):
        choices = catalog.results(runs_dir)
        kept = [c for c in current or [] if c in {v for _, v in choices}] or [v for _, v in choices[:2]]
        return gr.Dropdown(choices=choices, value=kept), results_table(kept)

    tab.select(lambda c: refresh(runs_dir, pool, c), checkpoints, [checkpoints, loaded]).then(
        placeholders, checkpoints, slots)
    tab.select(refresh_results, targets, [targets, results])
    targets.input(results_table, targets, results)
    checkpoints.input(placeholders, checkpoints, slots)
    load.click(eval_sample, [checkpoints, index, split], [image, question, truth])
    for event in (tab.select, checkpoints.input):  # the splits of the first checkpoint's run
        event(split_picker, [checkpoints, split], split)
    # Each column says itself that it is loading or generating: Gradio's own progress borders are left out, so
    # none of them outlives the generation.
    go.click(side_by_side, [checkpoints, image, question, truth, instruction, max_new, temperature, trust],
             slots, api_name="compare", show_progress="hidden").then(lambda: loaded_markdown(pool), None, loaded)
    def batched(values, k, which, tokens, temp, trusted, only, progress=gr.Progress()):
        table, headers, rows, loaded_now = run_batch(pool, confined(values), k, Settings(int(tokens), float(temp)),
                                                     trusted, progress, which)
        return table, rows, headers, shown_rows(rows, headers, only), loaded_now

    def shown_rows(rows, headers, only):
        return gr.Dataframe(value=disagreeing(rows) if only else rows, headers=headers or None)

    def opened(values, which, rows, only, evt: gr.SelectData):
        """A clicked row of the batch table, opened in the side-by-side view with its image, question and truth."""
        chosen = disagreeing(rows) if only else rows
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not chosen or row is None or row >= len(chosen):
            return [gr.skip()] * 5
        return (*sample_by_id(values, which, chosen[row][0]), gr.Tabs(selected="side"))

    batch.click(batched, [checkpoints, n, split, max_new, temperature, trust, only_different],
                [summary, batch_rows, batch_headers, per_sample, loaded])
    only_different.change(shown_rows, [batch_rows, batch_headers, only_different], per_sample)
    per_sample.select(opened, [checkpoints, split, batch_rows, only_different],
                      [image, question, truth, index, views])
