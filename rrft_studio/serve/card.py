"""The model card (README.md) of an export: base model, method and stages, preset, data, the eval table beside
the paper's rows, the training curves, how to load it, and its licence. Everything is read from the run
directory (config.yaml, status.json, metrics.jsonl, eval/), so a card can be rebuilt for any finished run.
"""

from __future__ import annotations

from pathlib import Path

from .. import data, runs, tasks
from ..eval import evaluate, paper, report

METHODS = {
    "rft": "Reason-RFT: CoT-SFT (reasoning activation), then GRPO (reasoning enhancement) from its checkpoint",
    "rft_zero": "Reason-RFT-Zero: GRPO from the base model",
    "cot_sft": "CoT-SFT: supervised fine-tuning on chain-of-thought targets",
    "ans_sft": "ANS-SFT: supervised fine-tuning on the answers alone",
    "zero_shot": "zero-shot: no training",
}
# Licences of the base models the presets name, as their model cards state them; the weights keep the base's.
LICENCES = {
    "qwen2-vl-2b-instruct": ("apache-2.0", None),
    "qwen2-vl-7b-instruct": ("apache-2.0", None),
    "qwen2.5-vl-7b-instruct": ("apache-2.0", None),
    "qwen2.5-vl-3b-instruct": ("other", "qwen-research"),
}
FORMAT_TEXT = {
    "merged": "full weights (LoRA, where used, merged in), loadable with `transformers`",
    "lora": "a PEFT LoRA adapter over the base model",
    "gguf": "GGUF for llama.cpp: the language model and the vision projector (mmproj) as two files",
}


def licence(base: str) -> tuple[str, str | None, str]:
    """(licence id, licence name or None, a sentence for the card)."""
    key = base.rstrip("/").rsplit("/", 1)[-1].lower()
    if key in LICENCES:
        lic, name = LICENCES[key]
        return lic, name, f"The weights are a fine-tune of `{base}` and keep its licence ({name or lic})."
    if "tiny-" in key or base == "tiny":
        return "apache-2.0", None, ("The weights come from rrft-studio's built-in tiny model (random initialisation, "
                                    "no third-party weights) and are released under Apache-2.0, as the project.")
    return "other", None, f"The weights are a fine-tune of `{base}` and keep its licence: see its model card."


def render(src, fmt: str, dtype: str | None, base: str) -> str:
    """The card's Markdown, YAML front matter first (the fields the Hugging Face Hub reads)."""
    cfg, run_dir = src.cfg, src.run_dir
    lic, lic_name, lic_text = licence(base)
    front = ["---", f"license: {lic}"] + ([f"license_name: {lic_name}"] if lic_name else [])
    front += ([f"base_model: {base}"] if "/" in base and not Path(base).exists() else [])
    front += [f"library_name: {'peft' if fmt == 'lora' else 'transformers'}", "pipeline_tag: image-text-to-text",
              "tags: [rrft-studio, reason-rft, grpo, trl, visual-reasoning]", "---", ""]
    title = run_dir.name if run_dir else Path(src.checkpoint).name
    lines = front + [f"# {title}", ""]
    if cfg is None:
        lines += [f"Exported from the checkpoint `{Path(src.checkpoint).name}` ({FORMAT_TEXT[fmt]}). It does not "
                  "come from a run directory, so its training is not recorded here.", ""]
    else:
        lines += _about(src, fmt, dtype, base) + _training(cfg, run_dir) + _data(cfg) + _evaluation(cfg, run_dir)
        lines += _curves(run_dir)
    lines += _usage(fmt, base) + ["## Licence", "", lic_text + " The code that trained it (rrft-studio) is "
                                  "Apache-2.0; see the project's README for its dependencies' licences.", ""]
    return "\n".join(lines)


def _about(src, fmt: str, dtype: str | None, base: str) -> list[str]:
    cfg = src.cfg
    status = runs.read_status(src.run_dir)
    tuning = "full fine-tune" if cfg.model.finetune == "full" else f"LoRA r{cfg.model.lora_r} (alpha {cfg.model.lora_alpha})"
    return [
        f"A {tasks.get(cfg.data.task).card.split(' (')[0]} model trained with rrft-studio, which reproduces Reason-RFT "
        "(reinforcement fine-tuning for visual reasoning) on Qwen2-VL / Qwen2.5-VL.", "",
        f"- **Base model:** " + ("rrft-studio's built-in tiny Qwen2-VL (random initialisation, built locally at "
                                 f"`{base}`)" if cfg.model.name == "tiny" else f"`{base}`"),
        f"- **Method:** `{report.method_of(cfg)}`: {METHODS[report.method_of(cfg)]}",
        f"- **Stages:** {', '.join(cfg.run.stages) or 'none'}; exported stage: `{src.stage or '?'}`",
        f"- **Fine-tuning:** {tuning}; backend {status.get('backend', '?')} ({status.get('backend_why', '')})",
        f"- **Preset:** `{cfg.run.name}` (the resolved config is `training_config.yaml` in this folder)",
        f"- **This export:** {FORMAT_TEXT[fmt]}" + (f", {dtype}" if dtype else ", the checkpoint's own dtype"), "",
    ]


def _training(cfg, run_dir: Path) -> list[str]:
    rows = runs.read_jsonl(runs.metrics_path(run_dir))
    steps = {s: max((r["step"] for r in rows if r.get("stage") == s), default=0) for s in cfg.run.stages}
    s, g = cfg.sft, cfg.grpo
    lines = ["## Training", "", "| stage | steps | learning rate | batch | details |", "|---|---|---|---|---|"]
    if "sft" in cfg.run.stages:
        lines.append(f"| SFT ({s.style}) | {steps['sft']} | {s.lr:g} | {s.batch_size} x {s.grad_accum} | "
                     f"max {s.max_pixels:,} pixels, vision tower {'frozen' if s.freeze_vision else 'trained'} |")
    if "grpo" in cfg.run.stages:
        rewards = ", ".join(f"{n} x{w:g}" for n, w in zip(g.rewards, g.reward_weights))
        lines.append(f"| GRPO | {steps['grpo']} | {g.lr:g} | {g.prompts_per_step} prompts x {g.num_generations} "
                     f"completions | rewards {rewards}; beta {g.beta:g}; temperature {g.temperature:g}; "
                     f"at most {g.max_completion_length} new tokens |")
    return lines + [""]


def _data(cfg) -> list[str]:
    d = cfg.data
    given, _ = data.source(cfg, "train")  # data.train_file, else data.root's file, else None (synthetic)
    source = f"records from `{given.name}`" if given else \
        f"{d.n_train:,} synthetic records (seed {d.seed}), generated by rrft-studio"
    split = f"; Stage 1 on the first {d.sft_samples:,}, Stage 2 on the rest" if cfg.method == "rft" else ""
    return ["## Data", "", f"Task: {tasks.get(d.task).card}. Training: {source}{split}. Evaluation splits: "
            f"{', '.join(cfg.eval.splits)} ({d.n_eval:,} records each where synthetic).", ""]


def _evaluation(cfg, run_dir: Path) -> list[str]:
    model = paper.paper_model(cfg.model.name)
    # A model the paper trained: its rows for the same model; any other: its Reason-RFT rows as a reference point.
    matches = [(model, "zero_shot"), (model, report.method_of(cfg))] if model else \
        [("Qwen2-VL-2B", "rft"), ("Qwen2-VL-7B", "rft")]
    table = paper.table(_rows(cfg, run_dir), matches)
    e = cfg.eval
    decoding = "greedy" if e.temperature <= 0 else f"temperature {e.temperature:g}, top-p {e.top_p:g}, top-k {e.top_k}"
    return ["## Evaluation", "", "Accuracy (%, pass@1) in the Reason-RFT paper's layout; `paper:` rows are the "
            "paper's reported figures for comparison (a different model where the names differ). Decoding: "
            f"{decoding}, at most {e.max_new_tokens} new tokens (this folder's generation config).", "", table, ""]


def _rows(cfg, run_dir: Path) -> list[tuple[str, dict]]:
    rows = []
    for label in ("base", "sft", "grpo"):
        values = {r["benchmark"]: r["accuracy"] for split in cfg.eval.splits
                  if (r := evaluate.load(run_dir, label, split)) is not None}
        if values:
            rows.append((f"ours: {cfg.model.name} {label}", values))
    return rows


def _curves(run_dir: Path) -> list[str]:
    titles = {"rewards": "GRPO rewards", "length": "GRPO completion length", "sft_loss": "SFT loss"}
    plots = {runs.plot_path(run_dir, name): title for name, title in titles.items()}
    shown = [f"![{title}]({path.name})" for path, title in plots.items() if path.is_file()]
    return (["## Training curves", "", *shown, ""]) if shown else []


def _usage(fmt: str, base: str) -> list[str]:
    if fmt == "gguf":
        return ["## Use", "", "```bash", "llama-mtmd-cli -m model.gguf --mmproj mmproj-model.gguf --image scene.png \\",
                "  -p 'How many objects are there?'", "```", ""]
    load = "AutoModelForImageTextToText.from_pretrained(\"PATH\")"
    if fmt == "lora":
        load = (f"PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(\"{base}\"), \"PATH\")"
                ".merge_and_unload()")
    return ["## Use", "", "```python", "from PIL import Image",
            "from transformers import AutoModelForImageTextToText, AutoProcessor"]  \
        + (["from peft import PeftModel"] if fmt == "lora" else []) + [
            f"model = {load}", "processor = AutoProcessor.from_pretrained(\"PATH\")",
            "messages = [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", "
            "\"text\": \"How many objects are there?\"}]}]",
            "text = processor.apply_chat_template(messages, add_generation_prompt=True)",
            "inputs = processor(text=[text], images=[Image.open(\"scene.png\")], return_tensors=\"pt\")",
            "out = model.generate(**inputs)",
            "print(processor.decode(out[0, inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))",
            "```", "", "Or behind an OpenAI-compatible API: `rrft-studio serve PATH` (see rrft-studio's README).", ""]
