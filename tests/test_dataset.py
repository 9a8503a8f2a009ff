"""The real dataset's layout: the loader, data.root, per-file image roots, `data check`, and a user's own data
(JSON, JSONL, parquet, saved datasets folders; the custom task end to end on the micro model)."""

import json
import shutil

import pytest

import layout
from conftest import MICRO, ROOT, cli
from rrft_studio import config, data, settings
from rrft_studio.tasks import counting, schema, spatial, structure


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return layout.build(tmp_path_factory.mktemp("real"))


def _cfg(task: str, *overrides: str) -> config.Config:
    return settings.load(None, [f"data.task={task}", *overrides])


# ---------------------------------------------------------------- the loader and the layout rule

def test_layout_rule_finds_train_and_test_images(dataset):
    train = schema.load(dataset / "train_jsons" / spatial.DATASET["train"])
    test = schema.load(dataset / "test_jsons" / spatial.DATASET["left"])
    assert all(p.startswith(str(dataset / "images" / "train_images" / "spatial")) for r in train for p in r["image"])
    assert all(p.startswith(str(dataset / "images" / "test_images" / "spatial")) for r in test for p in r["image"])
    assert all(len(r["image"]) == 2 for r in train + test)
    assert all(r["cot"] for r in train) and not any(r["cot"] for r in test)
    # the released CoT form (a whole tagged text) gives the SFT target without nested tags
    target = schema.target(train[0])
    assert target.count("<think>") == 1 and target.count("<answer>") == 1


def test_geomath_test_records_keep_problem_no_prompt(dataset):
    rows = schema.load(dataset / "test_jsons" / structure.DATASET["id"])
    assert all(r["problem_no_prompt"] == r["problem"] for r in rows)


def test_rl_format_file_with_tagged_solution(dataset):
    rows = schema.load(dataset / "train_jsons" / "A3-Visual-Counting-train-rl.json")
    plain = schema.load(dataset / "train_jsons" / counting.DATASET["train"])
    assert [r["answer"] for r in rows] == [r["answer"] for r in plain]
    assert all(r["cot"] == "" for r in rows)


@pytest.mark.parametrize("task", ["counting", "structure", "spatial"])
def test_data_root_is_all_it_takes(dataset, task):
    module = {"counting": counting, "structure": structure, "spatial": spatial}[task]
    cfg = _cfg(task, f"data.root={dataset}", f"eval.splits=[{','.join(module.BENCHMARKS)}]")
    assert data.source(cfg, "train")[0] == dataset / "train_jsons" / module.DATASET["train"]
    assert len(data.records(cfg, "train")) == 4
    for split in module.BENCHMARKS:
        assert data.source(cfg, split)[0] == dataset / "test_jsons" / module.DATASET[split]
        rows = data.records(cfg, split)
        assert len(rows) == 4 and "test_images" in data.images_of(rows[0])[0]
    from rrft_studio.serve import card

    assert f"records from `{module.DATASET['train']}`" in "\n".join(card._data(cfg))  # the model card names it


def test_files_given_one_by_one_with_their_own_image_roots(dataset, tmp_path):
    # the JSONs copied elsewhere: the layout rule no longer applies, so each file's root is given
    train = shutil.copy(dataset / "train_jsons" / counting.DATASET["train"], tmp_path / "train.json")
    test = shutil.copy(dataset / "test_jsons" / counting.DATASET["ood"], tmp_path / "ood.json")
    images = dataset / "images"
    cfg = _cfg("counting", f"data.train_file={train}", f"data.image_root={images / 'train_images'}",
               f"data.eval_files=[{test},{test}]", f"data.eval_image_root={images / 'test_images'}")
    assert data.records(cfg, "train")[0]["image"].startswith(str(images / "train_images"))
    assert data.records(cfg, "ood")[0]["image"].startswith(str(images / "test_images"))
    # without the roots: one line naming the file, the record, the path tried and the fix
    with pytest.raises(config.ConfigError) as err:
        data.records(_cfg("counting", f"data.train_file={train}"), "train")
    message = str(err.value)
    assert "\n" not in message and "train.json: record 0" in message and "image not found" in message
    assert str(tmp_path / "counting" / "train") in message and "data.image_root" in message


def test_missing_image_in_the_layout_names_the_fix(dataset, tmp_path):
    copy = shutil.copytree(dataset, tmp_path / "copy")
    victim = json.loads((copy / "test_jsons" / counting.DATASET["id"]).read_text())[2]["image"]
    (copy / "images" / "test_images" / victim).unlink()
    with pytest.raises(config.ConfigError) as err:
        data.records(_cfg("counting", f"data.root={copy}"), "id")
    message = str(err.value)
    assert "record 2" in message and victim in message and "images/test_images" in message and "unzip" in message


def test_data_root_missing_file_is_refused_before_anything_is_written(dataset, tmp_path):
    empty = tmp_path / "empty"
    (empty / "train_jsons").mkdir(parents=True)
    done = cli("train", str(MICRO), f"data.root={empty}", f"run.runs_dir={tmp_path / 'runs'}")
    assert done.returncode == 2 and "A3-Visual-Counting-train-35k-cot.json" in done.stderr
    assert "train_jsons/ and test_jsons/ under data.root" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- other formats (a user's own data)

def _own_records(dataset) -> list[dict]:
    rows = json.loads((dataset / "train_jsons" / counting.DATASET["train"]).read_text())
    images = dataset / "images" / "train_images"
    return [{"question": r["problem"], "images": [str(images / r["image"])], "solution": r["answer"]} for r in rows]


def test_jsonl_parquet_and_saved_datasets_read_alike(dataset, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    rows = _own_records(dataset)
    jsonl = tmp_path / "own.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    parquet = tmp_path / "own.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    saved = tmp_path / "own"  # ids default to the file name and the record number
    Dataset.from_list(rows).save_to_disk(str(saved))
    loaded = [schema.load(p, aliases=True) for p in (jsonl, parquet, saved)]
    assert loaded[0] == loaded[1] == loaded[2]
    assert [r["answer"] for r in loaded[0]] == [r["solution"] for r in rows]
    assert loaded[0][0]["image"] == rows[0]["images"]


def test_embedded_image_bytes_are_written_once(dataset, tmp_path):
    from datasets import Dataset, Image, List

    rows = _own_records(dataset)
    saved = tmp_path / "embedded"
    ds = Dataset.from_list([{**r, "images": r["images"]} for r in rows]).cast_column("images", List(Image()))
    ds = ds.map(lambda r: r)  # keep the bytes inside the saved files, not the source paths
    ds.save_to_disk(str(saved))
    extract = tmp_path / "extracted"
    loaded = schema.load(saved, aliases=True, extract_dir=extract)
    assert all(path.startswith(str(extract)) for r in loaded for path in r["image"])
    assert len(list(extract.iterdir())) == len({r["images"][0] for r in rows})


def test_bad_jsonl_line_is_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"problem": "q"}\n{not json\n')
    with pytest.raises(schema.DataError) as err:
        schema.read_records(path)
    assert "line 2" in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- data check

def test_data_check_on_the_whole_dataset(dataset):
    done = cli("data", "check", str(dataset), "--no-tokens")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for module in (counting, structure, spatial):
        for file in module.DATASET.values():
            assert f"{file} (" in out
    assert "GeoQA-train-1k-cot.json (custom, train): 2 records" in out
    assert "4 records" in out and "0 missing, 0 unreadable" in out
    assert "answers: function calls 4" in out and "image sizes: smallest 56x56" in out


def test_data_check_knows_what_data_generate_wrote(tmp_path):
    """A file `data generate` wrote is checked as its task's (its ids say which; it was "custom"), and so is its
    folder (one <split>.json beside the images; it was refused as not a saved datasets folder)."""
    from rrft_studio import datacheck

    out = tmp_path / "mine"
    done = cli("data", "generate", "counting", "--n", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert datacheck.generated(out / "train.json") == ("counting", "train")
    assert datacheck.files(out, None) == [(out / "train.json", "counting", "train")]
    assert datacheck.files(out / "train.json", "custom") == [(out / "train.json", "custom", "train")]  # as asked
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps([{"id": "q1", "image": "a.png", "problem": "p", "answer": "1"}]))
    assert datacheck.generated(mine) is None and datacheck.files(mine, None) == [(mine, "custom", "train")]
    done = cli("data", "check", str(out), "--no-tokens")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train.json (counting, train): 3 records" in done.stdout


def test_data_check_counts_tokens_with_the_model_tokenizer(dataset, cache_dir):
    done = cli("data", "check", str(dataset / "train_jsons" / spatial.DATASET["train"]), "--task", "spatial",
               str(MICRO), f"run.cache_dir={cache_dir}", "sft.max_length=600")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "prompt tokens: median" in done.stdout and "target tokens: median" in done.stdout
    assert "4 over sft.max_length=600" in done.stdout and "tokens counted with: tiny" in done.stdout
    assert "error: 4 over sft.max_length=600: " in done.stderr  # the spatial rules alone are longer than 600 tokens
    assert "spatial-train-000000 (" in done.stderr and "whole sample tokens" in done.stderr


def test_data_check_on_a_broken_copy(dataset, tmp_path):
    copy = shutil.copytree(dataset, tmp_path / "broken")
    test = copy / "test_jsons" / structure.DATASET["id"]
    records = json.loads(test.read_text())
    (copy / "images" / "test_images" / records[0]["image"]).unlink()
    (copy / "images" / "test_images" / records[1]["image"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    records[3]["answer"] = ""
    test.write_text(json.dumps(records))
    done = cli("data", "check", str(copy), "--task", "structure", "--no-tokens")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, done.stderr  # one line per kind of problem
    assert any("1 missing image" in e and records[0]["image"] in e and "unzip" in e for e in errors)
    assert any("1 unreadable image" in e and records[1]["image"] in e for e in errors)
    assert any("1 bad record" in e and "answer is empty" in e for e in errors)
    assert "3 records" not in done.stdout and f"{structure.DATASET['id']} (structure, id): 4 records" in done.stdout


# ---------------------------------------------------------------- the custom task end to end

def test_custom_example_preset_trains_and_evaluates(dataset, tmp_path, cache_dir):
    rows = _own_records(dataset)
    own = tmp_path / "own.jsonl"
    own.write_text("\n".join(json.dumps(r) for r in rows * 3) + "\n")
    test = tmp_path / "own_test.json"
    test.write_text(json.dumps(rows))
    runs_dir = tmp_path / "runs"
    done = cli("train", str(ROOT / "presets" / "custom_example.yaml"), f"data.train_file={own}",
               f"data.eval_files=[{test}]", f"run.runs_dir={runs_dir}", f"run.cache_dir={cache_dir}",
               "model.tiny.hidden_size=64", "model.tiny.num_layers=2", "model.tiny.num_heads=2",
               "model.tiny.num_kv_heads=1", "model.tiny.intermediate_size=128", "model.tiny.vision_depth=1",
               "model.tiny.vision_embed_dim=32", "model.tiny.vision_heads=2", "model.tiny.vocab_size=300",
               "grpo.max_steps=2", "grpo.max_completion_length=8", "eval.max_new_tokens=8")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = runs_dir.iterdir()
    result = json.loads((run_dir / "eval" / "grpo" / "id.json").read_text())
    assert result["task"] == "custom" and result["n"] == 4 and result["scorers"] == {"paper": "math_verify", "strict": "exact"}
    assert set(result["predictions"][0]["scores"]) == {"paper", "strict"}
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and "accuracy_reward" in json.dumps(samples[0])


def test_custom_without_files_is_one_line(tmp_path):
    done = cli("train", str(ROOT / "presets" / "custom_example.yaml"), f"run.runs_dir={tmp_path / 'runs'}")
    assert done.returncode == 2 and "data.task=custom has no synthetic data" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, needle", [
    ("data.custom.prompt=Answer: {question}", "data.custom.prompt"),
    ("data.custom.prompt=no placeholder", "must contain {problem}"),
    ("data.custom.checker=vibes", "data.custom.checker='vibes'"),
])
def test_custom_options_are_checked(override, needle, tmp_path):
    with pytest.raises(config.ConfigError) as err:
        settings.load(ROOT / "presets" / "custom_example.yaml", [override, f"data.train_file={MICRO}",
                                                                f"data.eval_files=[{MICRO}]"])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_preset_trains_on_the_real_layout_with_data_root_alone(dataset, tmp_path, cache_dir):
    """`rrft-studio train presets/spatial_7b.yaml data.root=DIR`: its tiny CPU command plus data.root."""
    from test_families import header_command

    args = header_command(ROOT / "presets" / "spatial_7b.yaml")
    done = cli(*args, f"data.root={dataset}", f"run.runs_dir={tmp_path}", f"run.cache_dir={cache_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    for split, benchmark in spatial.BENCHMARKS.items():
        result = json.loads((run_dir / "eval" / "grpo" / f"{split}.json").read_text())
        assert result["n"] == 4 and result["benchmark"] == benchmark and result["scorer"] == "paper"
        assert {p["id"] for p in result["predictions"]} == {f"spatial-{split}-{i:06d}" for i in range(4)}
    sample = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])["completions"][0]
    assert all("images/train_images/spatial" in p for p in sample["image"])
    assert "Our rows scored by: paper" in (run_dir / "eval" / "table.md").read_text()
