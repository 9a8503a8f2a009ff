"""The end of a run: report.json, the printed summary, and PNG plots of rewards and completion length.

Everything is read back from the run directory (metrics.jsonl, eval/*.json), so a report can be
rebuilt for any run at any time.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import runs
from ..config import Config
from . import evaluate, paper, sweep

LABELS = {"base": "accuracy_base", "sft": "accuracy_sft", "grpo": "accuracy_grpo"}


def build(run_dir: Path, seconds: float) -> dict:
    """report.json: chance, accuracy before / after each stage, GRPO format reward, seconds."""
    report: dict = {"run_dir": str(run_dir), "seconds": round(seconds, 1)}
    for label, key in LABELS.items():
        result = evaluate.load(run_dir, label)
        report[key] = None if result is None else round(result["accuracy"], 4)
        if result is not None:
            report["chance"] = round(result["chance"], 4)
            report[f"format_{label}"] = round(result["format"], 4)
            report[f"se_{label}"] = round(standard_error([p["correct"] for p in result["predictions"]]), 4)
    report["grpo_minus_sft"] = paired_difference(evaluate.load(run_dir, "sft"), evaluate.load(run_dir, "grpo"))
    grpo_rows = [r for r in runs.read_jsonl(runs.metrics_path(run_dir)) if r.get("stage") == "grpo"]
    # The format reward the run trained with: the paper's, else the strict variant.
    key = next((k for k in ("rewards/format_reward/mean", "rewards/format_strict_reward/mean")
                if any(k in r for r in grpo_rows)), None)
    tail = [r[key] for r in grpo_rows if key in r][-5:]  # the last logging steps: where the policy ended up
    report["format_reward_grpo"] = round(sum(tail) / len(tail), 4) if tail else None
    report.setdefault("chance", None)
    report["reference"] = reference(runs.load_config(run_dir), report["grpo_minus_sft"])
    report["table"] = results_table([run_dir])
    runs.eval_dir(run_dir).mkdir(exist_ok=True)
    runs.write_atomic(runs.eval_table_path(run_dir), report["table"] + "\n")
    report["plots"] = [str(p) for p in plot(run_dir)]
    runs.write_atomic(runs.report_path(run_dir), json.dumps(report, indent=1))
    return report


def reference(cfg: Config, delta: dict | None) -> dict | None:
    """Where this run's GRPO - SFT falls in the spread of the sweep named by run.compare_to (its first group)."""
    if not cfg.run.compare_to or delta is None:
        return None
    try:
        spread = sweep.load(Path(cfg.run.compare_to).expanduser())["spread"]
    except (OSError, ValueError, KeyError):
        return None  # checked when the run started: gone since, the report goes without it
    group = next((g["grpo_minus_sft"] for g in spread if "grpo_minus_sft" in g), None)
    if group is None:
        return None
    place = "below" if delta["diff"] < group["min"] else "above" if delta["diff"] > group["max"] else "within"
    return {"sweep": cfg.run.compare_to, **{k: group[k] for k in ("runs", "mean", "sd", "min", "max")}, "place": place}


def standard_error(scores: list[float]) -> float:
    """Standard error of a mean score over items (the sample standard deviation / sqrt(n))."""
    n = len(scores)
    if n < 2:
        return 0.0
    mean = sum(scores) / n
    return (sum((x - mean) ** 2 for x in scores) / (n - 1) / n) ** 0.5


def paired_difference(before: dict | None, after: dict | None) -> dict | None:
    """after - before over the items both evaluated: the mean per-item difference and its standard error
    (paired: the same held-out items, so the items' own difficulty cancels)."""
    if before is None or after is None:
        return None
    old = {p["id"]: p["correct"] for p in before["predictions"]}
    diffs = [p["correct"] - old[p["id"]] for p in after["predictions"] if p["id"] in old]
    if not diffs:
        return None
    return {"diff": round(sum(diffs) / len(diffs), 4), "se": round(standard_error(diffs), 4), "n": len(diffs),
            "gained": sum(d > 0 for d in diffs), "lost": sum(d < 0 for d in diffs)}


def method_of(cfg: Config) -> str:
    """The paper's name for what a run did (its method, or what its stages amount to)."""
    if cfg.method != "custom":
        return cfg.method
    stages = tuple(cfg.run.stages)
    return {("sft", "grpo"): "rft", ("grpo",): "rft_zero", (): "zero_shot"}.get(
        stages, "cot_sft" if cfg.sft.style == "cot" else "ans_sft")


def results_table(run_dirs: list[Path]) -> str:
    """Every evaluated checkpoint of the given runs as a row of the paper's table, the paper's rows beside. A sweep
    folder (sweep.json) is one entry: each stage's mean ± standard deviation over its runs."""
    rows, matches, scorers, gains = [], [], set(), []
    for target in run_dirs:
        members = [Path(p["run_dir"]) for p in sweep.load(target)["points"]] if sweep.is_sweep(target) else [target]
        members = [m for m in members if runs.is_run(m)]
        if not members:
            continue
        run_cfg = runs.load_config(members[0])
        model = paper.paper_model(run_cfg.model.name)
        name = Path(target).name if len(run_dirs) > 1 else run_cfg.model.name
        spread = f" (mean ± sd over {len(members)} runs)" if sweep.is_sweep(target) else ""
        if spread:
            gains += [f"{Path(target).name}: GRPO - SFT {100 * d['mean']:+.1f} ± {100 * d['sd']:.1f} points over "
                      f"{d['runs']} runs (from {100 * d['min']:+.1f} to {100 * d['max']:+.1f})"
                      for g in sweep.load(target)["spread"] if (d := g.get("grpo_minus_sft"))]
        for label in ("base", "sft", "grpo"):
            results = [r for m in members for split in run_cfg.eval.splits
                       if (r := evaluate.load(m, label, split)) is not None]
            if results:
                by_benchmark: dict[str, list[float]] = {}
                for r in results:
                    by_benchmark.setdefault(r["benchmark"], []).append(r["accuracy"])
                rows.append((f"ours: {name} {label}{spread}", {b: paper.Spread(v) if spread else v[0]
                                                                for b, v in by_benchmark.items()}))
                scorers |= {r.get("scorer", "strict") for r in results}
        if model:
            matches += [(model, "zero_shot"), (model, method_of(run_cfg))]
    table = paper.table(rows, matches)
    if gains:
        table += "\n\n" + "\n".join(gains)
    if scorers:
        table += "\n\nOur rows scored by: " + ", ".join(f"{s} ({SCORER_NOTES[s]})" for s in sorted(scorers))
    return table


SCORER_NOTES = {
    "paper": "as the released evaluation scores: equal answer text, else math-verify equal; spatial: partial credit",
    "strict": "as training rewards: equal answer-tag text; spatial: partial credit of strictly parsed calls",
}


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in rows if key in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot(run_dir: Path) -> list[Path]:
    """rewards.png (total and per-function reward, reward std), length.png (completion length), sft_loss.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = runs.read_jsonl(runs.metrics_path(run_dir))
    grpo = [r for r in rows if r.get("stage") == "grpo"]
    sft = [r for r in rows if r.get("stage") == "sft"]
    written = []
    if grpo:
        reward_keys = ["reward"] + sorted({k for r in grpo for k in r if k.startswith("rewards/") and k.endswith("/mean")})
        written.append(_figure(runs.plot_path(run_dir, "rewards"), "GRPO rewards", grpo, [
            (reward_keys, "reward"), (["reward_std", "frac_reward_zero_std"], "group spread")], plt))
        written.append(_figure(runs.plot_path(run_dir, "length"), "GRPO completion length", grpo, [
            (["completions/mean_length", "completions/min_length", "completions/max_length"], "tokens")], plt))
    if sft:
        written.append(_figure(runs.plot_path(run_dir, "sft_loss"), "SFT loss", sft, [(["loss"], "loss")], plt))
    return written


SMOOTH_FROM = 30  # series with at least this many points are drawn raw (faint) and as a trailing mean


def _trailing_mean(values: list[float], window: int) -> list[float]:
    """Mean of each point and the window - 1 before it (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def _figure(path: Path, title: str, rows: list[dict], panels: list[tuple[list[str], str]], plt) -> Path:
    """One panel per (keys, y label), stacked, sharing the step axis; legends outside the data."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 + 1.8 * len(panels)), dpi=110, sharex=True,
                             squeeze=False)
    for ax, (keys, ylabel) in zip(axes[:, 0], panels):
        for key in keys:
            steps, values = _series(rows, key)
            label = key.removeprefix("rewards/").removesuffix("/mean")
            if len(steps) >= SMOOTH_FROM:  # per-step values of a few groups are noisy: faint raw, bold mean
                (raw,) = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
                ax.plot(steps, _trailing_mean(values, max(3, len(values) // 15)), color=raw.get_color(),
                        label=label)
            elif steps:
                ax.plot(steps, values, label=label, marker="o", markersize=3)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[0, 0].set_title(title + (" (faint: each step; bold: trailing mean)" if len(rows) >= SMOOTH_FROM else ""))
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def text(report: dict) -> str:
    def pct(v):
        return "   n/a" if v is None else f"{100 * v:5.1f}%"

    def se(label):
        value = report.get(f"se_{label}")
        return "" if value is None else f" ± {100 * value:.1f}"

    lines = [
        f"run directory        {report['run_dir']}",
        f"chance level         {pct(report.get('chance'))}  (always the most frequent answer)",
        f"accuracy, base       {pct(report.get('accuracy_base'))}{se('base')}",
        f"accuracy, after SFT  {pct(report.get('accuracy_sft'))}{se('sft')}",
        f"accuracy, after GRPO {pct(report.get('accuracy_grpo'))}{se('grpo')}",
    ]
    if any(report.get(f"se_{label}") is not None for label in LABELS):
        lines.append("                     (± one standard error over the evaluated items)")
    if report.get("format_reward_grpo") is not None:
        lines.append(f"format reward, GRPO  {report['format_reward_grpo']:.2f}  (mean of the last logged steps)")
    minutes, seconds = divmod(int(report["seconds"]), 60)
    lines.append(f"time                 {minutes}m{seconds:02d}s")
    if report.get("plots"):
        lines.append("plots                " + ", ".join(Path(p).name for p in report["plots"]))
    if report.get("table"):
        lines += ["", report["table"]]
    return "\n".join(lines + verdict(report))


def verdict(report: dict) -> list[str]:
    """The last lines: GRPO's gain over SFT with its paired standard error, and where it falls in the spread of
    the sweep the run is compared to."""
    delta, ref = report.get("grpo_minus_sft"), report.get("reference")
    if not delta:
        return []
    ratio = f", {delta['diff'] / delta['se']:.1f} SE" if delta["se"] else ""
    lines = ["", f"GRPO - SFT           {100 * delta['diff']:+.1f} points, paired SE {100 * delta['se']:.1f}{ratio} "
                 f"(same {delta['n']} items: {delta['gained']} gained, {delta['lost']} lost)"]
    if ref:
        lines.append(f"spread over seeds    {100 * ref['mean']:+.1f} ± {100 * ref['sd']:.1f} points over {ref['runs']} "
                     f"runs (from {100 * ref['min']:+.1f} to {100 * ref['max']:+.1f}; {ref['sweep']}): this run's "
                     f"{100 * delta['diff']:+.1f} is {ref['place']} that range")
    return lines
