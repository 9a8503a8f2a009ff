"""The Rollouts tab: samples.jsonl step by step, the newest step first. For each prompt of a logged GRPO step:
its image(s), the prompt and the truth; its G completions side by side (the group view: each with its
per-reward scores, weighted total, advantage and length, the answer and the text) and as a table; the step's
reward histogram; filters for format failures, zero-spread groups (every completion scored the same: no
learning signal) and truncated completions (as long as grpo.max_completion_length allows), a text search in
the completions, and an order (by total reward, advantage or length).

samples.jsonl is never read whole (logs.Samples): the newest step is its last line, any other is found by
bisecting the file, so the tab opens at once on a file of hundreds of MB, and showing a step reads that
step's line only. A click on a point of a GRPO plot in the monitor opens this tab at that step (ui.py).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from .. import runs
from ..answers import split_think
from . import catalog, logs, rl_series

FILTERS = ["format failures", "zero-spread groups", "truncated"]
ORDERS = {"as sampled": None, "total reward, high first": ("total", True), "total reward, low first": ("total", False),
          "advantage, high first": ("advantage", True), "advantage, low first": ("advantage", False),
          "length, long first": ("length", True), "length, short first": ("length", False)}
VIEW_OUTPUTS = 8  # summary line, prompt picker, images, prompt, truth, completions table, group view, the one read


@dataclass
class Group:
    """The completions of one prompt at one step."""

    id: str
    prompt: str
    answer: str
    images: list[str]
    completions: list[dict] = field(default_factory=list)

    @property
    def zero_spread(self) -> bool:
        return len({round(c["total"], 9) for c in self.completions}) <= 1


def _samples(run_dir: Path) -> logs.Samples:
    return logs.CACHE.get(run_dir, metrics=False, samples=True).samples


def span(run_dir: Path) -> tuple[int, int, int | None] | None:
    """(first, last, the gap between the last two) of the logged rollout steps; None without any."""
    return _samples(run_dir).bounds()


def nearest(run_dir: Path, s: float | None) -> int | None:
    """The logged step closest to s (rollouts are logged every grpo.samples_every steps); the newest for None."""
    found = span(run_dir)
    if found is None:
        return None
    return found[1] if s is None else _samples(run_dir).nearest(s)


def step_record(run_dir: Path, step: int | None) -> dict | None:
    """The rollouts of one step (its last line in samples.jsonl), read on their own."""
    return _samples(run_dir).record(step) if step is not None else None


def groups(record: dict, weights: list[float], max_length: int) -> list[Group]:
    """Split a step's completions into prompt groups (consecutive completions of the same id and prompt)
    and annotate each completion with its number in the group, total, format failure and truncation."""
    out: list[Group] = []
    for c in record["completions"]:
        images = c.get("image") or c.get("image_path") or []
        key = (str(c.get("id", "")), c["prompt"])
        if not out or (out[-1].id, out[-1].prompt) != key:
            out.append(Group(key[0], c["prompt"], str(c.get("answer", "")), images if isinstance(images, list) else [images]))
        scores = list(c["rewards"].values())
        w = weights if len(weights) == len(scores) else [1.0] * len(scores)
        out[-1].completions.append({
            **c, "n": len(out[-1].completions) + 1, "total": sum(wi * (s or 0.0) for wi, s in zip(w, scores)),
            "format_failure": c["rewards"].get("format_reward", 1.0) == 0,
            "truncated": c.get("length", 0) >= max_length,
        })
    return out


def found_text(c: dict, search: str) -> bool:
    """Whether a completion holds the searched text (case-insensitive; empty: every completion)."""
    return not search or search.lower() in c["completion"].lower()


def keep(group: Group, filters: list[str], search: str = "") -> list[dict]:
    """The completions of a group that pass the filters (any checked filter matches; none checked: all) and
    hold the searched text."""
    if not filters:
        chosen = group.completions
    elif "zero-spread groups" in filters and group.zero_spread:
        chosen = group.completions
    else:
        chosen = [c for c in group.completions if ("format failures" in filters and c["format_failure"])
                  or ("truncated" in filters and c["truncated"])]
    return [c for c in chosen if found_text(c, search)]


def ordered(completions: list[dict], order: str | None) -> list[dict]:
    how = ORDERS.get(order or "as sampled")
    if how is None:
        return list(completions)
    key, high_first = how
    return sorted(completions, key=lambda c: c.get(key) or 0, reverse=high_first)


def user_text(prompt: str) -> str:
    """The user's part of a chat-templated prompt (the system line and the assistant cue dropped)."""
    body = prompt.split("user\n", 1)[-1]
    return body.rsplit("\nassistant", 1)[0].strip()


def _settings(run_dir: Path) -> tuple[list[float], int]:
    cfg = runs.read_config(run_dir)
    return (cfg.grpo.reward_weights, cfg.grpo.max_completion_length) if cfg else ([], 10**9)


def histogram_line(record: dict) -> str:
    """The step's rewards (their sum per completion) as value ×count (rl_series.histogram)."""
    counts = rl_series.histogram([{**record, "stage": "grpo"}], record.get("step"))
    return " · ".join(f"{value:g} ×{count}" for value, count in counts.items())


def load_step(run_dir: Path, step: int | None, filters: list[str], search: str = "") -> tuple[list[Group], str]:
    """The step's groups that have completions passing the filters and the search, and a one-line summary."""
    step = int(step) if step is not None else None  # a slider's value arrives as a float
    record = step_record(run_dir, step)
    if not record:
        return [], "No rollouts logged for this step."
    weights, max_length = _settings(run_dir)
    every = groups(record, weights, max_length)
    shown = [g for g in every if keep(g, filters, search)]
    completions = [c for g in every for c in g.completions]
    mean = sum(c["total"] for c in completions) / max(len(completions), 1)
    line = (f"step {step} · {len(every)} prompts × {len(every[0].completions)} completions · mean reward "
            f"{mean:.2f} · zero-spread groups {sum(g.zero_spread for g in every)} · format failures "
            f"{sum(c['format_failure'] for c in completions)} · truncated {sum(c['truncated'] for c in completions)}"
            f"\n\nthe rewards' sum over the step's completions: <span id='rollouts-histogram'>"
            f"{histogram_line(record)}</span>")
    if filters or search:
        line += f" · **{len(shown)} prompt(s) match**"
    return shown, line


REASONING = {True: "reasoning ✓", False: "reasoning ✗"}  # does the <think> lead to the answer (tasks.consistent)
REASONING_TITLE = {True: "the reasoning's last result is the answer given",
                   False: "the reasoning's last result is not the answer given"}


def reasoning_badge(consistent: bool | None) -> str:
    """An HTML badge for a completion whose reasoning was checked against its answer; '' where nothing was checked."""
    if consistent is None:
        return ""
    return (f"<span class=\"{'rrft-ok' if consistent else 'rrft-bad'} rrft-reasoning\" "
            f"title=\"{html.escape(REASONING_TITLE[consistent])}\">{REASONING[consistent]}</span>")


def table(group: Group, filters: list[str], search: str = "", order: str | None = None) -> list[list]:
    rows = []
    for c in ordered(keep(group, filters, search), order):
        flags = ", ".join(f for f, on in (("format ✗", c["format_failure"]), ("truncated", c["truncated"]),
                                          (REASONING[False], c.get("consistent") is False)) if on)
        preview = " ".join(c["completion"].split())[:90]
        rows.append([c["n"], *(f"{v:.2f}" if v is not None else "-" for v in c["rewards"].values()),
                     f"{c['total']:.2f}", f"{c['advantage']:+.2f}", c.get("length", ""), flags, preview])
    return rows


def headers(group: Group | None) -> list[str]:
    names = [k.removesuffix("_reward") for k in (group.completions[0]["rewards"] if group else {})]
    return ["#", *names, "total", "advantage", "tokens", "flags", "completion"]


def widths(group: Group | None) -> list[str]:
    """Room for the numbers' headers, the rest for the completion's preview."""
    n = len(group.completions[0]["rewards"]) if group else 0
    return ["5%", *["10%"] * n, "8%", "11%", "8%", "16%", f"{52 - 10 * n}%"]


def cards(group: Group, search: str = "", order: str | None = None) -> str:
    """The group view: every one of the prompt's G completions side by side, its scores, advantage and text; the
    ones holding the searched text outlined."""
    out = []
    for c in ordered(group.completions, order):
        parsed = split_think(c["completion"])
        scores = " · ".join(f"{k.removesuffix('_reward')} {v:.2f}" for k, v in c["rewards"].items() if v is not None)
        sign = "pos" if c["advantage"] > 1e-9 else "neg" if c["advantage"] < -1e-9 else "zero"
        flags = "".join(f" · <span class='rrft-bad'>{f}</span>" for f, on in
                        (("format ✗", c["format_failure"]), ("truncated", c["truncated"])) if on)
        badge = reasoning_badge(c.get("consistent"))
        flags += f" · {badge}" if badge else ""
        found = " rrft-found" if search and found_text(c, search) else ""
        out.append(f"<div class='rrft-card rrft-adv-{sign}{found}'><div><b>#{c['n']}</b> · total "
                   f"<b>{c['total']:.2f}</b> · advantage <b>{c['advantage']:+.2f}</b> · {c.get('length', '?')} tokens"
                   f"{flags}</div><div class='rrft-card-scores'>{html.escape(scores)}</div>"
                   f"<div>answer: <code>{html.escape(parsed.answer or '(empty)')}</code></div>"
                   f"<pre>{html.escape(c['completion'])}</pre></div>")
    return f"<div class='rrft-cards' id='rollouts-group-view'>{''.join(out)}</div>"


def detail(c: dict) -> str:
    parsed = split_think(c["completion"])
    scores = " · ".join(f"{k.removesuffix('_reward')} {v:.2f}" for k, v in c["rewards"].items() if v is not None)
    think = f"**Thinking**\n```\n{parsed.think}\n```\n" if parsed.think is not None else "*(no `<think>` block)*\n"
    checked = c.get("consistent")
    reasoning = f" · {REASONING[checked]} ({REASONING_TITLE[checked]})" if checked is not None else ""
    return (f"#{c['n']} · {scores} · total **{c['total']:.2f}** · advantage {c['advantage']:+.2f} · "
            f"{c.get('length', '?')} tokens{reasoning}\n\n{think}\n**Answer:** `{parsed.answer or '(empty)'}`\n\n"
            f"**Raw completion**\n```\n{c['completion']}\n```")


def runs_with_rollouts(runs_dir: Path) -> list[str]:
    return [i.name for i in catalog.list_runs(runs_dir) if runs.samples_path(i.path).is_file()]


def enter(runs_dir: Path, name: str | None, s: float | None, *view_args) -> list:
    """On opening the tab: the runs that logged rollouts (newest first) and, in the same answer, the newest
    one's newest step; a run already shown stays as it is, its step picker brought up to date."""
    names = runs_with_rollouts(runs_dir)
    if name in names:
        return [gr.update(choices=names), step_picker(span(runs_dir / name), s), *[gr.skip()] * VIEW_OUTPUTS]
    name = names[0] if names else None
    return [gr.update(choices=names, value=name), *open_run(runs_dir, name, *view_args)]


def step_picker(bounds: tuple | None, s: float | None):
    """A slider over the logged steps (a long run logs 20,000: a dropdown of them all would stall the page)."""
    if bounds is None:
        return gr.update(minimum=0, maximum=1, value=0, info="no rollouts logged yet")
    first, last, gap = bounds
    every = f", every {gap}" if gap else ""
    return gr.update(minimum=first, maximum=max(last, first + 1), value=s if s is not None else last,
                     info=f"steps {first:,} to {last:,}{every}")


def show_step(runs_dir: Path, name: str | None, s: int | None, chosen_filters: list[str], search: str = ""):
    """The step's summary line and its prompts (those passing the filters) for the prompt picker."""
    shown, summary = load_step(runs_dir / name, s, chosen_filters, search) if name else ([], "")
    labels = [f"{i + 1} · {g.id} · truth {g.answer} · mean reward "
              f"{sum(c['total'] for c in g.completions) / len(g.completions):.2f}"
              + (" · zero spread" if g.zero_spread else "") for i, g in enumerate(shown)]
    return summary, gr.Dropdown(choices=labels, value=labels[0] if labels else None)


def show_group(runs_dir: Path, name: str | None, s: int | None, chosen_filters: list[str], search: str,
               order: str | None, index: int | None):
    """Images, prompt, truth, completions table, the group view and the first listed completion of one prompt."""
    shown, _ = load_step(runs_dir / name, s, chosen_filters, search) if name else ([], "")
    if index is None or index >= len(shown):
        return [], "", "", gr.Dataframe(value=[], headers=headers(None)), "", ""
    g = shown[index]
    pictures = [p for p in (catalog.open_image(path) for path in g.images) if p is not None]
    rows = table(g, chosen_filters, search, order)
    grid_update = gr.Dataframe(value=rows, headers=headers(g), column_widths=widths(g),
                               max_height=min(900, 38 * (len(rows) + 1) + 24))  # every completion in view
    first = ordered(keep(g, chosen_filters, search), order)
    return pictures, user_text(g.prompt), g.answer, grid_update, cards(g, search, order), detail(first[0]) if first else ""


def view(runs_dir: Path, name: str | None, s: int | None, chosen_filters: list[str], search: str = "",
         order: str | None = None) -> list:
    """A step at once: its summary line, its prompts, and the first prompt's images, text and completions."""
    summary, prompts = show_step(runs_dir, name, s, chosen_filters, search)
    return [summary, prompts, *show_group(runs_dir, name, s, chosen_filters, search, order, 0)]


def open_run(runs_dir: Path, name: str | None, *view_args) -> list:
    """The step picker over the run's logged steps, and its newest step's view."""
    bounds = span(runs_dir / name) if name else None
    s = bounds[1] if bounds else None
    return [step_picker(bounds, s), *view(runs_dir, name, s, *view_args)]


def go_to(runs_dir: Path, name: str | None, s: float | None, chosen_filters: list[str], search: str = "",
          order: str | None = None, delta: int = 0) -> list:
    """The logged step nearest to s (then delta logged steps on) and its view."""
    s = nearest(runs_dir / name, s) if name else None
    if s is not None and delta:
        s = _samples(runs_dir / name).moved(s, delta)
    return [s if s is not None else 0, *view(runs_dir, name, s, chosen_filters, search, order)]


def jump(runs_dir: Path, name: str, s: float, *view_args) -> list:
    """The run picker, step picker and view at a run's step (from a click on a monitor plot)."""
    names = runs_with_rollouts(runs_dir)
    if name not in names:
        return [gr.update(choices=names), gr.skip(), *[gr.skip()] * VIEW_OUTPUTS]
    step = nearest(runs_dir / name, s)
    return [gr.update(choices=names, value=name), step_picker(span(runs_dir / name), step),
            *view(runs_dir, name, step, *view_args)]


def build(runs_dir: Path, tab: gr.Tab, monitor_timer: gr.Timer) -> dict:
    """Lay out the tab; returns what a jump to a run's step needs (its inputs and outputs). Opening the tab
    switches the monitor's timer off in the same answer that fills it: one round trip, not two."""
    with gr.Row(equal_height=True):
        run = gr.Dropdown([], label="Run", scale=3, elem_id="rollouts-run")
        step = gr.Slider(0, 1, value=0, step=1, label="Step", scale=2, min_width=200, elem_id="rollouts-step")
        with gr.Column(scale=1, min_width=120):
            prev = gr.Button("◀ previous step", size="sm", elem_id="rollouts-prev")
            nxt = gr.Button("next step ▶", size="sm", elem_id="rollouts-next")
        filters = gr.CheckboxGroup(FILTERS, label="Show only", scale=3, elem_id="rollouts-filters")
    with gr.Row(equal_height=True):
        search = gr.Textbox(label="Search the completions", placeholder="text, e.g. </answer>", scale=3,
                            elem_id="rollouts-search")
        order = gr.Dropdown(list(ORDERS), value="as sampled", label="Order the completions by", scale=2,
                            elem_id="rollouts-order")
    line = gr.Markdown(elem_id="rollouts-summary")
    group = gr.Dropdown([], label="Prompt of this step (each has G completions)", type="index",
                        elem_id="rollouts-group")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=260):
            images = gr.Gallery(label="Image(s)", columns=2, height=320, object_fit="contain", preview=False,
                                elem_id="rollouts-images")
            prompt = gr.Textbox(label="Prompt text", lines=4, interactive=False)
            truth = gr.Textbox(label="Truth", interactive=False, elem_id="rollouts-truth")
        with gr.Column(scale=3):
            grid = gr.Dataframe(headers=headers(None), interactive=False, wrap=False, max_height=330,
                                elem_id="rollouts-table", label="Completions (click one to read it)")
    with gr.Accordion("The group: all G completions of this prompt side by side", open=True):
        group_view = gr.HTML(elem_id="rollouts-cards")
    reading = gr.Markdown(elem_id="rollouts-detail")

    def pick(name, s, chosen_filters, text, how, index, evt: gr.SelectData):
        shown, _ = load_step(runs_dir / name, s, chosen_filters, text)
        return detail(ordered(keep(shown[index], chosen_filters, text), how)[evt.index[0]])

    group_outputs = [images, prompt, truth, grid, group_view, reading]
    settings = [filters, search, order]
    view_outputs = [line, group, *group_outputs]

    # One event per action, each drawing the whole step: a step is one line of samples.jsonl, read on its own.
    tab.select(lambda *a: [gr.Timer(active=False), *enter(runs_dir, *a)], [run, step, *settings],
               [monitor_timer, run, step, *view_outputs])
    run.input(lambda *a: open_run(runs_dir, *a), [run, *settings], [step, *view_outputs])
    step.release(lambda *a: go_to(runs_dir, *a), [run, step, *settings], [step, *view_outputs])
    for control in (filters, order):
        control.change(lambda *a: view(runs_dir, *a), [run, step, *settings], view_outputs)
    search.submit(lambda *a: view(runs_dir, *a), [run, step, *settings], view_outputs)
    group.input(lambda *a: show_group(runs_dir, *a), [run, step, *settings, group], group_outputs)
    grid.select(pick, [run, step, *settings, group], reading)
    prev.click(lambda *a: go_to(runs_dir, *a, delta=-1), [run, step, *settings], [step, *view_outputs])
    nxt.click(lambda *a: go_to(runs_dir, *a, delta=1), [run, step, *settings], [step, *view_outputs])
    return {"settings": settings, "outputs": [run, step, *view_outputs]}
