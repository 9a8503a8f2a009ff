"""The same preset on two processes (accelerate launch, gloo on the CPU): one run directory written by rank 0
alone, every metric row and rollout once per step, weights equal on both ranks after every step, a kill
resumed with the same count, a stop passed to every rank, the final checkpoint what the ranks held; counts,
strategies and a vLLM server that cannot work refused in one line before anything is written; the shipped
accelerate configs read by accelerate as it would launch them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MICRO, ROOT, cli
from faults import weights_digest
from rrft_studio import config, ranks, runs, settings
from rrft_studio.train import launch

TWO = ["--config_file", str(ROOT / "configs" / "accelerate" / "ddp.yaml"), "--num_processes", "2",
       "--main_process_port", "0"]


def accelerate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """accelerate launch of tests/faults.py (every rank injects the faults), as a user launches the CLI."""
    return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", *TWO, str(ROOT / "tests" / "faults.py"),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def rows(path: Path) -> list[tuple[str, int]]:
    return [(r["stage"], r["step"]) for r in runs.read_jsonl(path) if "train_runtime" not in r]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, cache_dir):
    """Launched straight through accelerate, killed at SFT step 2 (after checkpoint-1), resumed the same way."""
    runs_dir, digests = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("digests")
    env = {"RRFT_TEST_DIGESTS": str(digests)}
    killed = accelerate("kill-step:sft:2,digest", "--", "train", str(MICRO), f"run.runs_dir={runs_dir}",
                        f"run.cache_dir={cache_dir}", env=env)
    assert killed.returncode != 0, killed.stderr[-3000:]
    (run_dir,) = runs_dir.iterdir()
    assert runs.last_checkpoint(run_dir, "sft").name == "checkpoint-1"
    done = accelerate("digest", "--", "train", "--resume", str(run_dir), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, digests, done


def test_one_run_directory_written_once(two_ranks):
    run_dir, _, done = two_ranks
    status = runs.read_status(run_dir)
    assert status["state"] == "finished" and status["processes"] == 2 and status["accelerate"] == "ddp"
    assert status["batch_split"]["sft"] == dict(processes=2, per_device_batch=2, grad_accum=1, global_batch=4)
    assert status["batch_split"]["grpo"] == dict(processes=2, per_device_batch=4, grad_accum=1, global_batch=8)
    assert status["host"] == socket.gethostname()
    assert runs.load_config(run_dir).run.processes == 2
    assert rows(run_dir / "metrics.jsonl") == [("sft", 1), ("sft", 2), ("grpo", 1), ("grpo", 2)]
    samples = runs.read_jsonl(run_dir / "samples.jsonl")
    assert [(s["stage"], s["step"]) for s in samples] == [("grpo", 1), ("grpo", 2)]
    assert all(len(s["completions"]) == 8 for s in samples)  # 2 prompts x 4 generations, both ranks' share
    for label in ("base", "sft", "grpo"):  # sharded over the ranks, written once, every record once
        result = json.loads(runs.eval_path(run_dir, label, "id").read_text())
        assert result["n"] == 8 and len({p["id"] for p in result["predictions"]}) == 8
    assert done.stdout.count("accuracy, after GRPO") == 1  # one report, printed by rank 0
    assert not list(run_dir.rglob(".*.tmp*"))


def test_weights_are_equal_on_both_ranks_and_in_the_final_checkpoint(two_ranks):
    from transformers import AutoModelForImageTextToText

    run_dir, digests, _ = two_ranks
    rank0, rank1 = (runs.read_jsonl(digests / f"rank{r}.jsonl") for r in (0, 1))
    assert rank0 == rank1 and len(rank0) >= 4  # every step, both launches
    assert [(r["stage"], r["step"]) for r in rank0][-3:] == [("sft", 2), ("grpo", 1), ("grpo", 2)]
    final = AutoModelForImageTextToText.from_pretrained(run_dir / "final" / "grpo")  # one process loads it
    assert weights_digest(final) == rank0[-1]["digest"]


def test_resume_needs_the_same_count(two_ranks):
    run_dir, _, _ = two_ranks
    status = runs.read_status(run_dir)
    (run_dir / "status.json").write_text(json.dumps({**status, "state": "stopped"}))  # resumable again
    try:
        done = cli("train", "--resume", str(run_dir), "--processes", "1")
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "trained on 2 process(es)" in done.stderr and "the same count" in done.stderr
    finally:
        (run_dir / "status.json").write_text(json.dumps(status))


def test_the_launcher_passes_a_stop_to_every_rank(tmp_path, cache_dir):
    """rrft-studio train --processes 2, SIGTERM to the launcher: every rank stops at one step with a checkpoint
    (exit 143), and --resume starts two processes again and finishes with every step once."""
    args = [sys.executable, "-m", "rrft_studio.cli", "train", str(MICRO), "--processes", "2",
            f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "run.stages=[sft]", "sft.max_steps=60",
            "sft.save_steps=1000", "eval.enabled=false"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, metrics = time.time() + 400, None
        while time.time() < deadline and metrics is None:
            found = list(tmp_path.glob("*/metrics.jsonl"))
            metrics = found[0] if found and len(runs.read_jsonl(found[0])) >= 3 else None
            time.sleep(0.1)
        assert metrics is not None, "training never logged"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = metrics.parent
    assert proc.returncode == 143, out[-3000:]
    assert runs.read_status(run_dir)["state"] == "stopped" and "resume with" in out
    stopped_at = runs.checkpoint_step(runs.last_checkpoint(run_dir, "sft"))
    assert 3 <= stopped_at < 60
    done = cli("train", "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes:" in done.stdout
    assert rows(metrics) == [("sft", step) for step in range(1, 61)]
    assert runs.read_status(run_dir)["state"] == "finished"


@pytest.mark.parametrize("args, words", [
    (["--processes", "3"], ["run.processes=3 does not divide sft's global batch 4", "use 1, 2, 4 processes"]),
    (["--processes", "2", "--launcher", "none"], ["needs accelerate", "drop --launcher none"]),
    (["--processes", "2", "--accelerate-config", "zero3"], ["zero3 shards the model over CUDA GPUs", "ddp"]),
    (["--processes", "2", "--accelerate-config", "nope.yaml"], ["run.accelerate_config='nope.yaml' is neither"]),
    (["--processes", "2", "model.backend=unsloth"], ["model.backend=unsloth trains on one GPU"]),
    (["--processes", "2", "model.fast_inference=true"], ["grpo.vllm_mode=server"]),
])
def test_refused_in_one_line_before_anything_is_written(tmp_path, args, words):
    runs_dir = tmp_path / "runs"
    done = cli("train", str(MICRO), *args, f"run.runs_dir={runs_dir}")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert not runs_dir.exists()


def test_an_unreachable_vllm_server_is_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs_dir = tmp_path / "runs"
    started = time.monotonic()
    done = cli("train", str(MICRO), "grpo.vllm_mode=server", f"grpo.vllm_server_port={port}",
               "grpo.vllm_server_timeout=1", f"run.runs_dir={runs_dir}")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert f"no vLLM server answers at http://127.0.0.1:{port}" in line and "trl vllm-serve" in line, line
    assert time.monotonic() - started < 60 and not runs_dir.exists()


def test_vllm_server_mode_limits_are_checked_with_the_config():
    with pytest.raises(config.ConfigError, match="choose one"):
        settings.load(MICRO, ["grpo.vllm_mode=server", "model.fast_inference=true"])
    cfg = settings.load(MICRO, ["grpo.vllm_mode=server", "data.task=spatial", "model.finetune=lora",
                              "model.lora_layers=[vision,language]", "run.processes=2"])
    from rrft_studio.train import rollout_server

    args = rollout_server.trainer_args(cfg)  # LoRA on the vision tower too: the trainer sends merged weights
    assert args == dict(use_vllm=True, vllm_mode="server", vllm_server_host="127.0.0.1", vllm_server_port=8000,
                        vllm_server_timeout=240.0)
    assert "--limit-mm-per-prompt '{\"image\": 2}'" in rollout_server.serve_command(cfg)


@pytest.mark.parametrize("name, kind", [("ddp", "ddp"), ("fsdp2", "fsdp2"), ("zero2", "zero2"), ("zero3", "zero3")])
def test_the_shipped_accelerate_configs_are_what_accelerate_launches(name, kind, monkeypatch):
    """Each file read by accelerate's own launch parser from the command the launcher runs; for FSDP2 and ZeRO the
    plugin accelerate builds in each rank from that launch's environment (DeepSpeed itself needs CUDA)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    cfg = settings.load(MICRO, ["run.processes=2", f"run.accelerate_config={name}"])
    assert launch.strategy_of(name) == kind
    cmd = launch.command(cfg, Path("/runs/r"))
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(cmd[3:]))
    assert args.num_processes == 2 and args.module and args.mixed_precision == "no"
    assert args.training_script_args == ["train", "--resume", "/runs/r"]
    if kind.startswith("zero"):
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    if kind == "fsdp2":
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and "FULL_STATE_DICT" in str(plugin.state_dict_type)
    elif kind.startswith("zero"):
        from accelerate.utils import DeepSpeedPlugin

        zero = DeepSpeedPlugin().deepspeed_config["zero_optimization"]
        assert zero["stage"] == int(kind[-1])
        assert zero["stage3_gather_16bit_weights_on_model_save"] is (kind == "zero3")  # a loadable final checkpoint
    else:
        assert args.multi_gpu


def test_split_keeps_the_global_batch():
    cfg = settings.load(None, ["run.processes=4"])  # the paper's 16 SFT samples and 14 x 8 completions a step
    assert ranks.split(cfg, "sft").as_dict() == dict(processes=4, per_device_batch=2, grad_accum=2, global_batch=16)
    assert ranks.split(cfg, "grpo").as_dict() == dict(processes=4, per_device_batch=7, grad_accum=4, global_batch=112)
    one = settings.load(None)
    assert (ranks.split(one, "sft").per_device, ranks.split(one, "sft").accumulation) == (2, 8)
    assert (ranks.split(one, "grpo").per_device, ranks.split(one, "grpo").accumulation) == (8, 14)


def test_a_run_of_another_host_is_judged_by_its_heartbeat(tmp_path):
    from rrft_studio.studio.launcher import Launcher

    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process here
    status = {"state": "running", "pid": dead_pid, "host": "elsewhere", "updated": time.time() - 10}
    assert runs.is_alive(status) and runs.effective_state(status) == "running"  # not judged by a pid of this host
    assert runs.effective_state({**status, "updated": time.time() - runs.STALE_S - 1}) == "killed"
    assert runs.effective_state({**status, "host": runs.HOST}) == "killed"  # a pid of this host that is gone
    run_dir = tmp_path / "runs" / "r-1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("run: {stages: [sft]}\n")
    (run_dir / "status.json").write_text(json.dumps(status))
    with pytest.raises(config.ConfigError, match="still running on elsewhere"):
        runs.may_resume(run_dir)
    assert "runs on elsewhere: stop it there" in Launcher(tmp_path / "runs").stop(run_dir)


def test_the_heartbeat_keeps_a_running_status_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "HEARTBEAT_S", 0.05)
    runs.write_status(tmp_path, state="running", stage="grpo")
    before = runs.read_status(tmp_path)["updated"]
    with runs.Heartbeat(tmp_path):
        time.sleep(0.5)
    after = runs.read_status(tmp_path)
    assert after["updated"] > before and after["stage"] == "grpo" and after["host"] == runs.HOST


def test_preflight_gives_one_gpu_of_the_strategy():
    from rrft_studio.train import preflight

    def parts(*overrides, stage="sft"):
        cfg = settings.load(ROOT / "presets" / "counting_7b.yaml", ["model.finetune=full", *overrides])
        return {name: size for name, size, _ in preflight.estimate(cfg, stage, "transformers").parts}

    one, ddp, zero3, fsdp2 = parts(), parts("run.processes=8"), parts("run.processes=8", "run.accelerate_config=zero3"), \
        parts("run.processes=8", "run.accelerate_config=fsdp2")
    assert ddp["weights"] == one["weights"] and ddp["AdamW states"] == one["AdamW states"]
    # FSDP2 shards the fp32 master weights the model holds; under ZeRO-3 the model holds 16-bit weights (the
    # optimizer holds the fp32 master copy, counted with its states), so its share is 2 bytes a parameter
    assert fsdp2["weights"] == pytest.approx(one["weights"] / 8)
    assert zero3["weights"] == pytest.approx((one["weights"] - one["autocast copies"]) / 8)
    assert "autocast copies" not in zero3
    assert fsdp2["AdamW states"] == pytest.approx(one["AdamW states"] / 8)
    assert zero3["AdamW states"] == pytest.approx(one["AdamW states"] * 12 / 8 / 8)  # DeepSpeed: fp32 master + 2 moments
    assert "weights gathered (rollouts)" in parts("run.processes=8", "run.accelerate_config=zero3", stage="grpo")
    done = cli("preflight", str(ROOT / "presets" / "counting_7b.yaml"), "model.finetune=full", "--processes", "8",
               "--accelerate-config", "zero3")
    assert done.returncode == 0 and "per GPU of 8 processes (zero3)" in done.stdout, done.stderr[-2000:]


def test_the_train_tab_turns_processes_into_the_cli_flags(tmp_path):
    from rrft_studio.studio.launcher import Launcher, command_text
    from rrft_studio.studio.train import overrides_of, processes_edit

    # the page merges the edit into the overrides (the Train form's browser test): these lines, or none for 1
    assert json.loads(processes_edit(2, "zero3")) == {"keys": ["run.processes", "run.accelerate_config"],
                                                      "lines": ["run.processes=2", "run.accelerate_config=zero3"]}
    assert json.loads(processes_edit(1, "zero3"))["lines"] == []
    text = "sft.lr=1e-4\nrun.processes=2\nrun.accelerate_config=zero3"
    launcher = Launcher(tmp_path / "runs")
    (tmp_path / "p.yaml").write_text("model: tiny\n")
    command = command_text(launcher.train_command(tmp_path / "p.yaml", overrides_of(text)))
    assert command.startswith(f"rrft-studio train --processes 2 --accelerate-config zero3 {tmp_path / 'p.yaml'} sft.lr=1e-4 ")
    with pytest.raises(config.ConfigError, match="run.processes=3 does not divide"):
        launcher.validate("p", "model: tiny\n", ["run.processes=3"])
