"""benchmarks/studio_load.py at a tiny size: it builds its runs folder, drives the studio in Chromium through
every measurement and prints its table. Speed goals belong to the benchmark at full size, not to this test."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def test_the_load_benchmark_runs_end_to_end(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "studio_load.py"), "--runs", "4", "--steps", "200",
                           "--folder", str(tmp_path / "runs"), "--tick-seconds", "3", "--release-seconds", "1",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "| runs table" in done.stdout and "| Rollouts: the next step" in done.stdout
    figures = json.loads(out.read_text())
    assert figures["runs"] == 4 and figures["tick_idle"]["ticks"] >= 1 and figures["tick_live"]["ticks"] >= 1
    assert figures["tick_idle"]["kb"] < figures["tick_live"]["kb"]  # an idle tick sends (almost) nothing
    assert all(0 <= figures[k]["busy"] <= 1 for k in ("tick_idle", "tick_live", "tick_overlay"))  # long tasks read
    assert all(figures[k] > 0 for k in ("table_s", "plots_s", "overlay_s", "rollouts_s", "rollouts_next_s", "rss_peak_mb"))
