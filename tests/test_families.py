"""Each task family through `rft` on the built-in tiny model, with the exact CPU command its preset's header
documents, then the results in the paper's layout (and several runs in one table with --compare); and a family
of one's own, outside the project, through the same chain."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MICRO, ROOT, cli
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
    # --into: more seeds join the same sweep (seed 1 is there already: skipped), one table over all of them
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "eval.max_samples=4",
               "--seeds", "1", "2", "--threads", "1", "--into", str(root))
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((root / "sweep.json").read_text())
    assert [p["seed"] for p in record["points"]] == [0, 1, 2] and record["spread"][0]["runs"] == 3
    assert record["overrides"] == ["eval.max_samples=4"]  # where the runs went is not part of the experiment
    # a run that finished in the folder but is not in sweep.json (a concurrent sweep, a cut-off write) is taken
    (root / "sweep.json").write_text(json.dumps({**record, "points": record["points"][:2]}))
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", "eval.max_samples=4", "--seeds", "2",
               "--threads", "1", "--into", str(root))
    assert done.returncode == 0 and "taken as it is" in done.stdout, done.stderr[-3000:]
    assert json.loads((root / "sweep.json").read_text())["points"] == record["points"]
    assert "mean ± sd over 3 runs" in done.stdout and len([p for p in root.iterdir() if p.is_dir()]) == 3
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", "eval.max_samples=8", "--seeds", "3",
               "--into", str(root))
    assert done.returncode == 2 and "that sweep ran" in done.stderr and "start a new sweep" in done.stderr
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", "--seeds", "3", "--into", str(tmp_path / "none"))
    assert done.returncode == 2 and "no sweep.json there" in done.stderr
    assert len([p for p in root.iterdir() if p.is_dir()]) == 3  # the refusals trained nothing
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}", "--seeds", "-1")
    assert done.returncode == 2 and "--seeds takes whole numbers of at least 0" in done.stderr
    done = cli("sweep", str(MICRO), f"run.runs_dir={tmp_path}")
    assert done.returncode == 2 and "a sweep needs an axis" in done.stderr


def test_sweep_of_two_methods(tmp_path, cache_dir):
    """The paper's data-efficiency comparison in miniature: a line per method, every point's config checked first."""
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


# A task family of a user's own, in a package of theirs: one module that declares FAMILY, registered under the
# rrft_studio.tasks entry point, and a preset. Nothing of the project changes.
TOY = '''"""Toy dots: how many dots are in the picture (a task family outside the project)."""
from dataclasses import dataclass

from PIL import Image, ImageDraw

from rrft_studio.options import doc
from rrft_studio.tasks import schema
from rrft_studio.tasks.family import TaskFamily


@dataclass(frozen=True)
class Spec:
    image_size: int = doc(56, "toy dots: image side in pixels", ge=28)
    most: int = doc(3, "toy dots: most dots in a picture", ge=1)


def check_options(spec):
    if spec.most > 3:
        raise ValueError(f"data.toy.most={spec.most}: at most 3 dots fit")


def prompt(problem, style="cot", **context):
    return problem if style == "ans" else f"{problem} Answer in <answer> </answer> tags."


def generate(out_dir, n, seed, spec=Spec(), split="train"):
    def sample(rng):
        k = rng.randint(1, spec.most)
        image = Image.new("RGB", (spec.image_size, spec.image_size), "white")
        for i in range(k):
            ImageDraw.Draw(image).ellipse((4 + 16 * i, 20, 14 + 16 * i, 30), fill="black")
        return image, "How many dots are there?", str(k), f"I count {k} dots."
    return schema.write(out_dir, n, seed, split, "toy", sample)


FAMILY = TaskFamily(name="toy", about="toy dots", card="toy dots (how many dots)", section="toy dot pictures",
                    benchmarks={"id": "Toy dots"}, spec=Spec, check_options=check_options, prompt=prompt,
                    reward="exact", scorers={"paper": "exact", "strict": "exact"}, prompt_tokens=20,
                    generate=generate)
'''


def test_a_task_family_of_ones_own_trains_through_rft(tmp_path, cache_dir):
    """A family in a temporary package, found through its entry point: its config section, its data, and the
    whole `rft` chain on the micro model, its benchmark in the results table."""
    (tmp_path / "toyfam").mkdir()
    (tmp_path / "toyfam" / "__init__.py").write_text(TOY)
    info = tmp_path / "toyfam-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyfam\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[rrft_studio.tasks]\ntoy = toyfam:FAMILY\n")
    preset = tmp_path / "toy_micro.yaml"
    preset.write_text("method: rft\n" + MICRO.read_text().replace("data: {", "data: {task: toy, "))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "rrft_studio.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)

    shown = run("config", "show", str(preset), "data.toy.most=2")
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "task: toy" in shown.stdout and "most: 2  # toy dots: most dots in a picture" in shown.stdout
    refused = run("config", "show", str(preset), "data.toy.most=4")
    assert refused.returncode == 2 and "data.toy.most=4: at most 3 dots fit" in refused.stderr
    made = run("data", "generate", "toy", "--n", "3", "--out", str(tmp_path / "data"))
    assert made.returncode == 0 and len(json.loads((tmp_path / "data" / "train.json").read_text())) == 3, made.stderr
    done = run("train", str(preset), f"run.runs_dir={tmp_path / 'runs'}", f"run.cache_dir={cache_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert runs.read_status(run_dir)["state"] == "finished"
    result = json.loads(runs.eval_path(run_dir, "grpo", "id").read_text())
    assert result["task"] == "toy" and result["benchmark"] == "Toy dots" and 0.0 <= result["accuracy"] <= 1.0
    assert "| model / method | Toy dots |" in done.stdout and "ours: tiny grpo" in done.stdout
