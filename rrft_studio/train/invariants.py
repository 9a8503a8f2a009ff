"""The sampling gap: how far the log-probabilities the trainer computes for a completion's tokens are from those of
the policy that sampled them, logged every GRPO step as `sampling/sampling_logp_difference/mean` and `/max`
(mean and largest absolute difference, in nats, over the step's completion tokens).

Both sides are the same weights at the same temperature, so the gap is float noise (about 1e-6 in fp32 on a CPU,
about 1e-2 in bf16 on a GPU) unless the batch the trainer scores differs from the batch that was sampled:
padding on the wrong side, images attached to the wrong prompt, a prompt cut short, pixel values of mixed sizes
mixed up. Such faults train without an error and learn less; this number shows them at the first step.

Where the rollouts come from vLLM, TRL measures the gap itself (same keys). Where transformers generates (every
CPU run, one GPU without vLLM), TRL does not, and `watch` does: a logits processor records, at each generated
token, the log-softmax of the model's logits at the sampling temperature (the trainer's own formula), and
applies the vision-token suppression after recording (so what is recorded is the model's distribution, not the
suppressed one); when the trainer scores the same completion at the start of the step, the two are compared.
Above workbench.SAMPLING_GAP_WARN (0.05 nats, on the mean) the studio's monitor shows a banner.
"""

from __future__ import annotations

import copy
import functools

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from ..workbench import SAMPLING_GAP as KEY


class Recorder(LogitsProcessor):
    """Records log p(token) at `temperature` for each generated token, then suppresses `banned`."""

    def __init__(self, temperature: float, banned: list[int]):
        self.temperature, self.banned, self.previous, self.steps = temperature, list(banned), None, []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.previous is not None:  # the token just sampled from the previous step's distribution
            self.steps.append(self.previous.gather(1, input_ids[:, -1:]))
        self.previous = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        if self.banned:
            scores = scores.clone()
            scores[:, self.banned] = -float("inf")
        return scores

    def finish(self, last: torch.LongTensor) -> torch.Tensor:
        """(batch, generated tokens) log-probabilities, given the last generated token of each row."""
        if self.previous is not None:
            self.steps.append(self.previous.gather(1, last[:, None]))
        return torch.cat(self.steps, dim=1) if self.steps else torch.zeros(len(last), 0)


def _key(prompt: torch.Tensor, prompt_mask: torch.Tensor, completion: list[int], images: tuple = ()) -> tuple:
    """A sampled completion: its prompt's tokens, its images (two scenes with the same question have the same
    tokens: their image placeholders are alike) and its tokens."""
    return tuple(prompt[prompt_mask.bool()].tolist()), images, tuple(completion)


def _fingerprints(pixel_values: torch.Tensor | None, grid: torch.Tensor | None, per_row: list[int]) -> list[tuple]:
    """Per row, a fingerprint of each of its images (the sum of its pixel values), from a batch's concatenated
    patches, the images' (t, h, w) grids and the number of images of each row."""
    if pixel_values is None or grid is None:
        return [()] * len(per_row)
    patches = grid.prod(-1).tolist()
    sums = [round(p.double().sum().item(), 3) for p in torch.split(pixel_values, patches)]
    out, at = [], 0
    for n in per_row:
        out.append(tuple(sums[at:at + n]))
        at += n
    return out


def _images_per_row(model, input_ids: torch.Tensor) -> list[int]:
    """How many images each row of a generation batch holds: Qwen opens each image with a vision-start token."""
    return (input_ids == model.config.vision_start_token_id).sum(-1).tolist()


def watch(trainer) -> bool:
    """Log the sampling gap on a TRL GRPOTrainer that generates with transformers; False where it cannot (vLLM:
    TRL logs it; a trainer without TRL's scoring method)."""
    if getattr(trainer, "use_vllm", False) or not hasattr(trainer, "_compute_loss"):
        return False
    sampled: dict[tuple, torch.Tensor] = {}
    sampled_at = [None]  # the step whose generations `sampled` holds
    eos = set(trainer.eos_token_ids)
    model = trainer.accelerator.unwrap_model(trainer.model)
    generate, compute_loss, score = model.generate, trainer._compute_loss, trainer._get_per_token_logps_and_entropies

    @functools.wraps(generate)
    def generate_and_record(*args, generation_config=None, **kwargs):
        config = copy.deepcopy(generation_config or model.generation_config)
        banned, config.suppress_tokens = list(config.suppress_tokens or []), None  # the recorder suppresses them
        recorder = Recorder(config.temperature or 1.0, banned)
        out = generate(*args, generation_config=config, logits_processor=LogitsProcessorList([recorder]), **kwargs)
        prompts, mask = kwargs["input_ids"], kwargs["attention_mask"]
        grid = kwargs.get("image_grid_thw")
        images = _fingerprints(kwargs.get("pixel_values"), grid, _images_per_row(model, prompts))
        logps = recorder.finish(out[:, -1]).to(out.device)
        # one step's generations at a time (dynamic sampling makes several a step)
        if sampled_at[0] != trainer.state.global_step:
            sampled.clear()
            sampled_at[0] = trainer.state.global_step
        for row in range(len(out)):
            completion = out[row, prompts.size(1):].tolist()
            end = next((i + 1 for i, t in enumerate(completion) if t in eos), len(completion))
            sampled[_key(prompts[row], mask[row], completion[:end], images[row])] = logps[row, :end]
        return out

    def compute_loss_and_compare(model_, inputs):
        trainer._gap_inputs = inputs
        try:
            return compute_loss(model_, inputs)
        finally:
            trainer._gap_inputs = None

    def score_and_compare(*args, **kwargs):
        result = score(*args, **kwargs)
        inputs, trainer._gap_inputs = getattr(trainer, "_gap_inputs", None), None  # the policy's pass, not the reference's
        if inputs is not None:
            _compare(trainer, sampled, inputs, result[0].detach())
        return result

    model.generate, trainer._compute_loss = generate_and_record, compute_loss_and_compare
    trainer._get_per_token_logps_and_entropies = score_and_compare
    return True


def _compare(trainer, sampled: dict, inputs: dict, logps: torch.Tensor) -> None:
    """Mean and max |sampled - scored| over the completion tokens of `inputs`, into TRL's metrics of the step."""
    gaps = []
    images = _fingerprints(inputs.get("pixel_values"), inputs.get("image_grid_thw"),
                           inputs.get("num_images") or [0] * len(logps))
    for row in range(len(logps)):
        length = int(inputs["completion_mask"][row].sum())
        key = _key(inputs["prompt_ids"][row], inputs["prompt_mask"][row],
                   inputs["completion_ids"][row, :length].tolist(), images[row])
        if key in sampled and length:
            gaps.append((logps[row, :length].float() - sampled[key].float()).abs())
    if not gaps:
        return
    gap = torch.cat(gaps)
    metrics = trainer._metrics["train"]
    metrics[f"{KEY}/mean"].append(gap.mean().item())
    metrics[f"{KEY}/max"].append(gap.max().item())
