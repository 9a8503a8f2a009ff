"""The Rollouts tab: samples.jsonl step by step. For each prompt of a logged GRPO step: its image(s), the
prompt and the truth; each completion with its per-reward scores, weighted total, advantage and length;
filters for format failures, zero-spread groups (every completion scored the same: no learning signal) and
truncated completions (as long as grpo.max_completion_length allows). The steps come from logs.py's index of
samples.jsonl: showing a step reads that step's line only.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from .. import inference
from . import catalog, logs

FILTERS = ["format failures", "zero-spread groups", "truncated"]
VIEW_OUTPUTS = 7  # summary line, prompt picker, images, prompt, truth, completions, the one being read


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


def steps(run_dir: Path) -> list[int]:
    """The logged rollout steps, in order."""
    return list(logs.CACHE.get(run_dir, metrics=False, samples=True).samples.steps)


def step_record(run_dir: Path, step: int | None) -> dict | None:
    """The rollouts of one step (its last line in samples.jsonl), read on their own."""
    return logs.CACHE.get(run_dir, metrics=False, samples=True).samples.record(step) if step is not None else None


def groups(record: dict, weights: list[float], max_length: int) -> list[Group]:
    """Split a step's completions into prompt groups (consecutive completions of the same id and prompt)
    and annotate each completion with total, format failure and truncation."""
    out: list[Group] = []
    for c in record["completions"]:
        images = c.get("image") or c.get("image_path") or []
        key = (str(c.get("id", "")), c["prompt"])
        if not out or (out[-1].id, out[-1].prompt) != key:
            out.append(Group(key[0], c["prompt"], str(c.get("answer", "")), images if isinstance(images, list) else [images]))
        scores = list(c["rewards"].values())
        w = weights if len(weights) == len(scores) else [1.0] * len(scores)
        out[-1].completions.append({
            **c, "total": sum(wi * s for wi, s in zip(w, scores)),
            "format_failure": c["rewards"].get("format_reward", 1.0) == 0,
            "truncated": c.get("length", 0) >= max_length,
        })
    return out


def keep(group: Group, filters: list[str]) -> list[dict]:
    """The completions of a group that pass the filters (any checked filter matches; none checked: all)."""
    if not filters:
        return group.completions
    if "zero-spread groups" in filters and group.zero_spread:
        return group.completions
    return [c for c in group.completions if ("format failures" in filters and c["format_failure"])
            or ("truncated" in filters and c["truncated"])]


def user_text(prompt: str) -> str:
    """The user's part of a chat-templated prompt (the system line and the assistant cue dropped)."""
    body = prompt.split("user\n", 1)[-1]
    return body.rsplit("\nassistant", 1)[0].strip()


def _settings(run_dir: Path) -> tuple[list[float], int]:
    cfg = catalog.run_config(run_dir)
    return (cfg.grpo.reward_weights, cfg.grpo.max_completion_length) if cfg else ([], 10**9)


def load_step(run_dir: Path, step: int | None, filters: list[str]) -> tuple[list[Group], str]:
    """The step's groups that have completions passing the filters, and a one-line summary of the step."""
    step = int(step) if step is not None else None  # a slider's value arrives as a float
    record = step_record(run_dir, step)
    if not record:
        return [], "No rollouts logged for this step."
    weights, max_length = _settings(run_dir)
    every = groups(record, weights, max_length)
    shown = [g for g in every if keep(g, filters)]
    completions = [c for g in every for c in g.completions]
    mean = sum(c["total"] for c in completions) / max(len(completions), 1)
    line = (f"step {step} · {len(every)} prompts × {len(every[0].completions)} completions · mean reward "
            f"{mean:.2f} · zero-spread groups {sum(g.zero_spread for g in every)} · format failures "
            f"{sum(c['format_failure'] for c in completions)} · truncated {sum(c['truncated'] for c in completions)}")
    if filters:
        line += f" · **{len(shown)} prompt(s) match the filters**"
    return shown, line


def table(group: Group, filters: list[str]) -> list[list]:
    rows = []
    for i, c in enumerate(keep(group, filters)):
        flags = ", ".join(f for f, on in (("format ✗", c["format_failure"]), ("truncated", c["truncated"])) if on)
        preview = " ".join(c["completion"].split())[:90]
        rows.append([i + 1, *(f"{v:.2f}" for v in c["rewards"].values()), f"{c['total']:.2f}",
                     f"{c['advantage']:+.2f}", c.get("length", ""), flags, preview])
    return rows


def headers(group: Group | None) -> list[str]:
    names = [k.removesuffix("_reward") for k in (group.completions[0]["rewards"] if group else {})]
    return ["#", *names, "total", "advantage", "tokens", "flags", "completion"]


def widths(group: Group | None) -> list[str]:
    """Room for the numbers' headers, the rest for the completion's preview."""
    n = len(group.completions[0]["rewards"]) if group else 0
    return ["5%", *["10%"] * n, "8%", "11%", "8%", "16%", f"{52 - 10 * n}%"]


def detail(c: dict) -> str:
    parsed = inference.split_think(c["completion"])
    scores = " · ".join(f"{k.removesuffix('_reward')} {v:.2f}" for k, v in c["rewards"].items())
    think = f"**Thinking**\n```\n{parsed.think}\n```\n" if parsed.think is not None else "*(no `<think>` block)*\n"
    return (f"{scores} · total **{c['total']:.2f}** · advantage {c['advantage']:+.2f} · {c.get('length', '?')} "
            f"tokens\n\n{think}\n**Answer:** `{parsed.answer or '(empty)'}`\n\n**Raw completion**\n```\n{c['completion']}\n```")


def enter(runs_dir: Path, name: str | None, s: float | None, chosen_filters: list[str]) -> list:
    """On opening the tab: the runs that logged rollouts (newest first) and, in the same answer, the newest
    one's first step; a run already shown stays as it is, its step picker brought up to date."""
    names = [i.name for i in catalog.list_runs(runs_dir) if (i.path / "samples.jsonl").is_file()]
    if name in names:
        found = steps(runs_dir / name)
        return [gr.update(choices=names), step_picker(found, nearest(found, s)), *[gr.skip()] * VIEW_OUTPUTS]
    name = names[0] if names else None
    return [gr.update(choices=names, value=name), *open_run(runs_dir, name, chosen_filters)]


def nearest(found: list[int], s: float | None) -> int | None:
    """The logged step closest to s (rollouts are logged every grpo.samples_every steps); None without any."""
    if not found:
        return None
    if s is None:
        return found[0]
    i = bisect.bisect_left(found, s)
    return min(found[max(0, i - 1): i + 1], key=lambda step: abs(step - s))


def step_picker(found: list[int], s: int | None):
    """A slider over the logged steps (a long run logs 20,000: a dropdown of them all would stall the page)."""
    if not found:
        return gr.update(minimum=0, maximum=1, value=0, info="no rollouts logged yet")
    every = f", every {found[1] - found[0]}" if len(found) > 1 else ""
    return gr.update(minimum=found[0], maximum=max(found[-1], found[0] + 1), value=s, info=f"{len(found):,} logged{every}")


def show_step(runs_dir: Path, name: str | None, s: int | None, chosen_filters: list[str]):
    """The step's summary line and its prompts (those passing the filters) for the prompt picker."""
    shown, summary = load_step(runs_dir / name, s, chosen_filters) if name else ([], "")
    labels = [f"{i + 1} · {g.id} · truth {g.answer} · mean reward "
              f"{sum(c['total'] for c in g.completions) / len(g.completions):.2f}"
              + (" · zero spread" if g.zero_spread else "") for i, g in enumerate(shown)]
    return summary, gr.Dropdown(choices=labels, value=labels[0] if labels else None)


def show_group(runs_dir: Path, name: str | None, s: int | None, chosen_filters: list[str], index: int | None):
    """Images, prompt, truth, completions table and the first completion of one prompt."""
    shown, _ = load_step(runs_dir / name, s, chosen_filters) if name else ([], "")
    if index is None or index >= len(shown):
        return [], "", "", gr.Dataframe(value=[], headers=headers(None)), ""
    g = shown[index]
    pictures = [p for p in (catalog.open_image(path) for path in g.images) if p is not None]
    grid_update = gr.Dataframe(value=table(g, chosen_filters), headers=headers(g), column_widths=widths(g))
    return pictures, user_text(g.prompt), g.answer, grid_update, detail(keep(g, chosen_filters)[0])


def view(runs_dir: Path, name: str | None, s: int | None, chosen_filters: list[str]) -> list:
    """A step at once: its summary line, its prompts, and the first prompt's images, text and completions."""
    summary, prompts = show_step(runs_dir, name, s, chosen_filters)
    return [summary, prompts, *show_group(runs_dir, name, s, chosen_filters, 0)]


def open_run(runs_dir: Path, name: str | None, chosen_filters: list[str]) -> list:
    """The step picker over the run's logged steps, and the first step's view."""
    found = steps(runs_dir / name) if name else []
    s = found[0] if found else None
    return [step_picker(found, s), *view(runs_dir, name, s, chosen_filters)]


def go_to(runs_dir: Path, name: str | None, s: float | None, chosen_filters: list[str], delta: int = 0) -> list:
    """The logged step nearest to s (then delta logged steps on) and its view."""
    found = steps(runs_dir / name) if name else []
    s = nearest(found, s)
    if s is not None and delta:
        i = found.index(s)
        s = found[max(0, min(len(found) - 1, i + delta))]
    return [s if s is not None else 0, *view(runs_dir, name, s, chosen_filters)]


def build(runs_dir: Path, tab: gr.Tab) -> None:
    with gr.Row(equal_height=True):
        run = gr.Dropdown([], label="Run", scale=3, elem_id="rollouts-run")
        step = gr.Slider(0, 1, value=0, step=1, label="Step", scale=2, min_width=200, elem_id="rollouts-step")
        with gr.Column(scale=1, min_width=120):
            prev = gr.Button("◀ previous step", size="sm")
            nxt = gr.Button("next step ▶", size="sm")
        filters = gr.CheckboxGroup(FILTERS, label="Show only", scale=3, elem_id="rollouts-filters")
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
            grid = gr.Dataframe(headers=headers(None), interactive=False, wrap=True, max_height=330,
                                elem_id="rollouts-table", label="Completions (click one to read it)")
            reading = gr.Markdown(elem_id="rollouts-detail")

    def pick(name, s, chosen_filters, index, evt: gr.SelectData):
        shown, _ = load_step(runs_dir / name, s, chosen_filters)
        return detail(keep(shown[index], chosen_filters)[evt.index[0]])

    group_outputs = [images, prompt, truth, grid, reading]
    group_inputs = [run, step, filters, group]
    view_outputs = [line, group, *group_outputs]

    # One event per action, each drawing the whole step: a step is one line of samples.jsonl, read on its own.
    tab.select(lambda *a: enter(runs_dir, *a), [run, step, filters], [run, step, *view_outputs])
    run.input(lambda *a: open_run(runs_dir, *a), [run, filters], [step, *view_outputs])
    step.release(lambda *a: go_to(runs_dir, *a), [run, step, filters], [step, *view_outputs])
    filters.change(lambda *a: view(runs_dir, *a), [run, step, filters], view_outputs)
    group.input(lambda *a: show_group(runs_dir, *a), group_inputs, group_outputs)
    grid.select(pick, group_inputs, reading)
    prev.click(lambda n, s, f: go_to(runs_dir, n, s, f, -1), [run, step, filters], [step, *view_outputs])
    nxt.click(lambda n, s, f: go_to(runs_dir, n, s, f, 1), [run, step, filters], [step, *view_outputs])
