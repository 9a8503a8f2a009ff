"""Each task family through `rft` on the built-in tiny model, with the exact CPU command its preset's header
documents, then the results in the paper's layout (and several runs in one table with --compare)."""

import json
import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT, cli
from rrft_studio import runs

FAMILIES = {"counting": ["CLEVR-Math", "Super-CLEVR"], "structure": ["GeoMath", "Geometry3K"],
            "spatial": ["TRANCE", "TRANCE-L", "TRANCE-R"]}


def header_command(preset: Path) -> list[str]:
    """The 'On a CPU' command of a preset's header, as a user would copy it."""
    header = [line[1:].strip() for line in preset.read_text().splitlines() if line.startswith("#")]
    start = next(i for i, line in enumerate(header) if line.startswith("On a CPU")) + 1
    text = " ".join(line.rstrip("\\").strip() for line in header[start:start + 5] if line)
    command = re.match(r"(rrft-studio train .*?)(?:$| [A-Z])", text).group(1)
    return shlex.split(command)[1:]


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory, cache_dir):
    runs_dir = tmp_path_factory.mktemp("family_runs")
    out = {}
    for family in FAMILIES:
        args = header_command(ROOT / "presets" / f"{family}_7b.yaml")
        done = cli(*args, f"run.runs_dir={runs_dir / family}", f"run.cache_dir={cache_dir}")
        assert done.returncode == 0, f"{family}: {done.stderr[-3000:]}"
        (run_dir,) = (runs_dir / family).iterdir()
        out[family] = (run_dir, done.stdout)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_rft_runs_and_prints_the_table(family_runs, family):
    run_dir, stdout = family_runs[family]
    assert runs.read_status(run_dir)["state"] == "finished"
    for benchmark in FAMILIES[family]:
        assert benchmark in stdout, benchmark
    table = (run_dir / "eval" / "table.md").read_text()
    assert table.startswith("| model / method |") and "ours: tiny grpo" in table
    grpo = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r["stage"] == "grpo" and "reward" in r]
    assert len(grpo) == 2 and "rewards/accuracy_reward/mean" in grpo[0]


def test_spatial_prompts_carry_two_images(family_runs):
    run_dir, _ = family_runs["spatial"]
    sample = runs.read_jsonl(run_dir / "samples.jsonl")[0]["completions"][0]
    assert len(sample["image"]) == 2 and all(Path(p).is_file() for p in sample["image"])
    prediction = json.loads((run_dir / "eval" / "grpo" / "left.json").read_text())
    assert prediction["benchmark"] == "TRANCE-L" and 0.0 <= prediction["accuracy"] <= 1.0


def test_compare_puts_runs_in_one_table(family_runs):
    run_dirs = [str(family_runs[f][0]) for f in ("counting", "structure")]
    done = cli("eval", "--compare", *run_dirs)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("| model / method |") and "CLEVR-Math" in lines[0] and "GeoMath" in lines[0]
    assert sum(line.startswith("| ours:") for line in lines) >= 4  # base, sft, grpo of each run


def test_data_efficiency_sweep(tmp_path, cache_dir):
    from conftest import MICRO

    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}",
               "run.stages=[grpo]", "--samples", "8", "16")
    assert done.returncode == 0, done.stderr[-3000:]
    (root,) = tmp_path.iterdir()
    points = json.loads((root / "sweep.json").read_text())["points"]
    assert [p["samples"] for p in points] == [8, 16]
    assert all("grpo/id" in p["accuracy"] for p in points)
    assert (root / "sweep.png").is_file()
    assert len([p for p in root.iterdir() if p.is_dir()]) == 2


def test_a_seed_sweep_gives_each_run_and_the_spread(tmp_path, cache_dir):
    """--seeds and --threads: one run per seed and thread count (the count reaches the run), each run's paired
    GRPO - SFT, the mean ± sd over them; `eval --compare` reads the sweep as one entry with its spread."""
    from conftest import MICRO

    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "eval.max_samples=4",
               "--seeds", "0", "1", "--threads", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    (root,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((root / "sweep.json").read_text())
    points = record["points"]
    assert [(p["seed"], p["threads"]) for p in points] == [(0, 1), (1, 1)]
    for p in points:
        assert runs.read_status(Path(p["run_dir"]))["threads"] == 1
        assert set(p["grpo_minus_sft"]) >= {"diff", "se", "gained", "lost"}
        assert runs.load_config(Path(p["run_dir"])).run.seed == p["seed"]
    (group,) = record["spread"]
    grpo = [p["accuracy"]["grpo/id"] for p in points]
    assert group["runs"] == 2 and group["accuracy"]["grpo/id"]["mean"] == pytest.approx(sum(grpo) / 2)
    assert group["accuracy"]["grpo/id"]["sd"] == pytest.approx(abs(grpo[0] - grpo[1]) / 2 ** 0.5)
    assert group["grpo_minus_sft"]["runs"] == 2
    assert "mean ± sd over 2 runs" in done.stdout and (root / "sweep.md").is_file() and (root / "sweep.png").is_file()
    done = cli("eval", "--compare", str(root), points[0]["run_dir"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"| ours: {root.name} grpo (mean ± sd over 2 runs) |" in done.stdout and " ± " in done.stdout
    assert f"| ours: {Path(points[0]['run_dir']).name} grpo |" in done.stdout
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", "--seeds", "-1")
    assert done.returncode == 2 and "--seeds takes whole numbers of at least 0" in done.stderr
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}")
    assert done.returncode == 2 and "a sweep needs an axis" in done.stderr


def test_sweep_of_two_methods(tmp_path, cache_dir):
    """The paper's data-efficiency comparison in miniature: a line per method, every point's config checked first."""
    from conftest import MICRO

    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", "run.stages=[grpo]", "--samples", "32",
               "--methods", "cot_sft", "rft")
    assert done.returncode == 2 and "conflicts with method=cot_sft" in done.stderr and not any(tmp_path.iterdir())
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "eval.max_samples=4",
               "--samples", "32", "--methods", "cot_sft", "rft")
    assert done.returncode == 0, done.stderr[-3000:]
    (root,) = tmp_path.iterdir()
    points = json.loads((root / "sweep.json").read_text())["points"]
    assert [(p["method"], p["samples"]) for p in points] == [("cot_sft", 32), ("rft", 32)]
    assert "sft/id" in points[0]["accuracy"] and "grpo/id" not in points[0]["accuracy"]
    assert "grpo/id" in points[1]["accuracy"]
    assert (root / "sweep.png").is_file()
