"""Tests for rrft_studio.tasks.counting: generator determinism, schema, CoT/answer consistency, loader."""

import json
import random
import re
from collections import Counter

import pytest
from PIL import Image

from rrft_studio.tasks import counting, schema
from rrft_studio.tasks.counting import SceneSpec


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_is_byte_identical(tmp_path):
    a = counting.generate(tmp_path / "a", n=8, seed=7)
    b = counting.generate(tmp_path / "b", n=8, seed=7)
    assert _files(a.parent) == _files(b.parent)
    c = counting.generate(tmp_path / "c", n=8, seed=8)
    assert c.read_bytes() != a.read_bytes()


def test_generate_schema_and_images(tmp_path):
    path = counting.generate(tmp_path, n=10, seed=3, spec=SceneSpec(image_size=96), split="val")
    assert path == tmp_path / "val.json"
    records = json.loads(path.read_text())
    assert len(records) == 10
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file behind
    for i, rec in enumerate(records):
        assert set(rec) == {"id", "image", "problem", "answer", "cot"}
        assert rec["id"] == f"counting-val-{i:06d}"
        assert rec["image"] == f"images/val/{i:06d}.png"
        assert all(isinstance(v, str) for v in rec.values())
        with Image.open(tmp_path / rec["image"]) as im:
            assert im.size == (96, 96) and im.mode == "RGB"
        assert rec["answer"].isdigit()


def _check_against_scene(scene, problem, answer, cot):
    n = len(scene)
    assert int(re.findall(r"\d+", cot)[-1]) == int(answer)  # the CoT ends on the answer
    if problem == "How many objects are there?":
        assert int(answer) == n
        for shape, k in Counter(o.shape for o in scene).items():
            assert f"{k} {shape}" in cot
        return
    added = re.fullmatch(r"Add (\d) (\w+) (cube|sphere|cylinder)s?\. How many objects exist\?", problem)
    if added:
        k = int(added.group(1))
        assert int(answer) == n + k and f"{n} + {k} = {n + k}." in cot
        return
    m = re.fullmatch(r"Subtract all (\w+) (cube|sphere|cylinder)s\. How many objects are left\?", problem)
    assert m, problem
    value, shape = m.groups()
    k = sum(1 for o in scene if o.shape == shape and value in (o.color, o.size, o.material))
    assert int(answer) == n - k
    assert f"{n} - {k} = {n - k}." in cot


def test_answers_match_cot_and_scene():
    spec = SceneSpec()
    rng = random.Random(11)
    kinds = Counter()
    for _ in range(400):
        scene = counting.sample_scene(rng, spec)
        problem, answer, cot = counting.make_question(rng, scene, spec)
        _check_against_scene(scene, problem, answer, cot)
        words = problem.split(" ")
        kinds[words[0] if words[0] in ("How", "Add") else words[2]] += 1
    # every question family shows up: count, addition, colour, size and material subtractions
    assert kinds["How"] and kinds["small"] + kinds["large"] and kinds["metal"] + kinds["rubber"]
    assert 0.12 < kinds["Add"] / 400 < 0.28  # add_fraction = 0.2
    assert sum(kinds[c] for c in spec.colors) > 0


def test_ood_split_swaps_the_objects_for_vehicles(tmp_path):
    spec = counting.split_spec(SceneSpec(), "ood")
    assert spec.shapes == counting.VEHICLES and counting.split_spec(SceneSpec(), "id") == SceneSpec()
    records = json.loads(counting.generate(tmp_path, n=40, seed=5, spec=spec, split="ood").read_text())
    text = " ".join(r["problem"] + " " + r["cot"] for r in records)
    assert not re.search(r"cube|sphere|cylinder", text)
    assert re.search(r"\bbuses\b", text) and re.search(r"\bcars?\b", text)
    id_image = Image.open(counting.generate(tmp_path / "id", n=1, seed=5).parent / "images/train/000000.png")
    assert id_image.size == Image.open(tmp_path / records[0]["image"]).size


def test_scene_objects_are_inside_and_separated():
    for size in (112, 320):
        spec = SceneSpec(image_size=size, min_objects=6, max_objects=6)
        rng = random.Random(size)
        for _ in range(50):
            scene = counting.sample_scene(rng, spec)
            boxes = [(o.x, o.y, counting._radius(o.size, size)) for o in scene]
            for x, y, r in boxes:
                assert r <= x <= size - r and r <= y <= size - r
            for i, (x1, y1, r1) in enumerate(boxes):
                for x2, y2, r2 in boxes[i + 1:]:
                    assert max(abs(x1 - x2), abs(y1 - y2)) >= r1 + r2


def test_answer_distribution_is_not_degenerate():
    rng = random.Random(0)
    answers = Counter()
    for _ in range(2000):
        scene = counting.sample_scene(rng)
        answers[counting.make_question(rng, scene)[1]] += 1
    assert max(answers.values()) / 2000 < 0.35


def test_load_round_trip(tmp_path):
    path = counting.generate(tmp_path, n=5, seed=1)
    raw = json.loads(path.read_text())
    loaded = schema.load(path)
    assert [r["id"] for r in loaded] == [r["id"] for r in raw]
    for src, rec in zip(raw, loaded):
        assert rec["image"] == str(tmp_path / src["image"])
        assert (rec["problem"], rec["answer"], rec["cot"]) == (src["problem"], src["answer"], src["cot"])
        assert schema.target(rec) == f"<think>\n{src['cot']}\n</think>\n<answer>\n{src['answer']}\n</answer>"


def _write(tmp_path, records, name="data.json"):
    (tmp_path / "a.png").write_bytes(b"not read")
    (tmp_path / "b.png").write_bytes(b"not read")
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def test_load_solution_tag_list_images_and_image_root(tmp_path):
    path = _write(tmp_path, [
        {"id": "x1", "image": "a.png", "problem": "How many?", "solution": "<answer> 3 </answer>", "extra": 5},
        {"id": "x2", "image": ["a.png", str(tmp_path / "b.png")], "problem": "Which?", "answer": 4},
    ])
    first, second = schema.load(path)
    assert first["answer"] == "3" and first["cot"] == "" and first["extra"] == 5
    assert first["solution"] == "<answer> 3 </answer>"  # other keys are kept as they were
    assert first["image"] == str(tmp_path / "a.png")
    assert second["answer"] == "4"
    assert second["image"] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    # image_root overrides the JSON's folder
    sub = tmp_path / "sub"
    sub.mkdir()
    moved = sub / "data.json"
    moved.write_text(path.read_text())
    assert schema.load(moved, image_root=tmp_path)[0]["image"] == str(tmp_path / "a.png")


@pytest.mark.parametrize("content, needle", [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    ('{"a": 1}', "not a list"),
    ([{"image": "a.png", "answer": "1"}], "missing 'problem'"),
    ([{"problem": "q", "answer": "1"}], "missing 'image'"),
    ([{"problem": "q", "image": "a.png"}], "missing 'answer'"),
    ([{"id": "r9", "problem": "q", "image": "nope.png", "answer": "1"}], "image not found"),
    ([{"problem": "q", "image": ["a.png", "nope.png"], "answer": "1"}], "image not found"),
    (["just a string"], "not an object"),
])
def test_load_errors_are_one_line(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    if isinstance(content, list):
        path = _write(tmp_path, content, name="bad.json")
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as err:
        schema.load(path)
    message = str(err.value)
    assert "\n" not in message and needle in message and "bad.json" in message
    if isinstance(content, list) and isinstance(content[0], dict):
        assert "record 0" in message
    if needle == "image not found" and "id" in content[0]:
        assert "'r9'" in message


def test_prompt_and_target_styles():
    q = "How many objects are there?"
    assert counting.prompt(q) == f"{q} {counting.INSTRUCTION}"
    # the released zero-shot prompt puts its instruction before the question
    assert counting.prompt(q, "bare") == f"Please answer in Arabic numerals. For example, if the answer is 3, please respond with 3. {q}"
    assert counting.prompt(q, "ans") == q
    rec = {"answer": "4", "cot": "There are 6 objects. The red cubes: 2. 6 - 2 = 4."}
    assert schema.target(rec, "ans") == "4"
    assert schema.target(rec) == f"<think>\n{rec['cot']}\n</think>\n<answer>\n4\n</answer>"
    with pytest.raises(ValueError):
        counting.prompt(q, "fancy")
    with pytest.raises(ValueError):
        schema.target(rec, "fancy")
    assert counting.NAME == "counting"


def test_grid_layout_puts_one_object_per_visual_token():
    spec = counting.SceneSpec(layout="grid", max_objects=6)
    for seed in range(50):
        scene = counting.sample_scene(random.Random(seed), spec)
        cells = set()
        for obj in scene:
            r = counting._radius(obj.size, spec.image_size)
            cell = (int(obj.x // spec.grid_cell), int(obj.y // spec.grid_cell))
            # the whole object lies inside its cell
            assert int((obj.x - r) // spec.grid_cell) == cell[0] == int((obj.x + r - 1e-6) // spec.grid_cell)
            assert int((obj.y - r) // spec.grid_cell) == cell[1] == int((obj.y + r - 1e-6) // spec.grid_cell)
            cells.add(cell)
        assert len(cells) == len(scene)


def test_grid_layout_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="grid"):
        counting.sample_scene(random.Random(0), counting.SceneSpec(layout="grid", image_size=224))


def test_target_unwraps_a_cot_that_holds_its_own_think_block():
    record = {"id": "x", "answer": "3", "cot": "<think>\nThere are 3 objects.\n</think>\n<answer>3</answer>"}
    assert schema.target(record) == "<think>\nThere are 3 objects.\n</think>\n<answer>\n3\n</answer>"
