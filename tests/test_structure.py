"""Tests for the structure-perception task (tasks.structure, tasks.geometry, tasks.geometry_draw): determinism,
schema, answers measured on the construction, drawing styles, loader."""

import json
import math
import random
import re
from collections import Counter

import pytest
from PIL import Image

from rrft_studio import tasks
from rrft_studio.tasks import schema, structure
from rrft_studio.tasks.structure.draw import render
from rrft_studio.tasks.structure.geometry import KINDS, SceneSpec, fmt, sample_figure


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# Independent measurements on the coordinates (not the module's helpers)
# ----------------------------------------------------------------------------------------------

def _angle(p, v, q):
    a = (p[0] - v[0], p[1] - v[1])
    b = (q[0] - v[0], q[1] - v[1])
    cos = (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def _length(p, q):
    return math.hypot(q[0] - p[0], q[1] - p[1])


def _measure(fig, what):
    pts = fig.points
    kind = what[0]
    if kind == "angle":
        return _angle(pts[what[1]], pts[what[2]], pts[what[3]])
    if kind == "length":
        return _length(pts[what[1]], pts[what[2]])
    if kind == "area":
        poly = [pts[n] for n in what[1]]
        return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1]))) / 2
    if kind == "perimeter":
        poly = [pts[n] for n in what[1]]
        return sum(_length(a, b) for a, b in zip(poly, poly[1:] + poly[:1]))
    r = _length(pts[what[1]], pts[what[2]])
    return {"circle_area": math.pi * r * r, "circumference": 2 * math.pi * r}[kind]


def _labels(fig):
    return [a[3] for a in fig.angles] + [s[2] for s in fig.sides]


def _check(fig, problem, answer, cot, style):
    # every given measure holds on the coordinates, and is shown in the text (ID) or on the figure (OOD)
    for given in fig.givens:
        assert _measure(fig, given[:-1]) == pytest.approx(given[-1], abs=1e-6), (fig.kind, given)
        shown = fmt(given[-1]) + ("°" if given[0] == "angle" else "")
        if style == "id":
            assert shown in problem, (fig.kind, shown, problem)
        else:
            assert shown in _labels(fig), (fig.kind, shown, _labels(fig))
    # the answer is the asked measure, taken on the coordinates and rounded
    measured = _measure(fig, fig.asked)
    assert measured == pytest.approx(fig.value, abs=1e-6), (fig.kind, fig.asked)
    value = fmt(fig.value, fig.decimals)  # (the measurement may sit a hair below a half)
    assert re.fullmatch(r"\d+(\.\d{1,2})?", value) and float(value) > 0
    numbers = re.findall(r"\d+(?:\.\d+)?", cot)
    choices = structure.choices_of(problem)
    if answer in "ABCD":
        assert len(choices) == 4 and list(choices) == list("ABCD")
        texts = [c.rstrip("°") for c in choices.values()]
        assert texts.count(value) == 1 and choices[answer].rstrip("°") == value  # exactly once, at its letter
        assert len(set(texts)) == 4
        assert cot.endswith(f"This matches choice {answer}.")
        assert numbers[-1] == value  # the reasoning ends on the value before naming the letter
        assert structure.is_choice(problem)
    else:
        assert answer == value and not choices
        assert numbers[-1] == answer  # the CoT ends on the answer
        assert not structure.is_choice(problem)
    # a rounded answer says so in the question, an exact one does not need to
    if not math.isclose(float(value), fig.value, abs_tol=1e-9):
        assert "Round" in problem and "≈" in cot


@pytest.mark.parametrize("style", ["id", "ood"])
@pytest.mark.parametrize("kind", KINDS)
def test_answers_recomputed_from_the_construction(kind, style):
    spec = SceneSpec(style=style, kinds=(kind,), choice_fraction=0.5)
    rng = random.Random(2 * KINDS.index(kind) + (style == "ood"))
    for _ in range(30):
        fig = sample_figure(rng, spec)
        assert fig.kind == kind
        problem, answer, cot = structure.make_question(rng, fig, spec)
        _check(fig, problem, answer, cot, style)


def test_every_kind_appears_in_both_mixes_and_mixes_differ():
    counts = {}
    for style in ("id", "ood"):
        rng = random.Random(5)
        counts[style] = Counter(sample_figure(rng, SceneSpec(style=style)).kind for _ in range(600))
        assert set(counts[style]) == set(KINDS)
    # OOD leans towards trigonometry, ID towards angle chasing
    assert counts["ood"]["trigonometry"] > 2 * counts["id"]["trigonometry"]
    assert counts["id"]["angle_sum"] > counts["ood"]["angle_sum"]


def test_choice_fraction_and_answer_distribution():
    for fraction, letters in ((0.0, 0), (1.0, 200)):
        rng = random.Random(1)
        spec = SceneSpec(choice_fraction=fraction)
        answers = [structure.make_question(rng, sample_figure(rng, spec), spec)[1] for _ in range(200)]
        assert sum(a in "ABCD" for a in answers) == letters
    # the correct letter is spread over A-D
    assert min(Counter(answers).values()) > 25
    rng = random.Random(2)
    spec = SceneSpec(choice_fraction=0.0)
    numeric = Counter(structure.make_question(rng, sample_figure(rng, spec), spec)[1] for _ in range(500))
    assert max(numeric.values()) / 500 < 0.1


def test_styles_phrase_differently():
    rng = random.Random(3)
    for style in ("id", "ood"):
        spec = SceneSpec(style=style, choice_fraction=0.0)
        questions = [sample_figure(rng, spec).question for _ in range(100)]
        if style == "id":
            assert all(q.startswith("As shown in the figure") for q in questions)
        else:
            assert not any(q.startswith("As shown") for q in questions)
            assert sum("Find x." in q for q in questions) > 50


def test_generate_is_byte_identical(tmp_path):
    for style in ("id", "ood"):
        spec = SceneSpec(image_size=128, style=style)
        a = structure.generate(tmp_path / f"a{style}", n=4, seed=7, spec=spec)
        b = structure.generate(tmp_path / f"b{style}", n=4, seed=7, spec=spec)
        assert _files(a.parent) == _files(b.parent)
        c = structure.generate(tmp_path / f"c{style}", n=4, seed=8, spec=spec)
        assert c.read_bytes() != a.read_bytes()
    # a shorter run is a prefix of a longer one
    short = structure.generate(tmp_path / "short", n=2, seed=7, spec=SceneSpec(image_size=128, style="ood"))
    long = json.loads((tmp_path / "aood" / "train.json").read_text())
    assert [r["problem"] for r in json.loads(short.read_text())] == [r["problem"] for r in long[:2]]


def test_generate_schema_and_images(tmp_path):
    path = structure.generate(tmp_path, n=6, seed=3, spec=SceneSpec(image_size=96, style="ood"), split="val")
    assert path == tmp_path / "val.json"
    records = json.loads(path.read_text())
    assert len(records) == 6
    assert not list(tmp_path.glob(".*.tmp"))
    for i, rec in enumerate(records):
        assert set(rec) == {"id", "image", "problem", "answer", "cot"}
        assert rec["id"] == f"structure-val-{i:06d}"
        assert rec["image"] == f"images/val/{i:06d}.png"
        assert all(isinstance(v, str) and v for v in rec.values())
        with Image.open(tmp_path / rec["image"]) as im:
            assert im.size == (96, 96) and im.mode == "RGB"
        assert rec["answer"] in tuple("ABCD") or re.fullmatch(r"\d+(\.\d+)?", rec["answer"])


def test_drawing_styles_differ():
    """ID: black on white only; OOD: coloured fills and labels, and thicker (more) ink."""
    ink = {}
    for style in ("id", "ood"):
        rng = random.Random(4)
        spec = SceneSpec(image_size=112, style=style, kinds=("angle_sum",))
        im = render(sample_figure(rng, spec), spec)
        pixels = list(im.getdata())
        coloured = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 30)
        ink[style] = sum(1 for r, g, b in pixels if r + g + b < 200)
        assert (coloured == 0) == (style == "id")
        assert pixels[0] == (255, 255, 255)  # white background
    assert ink["ood"] > 1.5 * ink["id"]


def test_load_round_trip(tmp_path):
    path = structure.generate(tmp_path, n=5, seed=1, spec=SceneSpec(image_size=96))
    raw = json.loads(path.read_text())
    loaded = schema.load(path)
    assert [r["id"] for r in loaded] == [r["id"] for r in raw]
    for src, rec in zip(raw, loaded):
        assert rec["image"] == str(tmp_path / src["image"])
        assert (rec["problem"], rec["answer"], rec["cot"]) == (src["problem"], src["answer"], src["cot"])
        assert schema.target(rec, "cot") == f"<think>\n{src['cot']}\n</think>\n<answer>\n{src['answer']}\n</answer>"
        for name in (structure.REWARD, *structure.SCORERS.values()):
            assert tasks.checker(name)(schema.target(rec, "cot"), rec["answer"]) == 1.0
    with pytest.raises(ValueError, match="file not found"):
        schema.load(tmp_path / "missing.json")


def test_prompt_target_and_checkers():
    mc = "Find ∠A.\nChoices: A. 50° B. 85° C. 130° D. 40°"
    num = "As shown in the figure, in triangle ABC, ∠B = 95° and ∠C = 35°. Find ∠A."
    assert structure.prompt(mc) == f"{mc} {structure.CHOICE_INSTRUCTION}"
    assert structure.prompt(mc).endswith("final answer (chosen letter) in <answer> </answer> tags.")
    assert "letter (A, B, C or D) that precedes your choice" in structure.prompt(mc)
    assert structure.prompt(num) == (f"{num} Output the thinking process in <think> </think> and final answer "
                                     f"(float number or int number) in <answer> </answer> tags.")
    # zero-shot: the released instruction, before the question; ANS-SFT: the bare question
    assert structure.prompt(num, "bare") == f"{structure.ZERO_SHOT} {num}"
    assert structure.prompt(num, "bare").startswith("Please answer the question with only numbers")
    assert structure.prompt(mc, "ans") == mc and structure.prompt(num, "ans") == num
    # Geometry3K (ood) is evaluated with the released generic instruction; the compact set keeps the rule
    assert structure.prompt(num, split="ood", answer="5").endswith("final answer (number or choice) in <answer> </answer> tags.")
    assert structure.prompt(num, split="ood", answer="5", prompts="compact").endswith(structure.NUMBER_INSTRUCTION)
    rec = {"answer": "70", "cot": "180° - 50° - 60° = 70°."}
    assert schema.target(rec, "ans") == "70"
    assert schema.target(rec, "cot") == "<think>\n180° - 50° - 60° = 70°.\n</think>\n<answer>\n70\n</answer>"
    with pytest.raises(ValueError):
        structure.prompt(num, "fancy")
    with pytest.raises(ValueError):
        schema.target(rec, "fancy")
    with pytest.raises(ValueError):
        schema.target({"answer": "1", "cot": ""}, "cot")
    match = tasks.checker(structure.REWARD)
    assert match("<think>x</think><answer>70</answer>", "70") == 1.0
    assert match("<answer>B</answer>", "C") == 0.0
    assert structure.NAME == "structure"


# The released code picks the choice prompt by the ANSWER being one of A-D, whatever the problem's text looks
# like; without an answer (a question typed in the studio) the text decides.
CHOICE_RULE = [
    ("Find x.\nA. 3\nB. 2.5\nC. 5\nD. 1.3", "C", True),
    ("如图，∠1＝50°，则∠2＝（）\n选项：A：40° B：50° C：130° D：140°", "B", True),  # full-width colons
    ("Find x. Choices: A. 3 B. 4 C. 5", "A", True),  # three choices
    ("Points A: (0,0), B: (4,0), C: (4,3) and D: (0,3) form a rectangle. Find its area.", "12", False),
    ("Find ∠A.\nChoices: A. 50° B. 85° C. 130° D. 40°", "50", False),  # a choice-looking text, numeric answer
    ("How long is side AB?", "D", True),
]


@pytest.mark.parametrize("problem, answer, choice", CHOICE_RULE)
def test_choice_prompt_is_chosen_by_the_answer(problem, answer, choice):
    instruction = structure.CHOICE_INSTRUCTION if choice else structure.NUMBER_INSTRUCTION
    assert structure.prompt(problem, answer=answer) == f"{problem} {instruction}"
    assert structure.is_choice(problem, answer) is choice


def test_choice_by_text_without_an_answer():
    assert structure.is_choice("Find x.\nA. 3\nB. 2.5\nC. 5\nD. 1.3")
    assert structure.is_choice("Find x. Choices:\nA:40°\nB:50°\nC:80°\nD:100°")
    assert structure.is_choice("Find x. (A) 1 (B) 2 (C) 3 (D) 4")
    assert not structure.is_choice("Point D lies on AB. C. is not a choice list")


@pytest.mark.parametrize("spec, needle", [
    (SceneSpec(style="fancy"), "unknown style"),
    (SceneSpec(kinds=("hexagons",)), "unknown problem kind"),
    (SceneSpec(choice_fraction=1.5), "choice_fraction"),
    (SceneSpec(image_size=32), "image_size"),
])
def test_bad_spec_errors_are_one_line(tmp_path, spec, needle):
    with pytest.raises(ValueError) as err:
        structure.generate(tmp_path, n=1, seed=0, spec=spec)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("style", ["id", "ood"])
def test_parallel_line_relations_are_named_correctly(style):
    """The CoT's rule (corresponding, alternate, ...) matches where the two angles sit on the coordinates."""
    spec = SceneSpec(style=style, kinds=("parallel_lines",), choice_fraction=0.0)
    rng = random.Random(11)
    seen = set()
    for _ in range(150):
        fig = sample_figure(rng, spec)
        _, _, cot = structure.make_question(rng, fig, spec)
        pts = fig.points
        (_, p1, x1, q1, given), (_, p2, x2, q2) = fig.givens[0], fig.asked
        top = max(pts[x1][1], pts[x2][1], pts["G"][1], pts["H"][1])

        def place(p, x, q):
            # side of the transversal (the angle's ray along its line points right or left), above/below the
            # line, and between the two lines or not
            side = 1 if pts[p][0] > pts[x][0] else -1
            up = 1 if pts[q][1] > pts[x][1] else -1
            between = (up < 0) if pts[x][1] == top else (up > 0)
            return side, up, between

        (s1, u1, in1), (s2, u2, in2) = place(p1, x1, q1), place(p2, x2, q2)
        same_vertex = x1 == x2
        if same_vertex and (s1, u1) == (-s2, -u2):
            rule = "vertical angles"
        elif same_vertex:
            rule = "a linear pair"
        elif (s1, u1) == (s2, u2):
            rule = "corresponding angles"
        elif s1 != s2 and in1 and in2:
            rule = "alternate interior angles"
        elif s1 != s2 and not in1 and not in2:
            rule = "alternate exterior angles"
        elif s1 == s2 and in1 and in2:
            rule = "same-side interior angles"
        else:
            raise AssertionError(f"an unnamed pair was generated: {fig.givens}, {fig.asked}")
        assert rule in cot, (rule, cot)
        seen.add(rule)
        equal = rule in ("vertical angles", "corresponding angles", "alternate interior angles",
                         "alternate exterior angles")
        assert fig.value == (given if equal else 180 - given)
        assert ("they are equal" in cot) == equal
    assert len(seen) == 6


def test_split_spec():
    assert structure.SceneSpec is SceneSpec
    assert structure.split_spec(SceneSpec(), "ood").style == "ood"
    assert structure.split_spec(SceneSpec(), "id") == SceneSpec()
