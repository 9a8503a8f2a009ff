"""runs.py names every path of a run (final, checkpoints, metrics, samples, status, config, report, eval, plots):
no other module of the package builds one from its name, so the layout lives in one place."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT
from rrft_studio import runs

NAMES = {"config.yaml", "status.json", "metrics.jsonl", "samples.jsonl", "report.json", "eval", "table.md", "final",
         "checkpoints", "tensorboard", *(f"{name}.png" for name in runs.PLOTS)}
TRACKERS = {"tensorboard"}  # also a tracker's name, which code compares with freely


def spelled(path: Path, root: Path = ROOT) -> list[str]:
    """Where a file builds a run's path from a name (`run_dir / "metrics.jsonl"`) or tests one by it
    (`path.parent.name == "final"`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            names, wanted = [node.right], NAMES
        elif isinstance(node, ast.Compare):
            names, wanted = [node.left, *node.comparators], NAMES - TRACKERS
        else:
            continue
        found += [f"{path.relative_to(root)}:{node.lineno} {n.value!r}" for n in names
                  if isinstance(n, ast.Constant) and n.value in wanted]
    return found


def test_only_runs_spells_a_run_file():
    found = [line for path in sorted((ROOT / "rrft_studio").rglob("*.py")) if path.name != "runs.py"
             for line in spelled(path)]
    assert not found, "a run's path spelled outside runs.py (name it there):\n" + "\n".join(found)


def test_the_check_finds_a_spelled_name(tmp_path):
    module = tmp_path / "module.py"
    module.write_text('def f(run_dir, path):\n    return run_dir / "metrics.jsonl", path.parent.name == "final"\n')
    assert spelled(module, tmp_path) == ["module.py:2 'metrics.jsonl'", "module.py:2 'final'"]


def test_the_layout_is_the_documented_one(tmp_path):
    """The paths as runs.py's docstring draws them (users' runs from before must still open)."""
    run = tmp_path / "run"
    assert [p.relative_to(run).as_posix() for p in (
        runs.config_path(run), runs.status_path(run), runs.metrics_path(run), runs.samples_path(run),
        runs.report_path(run), runs.final_dir(run, "sft"), runs.checkpoints_dir(run, "grpo"),
        runs.eval_path(run, "base", "id"), runs.eval_table_path(run), runs.plot_path(run, "rewards"),
        runs.tracker_dir(run, "tensorboard", "sft"))] == [
        "config.yaml", "status.json", "metrics.jsonl", "samples.jsonl", "report.json", "final/sft", "checkpoints/grpo",
        "eval/base/id.json", "eval/table.md", "rewards.png", "tensorboard/sft"]
    assert runs.stage_of(runs.checkpoints_dir(run, "sft")) == (run, "sft")
