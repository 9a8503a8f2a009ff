"""`rrft-studio export`: the merged folder and the LoRA adapter reproduce the run's final checkpoint (greedy text and
logits), the model card renders the eval table, GGUF goes through llama.cpp's converter where there is one, and
a failed export leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import MICRO, ROOT, cli
from rrft_studio.config import ConfigError
from rrft_studio.serve import export

FAKE_CONVERTER = """import os, sys
args = sys.argv[1:]
if "FAIL_CONVERTER" in os.environ:
    sys.exit("error: unsupported model architecture")
out = args[args.index("--outfile") + 1]
open(out, "w").write(" ".join(args))
"""


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, cache_dir):
    """Two LoRA stages (the GRPO adapter sits over the merged SFT model), evaluated."""
    runs_dir = tmp_path_factory.mktemp("lora_runs")
    done = cli("train", str(MICRO), f"run.runs_dir={runs_dir}", f"run.cache_dir={cache_dir}", "model.finetune=lora",
               "model.lora_r=4", "model.lora_layers=[vision,language,attention,mlp]", "sft.freeze_vision=true",
               "eval.max_samples=4")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = runs_dir.iterdir()
    return run_dir


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Image.Image:
    return Image.new("RGB", (112, 112), (40, 160, 90))


def _greedy(model, processor, image) -> tuple[str, object]:
    """Greedy text and the first step's logits for one image question."""
    import torch

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many objects are there?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=12, output_logits=True,
                             return_dict_in_generate=True)
    new = out.sequences[0, inputs["input_ids"].shape[1]:]
    return processor.decode(new, skip_special_tokens=True), out.logits[0][0].float()


def _load(path, dtype="auto"):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).eval(), AutoProcessor.from_pretrained(path)


def test_merged_folder_reloads_and_answers_as_the_final_checkpoint(lora_run, tmp_path, scene):
    import torch

    out = tmp_path / "merged"
    done = cli("export", str(lora_run), "--format", "merged", "--out", str(out))
    assert done.returncode == 0 and f"wrote {out}" in done.stdout, done.stderr[-2000:]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "processor_config.json",
                 "generation_config.json", "README.md", "training_config.yaml", "rewards.png", "sft_loss.png"):
        assert (out / name).is_file(), name
    assert not any(k.startswith(".") for k in os.listdir(tmp_path))  # no temporary folder left beside it
    text, logits = _greedy(*_load(out), scene)
    ref_text, ref_logits = _greedy(*_load(lora_run / "final" / "grpo"), scene)
    assert text == ref_text and torch.equal(logits, ref_logits)
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["temperature"] == 0.1 and generation["top_p"] == 0.9  # the run's eval decoding
    assert len(set(generation["eos_token_id"])) == len(generation["eos_token_id"])


def test_bf16_export_matches_the_checkpoint_cast_to_bf16(lora_run, tmp_path, scene):
    import torch

    out = export.export(str(lora_run), "merged", str(tmp_path / "bf16"), dtype="bf16")
    model, processor = _load(out)
    assert model.dtype == torch.bfloat16
    text, logits = _greedy(model, processor, scene)
    ref_text, ref_logits = _greedy(*_load(lora_run / "final" / "grpo", torch.bfloat16), scene)
    assert text == ref_text and torch.equal(logits, ref_logits)


def test_lora_adapter_over_the_base_reproduces_both_stages(lora_run, tmp_path, scene):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    out = export.export(str(lora_run), "lora", str(tmp_path / "lora"))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 8  # two rank-4 stages, scale 1
    assert any(".visual." in m for m in config["target_modules"])  # GRPO adapted the vision tower, SFT did not
    base = AutoModelForImageTextToText.from_pretrained(config["base_model_name_or_path"])
    adapted = PeftModel.from_pretrained(base, str(out)).eval()
    from transformers import AutoProcessor

    text, logits = _greedy(adapted, AutoProcessor.from_pretrained(out), scene)
    ref_text, ref_logits = _greedy(*_load(lora_run / "final" / "grpo"), scene)
    assert text == ref_text and torch.allclose(logits, ref_logits, atol=1e-4)
    merged, final = adapted.merge_and_unload().state_dict(), _load(lora_run / "final" / "grpo")[0].state_dict()
    assert max((merged[k] - final[k]).abs().max().item() for k in final) < 1e-5


def test_model_card_renders_the_eval_table_curves_and_licence(lora_run, tmp_path):
    out = export.export(str(lora_run), "merged", str(tmp_path / "card"))
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "pipeline_tag: image-text-to-text" in card
    for text in ("**Method:** `rft`", "**Stages:** sft, grpo", "LoRA r4", "**Preset:** `micro`",
                 "| model / method | CLEVR-Math |", "| ours: tiny grpo |", "| paper: Qwen2-VL-2B Reason-RFT | 96.80 |",
                 "![GRPO rewards](rewards.png)", "## Licence", "40 synthetic records"):
        assert text in card, text
    table = [line for line in card.splitlines() if line.startswith("| ours: tiny")]
    assert len(table) == 3 and all(line.count("|") == 3 for line in table)


def test_gguf_goes_through_llama_cpp_converter_and_says_where_there_is_none(lora_run, tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(ConfigError, match="needs llama.cpp's converter"):
        export.export(str(lora_run), "gguf", str(tmp_path / "none"))
    llama = tmp_path / "llama.cpp"
    llama.mkdir()
    (llama / "convert_hf_to_gguf.py").write_text(FAKE_CONVERTER)
    monkeypatch.setenv("LLAMA_CPP_DIR", str(llama))
    out = export.export(str(lora_run), "gguf", str(tmp_path / "gguf"), dtype="fp16")
    assert sorted(p.name for p in out.glob("*.gguf")) == ["mmproj-model-f16.gguf", "model-f16.gguf"]
    assert "--mmproj" in (out / "mmproj-model-f16.gguf").read_text()
    assert "--outtype f16" in (out / "model-f16.gguf").read_text() and not (out / ".merged").exists()
    monkeypatch.setenv("FAIL_CONVERTER", "1")
    with pytest.raises(ConfigError, match="converter failed on model.gguf: error: unsupported model architecture"):
        export.export(str(lora_run), "gguf", str(tmp_path / "failed"))
    assert sorted(os.listdir(tmp_path)) == ["gguf", "llama.cpp"]  # the half-written folder is gone


def test_user_errors_are_one_line_and_write_nothing(lora_run, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    done = cli("export", str(lora_run), "--out", str(tmp_path / "taken"))
    assert done.returncode == 2 and "exists and is not empty" in done.stderr and done.stderr.count("\n") == 1
    assert os.listdir(tmp_path / "taken") == ["x"]
    offline = subprocess.run([sys.executable, "-m", "rrft_studio.cli", "export", str(lora_run), "--out",
                              str(tmp_path / "hub"), "--push-to-hub", "someone/model"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2 and "HF_HUB_OFFLINE is set" in offline.stderr and offline.stderr.count("\n") == 1
    assert not (tmp_path / "hub").exists()
    for args, words in (((str(lora_run), "onnx", str(tmp_path / "a")), "--format onnx"),
                        ((str(lora_run), "merged", str(tmp_path / "a"), "int8"), "--dtype int8"),
                        ((str(tmp_path), "merged", str(tmp_path / "a")), "neither a run directory"),
                        ((str(lora_run / "final" / "sft" / "lora"), "merged", str(tmp_path / "a")), "LoRA adapters only")):
        with pytest.raises(ConfigError, match=words):
            export.export(*args)
    full = export.resolve(str(lora_run))
    full.cfg.model.finetune = "full"
    with pytest.raises(ConfigError, match="fine-tuned all weights"):
        export.check_lora(full)
