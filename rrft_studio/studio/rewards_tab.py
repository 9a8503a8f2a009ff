"""The Rewards tab: the reward workbench in the browser, before GPU hours are spent.

"Check a model" runs `rrft-studio rewards check PRESET --checkpoint ... --n N --json FILE` as a subprocess
(the model loads there, not in the studio's process) and shows the verdict, the per-reward table and one
histogram per reward over the model's own samples; it starts from the Stage-1 output of the run picked in the
monitor, where that run has one (what the run's GRPO starts from). "Score a completion" scores a pasted completion against
an answer with the preset's rewards, in this process (the rewards are pure functions), and says why each
score is what it is: which tag is missing, which answer texts were compared.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

import gradio as gr

from .. import config, runs, settings, workbench
from ..config import ConfigError
from . import catalog
from .launcher import Launcher

LEVEL_MARK = {"ok": "✓", "weak": "⚠", "dead": "✗"}


def start_points(runs_dir: Path) -> list[tuple[str, str]]:
    """(label, value) of what GRPO can start from: the preset's model, then each run with a finished Stage 1."""
    out = [("the preset's model", "")]
    for info in catalog.list_runs(runs_dir):
        if runs.is_done(info.path, "sft"):
            out.append((f"{info.path.name} · after sft", str(info.path)))
    return out


def follow_run(runs_dir: Path, name: str | None):
    """The starting model once a run is picked in the monitor: that run's Stage-1 output where it finished
    (what its GRPO starts from); left as it is otherwise."""
    points = start_points(runs_dir)
    value = str(runs_dir / name) if name else None
    return gr.Dropdown(choices=points, value=value) if value in {v for _, v in points} else gr.skip()


def check_args(preset: str, checkpoint: str, n: int, overrides: str, out: Path) -> list[str]:
    """The CLI arguments of a check (also shown to the user as the command)."""
    return ["rewards", "check", preset, *overrides.split(), "--n", str(int(n)),
            *(["--checkpoint", checkpoint] if checkpoint else []), "--json", str(out)]


def check(launcher: Launcher, preset: str, checkpoint: str, n: int, overrides: str):
    """Run the check: (verdict markdown, report text, histogram figure or None)."""
    if not preset:
        return "✗ pick a preset", "", None
    folders, given = launcher.folders, (overrides or "").split()
    try:
        if checkpoint:
            launcher.inside(Path(checkpoint))
        merged = folders.merged(Path(preset), given)
        folders.check_config(merged)  # the paths and rewards it names stay in the studio's folders
    except ConfigError as e:
        return f"✗ {e}", "", None
    if merged.run.cache_dir == config.Run().cache_dir and folders.resolve(merged.run.cache_dir) != folders.cache:
        given.append(f"run.cache_dir={folders.cache}")  # as the studio's runs: the tiny model and data there
    out = launcher.studio_dir / "rewards" / f"check-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = check_args(preset, checkpoint, n, " ".join(given), out)
    done = launcher.run_cli([*args, *_rewards_dir(launcher)], timeout=3600)
    command = "$ rrft-studio " + " ".join(args)
    if done.returncode != 0 or not out.is_file():
        error = done.stderr.strip().splitlines()[-1:] or ["the check failed"]
        return f"✗ {error[0].removeprefix('error: ')}", f"{command}\n{done.stdout}{done.stderr}".strip(), None
    report = json.loads(out.read_text())
    return verdict_markdown(report), f"{command}\n{done.stdout}".strip(), histograms(report)


def _rewards_dir(launcher: Launcher) -> list[str]:
    """The studio's folder of reward modules, for package.module:function rewards (as train gets it)."""
    return ["--rewards-dir", str(launcher.folders.rewards)] if launcher.folders.rewards else []


def verdict_markdown(report: dict) -> str:
    v = report["verdict"]  # its reason may name a tag (</answer>): escaped, or markdown takes it for HTML
    lines = [f"**{LEVEL_MARK.get(v['level'], '')} {v['level']}**: {html.escape(v['reason'])}"]
    lines += [f"- {html.escape(note)}" for note in [*report["summary"].get("notes", []), *v.get("notes", [])]]
    return "\n".join(lines)


def histograms(report: dict, bins: int = 11):
    """One histogram per reward and of the total, over every sample; zero-spread share in each title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["summary"]
    stats = [*s["rewards"], s["total"]]
    samples = report["samples"]
    fig, axes = plt.subplots(1, len(stats), figsize=(3.2 * len(stats), 2.6), dpi=100, squeeze=False)
    for ax, st in zip(axes[0], stats):
        if st["name"] == "total":
            values = [sum(v for v in smp["rewards"].values() if v is not None) for smp in samples]
        else:
            values = [smp["rewards"][st["name"]] for smp in samples]
        values = [v for v in values if v is not None and not math.isnan(v)]
        ax.hist(values, bins=bins, color="#4c78a8")
        ax.set_title(f"{st['name']}\nzero-spread groups {100 * st['zero_spread']:.0f}%", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def score_pasted(launcher: Launcher, preset: str, completion: str, answer: str) -> str:
    """A markdown table: each configured reward's score of the pasted completion, and why. Built-in rewards
    score in this process; a preset with its own reward module is scored by the CLI in a subprocess (user code
    never runs in the studio's process)."""
    if not preset:
        return "✗ pick a preset"
    completion, answer = completion or "", answer or ""
    try:
        cfg = settings.load(preset, import_rewards=False)
        if all(":" not in name for name in cfg.grpo.rewards):
            scores = {r["reward"]: r["score"] for r in workbench.explain(cfg, completion, answer)}
        else:
            scores = _score_by_cli(launcher, preset, completion, answer)
    except ConfigError as e:
        return f"✗ {e}"
    lines = ["| reward | score | why |", "|---|---|---|"]
    for name, value in scores.items():
        shown = "n/a" if value is None or math.isnan(value) else f"{value:.2f}"
        # escaped: a tag the explanation names (no <think> tag) is otherwise taken for HTML and dropped
        why = html.escape(workbench.why(name, completion, answer), quote=False).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {shown} | {why} |")
    return "\n".join(lines)


def _score_by_cli(launcher: Launcher, preset: str, completion: str, answer: str) -> dict:
    folder = launcher.studio_dir / "rewards"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}"
    given, out = folder / f"pasted-{stamp}.jsonl", folder / f"pasted-{stamp}.json"
    given.write_text(json.dumps({"completion": completion, "answer": answer}) + "\n")
    done = launcher.run_cli(["rewards", "check", preset, "--completions", str(given), "--json", str(out),
                             *_rewards_dir(launcher)])
    if done.returncode != 0 or not out.is_file():
        raise ConfigError((done.stderr.strip().splitlines() or ["the check failed"])[-1].removeprefix("error: "))
    return json.loads(out.read_text())["samples"][0]["rewards"]


def build(launcher: Launcher, presets_dir: Path, followed: gr.Dropdown | None = None) -> None:
    """The tab's contents (call inside a gr.Tab). followed: the monitor's run picker, whose run's Stage-1 output
    becomes the starting model."""
    choices = catalog.presets(presets_dir, launcher.runs_dir)
    first = choices[0][1] if choices else None
    with gr.Tab("Check a model"):
        gr.Markdown("Samples G completions (grpo.num_generations) for N training prompts from GRPO's starting model "
                    "with GRPO's decoding settings, scores them with the preset's rewards, and says whether GRPO "
                    "will learn: a group whose completions all score alike gives no signal.")
        with gr.Row():
            preset = gr.Dropdown(choices, value=first, label="Preset", scale=2, elem_id="rewards-preset")
            start = gr.Dropdown(start_points(launcher.runs_dir), value="", label="Starting model", scale=2,
                                elem_id="rewards-checkpoint", info="a run's Stage-1 output is what its GRPO starts from")
            n = gr.Slider(1, 128, value=32, step=1, label="Prompts (N)", scale=1, min_width=200)  # "128" in full
            overrides = gr.Textbox(label="Overrides (key=value ...)", scale=2, placeholder="grpo.temperature=1.2")
            go = gr.Button("Check", variant="primary", scale=1, elem_id="rewards-check")
        verdict = gr.Markdown(elem_id="rewards-verdict")
        plot = gr.Plot(show_label=False, elem_id="rewards-histograms")
        report = gr.Code(language="shell", label="Report", interactive=False, lines=10, elem_id="rewards-report")
    with gr.Tab("Score a completion"):
        with gr.Row():
            score_preset = gr.Dropdown(choices, value=first, label="Preset (its rewards)", scale=2)
            answer = gr.Textbox(label="True answer", scale=1, elem_id="rewards-answer")
        completion = gr.Textbox(label="Completion", lines=6, elem_id="rewards-completion",
                                placeholder="<think>\n...\n</think>\n<answer>\n...\n</answer>")
        score = gr.Button("Score", variant="primary", elem_id="rewards-score")
        scores = gr.Markdown(elem_id="rewards-scores")
    go.click(lambda *a: check(launcher, *a), [preset, start, n, overrides], [verdict, report, plot],
             api_name="check_rewards")
    score.click(lambda *a: score_pasted(launcher, *a), [score_preset, completion, answer], scores,
                api_name="score_completion")
    start.focus(lambda: gr.Dropdown(choices=start_points(launcher.runs_dir)), None, start)
    if followed is not None:
        followed.change(lambda name: follow_run(launcher.runs_dir, name), followed, start, show_progress="hidden")
