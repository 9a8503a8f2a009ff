"""What must hold in every GRPO step, checked on the tiny model with real forward passes: a batch that mixes image
sizes, prompt lengths and padding scores each sequence as it scores alone; the trainer's log-probabilities equal
the sampler's (the sampling gap, logged each step); the first step starts at the reference (KL 0, nothing
clipped); advantages are centred in each group and zero where a group's rewards are equal."""

import statistics
from collections import defaultdict

import pytest
import torch
from PIL import Image

from conftest import MICRO, cli
from rrft_studio import data, models, runs, settings
from rrft_studio.train import grpo, invariants

TOLERANCE = 1e-5  # fp32 on a CPU: sums in another order differ by ~1e-7 a token


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, cache_dir):
    """TRL's GRPOTrainer as a run builds it, on the micro model: its own batched scoring is what is checked."""
    from trl import GRPOTrainer

    cfg = settings.load(MICRO, [f"run.cache_dir={cache_dir}"])
    model, processor, _ = models.load_for_training(cfg, cfg.grpo, models.source(cfg, data.corpus(cfg)),
                                                   "transformers")
    rows = data.stage_records(cfg, "grpo")[:8]
    args = grpo.trainer_args(cfg, tmp_path_factory.mktemp("grpo"), True, models.vision_token_ids(processor))
    return GRPOTrainer(model=model, reward_funcs=grpo.reward_funcs(cfg), args=args,
                       train_dataset=data.grpo_dataset(rows, data.task_of(cfg), cfg), processing_class=processor)


def _batch(processor, prompts, images, completions, padding_side="left"):
    """Prompts (text, image) padded on `padding_side`, completions right-padded after them: TRL's layout."""
    texts = [processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
                                           add_generation_prompt=True) for p in prompts]
    enc = processor(text=texts, images=images, padding=True, padding_side=padding_side, return_tensors="pt")
    width = max(len(c) for c in completions)
    pad = processor.tokenizer.pad_token_id
    completion = torch.tensor([c + [pad] * (width - len(c)) for c in completions])
    completion_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in completions])
    return {"input_ids": torch.cat([enc["input_ids"], completion], 1),
            "attention_mask": torch.cat([enc["attention_mask"], completion_mask], 1),
            "pixel_values": enc["pixel_values"], "image_grid_thw": enc["image_grid_thw"],
            "mm_token_type_ids": torch.cat([enc["mm_token_type_ids"], torch.zeros_like(completion)], 1),
            "num_images": [1] * len(prompts)}, width


def _scores(trainer, batch, width, batch_size):
    with torch.no_grad():
        return trainer._get_per_token_logps_and_entropies(trainer.model, batch["input_ids"], batch["attention_mask"],
                                                          width, batch_size=batch_size, **{
                                                              k: batch[k] for k in ("pixel_values", "image_grid_thw",
                                                                                    "mm_token_type_ids", "num_images")})[0]


def test_a_mixed_batch_scores_each_sequence_as_it_scores_alone(trainer):
    """Three images of three sizes (different numbers of image tokens), prompts of three lengths, completions of
    three lengths; scored in chunks of 2 (the split falls between images of different sizes), each row's
    log-probabilities equal those of the sequence scored alone. The broken variant, the second and third rows'
    images swapped in the batch (images attached to the wrong prompt, what mixed-size bugs do), differs."""
    processor = trainer.processing_class
    images = [Image.new("RGB", size, color) for size, color in
              (((56, 56), "red"), ((112, 56), "blue"), ((112, 112), "green"))]
    prompts = ["How many?", "How many objects are there in this picture?",
               "Subtract all red cubes. How many objects are left? Think first, then answer."]
    vocab = trainer.model.config.get_text_config().vocab_size
    banned = set(models.vision_token_ids(processor))
    pool = [t for t in range(vocab) if t not in banned]
    torch.manual_seed(0)
    completions = [[pool[i] for i in torch.randint(0, len(pool), (n,)).tolist()] for n in (5, 3, 7)]

    batch, width = _batch(processor, prompts, images, completions)
    assert len(set(map(tuple, batch["image_grid_thw"].tolist()))) == 3  # three sizes in one batch
    together = _scores(trainer, batch, width, batch_size=2)
    for row, (prompt, image, completion) in enumerate(zip(prompts, images, completions)):
        alone, n = _batch(processor, [prompt], [image], [completion])
        gap = (together[row, :n] - _scores(trainer, alone, n, batch_size=1)[0]).abs().max().item()
        assert gap < TOLERANCE, (row, gap)

    # broken: the prompts padded on the right, the side the completions are padded on
    wrong, _ = _batch(processor, prompts, images, completions, padding_side="right")
    wrong_scores = _scores(trainer, wrong, width, batch_size=2)
    gaps = [(wrong_scores[row, :len(c)] - together[row, :len(c)]).abs().max().item()
            for row, c in enumerate(completions)]
    assert max(gaps) > 100 * TOLERANCE


def test_each_grpo_step_logs_the_sampling_gap_at_float_noise(tmp_path, cache_dir):
    """The trainer's log-probabilities of each completion equal those the sampler drew it with (generation batch
    padded one way, training micro-batches another): sampling/sampling_logp_difference/mean|max in metrics.jsonl
    for every step, float noise in fp32. The first step starts at the reference: KL 0, nothing clipped."""
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "run.stages=[grpo]",
               "grpo.max_steps=3", "grpo.micro_batch=2", "eval.enabled=false")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    steps = [r for r in runs.read_jsonl(run_dir / "metrics.jsonl") if r.get("stage") == "grpo" and "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for r in steps:
        assert r[f"{invariants.KEY}/mean"] < TOLERANCE and r[f"{invariants.KEY}/max"] < 10 * TOLERANCE, r
    first = steps[0]
    assert abs(first["kl"]) < 1e-7 and first["clip_ratio/region_mean"] == 0.0


def test_the_recorder_sees_the_models_distribution_before_suppression():
    """The sampler's record is the model's log-softmax at the temperature (the trainer's formula); the vision
    tokens are suppressed after it is taken. Recorded after suppression instead (the broken variant), the gap
    would be the suppressed tokens' probability mass, not float noise."""
    torch.manual_seed(0)
    logits = torch.randn(2, 10)
    recorder = invariants.Recorder(temperature=1.5, banned=[3, 4])
    out = recorder(torch.tensor([[1], [2]]), logits.clone())
    assert torch.isinf(out[:, [3, 4]]).all() and torch.equal(out[:, :3], logits[:, :3])
    recorded = recorder.finish(torch.tensor([7, 0]))
    expected = torch.log_softmax(logits / 1.5, -1)[[0, 1], [7, 0]]
    assert torch.allclose(recorded[:, 0], expected)
    suppressed = torch.log_softmax(out / 1.5, -1)[[0, 1], [7, 0]]
    assert (suppressed - expected).abs().min() > 100 * TOLERANCE


def test_two_scenes_with_the_same_question_and_answer_are_told_apart(trainer):
    """The sampler's record is found again by prompt, images and completion: two scenes asked the same question
    have the same prompt tokens (their image placeholders are alike), and when both get the same completion a
    key without the images (the broken variant, what an earlier version did) compares one with the other's
    log-probabilities: on the demo, 16 of 200 steps showed a token 0.1 to 1 nat apart."""
    processor = trainer.processing_class
    images = [Image.new("RGB", (56, 56), "red"), Image.new("RGB", (56, 56), "blue"), Image.new("RGB", (112, 56), "red")]
    batch, _ = _batch(processor, ["How many?"] * 3, images, [[5, 6]] * 3)
    prompts, grid = batch["input_ids"][:, :-2], batch["image_grid_thw"]
    per_row = invariants._images_per_row(trainer.model, prompts)
    assert per_row == [1, 1, 1]
    prints = invariants._fingerprints(batch["pixel_values"], grid, per_row)
    assert len(set(prints)) == 3 and prints == invariants._fingerprints(batch["pixel_values"], grid, batch["num_images"])
    mask = batch["attention_mask"][:, :-2]
    keys = [invariants._key(prompts[i], mask[i], [5, 6], prints[i]) for i in range(2)]
    assert keys[0] != keys[1]
    assert invariants._key(prompts[0], mask[0], [5, 6]) == invariants._key(prompts[1], mask[1], [5, 6])  # broken


def _groups(run_dir):
    out = defaultdict(list)
    for record in runs.read_jsonl(run_dir / "samples.jsonl"):
        for c in record["completions"]:
            out[(record["step"], c["id"])].append((sum(c["rewards"].values()), c["advantage"]))
    return out


@pytest.mark.parametrize("rewards", ["[format,accuracy,tests.data.rewards:length_reward]|[1,1,1]",
                                     "[format,accuracy]|[1,1]"])
def test_advantages_are_centred_in_each_group_and_zero_for_equal_rewards(tmp_path, cache_dir, rewards):
    """TRL's advantage of each completion, as logged: (reward - group mean) / (group std + 1e-4), so they sum to
    zero in every group, and a group whose rewards are equal (the micro model earns no format or accuracy reward:
    every group) has all advantages 0. `grpo.scale_rewards=batch` (the batch's std) fails the formula check."""
    done = cli("train", str(MICRO), f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}", "run.stages=[grpo]",
               "grpo.max_steps=2", f"grpo.rewards={rewards.split('|')[0]}", f"grpo.reward_weights={rewards.split('|')[1]}",
               "eval.enabled=false")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    groups = _groups(run_dir)
    assert len(groups) == 4 and all(len(g) == 4 for g in groups.values())
    equal = 0
    for members in groups.values():
        values, advantages = [r for r, _ in members], [a for _, a in members]
        assert abs(sum(advantages)) < 1e-4
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert advantages == pytest.approx([(v - mean) / (std + 1e-4) for v in values], abs=1e-4)
        if len(set(values)) == 1:
            equal += 1
            assert advantages == [0.0] * 4
    assert equal == (4 if "length" not in rewards else 0)
    frac = [r["frac_reward_zero_std"] for r in runs.read_jsonl(run_dir / "metrics.jsonl") if "frac_reward_zero_std" in r]
    assert frac == ([1.0, 1.0] if equal else [0.0, 0.0])


def test_a_sampling_gap_above_the_threshold_raises_the_monitors_banner():
    from rrft_studio import workbench

    key = f"{workbench.SAMPLING_GAP}/mean"
    quiet = [{"stage": "grpo", "step": 1, key: 2e-7}]
    assert workbench.banner(quiet) == []
    ((level, message),) = workbench.banner([*quiet, {"stage": "grpo", "step": 2, key: 0.3}])
    assert level == "warning" and "differ from the sampler's by 0.300 nats" in message and "step 2" in message
