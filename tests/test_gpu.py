"""The chain on CUDA through the Unsloth backend (skipped without a GPU)."""

import json

import pytest

from conftest import MICRO, cli
from rrft_studio import runs

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_unsloth_chain(tmp_path, cache_dir, finetune):
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}",
               "model.backend=unsloth", f"model.finetune={finetune}", "model.lora_r=8")
    assert done.returncode == 0, done.stderr[-4000:]
    (run_dir,) = tmp_path.iterdir()
    status = runs.read_status(run_dir)
    assert status["backend"] == "unsloth" and status["state"] == "finished"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["accuracy_grpo"] is not None
    grpo = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r["stage"] == "grpo" and "reward" in r]
    assert len(grpo) == 2


def test_auto_picks_unsloth_on_cuda():
    from rrft_studio import config, models

    backend, why = models.choose_backend(config.Config())
    assert backend == "unsloth" and "CUDA" in why
