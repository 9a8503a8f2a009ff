"""grpo.dynamic_sampling on the micro model: groups whose rewards are all equal are replaced by groups drawn
afterwards (the test reward gives no spread to even-numbered records), the batch the trainer scores is the one
that was sampled (sampling gap at float noise), metrics say what was drawn and kept, a resumed run draws what
the uninterrupted run drew, and misuse is refused in one line."""

import pytest
import torch

from conftest import MICRO, cli
from rrft_studio import runs
from rrft_studio.train import dynamic_sampling
from test_distributed import accelerate
from test_reliability import resume, start

REWARD = ["grpo.rewards=[tests.data.rewards:odd_records_reward]", "grpo.reward_weights=[1]"]
ON = ["run.stages=[grpo]", "eval.enabled=false", "grpo.dynamic_sampling=true", *REWARD]


def _number(record_id: str) -> int:
    return int(record_id.rsplit("-", 1)[1])


def _steps(run_dir):
    return [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r.get("stage") == "grpo" and "loss" in r]


def _rollouts(run_dir):
    return {r["step"]: [(c["id"], c["completion"]) for c in r["completions"]]
            for r in runs.read_jsonl(run_dir / "samples.jsonl")}


@pytest.fixture(scope="module")
def whole(tmp_path_factory, cache_dir):
    """4 GRPO steps of 2 prompts x G 4, 4 completions a pass (2 accumulation steps), dynamic sampling on."""
    done, run_dir = start("none", tmp_path_factory.mktemp("whole"), cache_dir, *ON)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_steps_train_on_groups_with_a_spread(whole):
    steps = _steps(whole)
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    rollouts = {r["step"]: r["completions"] for r in runs.read_jsonl(whole / "samples.jsonl")}
    for r in steps:
        assert r["dynamic_sampling/drawn"] == 2 * (1 + r["dynamic_sampling/draws"])
        # samples.jsonl holds what trained: the groups with a spread, then (the cap reached) zero-spread ones
        groups = [rollouts[r["step"]][i:i + 4] for i in range(0, 8, 4)]
        spread = [g for g in groups if any(c["advantage"] != 0 for c in g)]
        assert r["dynamic_sampling/kept"] == len(spread), (r, groups)
        assert len(spread) == 2 or r["dynamic_sampling/draws"] == 3  # short only once the 3 draws are spent
        assert all(_number(c["id"]) % 2 for g in spread for c in g)  # even-numbered records never have a spread
        # the merged batch (prompts re-padded, pixels re-joined) is the batch that was sampled
        assert r["sampling/sampling_logp_difference/max"] < 1e-4, r
    assert any(r["dynamic_sampling/draws"] > 0 for r in steps)  # some step had to draw: else nothing was tested
    # the reference scores the chosen rows after the draws: at step 1 the policy is the reference, so the KL of
    # each row against its own reference log-probabilities is float noise (rows mismatched would not be)
    assert steps[0]["dynamic_sampling/draws"] > 0 and steps[0]["kl"] < 1e-6, steps[0]
    assert all(r["kl"] >= 0 for r in steps)


def test_with_lora_the_reference_is_the_policy_with_its_adapter_off(tmp_path, cache_dir):
    """A LoRA run has no reference model: the reference is the policy with its adapter off, scored for the
    chosen rows after the draws. At step 1 the adapter is still zero, so each row's KL is float noise."""
    done, run_dir = start("none", tmp_path, cache_dir, *ON, "model.finetune=lora", "grpo.max_steps=2")
    assert done.returncode == 0, done.stderr[-3000:]
    steps = _steps(run_dir)
    assert [r["step"] for r in steps] == [1, 2]
    assert steps[0]["dynamic_sampling/draws"] > 0 and steps[0]["kl"] < 1e-6, steps[0]
    # after an update the policy has moved from the adapter-off reference (the adapter left on: KL 0 again)
    assert steps[1]["kl"] > 1e-7, steps[1]  # 2.6e-6 here; 0.0 with the adapter left on


def test_a_resumed_run_draws_what_the_whole_run_drew(whole, tmp_path, cache_dir):
    done, cut = start("kill-step:grpo:3", tmp_path, cache_dir, *ON)  # checkpoint-2 saved, step 3 lost
    assert done.returncode == -9
    done = resume("none", cut)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _rollouts(cut) == _rollouts(whole)
    keys = ("loss", "dynamic_sampling/drawn", "dynamic_sampling/kept")
    assert [[round(r[k], 5) for k in keys] for r in _steps(cut)] == [[round(r[k], 5) for k in keys] for r in _steps(whole)]


def _flat_groups(run_dir) -> int:
    """Groups trained with no reward spread (every advantage 0), over the run."""
    return sum(all(c["advantage"] == 0 for c in r["completions"][i:i + 4])
               for r in runs.read_jsonl(run_dir / "samples.jsonl") for i in range(0, len(r["completions"]), 4))


def test_without_it_more_groups_train_on_nothing(whole, tmp_path, cache_dir):
    """The same run with the option off trains zero-spread groups (even-numbered records among them) where the
    run with it replaced them."""
    done, run_dir = start("none", tmp_path, cache_dir, *[o for o in ON if "dynamic" not in o])
    assert done.returncode == 0, done.stderr[-3000:]
    assert _flat_groups(run_dir) > _flat_groups(whole), (_flat_groups(run_dir), _flat_groups(whole))
    assert any(_number(i) % 2 == 0 for rows in _rollouts(run_dir).values() for i, _ in rows)
    assert all("dynamic_sampling/kept" not in r for r in _steps(run_dir))


def test_two_processes_each_refill_their_own_groups(tmp_path, cache_dir):
    """On two processes (one group each a step) every process draws while either is short; the ranks' weights
    stay equal after every step and samples.jsonl holds both ranks' trained groups."""
    digests = tmp_path / "digests"
    digests.mkdir()
    done = accelerate("digest", "--", "train", str(MICRO), f"run.runs_dir={tmp_path / 'runs'}",
                      f"run.cache_dir={cache_dir}", *ON, env={"RRFT_TEST_DIGESTS": str(digests)})
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    rank0, rank1 = (runs.read_jsonl(digests / f"rank{r}.jsonl") for r in (0, 1))
    assert rank0 == rank1 and [r["step"] for r in rank0] == [1, 2]
    rollouts = {r["step"]: r["completions"] for r in runs.read_jsonl(run_dir / "samples.jsonl")}
    for r in _steps(run_dir):
        groups = [rollouts[r["step"]][i:i + 4] for i in range(0, 8, 4)]
        assert r["dynamic_sampling/kept"] == sum(any(c["advantage"] != 0 for c in g) for g in groups), r
        assert r["sampling/sampling_logp_difference/max"] < 1e-4, r
    assert any(r["dynamic_sampling/draws"] > 0 for r in _steps(run_dir))  # the ranks drew together


def test_merge_pads_prompts_left_and_completions_right():
    a = {"prompt_ids": torch.tensor([[0, 5], [6, 7]]), "prompt_mask": torch.tensor([[0, 1], [1, 1]]),
         "completion_ids": torch.tensor([[8, 0, 0], [9, 9, 9]]), "completion_mask": torch.tensor([[1, 0, 0], [1, 1, 1]]),
         "mm_token_type_ids": torch.tensor([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]), "advantages": torch.tensor([1.0, -1.0]),
         "num_images": [1, 1], "ref_per_token_logps": None}
    b = {"prompt_ids": torch.tensor([[1, 2, 3]]), "prompt_mask": torch.tensor([[1, 1, 1]]),
         "completion_ids": torch.tensor([[4]]), "completion_mask": torch.tensor([[1]]),
         "mm_token_type_ids": torch.tensor([[1, 1, 0, 0]]), "advantages": torch.tensor([0.5]), "num_images": [2],
         "ref_per_token_logps": None}
    out = dynamic_sampling.merge([a, b], [(1, 0), (0, 1)])
    assert out["prompt_ids"].tolist() == [[1, 2, 3], [0, 6, 7]]
    assert out["prompt_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]
    assert out["completion_ids"].tolist() == [[4, 0, 0], [9, 9, 9]]
    assert out["completion_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert out["mm_token_type_ids"].tolist() == [[1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]]
    assert out["advantages"].tolist() == [0.5, -1.0] and out["num_images"] == [2, 1]
    assert out["ref_per_token_logps"] is None
    with pytest.raises(RuntimeError, match="grpo.dynamic_sampling=false"):
        dynamic_sampling.merge([{**a, "new_key": torch.zeros(2)}], [(0, 0)])


@pytest.mark.parametrize("overrides, message", [
    (["grpo.scale_rewards=batch"], "grpo.scale_rewards=group or none"),
    (["run.processes=2", "grpo.prompts_per_step=3", "grpo.micro_batch=2", "grpo.num_generations=2"],
     "does not divide among run.processes=2"),
    (["grpo.dynamic_sampling_draws=0"], "grpo.dynamic_sampling_draws"),
])
def test_misuse_is_one_line(tmp_path, overrides, message):
    done = cli("train", "tests/data/micro.yaml", f"run.runs_dir={tmp_path}", "grpo.dynamic_sampling=true", *overrides)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert message in line, line
    assert not any(tmp_path.iterdir())  # no run directory left behind
