"""benchmarks/gpu_once.sh, the one command for a GPU session, dry-run on the CPU so that it cannot rot before a
GPU comes: every part on the tiny model in the order of what the run must answer, the files that come back, the
summary, TRL's trainer classes, the fp32 master weights, the transformers figures; a failed import stopping it
early; run_all's deadline and its record of an arm cut off; gpu.sh's test parts."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

BENCH = ROOT / "benchmarks"
FILES = {"0-summary.md", "1-env.log", "2-master.log", "2-master.json", "3-ratio.log", "3-ratio.json", "4-chain.log",
         "4-chain.json"}
# The parts of a dry run, in order: the GRPO ratio before the chain, the SFT ratio after it
PARTS = ["1 environment", "2 master weights", "3 GRPO ratio tiny lora", "4 chain lora", "4 reload lora",
         "4 chain qlora", "5 SFT ratio tiny lora", "6 more tiny full grpo", "6 more tiny full sft"]


def gpu_once(tmp_path, **env) -> tuple[subprocess.CompletedProcess, float]:
    """The dry run with this interpreter, its results and cache under tmp_path; (process, wall seconds)."""
    base = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}  # the script's default applies
    env = {**base, "GPU_DRY_RUN": "1", "OUT": str(tmp_path / "out"), "RESULTS": str(tmp_path / "results"),
           "CACHE": str(tmp_path / "cache"), "PYTHON": sys.executable, **env}
    started = time.monotonic()
    done = subprocess.run(["bash", str(BENCH / "gpu_once.sh")], env=env, capture_output=True, text=True,
                          timeout=300)  # the dry run's promise: within 5 minutes
    return done, time.monotonic() - started


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu-once")
    (tmp / "site").mkdir()  # stands for .gpu-site: it must come first on PYTHONPATH, the caller's value kept
    done, seconds = gpu_once(tmp, GPU_SITE=str(tmp / "site"), PYTHONPATH=str(tmp / "callers"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp, done.stdout, seconds


def test_writes_the_eight_files_that_come_back(dry_run):
    tmp, _, seconds = dry_run
    out = tmp / "out"
    found = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    assert {str(p) for p in found} == FILES  # at most 8 come back from a GPU command; no folders, no temp files
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in found)
    (copy,) = (tmp / "results").iterdir()  # the same files in the tree's results folder
    assert copy.name.endswith("-gpu-once-dry") and {p.name for p in copy.iterdir()} == FILES
    print(f"dry run: {seconds:.0f} s")


def test_summary_says_what_ran(dry_run):
    tmp, stdout, _ = dry_run
    summary = (tmp / "out" / "0-summary.md").read_text()
    assert summary in stdout  # the command's own output ends with it: the reply's tail shows it
    assert "dry run on a CPU" in summary
    assert "## Failures" not in summary, summary[summary.find("## Failures"):]
    parts = re.findall(r"^\| (\d [^|]+?) \| ([^|]+?) \|", summary, re.M)
    assert [name for name, _ in parts] == PARTS  # what the GPU run must answer first, first
    assert all(state == "ok" for name, state in parts if name != "4 chain qlora"), parts
    assert "| 4 chain qlora | skipped: no CUDA" in summary
    assert "## Unsloth / transformers so far" in summary and "| tiny | lora | transformers |" in summary
    assert "| tiny | lora | unsloth | skipped: no CUDA GPU" in summary
    # part 1's trainer classes (from its JSON) and part 2's findings
    assert "trainers after `import unsloth`: trl.SFTTrainer is SFTTrainer (trl.trainer.sft_trainer), " \
           "trl.GRPOTrainer is GRPOTrainer (trl.trainer.grpo_trainer)" in summary
    assert "## fp32 master weights" in summary and "- trainer: SFTTrainer" in summary
    moved = re.search(r"^- one step: ([\d.]+)% of the trainable elements changed", summary, re.M)
    assert moved and float(moved.group(1)) > 90


def test_environment_is_imported_really(dry_run):
    tmp, _, _ = dry_run
    log = (tmp / "out" / "1-env.log").read_text()
    for name in ("torch", "unsloth", "unsloth_zoo", "trl", "transformers", "peft", "datasets", "bitsandbytes",
                 "math_verify"):
        assert re.search(rf"^{name} \d", log, re.M), name
    assert f"PYTHONPATH={tmp / 'site'}:{ROOT}:{tmp / 'callers'}\n" in log
    for setting in ("CUDA_VISIBLE_DEVICES=0", "HF_HUB_OFFLINE=1", "UNSLOTH_DISABLE_STATISTICS=1",
                    "TOKENIZERS_PARALLELISM=false"):
        assert setting in log
    assert "bf16 matmul 256x256" in log and "4-bit bitsandbytes layer: skipped: no CUDA" in log
    # after `import unsloth`: on a CPU it patches nothing, so TRL's own (on a GPU: UnslothSFTTrainer, ...)
    assert "trl.SFTTrainer is SFTTrainer (from trl.trainer.sft_trainer)" in log
    assert "trl.GRPOTrainer is GRPOTrainer (from trl.trainer.grpo_trainer)" in log


def test_a_full_fine_tune_keeps_fp32_master_weights_that_one_step_moves(dry_run):
    """Part 2 on the CPU: transformers instead of Unsloth, the same checks. bf16 compute, fp32 trainable weights
    (bf16 frozen ones: the vision tower), nearly every weight changed by one step at lr 1e-6."""
    tmp, _, _ = dry_run
    master = json.loads((tmp / "out" / "2-master.json").read_text())
    assert master["state"] == "ok" and master["backend"]["backend"] == "transformers"
    assert master["backend"]["keeps_master_weights"] and master["backend"]["precision_args"]["bf16"]
    assert master["load"]["trainable"]["dtypes"] == ["float32"] and master["load"]["frozen"]["dtypes"] == ["bfloat16"]
    step = master["step"]
    assert step["state"] == "ok" and step["trainable_after"] == ["float32"] and step["moved_fraction"] > 0.9
    assert step["matmul_output_dtypes"] == ["bfloat16"]  # the forward ran in bf16 autocast
    assert step["layer_output_dtypes"]  # the hook saw the decoder layer run
    assert master["trainer"] == "SFTTrainer" and master["backend"]["trl_trainers"]["GRPOTrainer"] == "GRPOTrainer"
    log = (tmp / "out" / "2-master.log").read_text()
    assert "== 2 master weights" in log and "- state: ok" in log


def test_chain_saves_merges_evaluates_and_reloads(dry_run):
    tmp, _, _ = dry_run
    chain = json.loads((tmp / "out" / "4-chain.json").read_text())
    lora = chain["lora"]
    assert lora["unsloth"] == "skipped: no CUDA" and lora["backend"]["backend"] == "transformers"
    assert all(lora[step]["state"] == "ok" for step in ("backend", "sft", "grpo", "eval", "reload"))
    assert lora["sft"]["adapters_beside"] and lora["grpo"]["logged_steps"] == 2 and lora["eval"]["n"] == 8
    assert lora["reload"]["class"] == "Qwen2VLForConditionalGeneration" and lora["reload"]["generated_tokens"] > 0
    assert "no CUDA" in chain["qlora"]["skipped"] and "reload" not in chain["qlora"]


def test_transformers_figures_are_there(dry_run):
    tmp, _, _ = dry_run
    results = json.loads((tmp / "out" / "3-ratio.json").read_text())["results"]  # four run_all calls, one file
    assert [(r["mode"], r["stage"], r["arm"]) for r in results] == [
        ("lora", "grpo", "transformers"), ("lora", "grpo", "unsloth"),  # part 3: GRPO first
        ("lora", "sft", "transformers"), ("lora", "sft", "unsloth"),  # part 5
        ("full", "grpo", "transformers"), ("full", "grpo", "unsloth"),  # part 6
        ("full", "sft", "transformers"), ("full", "sft", "unsloth")]
    for stage in ("sft", "grpo"):
        (arm,) = [r for r in results if r["stage"] == stage and r["arm"] == "transformers" and r["mode"] == "lora"]
        assert "step_time_s" in arm, f"{arm.get('failed')}: " + "\n".join(arm.get("last_lines", []))
        assert arm["step_time_s"]["median"] > 0 and arm["peak_memory_gib"] > 0
        (unsloth,) = [r for r in results if r["stage"] == stage and r["arm"] == "unsloth" and r["mode"] == "lora"]
        assert "no CUDA" in unsloth["skipped"]


def test_a_failed_import_stops_early_with_its_traceback(tmp_path):
    broken = tmp_path / "site" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('this torch is broken on purpose')\n")
    done, _ = gpu_once(tmp_path, GPU_SITE=str(tmp_path / "site"))
    assert done.returncode == 1
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"0-summary.md", "1-env.log"}
    log = (out / "1-env.log").read_text()
    assert "FAILED: import torch" in log and "Traceback" in log and "broken on purpose" in log
    summary = (out / "0-summary.md").read_text()
    assert "| 1 environment | failed (exit 1) |" in summary and "broken on purpose" in summary


# ---------------------------------------------------------------- run_all under a time limit

def run_all(tmp_path, *args: str, **popen):
    command = [sys.executable, str(BENCH / "run_all.py"), "--models", "tiny", "--modes", "lora", "--stages", "sft",
               "--arms", "transformers", "--steps", "2", "--image-size", "56", "--gen-len", "16",
               "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "r.json"), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def test_an_arm_without_time_left_is_recorded_not_started(tmp_path):
    proc = run_all(tmp_path, "--deadline", str(time.time() + 5))
    assert proc.wait(timeout=120) == 0, proc.stdout.read()[-2000:]
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert result["failed"].startswith("not started") and "--deadline" in result["failed"]


def test_an_arm_cut_off_is_recorded_and_the_json_written(tmp_path):
    proc = run_all(tmp_path, "--stream")
    for line in proc.stdout:  # the arm has started
        if line.startswith("... tiny lora sft transformers"):
            break
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 1
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert result["failed"].startswith("cut off") and result["arm"] == "transformers"


def test_ratios_compare_unsloth_with_transformers():
    sys.path.insert(0, str(BENCH))
    import run_all as module

    head = {"model": "m", "mode": "lora", "stage": "sft", "peak_memory_gib": 10.0, "tokens_per_s": 100.0}
    base = dict(head, arm="transformers", step_time_s={"median": 2.0})
    fast = dict(head, arm="unsloth", step_time_s={"median": 1.0}, peak_memory_gib=5.0, tokens_per_s=200.0)
    (row,) = module.ratios([base, fast, dict(head, arm="unsloth", stage="grpo", skipped="no CUDA GPU")])
    assert row["step_s"] == (2.0, 1.0) and row["peak_gib"] == (10.0, 5.0) and row["throughput"] == (100.0, 200.0)
    assert "| m | lora | sft | 2 / 1 (0.50x) | 10 / 5 (0.50x) | 100 / 200 (2.00x) |" in module.ratio_table([base, fast])


# ---------------------------------------------------------------- gpu.sh

def test_gpu_sh_test_parts_cover_every_gpu_test_once():
    listed = subprocess.run(["bash", str(BENCH / "gpu.sh"), "tests", "list"], capture_output=True, text=True,
                            check=True).stdout.split("\n")
    parts = [line.split(" ", 1) for line in listed if line]
    collected = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "--collect-only", "-q",
                                "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    ids = [line for line in collected.stdout.splitlines() if line.startswith("tests/test_gpu.py::")]
    assert len(ids) >= 12
    for node in ids:
        owners = [part for part, chosen in parts if node == chosen or node.split("[")[0] == chosen]
        assert len(owners) == 1, f"{node} is in parts {owners}"


def test_gpu_sh_check_names_what_is_missing():
    done = subprocess.run(["bash", str(BENCH / "gpu.sh"), "check"], env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "missing for the GPU runs: nothing" in done.stdout and "matplotlib not installed" not in done.stdout
