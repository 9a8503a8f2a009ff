"""The Rewards tab's logic (the check through the CLI, the pasted-completion scorer) and the monitor's RL
series helpers (smoothing, reward bands, per-step histograms, the banner)."""

import math

import gradio as gr
import pytest

from conftest import MICRO, ROOT
from rrft_studio.studio import rewards_tab, rl_series
from rrft_studio.studio.folders import Folders
from rrft_studio.studio.launcher import Launcher

DEMO = str(ROOT / "presets" / "demo.yaml")


@pytest.fixture
def launcher(tmp_path, cache_dir):
    runs = tmp_path / "runs"
    return Launcher(runs, Folders.create(runs, presets=ROOT / "tests", cache=cache_dir, rewards=ROOT, cwd=ROOT))


def test_pasted_completion_scores_and_why():
    table = rewards_tab.score_pasted(None, DEMO, "<think>3 objects</think> 3", "3")
    assert "| format | 0.00 | no &lt;answer&gt; tag |" in table  # escaped: shown as the tag, not taken for HTML
    assert "| accuracy | 1.00 | compared no &lt;answer&gt; tag: the whole text" in table
    table = rewards_tab.score_pasted(None, DEMO, "<think>\nthree\n</think>\n<answer>\n4\n</answer>", "3")
    assert "| format | 1.00 |" in table and "compared the &lt;answer&gt; text '4' with the truth '3'" in table


def test_pasted_completion_with_a_users_reward_runs_in_the_cli(launcher):
    table = rewards_tab.score_pasted(launcher, str(MICRO), "x" * 32, "3")
    assert "| tests.data.rewards:length_reward | 0.50 | your own reward |" in table


def test_check_shows_verdict_and_histograms(launcher, cache_dir):
    verdict, report, figure = rewards_tab.check(launcher, str(MICRO), "", 2, f"run.cache_dir={cache_dir}")
    assert verdict.startswith("**⚠ weak**: format never matched in 8 samples"), verdict
    assert report.startswith("$ rrft-studio rewards check") and "verdict: weak" in report
    assert len(figure.axes) == 4  # format, accuracy, length_reward, total


def test_check_refuses_a_checkpoint_outside_the_runs(launcher, tmp_path):
    verdict, _, figure = rewards_tab.check(launcher, str(MICRO), str(tmp_path), 2, "")
    assert verdict.startswith("✗") and "is not a run in" in verdict and figure is None


def test_a_run_picked_in_the_monitor_starts_the_check_from_its_sft(tmp_path):
    runs = tmp_path / "runs"
    done, early = runs / "demo-20260101-000000", runs / "demo-20260102-000000"
    for run in (done, early):
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("run: {stages: [sft, grpo]}\n")
    (done / "final" / "sft").mkdir(parents=True)
    (done / "final" / "sft" / "config.json").write_text("{}")
    picked = rewards_tab.follow_run(runs, done.name)
    assert picked.value == str(done) and (f"{done.name} · after sft", str(done)) in picked.choices
    for name in (early.name, None):  # no Stage-1 output (yet): the starting model stays as chosen
        assert isinstance(rewards_tab.follow_run(runs, name), type(gr.skip()))


def test_smoothing_keeps_the_raw_series_shape():
    raw = [0.0, 1.0, 0.0, 1.0, math.nan, 1.0]
    assert rl_series.smooth(raw, 0.0)[:4] == raw[:4]
    smoothed = rl_series.smooth(raw, 0.6)
    assert len(smoothed) == len(raw) and smoothed[0] == 0.0 and math.isnan(smoothed[4])
    assert 0.3 < smoothed[-1] < 0.8
    assert rl_series.smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # debiased: no pull to 0
    with pytest.raises(ValueError):
        rl_series.smooth(raw, 1.0)


def _samples():
    def step(n, scores):
        return {"stage": "grpo", "step": n, "completions": [
            {"rewards": {"format_reward": f, "accuracy_reward": a}} for f, a in scores]}
    return [step(1, [(0, 0), (1, 0), (1, 1), (1, 1)]), step(2, [(1, 1)] * 4)]


def test_reward_bands_and_histograms_per_step():
    bands = rl_series.reward_bands(_samples())
    assert [b["step"] for b in bands] == [1, 2]
    assert bands[0]["mean"] == 1.25 and bands[0]["q50"] == 1.5 and bands[0]["q10"] == pytest.approx(0.3)
    assert bands[1]["q10"] == bands[1]["q90"] == 2.0
    assert rl_series.reward_bands(_samples(), "accuracy_reward")[0]["mean"] == 0.5
    assert rl_series.histogram(_samples(), 1) == {0.0: 1, 1.0: 1, 2.0: 2}
    assert rl_series.histogram(_samples(), 1, "format_reward") == {0.0: 1, 1.0: 3}


def test_banner_markdown():
    rows = [{"stage": "grpo", "step": s, "frac_reward_zero_std": 1.0} for s in range(1, 11)]
    assert rl_series.banner_markdown(rows, 0.9, 10).startswith("**⚠ every group had zero spread in each of the last 10 steps")
    assert rl_series.banner_markdown(rows[:5], 0.9, 10) == ""
