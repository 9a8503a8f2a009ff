"""How the studio reads long runs (logs.py, monitor.py): only what was appended, a torn last line left for
later, a replaced or shrunk file read again; samples found by step without reading the file; plots downsampled
with their spikes; a tick that sends nothing when nothing changed; a bounded cache; an export of every step."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from rrft_studio.studio import logs, monitor, rollouts
from rrft_studio.studio.launcher import Launcher

SKIP = {"__type__": "update"}  # what gr.skip() sends


def _line(step, stage="grpo", **values):
    return json.dumps({"stage": stage, "step": step, **values}) + "\n"


def _append(path, text):
    with open(path, "a") as f:
        f.write(text)


def test_tail_reads_what_was_appended_and_waits_for_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1) + '{"stage": "grpo", "st')
    tail = logs.Tail(path)
    assert tail.changed() and [line for batch in tail.lines() for _, line in batch] == [_line(1).strip().encode()]
    assert tail.offset == len(_line(1))
    _append(path, 'ep": 2}\n' + _line(3))
    assert [json.loads(line)["step"] for batch in tail.lines() for _, line in batch] == [2, 3]
    assert not tail.changed() and tail.generation == 0


@pytest.mark.parametrize("rewrite", ["replaced", "shrunk"])
def test_a_rewritten_file_is_read_again(tmp_path, rewrite):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1, reward=1.0) + _line(2, reward=2.0))
    metrics = logs.Metrics(path)
    metrics.update()
    assert metrics.count == 2
    if rewrite == "replaced":  # as a resume does: a new file renamed over the old one, as long or longer
        (tmp_path / "new").write_text(_line(1, reward=5.0) + _line(2, reward=6.0) + _line(3, reward=7.0))
        os.replace(tmp_path / "new", path)
    else:
        path.write_text(_line(1, reward=5.0))
    metrics.update()
    steps, values = metrics.series("grpo", "reward")
    assert list(values) == ([5.0, 6.0, 7.0] if rewrite == "replaced" else [5.0]) and metrics.tail.generation == 1


def test_metrics_as_columns_per_stage(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_line(1, "sft", loss=2.0) + _line(1, reward=0.5) + _line(2, reward=1.5, kl=0.1)
                    + _line(2, train_runtime=3.0) + "not json\n")
    metrics = logs.Metrics(path)
    metrics.update()
    assert metrics.count == 3 and metrics.last_stage == "grpo" and set(metrics.keys("grpo")) == {"reward", "kl"}
    steps, kl = metrics.series("grpo", "kl")  # a row without the key is left out of its series
    assert list(steps) == [2] and list(kl) == [0.1]
    _append(path, _line(3, reward=2.5, entropy=1.0))  # a key that appears late: NaN before it
    metrics.update()
    assert list(metrics.series("grpo", "reward")[1]) == [0.5, 1.5, 2.5]
    assert list(metrics.series("grpo", "entropy")[0]) == [3]


def test_samples_found_by_step_without_reading_the_file(tmp_path):
    path = tmp_path / "samples.jsonl"
    record = {"completions": [{"completion": "<think>abcd</think><answer>3</answer>", "length": 10}]}
    long = {"completions": [{"completion": "x" * 70_000, "length": 9}]}  # lines longer than a read block
    path.write_text("".join(_line(s, **(long if s % 20 == 0 else record)) for s in range(5, 500, 5))
                    + _line(500, completions=[]) + _line(500, **record) + '{"stage": "grpo", "step": 505, "com')
    samples = logs.Samples(path)
    samples.update()
    assert samples.bounds() == (5, 500, 0)  # the torn last line is not a step yet
    assert [samples.nearest(s) for s in (0, 7, 8, 12.5, 499, 10_000)] == [5, 5, 10, 10, 500, 500]
    assert samples.record(40)["completions"][0]["length"] == 9 and samples.record(41) is None
    assert samples.record(500)["completions"][0]["length"] == 10  # a step logged twice: its last line
    assert [samples.moved(5, -1), samples.moved(5, 2), samples.moved(495, 3), samples.moved(100, -4)] == [5, 15, 500, 80]
    _append(path, 'pletions": []}\n')  # the torn line completes
    samples.update()
    assert samples.bounds()[1] == 505 and samples.record(505) == {"stage": "grpo", "step": 505, "completions": []}
    path.write_text(_line(7, **record))  # rewritten (a resume): what was parsed is dropped
    samples.update()
    assert samples.bounds() == (7, 7, None) and samples.record(500) is None



def test_thinking_tokens_from_lines_spread_through_the_file(tmp_path):
    path = tmp_path / "samples.jsonl"
    record = {"completions": [{"completion": "<think>" + "a" * 4000 + "</think><answer>3</answer>", "length": 100}]}
    path.write_text("".join(_line(s, **record) for s in range(1, 201)) + '{"stage": "grpo", "step": 201, "comp')
    spread = logs.Spread(path)
    spread.update()
    rows = spread.think_answer("grpo", max_points=20)
    steps = [r["step"] for r in rows]
    assert 10 <= len(rows) <= 21 and steps == sorted(steps) and steps[-1] == 200  # the last complete line
    assert 99 < rows[0]["think_tokens"] < 100 and rows[0]["answer_tokens"] < 1
    _append(path, 'letions": []}\n')  # the torn line completes
    spread.update()
    assert spread.think_answer("grpo", max_points=20)[-1]["step"] == 201
    path.write_text(_line(7, **record))  # rewritten (a resume): read again
    spread.update()
    assert [r["step"] for r in spread.think_answer("grpo", max_points=20)] == [7]


def test_downsampling_keeps_spikes_and_ends():
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 5000)
    y[12_345], y[67_890] = 50.0, -50.0
    dx, dy = monitor.downsample(x, y, 1000)
    assert len(dx) <= 1000 and dx[0] == 0 and dx[-1] == 99_999 and np.all(np.diff(dx) > 0)
    assert 50.0 in dy and -50.0 in dy
    assert monitor.downsample(x[:10], y[:10], 1000)[0].tolist() == list(range(10))


def test_the_cache_is_bounded_and_lets_idle_runs_go(tmp_path):
    cache = logs.Cache(max_runs=2, max_bytes=1 << 30, idle_s=3600)
    dirs = []
    for i in range(3):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "metrics.jsonl").write_text(_line(1, reward=float(i)))
        dirs.append(tmp_path / f"r{i}")
        cache.get(dirs[-1])
    assert list(cache.runs) == dirs[1:]
    cache.max_bytes = 1  # more than one run over the byte budget: the oldest goes, the one asked for stays
    cache.get(dirs[0])
    assert list(cache.runs) == [dirs[0]]
    cache.idle_s = 0
    cache.release_idle()
    assert not cache.runs


@pytest.fixture
def live_run(tmp_path):
    run = tmp_path / "runs" / "live-1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("run: {stages: [sft, grpo]}\n")
    (run / "status.json").write_text(json.dumps({"state": "finished", "step": 3}))
    (run / "metrics.jsonl").write_text("".join(_line(s, reward=s / 10, kl=0.01 * s) for s in range(1, 3001)))
    return run


def test_a_tick_sends_only_what_changed(live_run):
    launcher = Launcher(live_run.parent)
    name = live_run.name
    table = monitor.refresh_table(launcher, None, [], {})
    assert table[1] != SKIP and table[0] != SKIP  # first look: the table and the run picker
    again = monitor.refresh_table(launcher, name, [name], table[-1])
    assert again[:4] == [SKIP] * 4
    first = monitor.refresh_plots(launcher, name, [name], "auto", {})
    shown = [u for u in first[3:-2] if u != SKIP and u["visible"]]
    assert len(shown) == 2 and all(len(u["value"].plot) < 200_000 for u in shown)  # reward and KL: the rest hidden
    idle = monitor.refresh_plots(launcher, name, [name], "auto", first[-1])
    assert idle[:-1] == [SKIP] * (len(idle) - 1)  # nothing changed: nothing sent
    _append(live_run / "metrics.jsonl", _line(3001, reward=9.0, kl=0.5))
    soon = monitor.refresh_plots(launcher, name, [name], "auto", idle[-1])
    assert soon[0] != SKIP and all(u == SKIP for u in soon[3:-2])  # the summary at once, the plots not yet
    later = {k: (v[0], v[1], v[2] - monitor.LIVE_REDRAW_S) if k.startswith("plot") and v else v
             for k, v in soon[-1].items()}  # as if the plots were drawn LIVE_REDRAW_S ago
    live = monitor.refresh_plots(launcher, name, [name], "auto", later)
    assert sum(u != SKIP for u in live[3:-2]) >= 2  # the reward and KL plots with the new step
    again = monitor.refresh_plots(launcher, name, [name], "auto", soon[-1], smoothing=0.5)
    assert sum(u != SKIP for u in again[3:-2]) >= 2  # smoothing moved: redrawn at once, however recent


def test_stop_and_resume_are_off_for_a_finished_run(live_run):
    launcher = Launcher(live_run.parent)
    table = monitor.refresh_table(launcher, live_run.name, [live_run.name], {})
    off = {"__type__": "update", "interactive": False}
    assert table[4] == table[5] == off  # Stop and Resume: nothing to stop, nothing left to resume
    assert monitor.refresh_table(launcher, live_run.name, [live_run.name], table[-1])[4:6] == [SKIP, SKIP]
    (live_run / "status.json").write_text(json.dumps({"state": "stopped", "step": 2}))
    table = monitor.refresh_table(launcher, live_run.name, [live_run.name], table[-1])
    assert table[4] == table[5] == {"__type__": "update", "interactive": True}


def test_a_plot_carries_at_most_its_budget(live_run):
    parts = monitor.plotted([live_run], "grpo", ["reward"], points=500)
    ((name, steps, values, *_),) = parts
    assert name == "reward" and len(steps) <= 500 and steps[-1] == 3000 and values.max() == 300.0


def test_the_export_writes_every_step(live_run):
    path = monitor.export_csv(Launcher(live_run.parent), [live_run.name])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3000 and rows[-1]["reward"] == "300.0" and rows[0]["run"] == live_run.name


def test_rollouts_go_to_the_nearest_logged_step(tmp_path):
    (tmp_path / "samples.jsonl").write_text("".join(_line(s, completions=[]) for s in (4, 8, 12)))
    assert rollouts.nearest(tmp_path, 9.0) == 8 and rollouts.nearest(tmp_path, 100) == 12
    assert rollouts.nearest(tmp_path, None) == 12  # the newest first
    assert rollouts.nearest(tmp_path / "none", 3) is None


def test_overlaid_runs_eval_bars_stand_side_by_side(tmp_path):
    """Two runs' accuracies after the same stage are two bars, not one bar of their sum."""
    dirs = []
    for name, accuracy in (("a", 0.7), ("b", 0.6)):
        for label in ("base", "sft"):
            path = tmp_path / name / "eval" / label / "id.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"accuracy": accuracy if label == "sft" else 0.0, "n": 10, "predictions": []}))
        dirs.append(tmp_path / name)
    frame = monitor.eval_frame(dirs)
    assert list(frame["evaluated"]) == ["base · id · a (0%)", "base · id · b (0%)", "sft · id · a (70%)",
                                        "sft · id · b (60%)"]  # a 0% bar has no height: its label says it
    assert list(frame["accuracy"]) == [0.0, 0.0, 0.7, 0.6]
    assert list(monitor.eval_frame(dirs[:1])["evaluated"]) == ["base · id (0%)", "sft · id (70%)"]  # one run: no run names
