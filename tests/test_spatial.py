"""Tests for rrft_studio.tasks.spatial: generator, programs, images, prompts and the partial-credit checker."""

import json
import math
import random
import time

import pytest
from PIL import Image, ImageChops

from rrft_studio import tasks
from rrft_studio.tasks import schema, spatial
from rrft_studio.tasks.spatial import FUNCTIONS, SceneSpec

GT = "change_color(2, red), change_position(0, front_left)"


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_is_byte_identical(tmp_path):
    a = spatial.generate(tmp_path / "a", n=6, seed=7)
    b = spatial.generate(tmp_path / "b", n=6, seed=7)
    assert _files(a.parent) == _files(b.parent)
    c = spatial.generate(tmp_path / "c", n=6, seed=8)
    assert c.read_bytes() != a.read_bytes()


def test_records_have_two_images_and_match_their_program(tmp_path):
    spec = SceneSpec(image_size=96, view="left")
    path = spatial.generate(tmp_path, n=8, seed=3, spec=spec, split="val")
    assert path == tmp_path / "val.json" and not list(tmp_path.glob(".*.tmp"))
    records = json.loads(path.read_text())
    rng = random.Random(3)  # replay the generator's stream: the record must be its scene and program
    for i, rec in enumerate(records):
        assert set(rec) == {"id", "image", "problem", "answer", "cot"} and rec["id"] == f"spatial-val-{i:06d}"
        assert rec["image"] == [f"images/val/{i:06d}_initial.png", f"images/val/{i:06d}_final.png"]
        scene, calls = spatial.sample_task(rng, spec)
        assert rec["problem"] == spatial.make_problem(scene)
        assert spatial.parse_calls(rec["answer"]) == calls  # every answer parses back to the program
        assert rec["cot"].endswith(f"The transformation is {rec['answer']}.")
        final = spatial.apply_program(scene, spatial.parse_calls(rec["answer"]))
        for rel, want in zip(rec["image"], (spatial.render(scene, 96), spatial.render(final, 96, "left"))):
            with Image.open(tmp_path / rel) as im:
                assert im.size == (96, 96) and im.mode == "RGB"
                assert ImageChops.difference(im, want).getbbox() is None


def test_programs_are_real_changes_and_final_scenes_valid():
    rng = random.Random(11)
    used = set()
    for _ in range(300):
        scene, calls = spatial.sample_task(rng)
        final = spatial.apply_program(scene, calls)
        assert 3 <= len(scene) <= 6 and 1 <= len(calls) <= 4
        assert len({c[:2] for c in calls}) == len(calls)  # each (function, object) at most once
        assert spatial._valid(scene) and spatial._valid(final)
        for func, obj, value in calls:
            assert value in FUNCTIONS[func]
            before, after = scene[int(obj)], final[int(obj)]
            if func == "change_position":
                dx, dz = spatial.MOVES[value]
                assert math.isclose(after.x - before.x, dx * spatial.STEP, abs_tol=1e-6)
                assert math.isclose(after.z - before.z, dz * spatial.STEP, abs_tol=1e-6)
            else:
                attribute = spatial.ATTRIBUTE[func]
                assert getattr(before, attribute) != value == getattr(after, attribute)
            used.add(func)
        touched = {int(c[1]) for c in calls}
        assert all(a == b for k, (a, b) in enumerate(zip(scene, final)) if k not in touched)
        for call in calls:
            assert spatial.format_calls([call]) in spatial.make_cot(scene, calls)
    assert used == set(FUNCTIONS)


def test_objects_stay_inside_and_apart():
    rng = random.Random(5)
    for _ in range(100):
        scene = spatial.sample_scene(rng, SceneSpec(min_objects=6, max_objects=6))
        assert [o.object_id for o in scene] == list(range(6))
        for i, a in enumerate(scene):
            assert math.hypot(a.x, a.z) <= spatial.HALF - spatial.RADIUS[a.size]
            for b in scene[i + 1:]:
                assert math.hypot(a.x - b.x, a.z - b.z) >= spatial.RADIUS[a.size] + spatial.RADIUS[b.size]
                assert a.attributes() != b.attributes()


def test_left_and_right_views_change_only_the_final_image(tmp_path):
    out = {v: spatial.generate(tmp_path / v, n=3, seed=2, spec=SceneSpec(image_size=64, view=v))
           for v in ("center", "left", "right")}
    recs = {v: json.loads(p.read_text()) for v, p in out.items()}
    for i in range(3):
        images = {v: [(tmp_path / v / rel).read_bytes() for rel in recs[v][i]["image"]] for v in out}
        assert images["left"][0] == images["center"][0] == images["right"][0]
        assert len({images[v][1] for v in out}) == 3
        assert recs["left"][i]["answer"] == recs["center"][i]["answer"] == recs["right"][i]["answer"]
    with pytest.raises(ValueError):
        spatial.generate(tmp_path / "x", n=1, seed=0, spec=SceneSpec(view="top"))


def test_apply_call_rejects_unknown_calls():
    scene = spatial.sample_scene(random.Random(0))
    for call in [("change_colour", "0", "red"), ("change_color", "0", "pink"), ("change_color", "99", "red")]:
        with pytest.raises(ValueError):
            spatial.apply_call(scene, call)


@pytest.mark.parametrize("text, calls", [
    ("change_color(2, red)", [("change_color", "2", "red")]),
    ("change_color( 2 ,'red' ); change_size(1,\"small\")",
     [("change_color", "2", "red"), ("change_size", "1", "small")]),
    ("<think>change_size(1, small)</think>\n<answer>\n1. change_shape(0, cube)\n2. change_shape(0, cube)\n</answer>",
     [("change_shape", "0", "cube")] * 2),
    ("change_color(2 red), change_color(, red), nothing", []),
])
def test_parse_calls(text, calls):
    assert spatial.parse_calls(text) == calls


# (prediction, exact as trained, partial credit, partial credit parsed as the released evaluation parses),
# all against GT; hand-computed. The released parser takes no spaces inside the parentheses before the comma
# and no double quotes, and reads a multi-line answer block (no DOTALL) from the whole completion.
SCORES = [
    (GT, 1.0, 1.0, 1.0),
    ("change_position(0, front_left), change_color(2, red)", 1.0, 1.0, 1.0),                # order ignored
    ("change_color(2, 'red') and change_position(0, \"front_left\")", 1.0, 1.0, 0.5),       # quotes
    ("change_color( 2 ,red ) ;change_position (0,front_left)", 1.0, 1.0, 0.0),              # spaces
    ("<think>change_size(1, small)</think>\n<answer>\nchange_color(2, red)\n"
     "change_position(0, front_left)\n</answer>", 1.0, 1.0, 2 / 3),                      # multi-line, tags
    ("change_color(2, red)", 0.5, 0.5, 0.5),                                                # w = 1/2
    (GT + ", change_size(1, small)", 2 / 3, 2 / 3, 2 / 3),                                  # extra call: w = 1/3
    (GT + ", change_color(2, red)", 2 / 3, 1.0, 1.0),                                      # duplicate: 2/3 penalty
    ("change_color(2, blue), change_position(0, front_left)", 0.5, 0.75, 0.75),            # (func, obj) tier
    ("change_color(3, red), change_position(0, front_left)", 0.5, 0.75, 0.75),             # (func, value) tier
    ("change_color(3, blue), change_position(1, left)", 0.0, 0.25, 0.25),                  # func tier, 2 x 0.25/2
    ("change_size(2, red), change_shape(0, front_left)", 0.0, 0.0, 0.0),                   # no function shared
    ("Change_Color(2, Red)", 0.0, 0.0, 0.0),                                                # case-sensitive
    ("", 0.0, 0.0, 0.0),
    ("<answer></answer>", 0.0, 0.0, 0.0),
    ("I cannot tell.", 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize("pred, exact, partial, paper", SCORES)
def test_exact_partial_and_paper_scores(pred, exact, partial, paper):
    assert spatial.exact_score(pred, GT) == pytest.approx(exact)
    assert spatial.partial_score(pred, GT) == pytest.approx(partial)
    assert spatial.paper_score(pred, GT) == pytest.approx(paper)
    assert tasks.checker(spatial.REWARD)(pred, GT) == pytest.approx(exact)
    assert tasks.checker(spatial.SCORERS["strict"])(pred, GT) == pytest.approx(partial)
    assert tasks.checker(spatial.SCORERS["paper"])(pred, GT) == pytest.approx(paper)


def test_paper_score_reads_the_truth_from_the_whole_solution():
    # the released scorer parses calls from the whole solution string, tags and all
    assert spatial.paper_score(GT, f"<answer>{GT}</answer>") == 1.0
    assert spatial.paper_score("<answer>change_color(2, red)</answer> change_size(1, big)", GT) == 0.5


def test_score_edge_cases():
    dup = GT + ", change_color(2, red)"
    assert spatial.exact_score(dup, GT, duplicate_penalty=False) == pytest.approx(1.0)
    assert spatial.partial_score(dup, GT, duplicate_penalty=True) == pytest.approx(2 / 3)
    assert spatial.partial_score(GT, "") == spatial.exact_score(GT, "") == 0.0      # empty truth
    assert spatial.partial_score("", "") == spatial.exact_score("", "") == 0.0      # both empty
    # Greedy in order of first appearance: (c,1,red) takes (c,1,green) at the (func, obj) tier, leaving
    # (c,1,blue) to meet (c,2,red) at the func tier only: (0.5 + 0.25) / 2.
    pred, gt = "change_color(1, red), change_color(1, blue)", "change_color(1, green), change_color(2, red)"
    assert spatial.partial_score(pred, gt) == pytest.approx(0.375)


def test_huge_inputs_score_fast():
    inputs = ["a" * 100_000, "(" * 100_000, "change_color(1, " * 7_000, "f(" + " " * 100_000,
              "change_color(" + "1" * 100_000, "<answer>" + "a( 1 , " * 15_000, "change_color(2, red) " * 5_000]
    start = time.perf_counter()
    for text in inputs:
        spatial.partial_score(text, GT)
        spatial.exact_score(text, GT)
    assert time.perf_counter() - start < 1.0
    assert spatial.exact_score("change_color(2, red) " * 5_000, GT) == pytest.approx(1 / 5_000 / 2)


def test_prompt_styles_and_rules():
    q = spatial.make_problem(spatial.sample_scene(random.Random(1)))
    cot, ans, bare = (spatial.prompt(q, s, prompts="compact") for s in ("cot", "ans", "bare"))
    assert cot.startswith(spatial.RULES) and spatial.OUTPUT_FORMAT in cot
    assert cot.endswith(f"{q} {spatial.INSTRUCTION}")
    assert ans.startswith(spatial.RULES) and ans.endswith(q) and "<think>" not in ans
    assert bare.endswith(spatial.BARE_INSTRUCTION) and "<think>" not in bare
    for func, values in FUNCTIONS.items():
        assert f"{func}(object_id, value)" in spatial.RULES and ", ".join(values) in spatial.RULES
    with pytest.raises(ValueError):
        spatial.prompt(q, "fancy")


def test_released_prompts_word_for_word():
    """The reason_rft set sends the released text: fixed points of it, typos and markdown breaks included."""
    q = "The attributes of the initial objects are: [(0, 'cube', 'large', 'red', 'rubber')]."
    cot, ans, bare = (spatial.prompt(q, s) for s in ("cot", "ans", "bare"))
    head = "Your need to complete the spatial visual reasoning task according to the following rules.  \n\n"
    assert cot.startswith(head) and ans.startswith(head) and bare.startswith(head)
    assert "are provxided as a list" in cot and "are provided as a list" in ans and "are provided" in bare
    assert "**'change_shape(object_id, value)'** - - Changes the object" in cot
    assert "moving forward along the object's initial direction.  \n" in cot
    assert cot.endswith(f"Now, it's your turn!\n\n{q} Output the thinking process in <think> </think> and final "
                        f"answer in <answer> </answer> tags.\n")
    assert "### Output Format  \n\nYou should first thinks about" in cot and "Output Format" not in ans
    assert ans.endswith(f"initial location.\n\nNow, it's your turn!\n\n{q}\n")
    assert bare.endswith(f"{q} Please output the answer only with a sequence of functions for transformation.\n")
    assert (len(cot), len(ans)) == (2841 + len(q), 2382 + len(q))  # the released templates less {Question}


def test_target_and_load_round_trip(tmp_path):
    path = spatial.generate(tmp_path, n=2, seed=1)
    raw, loaded = json.loads(path.read_text()), schema.load(path)
    for src, rec in zip(raw, loaded):
        assert rec["image"] == [str(tmp_path / p) for p in src["image"]]
        assert schema.target(rec, "cot") == f"<think>\n{src['cot']}\n</think>\n<answer>\n{src['answer']}\n</answer>"
        assert schema.target(rec, "ans") == src["answer"]
    # The released CoT files hold the whole tagged text: the think body is taken, not nested.
    rec = {"answer": GT, "cot": f"<think>\nLet me see.\n</think>\n<answer>{GT}</answer>"}
    assert schema.target(rec, "cot") == f"<think>\nLet me see.\n</think>\n<answer>\n{GT}\n</answer>"
    with pytest.raises(ValueError):
        schema.target({"answer": GT, "cot": ""}, "cot")
    with pytest.raises(ValueError):
        schema.target(rec, "fancy")
    assert spatial.NAME == "spatial"
