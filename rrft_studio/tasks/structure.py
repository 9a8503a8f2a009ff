"""Structure perception: GeoMath / Geometry3K-style geometry diagrams, questions, prompts and SFT targets.

Reason-RFT's structure-perception family trains on plane-geometry problems (GeoMath in distribution,
Geometry3K out of distribution): a diagram plus a question about an angle, a length, an area or a
perimeter, answered with a number or with the letter of a choice. Nothing can be downloaded on this
project's machines, so this module offers two things:

* ``generate``: a seeded, deterministic synthetic generator that writes records in exactly the
  Reason-RFT JSON schema (``id``, ``image``, ``problem``, ``answer``, ``cot``) plus PNG diagrams drawn
  with PIL. Every figure is built from coordinates that realise the given measures exactly, and the
  answer is computed from the construction (``Figure.givens`` and ``Figure.asked`` describe both, so a
  test can measure them on the coordinates). Thirteen kinds (``KINDS``): triangle angle sum, exterior
  angle, isosceles base angles, parallel lines cut by a transversal, intersecting lines, inscribed and
  central angles, the angle in a semicircle, circle area / circumference, the Pythagorean theorem, right
  triangle trigonometry, rectangle area / perimeter / diagonal, triangle area from an altitude, and
  similar triangles (DE parallel to BC). A share ``choice_fraction`` are multiple choice (answer: the
  letter); the rest are numeric (an integer, or a decimal rounded as the question says).
  Two styles form the ID / OOD split. ``style="id"`` (GeoMath-like): thin black lines on white, upright
  figures, GeoQA phrasing that states the givens in words ("As shown in the figure, in triangle ABC,
  angle A = 50 deg ... Find angle C."), angle-chasing heavy. ``style="ood"`` (Geometry3K-like): thick
  lines, pastel fills, bold labels with the values in dark red, dots on points, figures at any rotation
  or mirrored, the unknown marked ``x`` on the figure and asked as "Find x." (so the givens must be
  read from the diagram), rounding to the nearest tenth or hundredth, and a mix weighted towards
  lengths, trigonometry and areas. It departs from the real data on purpose: the diagrams are clean and
  uncluttered, the kinds are few, and the chain of thought is a short template built from the
  construction (the rule, the formula and the numbers) rather than a GPT-4o distillation.
* ``load``: the Reason-RFT JSON loader (shared with the counting task), ``prompt`` for the instruction
  text (the paper's choice / non-choice sentences), ``target`` for the SFT target text and ``verify``
  for the as-trained accuracy check.
"""

from __future__ import annotations

import functools
import math
import pathlib
import random
import re
import dataclasses
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from PIL import Image, ImageDraw, ImageFont

from .. import rewards
from . import schema
from .counting import _write_json_atomic
from .counting import load as _load_records


NAME = "structure"
# The paper's evaluation prompts for GeoMath (choice and non-choice), word for word.
CHOICE_INSTRUCTION = (
    "Please select the correct answer by writing the letter (A, B, C or D) that precedes your choice.\n"
    "Output the thinking process in <think> </think> and final answer (chosen letter) in <answer> </answer> tags."
)
NUMBER_INSTRUCTION = (
    "Output the thinking process in <think> </think> and final answer (float number or int number) in "
    "<answer> </answer> tags."
)
BARE_CHOICE_INSTRUCTION = "Answer with the letter (A, B, C or D) of the correct choice only."
BARE_NUMBER_INSTRUCTION = "Answer with a number only (an integer or a decimal such as 5.2)."
LETTERS = "ABCD"
STYLES = ("id", "ood")
STYLES_PROMPT = ("cot", "bare", "ans")

KINDS = (
    "angle_sum", "exterior_angle", "isosceles", "parallel_lines", "intersecting_lines", "inscribed_angle",
    "diameter_angle", "circle_measure", "pythagoras", "trigonometry", "rectangle", "triangle_area",
    "similar_triangles",
)
# Relative frequency of each kind per style: ID leans on angle chasing (GeoQA), OOD on lengths,
# trigonometry and areas (Geometry3K).
MIX = {
    "id": (2.0, 1.0, 1.5, 2.0, 1.0, 1.5, 1.0, 0.7, 1.0, 0.5, 0.7, 1.0, 1.0),
    "ood": (1.0, 0.7, 0.7, 1.0, 0.5, 1.0, 0.7, 1.2, 2.0, 2.0, 0.8, 1.0, 1.2),
}

# Choice lists: "A. 70 B. 110 ..." (the ID layout) or one per line (the OOD layout); also "A:" and "(A)".
_CHOICES = re.compile(r"(?:^|\s)\(?A[.:)]\s*\S.*?(?:^|\s)\(?B[.:)]\s*\S.*?(?:^|\s)\(?C[.:)]\s*\S.*?"
                      r"(?:^|\s)\(?D[.:)]\s*\S", re.DOTALL)
_CHOICE_ITEM = re.compile(r"(?:^|\s)([ABCD])\. (\S+)")

SUPERSAMPLE = 4  # draw large, then downscale: anti-aliased lines without extra dependencies
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
PASTELS = ((204, 226, 255), (208, 240, 208), (255, 243, 196), (255, 218, 228), (228, 214, 250))


@dataclass(frozen=True)
class SceneSpec:
    image_size: int = 224        # square canvas, pixels
    style: str = "id"            # "id" (GeoMath-like) or "ood" (Geometry3K-like): drawing and phrasing
    choice_fraction: float = 0.5  # share of multiple-choice questions (answer: a letter A-D)
    kinds: tuple[str, ...] = ()  # restrict to these problem kinds (see KINDS); empty: the style's mix


@dataclass(frozen=True)
class DrawStyle:
    line_px: float               # line width at a 224-pixel canvas
    font_frac: float             # font size as a fraction of the canvas side
    bold: bool
    fill: bool                   # pastel fills of polygons and circles
    dots: bool                   # dots on labelled points
    point_color: tuple[int, int, int]
    value_color: tuple[int, int, int]
    margin: float                # free border as a fraction of the canvas side


DRAW = {
    "id": DrawStyle(1.3, 0.062, False, False, False, BLACK, BLACK, 0.13),
    "ood": DrawStyle(3.2, 0.072, True, True, True, (25, 45, 140), (165, 20, 20), 0.15),
}


@dataclass
class Figure:
    """One problem's construction: coordinates (math axes, y up), what is drawn, given and asked.

    ``givens`` entries: ``("angle", p, v, q, degrees)`` for the angle p-v-q, ``("length", p, q, value)``.
    ``asked``: ``("angle", p, v, q)``, ``("length", p, q)``, ``("area", names)``, ``("perimeter", names)``,
    ``("circle_area", centre, point_on_circle)`` or ``("circumference", centre, point_on_circle)``.
    """

    kind: str
    points: dict[str, tuple[float, float]]
    question: str
    value: float                 # the exact answer
    cot: str                     # the reasoning; make_question appends the rounded answer
    givens: list[tuple]
    asked: tuple
    unit: str = ""               # "°" for angles
    decimals: int = 2            # the answer is rounded to this many decimals
    distractors: list[float] = field(default_factory=list)  # plausible wrong values, best first
    segments: list[tuple[str, str]] = field(default_factory=list)
    dashed: list[tuple[str, str]] = field(default_factory=list)
    circles: list[tuple[str, float]] = field(default_factory=list)  # (centre point, radius)
    fills: list[tuple[str, ...]] = field(default_factory=list)      # polygons shaded in the OOD style
    angles: list[tuple[str, str, str, str]] = field(default_factory=list)  # arc p-v-q and its label
    right_angles: list[tuple[str, str, str]] = field(default_factory=list)
    sides: list[tuple[str, str, str, str]] = field(default_factory=list)  # p, q, label, point to face away from
    ticks: list[tuple[str, str, int]] = field(default_factory=list)   # equal-length marks
    arrows: list[tuple[str, str, int]] = field(default_factory=list)  # parallel marks
    hidden: tuple[str, ...] = ()  # points drawn without a letter
    rotation: float = 0.0        # degrees, applied when drawing
    mirror: bool = False
    palette: int = 0


# ----------------------------------------------------------------------------------------------
# Numbers and words
# ----------------------------------------------------------------------------------------------

BENCHMARKS = {"id": "GeoMath", "ood": "Geometry3K"}


def split_spec(spec: SceneSpec, split: str) -> SceneSpec:
    """The generator settings of a split: OOD is the Geometry3K-like drawing and phrasing style."""
    return dataclasses.replace(spec, style="ood") if split == "ood" else spec


def fmt(value: float, decimals: int = 2) -> str:
    """``value`` rounded half-up to ``decimals`` places, trailing zeros dropped: 70, 22.5, 11.4, 6.88."""
    text = str(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _deg(value: float) -> str:
    return f"{fmt(value)}°"


def _exact(value: float, decimals: int) -> bool:
    scaled = value * 10 ** decimals
    return abs(scaled - round(scaled)) < 1e-6


def _rounding_note(value: float, decimals: int, ood: bool) -> str:
    if _exact(value, decimals):
        return ""
    if ood:
        return " Round to the nearest tenth." if decimals == 1 else " Round to the nearest hundredth."
    return " Round the answer to two decimal places."


def _seg(p: str, q: str) -> str:
    return "".join(sorted(p + q))


def _ask_angle(rng: random.Random, name: str) -> str:
    return rng.choice((f"Find {name}.", f"What is the measure of {name}?", f"Then {name} = ( )."))


def _ask_length(rng: random.Random, name: str) -> str:
    return rng.choice((f"Find the length of {name}.", f"What is the length of {name}?", f"Then {name} = ( )."))


# ----------------------------------------------------------------------------------------------
# Plane geometry helpers (math axes, degrees)
# ----------------------------------------------------------------------------------------------

def _pol(r: float, deg: float, origin=(0.0, 0.0)) -> tuple[float, float]:
    return (origin[0] + r * math.cos(math.radians(deg)), origin[1] + r * math.sin(math.radians(deg)))


def _lerp(p, q, t: float) -> tuple[float, float]:
    return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)


def _dist(p, q) -> float:
    return math.hypot(q[0] - p[0], q[1] - p[1])


def measure_angle(p, v, q) -> float:
    """The angle p-v-q in degrees, in [0, 180]."""
    a = math.atan2(p[1] - v[1], p[0] - v[0])
    b = math.atan2(q[1] - v[1], q[0] - v[0])
    d = abs(math.degrees(a - b)) % 360
    return 360 - d if d > 180 else d


def _triangle_on_base(base: float, left: float, right: float):
    """Base from (0, 0) to (base, 0), angle ``left`` at the first end and ``right`` at the second, apex up."""
    apex = 180 - left - right
    side = base * math.sin(math.radians(right)) / math.sin(math.radians(apex))  # law of sines
    return (0.0, 0.0), (base, 0.0), _pol(side, left)


def _pick(rng: random.Random, lo: int, hi: int, step: int = 5) -> int:
    return rng.randrange(lo, hi + 1, step)


# ----------------------------------------------------------------------------------------------
# Problem kinds: each returns a Figure whose coordinates realise the givens exactly
# ----------------------------------------------------------------------------------------------

def _angle_sum(rng: random.Random, ood: bool) -> Figure:
    while True:  # every angle at least 35 deg: room for the labels inside
        a, b = _pick(rng, 35, 95), _pick(rng, 35, 95)
        if 35 <= 180 - a - b <= 110:
            break
    c = 180 - a - b
    names = rng.sample("ABC", 3)  # left, right, apex
    coords = _triangle_on_base(10.0, a, b)
    pts = dict(zip(names, coords))
    measures = dict(zip(names, (a, b, c)))
    asked = names[rng.randrange(3)]
    given = sorted(n for n in names if n != asked)

    def others(v):
        return [n for n in names if n != v]

    fig = Figure("angle_sum", pts, "", c, "", [], ("angle", others(asked)[0], asked, others(asked)[1]),
                 unit="°", segments=[(names[0], names[1]), (names[1], names[2]), (names[2], names[0])],
                 fills=[tuple(names)])
    fig.value = measures[asked]
    for v in given:
        o = others(v)
        fig.givens.append(("angle", o[0], v, o[1], measures[v]))
        fig.angles.append((o[0], v, o[1], _deg(measures[v])))
    g1, g2 = (measures[v] for v in given)
    fig.distractors = [180 - g1, 180 - g2, g1 + g2, abs(g1 - g2), 90 - fig.value]
    if ood:
        o = others(asked)
        fig.angles.append((o[0], asked, o[1], "x°"))
        fig.question = "Find x."
        fig.cot = (f"The interior angles of a triangle sum to 180°, so x + {g1} + {g2} = 180 and "
                   f"x = 180 - {g1} - {g2} = ")
    else:
        fig.question = (f"As shown in the figure, in triangle ABC, ∠{given[0]} = {g1}° and ∠{given[1]} = {g2}°. "
                        + _ask_angle(rng, f"∠{asked}"))
        fig.cot = (f"The interior angles of a triangle sum to 180°, so ∠{asked} = 180° - ∠{given[0]} - "
                   f"∠{given[1]} = 180° - {g1}° - {g2}° = ")
    return fig


def _exterior_angle(rng: random.Random, ood: bool) -> Figure:
    while True:
        a, b = _pick(rng, 35, 90), _pick(rng, 35, 90)
        if 40 <= 180 - a - b <= 110:
            break
    c, ext = 180 - a - b, a + b
    base = 10.0
    B, C, A = _triangle_on_base(base, b, c)
    pts = {"A": A, "B": B, "C": C, "D": (base * 1.4, 0.0)}
    fig = Figure("exterior_angle", pts, "", 0, "", [], (), unit="°",
                 segments=[("A", "B"), ("A", "C"), ("B", "D")], fills=[("A", "B", "C")])
    reverse = rng.random() < 0.35  # given the exterior angle and one remote angle, find the other
    angle_a, angle_b, angle_e = ("B", "A", "C"), ("A", "B", "C"), ("A", "C", "D")
    if reverse:
        fig.givens = [("angle", *angle_e, ext), ("angle", *angle_a, a)]
        fig.asked, fig.value = ("angle", *angle_b), b
        fig.distractors = [180 - ext, ext + a, 180 - b, c]
    else:
        fig.givens = [("angle", *angle_a, a), ("angle", *angle_b, b)]
        fig.asked, fig.value = ("angle", *angle_e), ext
        fig.distractors = [c, 180 - a, 180 - b, abs(a - b)]
    for g in fig.givens:
        fig.angles.append((g[1], g[2], g[3], _deg(g[4])))
    if ood:
        fig.angles.append((*fig.asked[1:], "x°"))
        fig.question = "Find x."
        if reverse:
            fig.cot = (f"An exterior angle of a triangle equals the sum of the two remote interior angles, "
                       f"so {ext} = {a} + x and x = {ext} - {a} = ")
        else:
            fig.cot = (f"An exterior angle of a triangle equals the sum of the two remote interior angles, "
                       f"so x = {a} + {b} = ")
    elif reverse:
        fig.question = (f"As shown in the figure, point D lies on the extension of BC, ∠ACD = {ext}° and "
                        f"∠A = {a}°. " + _ask_angle(rng, "∠B"))
        fig.cot = (f"The exterior angle ∠ACD equals the sum of the two remote interior angles: ∠ACD = ∠A + ∠B. "
                   f"So ∠B = ∠ACD - ∠A = {ext}° - {a}° = ")
    else:
        fig.question = (f"As shown in the figure, point D lies on the extension of BC, ∠A = {a}° and "
                        f"∠B = {b}°. " + _ask_angle(rng, "∠ACD"))
        fig.cot = (f"The exterior angle ∠ACD equals the sum of the two remote interior angles, so "
                   f"∠ACD = ∠A + ∠B = {a}° + {b}° = ")
    return fig


def _isosceles(rng: random.Random, ood: bool) -> Figure:
    apex = rng.randrange(30, 131, 2)
    base_angle = (180 - apex) // 2
    half = 5.0
    pts = {"B": (-half, 0.0), "C": (half, 0.0), "A": (0.0, half / math.tan(math.radians(apex / 2)))}
    fig = Figure("isosceles", pts, "", 0, "", [], (), unit="°",
                 segments=[("A", "B"), ("B", "C"), ("C", "A")], fills=[("A", "B", "C")],
                 ticks=[("A", "B", 1), ("A", "C", 1)])
    at_a, at_b, at_c = ("B", "A", "C"), ("A", "B", "C"), ("A", "C", "B")
    forward = rng.random() < 0.6  # apex given, base angle asked
    if forward:
        target = rng.choice(("B", "C"))
        fig.givens = [("angle", *at_a, apex)]
        fig.asked, fig.value = ("angle", *(at_b if target == "B" else at_c)), base_angle
        fig.distractors = [apex, 180 - apex, 90 - apex / 2 + 10, 180 - 2 * apex]
    else:
        target = "A"
        fig.givens = [("angle", *at_b, base_angle)]
        fig.asked, fig.value = ("angle", *at_a), apex
        fig.distractors = [base_angle, 180 - base_angle, 90 - base_angle, (180 - base_angle) / 2]
    g = fig.givens[0]
    fig.angles.append((g[1], g[2], g[3], _deg(g[4])))
    if ood:
        fig.angles.append((*fig.asked[1:], "x°"))
        fig.question = "Find x."
        if forward:
            fig.cot = (f"The two marked sides are equal, so the triangle is isosceles and its base angles are "
                       f"equal: x = (180 - {apex}) / 2 = ")
        else:
            fig.cot = (f"The two marked sides are equal, so both base angles measure {base_angle}°. The angles "
                       f"sum to 180°, so x = 180 - 2 × {base_angle} = ")
    elif forward:
        fig.question = (f"As shown in the figure, in triangle ABC, AB = AC and ∠A = {apex}°. "
                        + _ask_angle(rng, f"∠{target}"))
        fig.cot = (f"AB = AC, so triangle ABC is isosceles and its base angles are equal: ∠B = ∠C = "
                   f"(180° - ∠A) / 2 = (180° - {apex}°) / 2 = ")
    else:
        fig.question = (f"As shown in the figure, in triangle ABC, AB = AC and ∠B = {base_angle}°. "
                        + _ask_angle(rng, "∠A"))
        fig.cot = (f"AB = AC, so ∠C = ∠B = {base_angle}°. The angles of a triangle sum to 180°, so "
                   f"∠A = 180° - 2 × {base_angle}° = ")
    return fig


# Parallel lines: an angle at an intersection is named by (side s: +1 right / -1 left, t: +1 up / -1 down).
_RELATIONS = ("corresponding", "alternate interior", "alternate exterior", "same-side interior", "vertical",
              "linear pair")


def _parallel_lines(rng: random.Random, ood: bool) -> Figure:
    theta = rng.choice([*range(40, 76, 5), *range(105, 141, 5)])
    h, reach = 6.0, 3.2
    run = h / math.tan(math.radians(theta))
    G, H = (run / 2, h), (-run / 2, 0.0)  # on AB (top) and CD (bottom)
    E, F = _pol(reach, theta, G), _pol(reach, theta + 180, H)
    ends = max(abs(E[0]), abs(F[0]), abs(G[0])) + 3.0
    pts = {"A": (-ends, h), "B": (ends, h), "C": (-ends, 0.0), "D": (ends, 0.0), "E": E, "F": F, "G": G, "H": H}
    ray = {("G", 1): "B", ("G", -1): "A", ("G", "up"): "E", ("G", "down"): "H",
           ("H", 1): "D", ("H", -1): "C", ("H", "up"): "G", ("H", "down"): "F"}

    def interior(x, t):
        return t == (-1 if x == "G" else 1)

    def angle(x, s, t):
        return (ray[(x, s)], x, ray[(x, "up" if t > 0 else "down")])

    def size(s, t):
        return theta if s * t > 0 else 180 - theta

    relation = rng.choice(_RELATIONS)
    while True:
        x1, s1, t1 = rng.choice("GH"), rng.choice((1, -1)), rng.choice((1, -1))
        other = "H" if x1 == "G" else "G"
        if relation == "corresponding":
            second = (other, s1, t1)
        elif relation in ("alternate interior", "alternate exterior"):
            if interior(x1, t1) != (relation == "alternate interior"):
                continue
            second = (other, -s1, -t1)
        elif relation == "same-side interior":
            if not interior(x1, t1):
                continue
            second = (other, s1, -t1)
        elif relation == "vertical":
            second = (x1, -s1, -t1)
        else:
            second = rng.choice(((x1, -s1, t1), (x1, s1, -t1)))
        break
    given, ans = size(s1, t1), size(*second[1:])
    fig = Figure("parallel_lines", pts, "", ans, "", [("angle", *angle(x1, s1, t1), given)],
                 ("angle", *angle(*second)), unit="°",
                 segments=[("A", "B"), ("C", "D"), ("E", "F")], hidden=("G", "H"))
    fig.distractors = [180 - ans, abs(90 - ans), ans / 2, 2 * ans]
    equal = ans == given and relation != "linear pair"
    rule = {"corresponding": "corresponding angles", "alternate interior": "alternate interior angles",
            "alternate exterior": "alternate exterior angles", "same-side interior": "same-side interior angles",
            "vertical": "vertical angles", "linear pair": "a linear pair"}[relation]
    verb = "form" if relation == "linear pair" else "are"
    if ood:
        fig.hidden = tuple(pts)
        fig.arrows = [("A", "B", 1), ("C", "D", 1)]
        fig.angles = [(*angle(x1, s1, t1), _deg(given)), (*angle(*second), "x°")]
        fig.question = "The lines marked with arrows are parallel. Find x."
        lead = f"The angle of {given}° and the angle x° {verb} {rule}"
        fig.cot = f"{lead}, so " + ("they are equal: x = " if equal else
                                   f"they are supplementary: x = 180 - {given} = ")
    else:
        fig.angles = [(*angle(x1, s1, t1), "1"), (*angle(*second), "2")]
        fig.question = (f"As shown in the figure, AB ∥ CD, line EF intersects AB and CD, and ∠1 = {given}°. "
                        + _ask_angle(rng, "∠2"))
        parallel = "" if relation in ("vertical", "linear pair") else "AB ∥ CD, and "
        lead = f"{parallel}∠1 and ∠2 {verb} {rule}"
        fig.cot = f"{lead}, so " + ("they are equal: ∠2 = ∠1 = " if equal else
                                   f"they are supplementary: ∠2 = 180° - ∠1 = 180° - {given}° = ")
    return fig


def _intersecting_lines(rng: random.Random, ood: bool) -> Figure:
    perp = rng.random() < 0.4
    a = _pick(rng, 30, 80) if perp else _pick(rng, 30, 150)
    r = 5.0
    pts = {"O": (0.0, 0.0), "A": _pol(r, 180), "B": _pol(r, 0), "C": _pol(r, 180 - a), "D": _pol(r, -a)}
    fig = Figure("intersecting_lines", pts, "", 0, "", [("angle", "A", "O", "C", a)], (), unit="°",
                 segments=[("A", "B"), ("C", "D")])
    options = [("B", "O", "D"), ("B", "O", "C"), ("A", "O", "D")]
    if perp:
        pts["E"] = _pol(r, 90)
        fig.segments.append(("O", "E"))
        fig.right_angles.append(("B", "O", "E"))
        options = [("C", "O", "E"), ("D", "O", "E")]
    asked = rng.choice(options)
    fig.asked = ("angle", *asked)
    name = "∠" + "".join(asked)
    vals = {"BOD": a, "BOC": 180 - a, "AOD": 180 - a, "COE": 90 - a, "DOE": 90 + a}
    key = "".join(asked)
    fig.value = vals[key]
    fig.distractors = [180 - fig.value, a, 90 - a if a < 90 else a - 90, 180 - a, 90 + a, a / 2]
    fig.angles.append(("A", "O", "C", _deg(a)))
    if ood:
        fig.hidden = tuple(pts)
        fig.angles.append((*asked, "x°"))
        fig.question = "Find x." if not perp else "The marked angle is a right angle. Find x."
        fig.cot = {
            "BOD": f"The angle x° and the angle of {a}° are vertical angles, so x = ",
            "BOC": f"The angle x° and the angle of {a}° form a linear pair, so x = 180 - {a} = ",
            "AOD": f"The angle x° and the angle of {a}° form a linear pair, so x = 180 - {a} = ",
            "COE": f"The angle x° and the angle of {a}° together make the right angle, so x = 90 - {a} = ",
            "DOE": (f"The angle vertical to the {a}° angle also measures {a}°, and together with the right angle "
                    f"it makes x°, so x = 90 + {a} = "),
        }[key]
    else:
        fig.cot = {
            "BOD": f"{name} and ∠AOC are vertical angles, so {name} = ∠AOC = ",
            "BOC": f"{name} and ∠AOC form a linear pair along AB, so {name} = 180° - ∠AOC = 180° - {a}° = ",
            "AOD": f"{name} and ∠AOC form a linear pair along CD, so {name} = 180° - ∠AOC = 180° - {a}° = ",
            "COE": f"OE ⊥ AB, so ∠AOE = 90°, and {name} = ∠AOE - ∠AOC = 90° - {a}° = ",
            "DOE": (f"∠BOD = ∠AOC = {a}° (vertical angles) and ∠BOE = 90° since OE ⊥ AB, so "
                    f"{name} = ∠BOE + ∠BOD = 90° + {a}° = "),
        }[key]
        if rng.random() < 0.5:
            extra = " and OE ⊥ AB" if perp else ""
            fig.question = (f"As shown in the figure, lines AB and CD intersect at point O{extra}. If ∠AOC = {a}°, "
                            f"find {name}.")
        else:
            extra = ", OE ⊥ AB" if perp else ""
            fig.question = (f"As shown in the figure, lines AB and CD intersect at point O{extra}, and "
                            f"∠AOC = {a}°. " + _ask_angle(rng, name))
    return fig


def _inscribed_angle(rng: random.Random, ood: bool) -> Figure:
    k = _pick(rng, 30, 80)  # the inscribed angle; the central angle is 2k
    r = 5.0
    # C on the major arc, at least 35 deg of arc from A and B, and no more than 155 deg from either, so
    # neither chord CA nor CB passes close to O (where it would read as a diameter).
    arc_lo, arc_hi = max(k - 55, 115 - k), min(235 - k, 65 + k)
    pts = {"O": (0.0, 0.0), "A": _pol(r, -90 - k), "B": _pol(r, -90 + k),
           "C": _pol(r, rng.uniform(arc_lo, arc_hi))}
    fig = Figure("inscribed_angle", pts, "", 0, "", [], (), unit="°", circles=[("O", r)],
                 segments=[("O", "A"), ("O", "B"), ("C", "A"), ("C", "B")], fills=[])
    central, inscribed, base = ("A", "O", "B"), ("A", "C", "B"), ("O", "A", "B")
    mode = rng.choice(("half", "double", "base"))
    if mode == "half":
        fig.givens, fig.asked, fig.value = [("angle", *central, 2 * k)], ("angle", *inscribed), k
        fig.distractors = [2 * k, 180 - k, 180 - 2 * k, 90 - k]
    elif mode == "double":
        fig.givens, fig.asked, fig.value = [("angle", *inscribed, k)], ("angle", *central), 2 * k
        fig.distractors = [k, 180 - k, 180 - 2 * k, k / 2]
    else:
        fig.segments.append(("A", "B"))
        fig.givens, fig.asked, fig.value = [("angle", *inscribed, k)], ("angle", *base), 90 - k
        fig.distractors = [k, 2 * k, 180 - 2 * k, 90 - k / 2]
    g = fig.givens[0]
    fig.angles.append((g[1], g[2], g[3], _deg(g[4])))
    if ood:
        fig.angles.append((*fig.asked[1:], "x°"))
        fig.question = "Point O is the center of the circle. Find x."
        fig.cot = {
            "half": (f"The inscribed angle x° and the central angle of {2 * k}° subtend the same arc, so "
                     f"x = {2 * k} / 2 = "),
            "double": (f"The central angle x° subtends the same arc as the inscribed angle of {k}°, so "
                       f"x = 2 × {k} = "),
            "base": (f"The central angle over the same arc is 2 × {k}° = {2 * k}°. The two radii are equal, so the "
                     f"triangle is isosceles and x = (180 - {2 * k}) / 2 = "),
        }[mode]
    else:
        lead = "As shown in the figure, points A, B and C lie on circle O"
        fig.question = {
            "half": f"{lead}, and ∠AOB = {2 * k}°. " + _ask_angle(rng, "∠ACB"),
            "double": f"{lead}, and ∠ACB = {k}°. " + _ask_angle(rng, "∠AOB"),
            "base": f"{lead}, and ∠ACB = {k}°. " + _ask_angle(rng, "∠OAB"),
        }[mode]
        fig.cot = {
            "half": (f"∠ACB is an inscribed angle and ∠AOB a central angle on the same arc AB, so "
                     f"∠ACB = ∠AOB / 2 = {2 * k}° / 2 = "),
            "double": (f"∠AOB is the central angle on the same arc AB as the inscribed angle ∠ACB, so "
                       f"∠AOB = 2∠ACB = 2 × {k}° = "),
            "base": (f"∠AOB is the central angle on arc AB, so ∠AOB = 2∠ACB = 2 × {k}° = {2 * k}°. OA = OB "
                     f"(radii), so ∠OAB = (180° - ∠AOB) / 2 = (180° - {2 * k}°) / 2 = "),
        }[mode]
    return fig


def _diameter_angle(rng: random.Random, ood: bool) -> Figure:
    a = _pick(rng, 20, 70)  # angle CAB
    r = 5.0
    pts = {"O": (0.0, 0.0), "A": _pol(r, 180), "B": _pol(r, 0), "C": _pol(r, 2 * a)}
    at_a, at_b = ("C", "A", "B"), ("A", "B", "C")
    given_at, asked_at = (at_a, at_b) if rng.random() < 0.5 else (at_b, at_a)
    given = a if given_at == at_a else 90 - a
    fig = Figure("diameter_angle", pts, "", 90 - given, "", [("angle", *given_at, given)], ("angle", *asked_at),
                 unit="°", circles=[("O", r)], segments=[("A", "B"), ("A", "C"), ("B", "C")],
                 fills=[("A", "B", "C")])
    fig.distractors = [given, 180 - given, 90 + given, 2 * given]
    fig.angles.append((*given_at, _deg(given)))
    name_g, name_a = "∠" + "".join(given_at), "∠" + "".join(asked_at)
    if ood:
        fig.angles.append((*asked_at, "x°"))
        fig.question = "AB is a diameter of the circle. Find x."
        fig.cot = (f"An angle inscribed in a semicircle is a right angle, so ∠ACB = 90°. Then "
                   f"x = 180 - 90 - {given} = ")
    else:
        fig.question = (f"As shown in the figure, AB is a diameter of circle O, point C lies on the circle and "
                        f"{name_g} = {given}°. " + _ask_angle(rng, name_a))
        fig.cot = (f"AB is a diameter, so the inscribed angle ∠ACB = 90°. Hence {name_a} = 180° - 90° - "
                   f"{name_g} = 180° - 90° - {given}° = ")
    return fig


def _circle_measure(rng: random.Random, ood: bool) -> Figure:
    use_diameter = rng.random() < 0.35
    if use_diameter:
        d = rng.randint(4, 24)
        radius = d / 2
    else:
        radius = rng.randint(2, 15)
        d = 2 * radius
    area = rng.random() < 0.5
    phi = rng.uniform(0, 360) if ood else rng.choice((0.0, 20.0, -20.0, 35.0))
    pts = {"O": (0.0, 0.0), "P": _pol(radius, phi), "Q": _pol(radius, phi + 180)}
    fig = Figure("circle_measure", pts, "", 0, "", [], (), circles=[("O", radius)], hidden=("P", "Q"),
                 decimals=rng.choice((1, 2)) if ood else 2)
    if use_diameter:
        fig.segments = [("P", "Q")]
        fig.givens = [("length", "P", "Q", d)]
        fig.sides = [("P", "Q", fmt(d), "")]
    else:
        fig.segments = [("O", "P")]
        fig.givens = [("length", "O", "P", radius)]
        fig.sides = [("O", "P", fmt(radius), "")]
    r_text = fmt(radius)
    lead = f"The radius is half the diameter: r = {d} / 2 = {r_text}. " if use_diameter else ""
    if area:
        fig.asked, fig.value = ("circle_area", "O", "P"), math.pi * radius ** 2
        fig.distractors = [2 * math.pi * radius, math.pi * d ** 2, math.pi * radius, radius ** 2 * 3]
        fig.cot = f"{lead}The area of a circle is πr² = π × {r_text}² = {fmt(radius ** 2)}π ≈ "
        what = "area"
    else:
        fig.asked, fig.value = ("circumference", "O", "P"), 2 * math.pi * radius
        fig.distractors = [math.pi * radius ** 2, math.pi * radius, 4 * math.pi * radius, 2 * radius * 3]
        fig.cot = f"{lead}The circumference of a circle is 2πr = 2 × π × {r_text} = {fmt(2 * radius)}π ≈ "
        what = "circumference"
    note = _rounding_note(fig.value, fig.decimals, ood)
    if ood:
        fig.hidden = ("O", "P", "Q")
        fig.question = f"Find the {what} of the circle.{note}"
    else:
        given = f"the diameter of circle O is {d}" if use_diameter else f"the radius of circle O is {r_text}"
        fig.question = f"As shown in the figure, {given}. Find the {what} of circle O.{note}"
    return fig


def _right_triangle_points(rng: random.Random, leg_a: float, leg_b: float):
    """Right angle at the first name; legs along the axes; names shuffled. Returns names and coordinates."""
    names = rng.sample("ABC", 3)  # right-angle vertex, end of leg a, end of leg b
    return names, {names[0]: (0.0, 0.0), names[1]: (leg_a, 0.0), names[2]: (0.0, leg_b)}


_TRIPLES = ((3, 4, 5), (6, 8, 10), (5, 12, 13), (8, 15, 17), (9, 12, 15), (7, 24, 25), (12, 16, 20), (9, 40, 41))


def _pythagoras(rng: random.Random, ood: bool) -> Figure:
    while True:
        if rng.random() < 0.5:
            a, b, _ = rng.choice(_TRIPLES)
            if rng.random() < 0.5:
                a, b = b, a
        else:
            a, b = rng.randint(2, 14), rng.randint(2, 14)
        if 0.35 <= a / b <= 2.9:
            break
    c = math.hypot(a, b)
    find_hyp = rng.random() < 0.55
    names, pts = _right_triangle_points(rng, a, b)
    rv, pa, pb = names
    fig = Figure("pythagoras", pts, "", 0, "", [], (), segments=[(rv, pa), (pa, pb), (pb, rv)],
                 fills=[tuple(names)], right_angles=[(pa, rv, pb)], decimals=rng.choice((1, 2)) if ood else 2)
    hyp, leg_a, leg_b = _seg(pa, pb), _seg(rv, pa), _seg(rv, pb)
    if find_hyp:
        fig.givens = [("length", rv, pa, a), ("length", rv, pb, b)]
        fig.asked, fig.value = ("length", pa, pb), c
        fig.distractors = [a + b, math.sqrt(abs(a * a - b * b)) or a + 1, (a + b) / 2 + 1, c + 1, c - 1]
        known, unknown = [(rv, pa, a), (rv, pb, b)], (pa, pb)
        total, expr = a * a + b * b, f"{a}² + {b}²"
        sums = f"{a * a} + {b * b}"
    else:
        hyp_len = c if _exact(c, 0) else math.ceil(c)  # keep the given hypotenuse an integer
        if not _exact(c, 0):
            b = math.sqrt(hyp_len ** 2 - a * a)
            pts[pb] = (0.0, b)
            c = hyp_len
        c = round(c)
        fig.givens = [("length", pa, pb, c), ("length", rv, pa, a)]
        fig.asked, fig.value = ("length", rv, pb), b
        fig.distractors = [math.hypot(a, c), c - a, (c + a) / 2, b + 1, b - 1]
        known, unknown = [(pa, pb, c), (rv, pa, a)], (rv, pb)
        total, expr = c * c - a * a, f"{c}² - {a}²"
        sums = f"{c * c} - {a * a}"
    for p, q, v in known:
        fig.sides.append((p, q, fmt(v), ""))
    root = fmt(math.sqrt(total)) if _exact(math.sqrt(total), 0) else None
    tail = f"√{total} = " if root else f"√{total} ≈ "
    note = _rounding_note(fig.value, fig.decimals, ood)
    if ood:
        fig.hidden = tuple(names)
        fig.sides.append((*unknown, "x", ""))
        fig.question = f"Find x.{note}"
        fig.cot = (f"The triangle has a right angle, so by the Pythagorean theorem x = √({expr}) = √({sums}) = "
                   f"{tail}")
    else:
        name_u = _seg(*unknown)
        k1, k2 = (_seg(p, q) for p, q, _ in known)
        fig.question = (f"As shown in the figure, in right triangle ABC, ∠{rv} = 90°, {k1} = {fmt(known[0][2])} and "
                        f"{k2} = {fmt(known[1][2])}. " + _ask_length(rng, name_u) + note)
        if find_hyp:
            law = f"{hyp}² = {leg_a}² + {leg_b}², so {hyp} = √({expr})"
        else:
            law = f"{leg_a}² + {leg_b}² = {hyp}², so {name_u} = √({expr})"
        fig.cot = f"By the Pythagorean theorem, {law} = √({sums}) = {tail}"
    return fig


def _trigonometry(rng: random.Random, ood: bool) -> Figure:
    theta = _pick(rng, 25, 65)
    mode = rng.choice(("opp_from_hyp", "adj_from_hyp", "opp_from_adj", "hyp_from_opp"))
    t = math.radians(theta)
    if mode in ("opp_from_hyp", "adj_from_hyp"):
        hyp = rng.randint(6, 20)
        adj, opp = hyp * math.cos(t), hyp * math.sin(t)
    elif mode == "opp_from_adj":
        adj = rng.randint(5, 15)
        opp, hyp = adj * math.tan(t), adj / math.cos(t)
    else:
        opp = rng.randint(5, 15)
        hyp, adj = opp / math.sin(t), opp / math.tan(t)
    names = rng.sample("ABC", 3)  # the angle theta, the right angle, the third vertex
    va, vc, vb = names
    pts = {va: (0.0, 0.0), vc: (adj, 0.0), vb: (adj, opp)}
    fig = Figure("trigonometry", pts, "", 0, "", [("angle", vc, va, vb, theta)], (),
                 segments=[(va, vc), (vc, vb), (vb, va)], fills=[tuple(names)], right_angles=[(va, vc, vb)],
                 decimals=rng.choice((1, 2)) if ood else 2)
    s_hyp, s_adj, s_opp = (va, vb), (va, vc), (vc, vb)
    known, asked, fn = {
        "opp_from_hyp": ((s_hyp, hyp), s_opp, "sin"), "adj_from_hyp": ((s_hyp, hyp), s_adj, "cos"),
        "opp_from_adj": ((s_adj, adj), s_opp, "tan"), "hyp_from_opp": ((s_opp, opp), s_hyp, "sin"),
    }[mode]
    (kp, kq), kv = known
    fig.givens.append(("length", kp, kq, kv))
    fig.asked = ("length", *asked)
    fig.value = _dist(pts[asked[0]], pts[asked[1]])
    ratio = {"sin": math.sin(t), "cos": math.cos(t), "tan": math.tan(t)}[fn]
    other = {"sin": math.cos(t), "cos": math.sin(t), "tan": 1 / math.tan(t)}[fn]
    if mode == "hyp_from_opp":
        fig.distractors = [kv * ratio, kv / other, kv * other, fig.value + 2]
    else:
        fig.distractors = [kv * other, kv / ratio, kv * ratio * 2, fig.value + 2]
    fig.sides.append((kp, kq, fmt(kv), ""))
    fig.angles.append((vc, va, vb, _deg(theta)))
    value_text = f"{ratio:.4f}"
    rel = {"sin": "opposite / hypotenuse", "cos": "adjacent / hypotenuse", "tan": "opposite / adjacent"}[fn]
    note = _rounding_note(fig.value, fig.decimals, ood)
    if ood:
        fig.hidden = tuple(names)
        fig.sides.append((*asked, "x", ""))
        fig.question = f"Find x.{note}"
        if mode == "hyp_from_opp":
            fig.cot = (f"In the right triangle, {fn} {theta}° = {rel} = {kv} / x, so x = {kv} / {fn} {theta}° ≈ "
                       f"{kv} / {value_text} ≈ ")
        else:
            fig.cot = (f"In the right triangle, {fn} {theta}° = {rel}, so x = {kv} × {fn} {theta}° ≈ "
                       f"{kv} × {value_text} ≈ ")
    else:
        k_name, a_name = _seg(kp, kq), _seg(*asked)
        fig.question = (f"As shown in the figure, in right triangle ABC, ∠{vc} = 90°, ∠{va} = {theta}° and "
                        f"{k_name} = {kv}. " + _ask_length(rng, a_name) + note)
        num, den = {"sin": (_seg(*s_opp), _seg(*s_hyp)), "cos": (_seg(*s_adj), _seg(*s_hyp)),
                    "tan": (_seg(*s_opp), _seg(*s_adj))}[fn]
        if mode == "hyp_from_opp":
            fig.cot = (f"In right triangle ABC, {fn} {va} = {num} / {den}, so {a_name} = {k_name} / {fn} "
                       f"{theta}° ≈ {kv} / {value_text} ≈ ")
        else:
            fig.cot = (f"In right triangle ABC, {fn} {va} = {num} / {den}, so {a_name} = {k_name} × {fn} "
                       f"{theta}° ≈ {kv} × {value_text} ≈ ")
    return fig


def _rectangle(rng: random.Random, ood: bool) -> Figure:
    while True:
        w, h = rng.randint(3, 15), rng.randint(2, 12)
        if w != h and 1.2 <= max(w, h) / min(w, h) <= 3.0:
            break
    pts = {"A": (0.0, 0.0), "B": (float(w), 0.0), "C": (float(w), float(h)), "D": (0.0, float(h))}
    mode = rng.choice(("area", "perimeter", "diagonal"))
    fig = Figure("rectangle", pts, "", 0, "", [("length", "A", "B", w), ("length", "B", "C", h)], (),
                 segments=[("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")], fills=[("A", "B", "C", "D")],
                 right_angles=[("B", "A", "D")], decimals=rng.choice((1, 2)) if ood else 2)
    fig.sides = [("A", "B", fmt(w), ""), ("B", "C", fmt(h), "")]
    quad = ("A", "B", "C", "D")
    if mode == "area":
        fig.asked, fig.value = ("area", quad), w * h
        fig.distractors = [2 * (w + h), w * h / 2, w + h, w * h + w]
        body = f"the area of {'the rectangle' if ood else 'rectangle ABCD'}"
        fig.cot = f"The area of a rectangle is length × width = {w} × {h} = "
    elif mode == "perimeter":
        fig.asked, fig.value = ("perimeter", quad), 2 * (w + h)
        fig.distractors = [w * h, w + h, 2 * w + h, 4 * (w + h)]
        body = f"the perimeter of {'the rectangle' if ood else 'rectangle ABCD'}"
        fig.cot = f"The perimeter of a rectangle is 2 × (length + width) = 2 × ({w} + {h}) = "
    else:
        fig.segments.append(("A", "C"))
        fig.asked, fig.value = ("length", "A", "C"), math.hypot(w, h)
        fig.distractors = [w + h, math.sqrt(abs(w * w - h * h)), (w + h) / 2 + 1, math.hypot(w, h) + 1]
        body = "x" if ood else "the length of diagonal AC"
        total = w * w + h * h
        tail = f"√{total} = " if _exact(math.sqrt(total), 0) else f"√{total} ≈ "
        fig.cot = (f"Each angle of a rectangle is 90°, so by the Pythagorean theorem "
                   f"{'x' if ood else 'AC'} = √({w}² + {h}²) = √({w * w} + {h * h}) = {tail}")
    note = _rounding_note(fig.value, fig.decimals, ood)
    if ood:
        fig.hidden = quad
        if mode == "diagonal":
            fig.sides.append(("A", "C", "x", "D"))
            fig.question = f"The figure is a rectangle. Find x.{note}"
        else:
            fig.question = f"Find {body}.{note}"
    else:
        fig.question = f"As shown in the figure, in rectangle ABCD, AB = {w} and BC = {h}. Find {body}.{note}"
    return fig


def _triangle_area(rng: random.Random, ood: bool) -> Figure:
    while True:
        b, h = rng.randint(4, 16), rng.randint(3, 12)
        if 0.4 <= h / b <= 1.3:
            break
    foot = rng.uniform(0.25, 0.75) * b
    pts = {"B": (0.0, 0.0), "C": (float(b), 0.0), "D": (foot, 0.0), "A": (foot, float(h))}
    fig = Figure("triangle_area", pts, "", 0, "", [], (), segments=[("A", "B"), ("B", "C"), ("C", "A")],
                 dashed=[("A", "D")], fills=[("A", "B", "C")], right_angles=[("A", "D", "C")])
    area = b * h / 2
    reverse = rng.random() < 0.3  # given the area and the base, find the height
    if reverse:
        fig.givens = [("length", "B", "C", b)]
        fig.asked, fig.value = ("length", "A", "D"), h
        fig.distractors = [area / b, 2 * area, area - b, h + 2]
        fig.sides = [("B", "C", fmt(b), "A")]
    else:
        fig.givens = [("length", "B", "C", b), ("length", "A", "D", h)]
        fig.asked, fig.value = ("area", ("A", "B", "C")), area
        fig.distractors = [b * h, b + h, area + h, (b + h) / 2]
        fig.sides = [("B", "C", fmt(b), "A"), ("A", "D", fmt(h), "B")]
    if ood:
        fig.hidden = ("A", "B", "C", "D")
        if reverse:
            fig.sides.append(("A", "D", "x", "B"))
            fig.question = f"The area of the shaded triangle is {fmt(area)}. Find x."
            fig.cot = (f"The area of a triangle is base × height / 2, so {fmt(area)} = {b} × x / 2 and "
                       f"x = 2 × {fmt(area)} / {b} = ")
        else:
            fig.question = "Find the area of the shaded triangle."
            fig.cot = f"The area of a triangle is base × height / 2 = {b} × {h} / 2 = "
    elif reverse:
        fig.question = (f"As shown in the figure, in triangle ABC, AD ⊥ BC at D, BC = {b} and the area of "
                        f"triangle ABC is {fmt(area)}. " + _ask_length(rng, "AD"))
        fig.cot = (f"AD is the height on base BC, so the area is BC × AD / 2. Hence AD = 2 × area / BC = "
                   f"2 × {fmt(area)} / {b} = ")
    else:
        fig.question = (f"As shown in the figure, in triangle ABC, AD ⊥ BC at D, BC = {b} and AD = {h}. "
                        f"Find the area of triangle ABC.")
        fig.cot = f"AD is the height on base BC, so the area of triangle ABC is BC × AD / 2 = {b} × {h} / 2 = "
    return fig


def _similar_triangles(rng: random.Random, ood: bool) -> Figure:
    find_bc = rng.random() < 0.6  # else find DE; the given lengths are integers either way
    while True:
        p, q = rng.randint(2, 8), rng.randint(2, 8)
        ab = p + q
        if find_bc:
            m = rng.randint(2, 10)
            bc = m * ab / p
        else:
            bc = rng.randint(4, 16)
            m = bc * p / ab
        beta = _pick(rng, 50, 75)
        A = _pol(ab, beta)
        angle_c = measure_angle(A, (bc, 0.0), (0.0, 0.0))
        # a well-proportioned triangle, and a small triangle ADE big enough to carry its labels
        if 0.6 <= bc / ab <= 1.8 and angle_c >= 35 and 0.3 <= p / ab <= 0.75:
            break
    B, C = (0.0, 0.0), (bc, 0.0)
    D, E = _lerp(A, B, p / ab), _lerp(A, C, p / ab)
    pts = {"A": A, "B": B, "C": C, "D": D, "E": E}
    fig = Figure("similar_triangles", pts, "", 0, "", [("length", "A", "D", p), ("length", "D", "B", q)], (),
                 segments=[("A", "B"), ("B", "C"), ("C", "A"), ("D", "E")], fills=[("A", "D", "E")],
                 decimals=rng.choice((1, 2)) if ood else 2)
    fig.sides = [("A", "D", fmt(p), "C"), ("D", "B", fmt(q), "C")]
    if find_bc:
        fig.givens.append(("length", "D", "E", m))
        fig.sides.append(("D", "E", fmt(m), "B"))
        fig.asked, fig.value = ("length", "B", "C"), bc
        fig.distractors = [m * q / p, m * p / q, m + q, m * ab / q]
        unknown, known = ("B", "C"), (m, "DE")
    else:
        fig.givens.append(("length", "B", "C", bc))
        fig.sides.append(("B", "C", fmt(bc), "A"))
        fig.asked, fig.value = ("length", "D", "E"), m
        fig.distractors = [bc * q / ab, bc * p / q, bc - q, bc / 2]
        unknown, known = ("D", "E"), (bc, "BC")
    note = _rounding_note(fig.value, fig.decimals, ood)
    kv = fmt(known[0])
    if ood:
        fig.arrows = [("D", "E", 1), ("B", "C", 1)]
        fig.sides.append((*unknown, "x", "A" if unknown == ("B", "C") else "B"))
        fig.question = f"The segments marked with arrows are parallel. Find x.{note}"
        if find_bc:
            fig.cot = (f"The parallel segments make the small and the large triangle similar, so x / {kv} = "
                       f"({p} + {q}) / {p}, and x = {kv} × {ab} / {p} = ")
        else:
            fig.cot = (f"The parallel segments make the small and the large triangle similar, so x / {kv} = "
                       f"{p} / ({p} + {q}), and x = {kv} × {p} / {ab} = ")
    else:
        fig.question = (f"As shown in the figure, in triangle ABC, DE ∥ BC, AD = {p}, DB = {q} and "
                        f"{known[1]} = {kv}. " + _ask_length(rng, _seg(*unknown)) + note)
        lead = (f"DE ∥ BC, so triangle ADE is similar to triangle ABC and AD / AB = DE / BC. "
                f"AB = AD + DB = {p} + {q} = {ab}, so ")
        if find_bc:
            fig.cot = lead + f"BC = DE × AB / AD = {kv} × {ab} / {p} = "
        else:
            fig.cot = lead + f"DE = BC × AD / AB = {kv} × {p} / {ab} = "
    return fig


_BUILDERS = {
    "angle_sum": _angle_sum, "exterior_angle": _exterior_angle, "isosceles": _isosceles,
    "parallel_lines": _parallel_lines, "intersecting_lines": _intersecting_lines,
    "inscribed_angle": _inscribed_angle, "diameter_angle": _diameter_angle, "circle_measure": _circle_measure,
    "pythagoras": _pythagoras, "trigonometry": _trigonometry, "rectangle": _rectangle,
    "triangle_area": _triangle_area, "similar_triangles": _similar_triangles,
}


def _check_spec(spec: SceneSpec) -> None:
    if spec.style not in STYLES:
        raise ValueError(f"structure: unknown style {spec.style!r}; use one of {', '.join(STYLES)}")
    unknown = [k for k in spec.kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"structure: unknown problem kind(s) {', '.join(map(repr, unknown))}; "
                         f"use some of {', '.join(KINDS)}")
    if not 0.0 <= spec.choice_fraction <= 1.0:
        raise ValueError(f"structure: choice_fraction {spec.choice_fraction} is outside [0, 1]")
    if spec.image_size < 64:
        raise ValueError(f"structure: image_size {spec.image_size} is too small for readable labels; use >= 64")


def sample_figure(rng: random.Random, spec: SceneSpec = SceneSpec()) -> Figure:
    """Draw one problem kind (by the style's mix, or among ``spec.kinds``) and build its figure."""
    _check_spec(spec)
    kinds = spec.kinds or KINDS
    weights = [MIX[spec.style][KINDS.index(k)] for k in kinds]
    kind = rng.choices(kinds, weights=weights)[0]
    ood = spec.style == "ood"
    fig = _BUILDERS[kind](rng, ood)
    if ood:
        fig.rotation, fig.mirror = rng.uniform(0, 360), rng.random() < 0.5
        fig.palette = rng.randrange(len(PASTELS))
    else:
        fig.mirror = rng.random() < 0.5
    return fig


# ----------------------------------------------------------------------------------------------
# Questions, answers and chains of thought
# ----------------------------------------------------------------------------------------------

def _distractors(rng: random.Random, fig: Figure, answer: str) -> list[str]:
    """Three distinct wrong values: the kind's plausible mistakes first, then nearby numbers."""
    v = fig.value
    if fig.unit == "°":
        fallback = [180 - v, 90 - v, v / 2, 2 * v, v + 10, v - 10, v + 20, v - 20, v + 5, v + 30]
    else:
        fallback = [2 * v, v / 2, v + 1, v - 1, 1.5 * v, v + 2, v + 3, v * 0.75, v + 5, v * 3]
    plausible = list(fig.distractors)
    rng.shuffle(plausible)
    out: list[str] = []
    for x in plausible + fallback:
        if not math.isfinite(x) or x <= 0 or (fig.unit == "°" and x >= 180):
            continue
        text = fmt(x, fig.decimals)
        if text != answer and text not in out and text != "0":
            out.append(text)
        if len(out) == 3:
            break
    return out


def make_question(rng: random.Random, fig: Figure, spec: SceneSpec = SceneSpec()):
    """Return (problem, answer, cot): multiple choice with probability ``spec.choice_fraction``."""
    value = fmt(fig.value, fig.decimals)
    # OOD questions ask for x, a plain number; ID ones for a named angle, in degrees.
    unit = "" if spec.style == "ood" else fig.unit
    reasoning = fig.cot
    if not _exact(fig.value, fig.decimals) and reasoning.endswith(" = "):
        reasoning = reasoning[:-3] + " ≈ "  # the rounded answer is an approximation
    cot = f"{reasoning}{value}{unit}."
    if rng.random() >= spec.choice_fraction:
        return fig.question, value, cot
    options = _distractors(rng, fig, value)
    index = rng.randrange(4)
    options.insert(index, value)
    letter = LETTERS[index]
    items = [f"{L}. {o}{unit}" for L, o in zip(LETTERS, options)]
    if spec.style == "ood":
        problem = fig.question + "\n" + "\n".join(items)
    else:
        problem = fig.question + "\nChoices: " + " ".join(items)
    return problem, letter, f"{cot} This matches choice {letter}."


def choices_of(problem: str) -> dict[str, str]:
    """The choice texts of a generated problem by letter (empty when it has none)."""
    if not _CHOICES.search(problem):
        return {}
    start = problem.find("\n")
    return {m.group(1): m.group(2) for m in _CHOICE_ITEM.finditer(problem[start:])} if start >= 0 else {}


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled font (Aileron): the same glyphs on every machine, no system fonts needed.
    return ImageFont.load_default(size=size)


def _unit(dx: float, dy: float) -> tuple[float, float]:
    n = math.hypot(dx, dy)
    return (dx / n, dy / n) if n > 1e-12 else (0.0, 0.0)


def _direction(p, q) -> tuple[float, float]:
    return _unit(q[0] - p[0], q[1] - p[1])


def _ang(d) -> float:
    return math.atan2(d[1], d[0])


def _ang_gap(a: float, b: float) -> float:
    d = abs(a - b) % (2 * math.pi)
    return min(d, 2 * math.pi - d)


class _Canvas:
    """Pixel coordinates of a figure and the drawing primitives, at SUPERSAMPLE times the final size."""

    def __init__(self, fig: Figure, spec: SceneSpec):
        self.fig, self.style = fig, DRAW[spec.style]
        self.size = spec.image_size * SUPERSAMPLE
        k = spec.image_size / 224
        self.lw = max(1, round(self.style.line_px * SUPERSAMPLE * k))
        self.font = _font(max(8, round(self.style.font_frac * self.size)))
        self.fs = self.font.size
        self.stroke = max(1, round(self.fs * 0.03)) if self.style.bold else 0
        self.px = self._fit()
        self.img = Image.new("RGB", (self.size, self.size), WHITE)
        self.draw = ImageDraw.Draw(self.img)

    def _fit(self) -> dict[str, tuple[float, float]]:
        fig = self.fig
        rot = math.radians(fig.rotation)
        cos_r, sin_r = math.cos(rot), math.sin(rot)

        def move(p):
            x, y = (-p[0], p[1]) if fig.mirror else p
            return (x * cos_r - y * sin_r, x * sin_r + y * cos_r)

        moved = {n: move(p) for n, p in fig.points.items()}
        xs, ys = [p[0] for p in moved.values()], [p[1] for p in moved.values()]
        for centre, r in fig.circles:
            cx, cy = moved[centre]
            xs += [cx - r, cx + r]
            ys += [cy - r, cy + r]
        width, height = max(xs) - min(xs), max(ys) - min(ys)
        room = self.size * (1 - 2 * self.style.margin)
        scale = room / max(width, height, 1e-9)
        mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        half = self.size / 2
        self.scale = scale
        return {n: (half + (x - mx) * scale, half - (y - my) * scale) for n, (x, y) in moved.items()}

    # -- primitives --------------------------------------------------------------------------
    def line(self, p, q, color=BLACK, width=None) -> None:
        w = width or self.lw
        self.draw.line([p, q], fill=color, width=w)
        if w >= 4:  # round caps, so thick segments meet without notches
            for x, y in (p, q):
                self.draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=color)

    def dashed(self, p, q) -> None:
        length = _dist(p, q)
        dash, gap = 0.028 * self.size, 0.018 * self.size
        t = 0.0
        while t < length:
            a, b = t / length, min(t + dash, length) / length
            self.line(_lerp(p, q, a), _lerp(p, q, b))
            t += dash + gap

    def text(self, centre, text: str, color) -> None:
        self.draw.text(centre, text, font=self.font, fill=color, anchor="mm",
                       stroke_width=self.stroke, stroke_fill=color)

    def half_extent(self, text: str) -> tuple[float, float]:
        left, top, right, bottom = self.font.getbbox(text, anchor="mm", stroke_width=self.stroke)
        return (right - left) / 2, (bottom - top) / 2

    def label_at(self, anchor, direction, text: str, gap: float, color) -> None:
        hw, hh = self.half_extent(text)
        reach = gap + hw * abs(direction[0]) + hh * abs(direction[1])
        self.text((anchor[0] + direction[0] * reach, anchor[1] + direction[1] * reach), text, color)


def _occupied(fig: Figure, px: dict, scale: float, name: str, angle_dirs: dict) -> list[float]:
    """Directions (radians, pixel axes) already taken around a point: lines, circles, angle labels."""
    p = px[name]
    taken = []
    for a, b in fig.segments + fig.dashed:
        pa, pb = px[a], px[b]
        if name in (a, b):
            other = pb if name == a else pa
            taken.append(_ang(_direction(p, other)))
            continue
        # a point lying inside a segment sees it in both directions
        seg = _dist(pa, pb)
        if seg > 0 and abs(_dist(pa, p) + _dist(p, pb) - seg) < 1e-6 * seg + 1e-6:
            taken += [_ang(_direction(p, pa)), _ang(_direction(p, pb))]
    for centre, r in fig.circles:
        c = px[centre]
        if centre != name and abs(_dist(c, p) - r * scale) < 1e-6 * r * scale + 1e-6:
            inward = _direction(p, c)
            taken += [_ang(inward), _ang((-inward[1], inward[0])), _ang((inward[1], -inward[0]))]
    taken += angle_dirs.get(name, [])
    return taken


def _free_direction(taken: list[float], prefer: float) -> tuple[float, float]:
    best, best_key = None, None
    for i in range(72):
        a = i * math.pi / 36
        clearance = min((_ang_gap(a, t) for t in taken), default=math.pi)
        key = (round(clearance, 3), -_ang_gap(a, prefer))
        if best_key is None or key > best_key:
            best, best_key = a, key
    return (math.cos(best), math.sin(best))


def _clearance(centre, hw: float, hh: float, strokes) -> float:
    """Smallest gap between a text box (centre, half extents) and the strokes; negative when they cross."""
    room = math.inf
    for kind, a, b in strokes:
        if kind == "seg":
            dx, dy = b[0] - a[0], b[1] - a[1]
            t = ((centre[0] - a[0]) * dx + (centre[1] - a[1]) * dy) / max(dx * dx + dy * dy, 1e-12)
            near = _lerp(a, b, min(1.0, max(0.0, t)))
        else:
            u = _direction(a, centre)
            near = (a[0] + u[0] * b, a[1] + u[1] * b)
        d = _dist(near, centre)
        u = _direction(near, centre)
        room = min(room, d - (hw * abs(u[0]) + hh * abs(u[1])))
    return room


def _box_room(centre, hw: float, hh: float, boxes) -> float:
    """Smallest gap between a text box and other text boxes; negative when they overlap."""
    room = math.inf
    for (x, y), w, h in boxes:
        room = min(room, max(abs(centre[0] - x) - hw - w, abs(centre[1] - y) - hh - h))
    return room


def _free_stretch(px: dict, a: str, b: str, skip=()) -> tuple[float, float]:
    """The longest stretch of segment ab free of other points (but ``skip``), as fractions from a to b."""
    P, Q = px[a], px[b]
    length = _dist(P, Q)
    stops = [0.0, 1.0]
    for n, R in px.items():
        if n not in (a, b, *skip) and length > 0 and abs(_dist(P, R) + _dist(R, Q) - length) < 1e-6 * length + 1e-6:
            stops.append(_dist(P, R) / length)
    stops.sort()
    return max(zip(stops, stops[1:]), key=lambda s: s[1] - s[0])


def _free_middle(px: dict, a: str, b: str, hidden=()) -> float:
    """Where along segment ab to put its label: the middle of its longest stretch free of other lettered
    points (an unlettered point such as the foot of an altitude does not move it off the middle)."""
    lo, hi = _free_stretch(px, a, b, hidden)
    return (lo + hi) / 2


def render(fig: Figure, spec: SceneSpec = SceneSpec()) -> Image.Image:
    """Draw the figure on a white square canvas; deterministic for a given figure and spec."""
    _check_spec(spec)
    cv = _Canvas(fig, spec)
    px, st, size = cv.px, cv.style, cv.size
    ink, value_ink = BLACK, st.value_color

    if st.fill:
        shade = PASTELS[fig.palette % len(PASTELS)]
        for centre, r in fig.circles:
            (cx, cy), rr = px[centre], r * cv.scale
            cv.draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=tuple(min(255, c + 25) for c in shade))
        for poly in fig.fills:
            cv.draw.polygon([px[n] for n in poly], fill=shade)
    for centre, r in fig.circles:
        (cx, cy), rr = px[centre], r * cv.scale
        cv.draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=ink, width=cv.lw)
    for a, b in fig.segments:
        cv.line(px[a], px[b])
    for a, b in fig.dashed:
        cv.dashed(px[a], px[b])

    mark = 0.045 * size
    for p, v, q in fig.right_angles:
        V = px[v]
        up, uq = _direction(V, px[p]), _direction(V, px[q])
        s = min(mark, 0.3 * _dist(V, px[p]), 0.3 * _dist(V, px[q]))
        c1 = (V[0] + up[0] * s, V[1] + up[1] * s)
        c3 = (V[0] + uq[0] * s, V[1] + uq[1] * s)
        c2 = (c1[0] + uq[0] * s, c1[1] + uq[1] * s)
        cv.draw.line([c1, c2, c3], fill=ink, width=max(1, cv.lw * 2 // 3))

    angle_dirs: dict[str, list[float]] = {}
    angle_labels = []
    placed: list = []  # text boxes of the angle labels so far: (centre, half width, half height)
    strokes = [("seg", px[a], px[b]) for a, b in fig.segments + fig.dashed]
    strokes += [("circle", px[c], r * cv.scale) for c, r in fig.circles]
    arc_r = 0.06 * size
    for p, v, q, text in fig.angles:
        V = px[v]
        up, uq = _direction(V, px[p]), _direction(V, px[q])
        limit = min(_dist(V, px[p]), _dist(V, px[q]))
        r = min(arc_r, 0.3 * limit)
        a1, a2 = math.degrees(_ang(up)), math.degrees(_ang(uq))
        span = (a2 - a1) % 360
        start, end = (a1, a1 + span) if span <= 180 else (a2, a2 + 360 - span)
        cv.draw.arc((V[0] - r, V[1] - r, V[0] + r, V[1] + r), start, end, fill=ink,
                    width=max(1, cv.lw * 2 // 3))
        bis = _unit(up[0] + uq[0], up[1] + uq[1])
        if bis == (0.0, 0.0):
            bis = (-up[1], up[0])
        angle_dirs.setdefault(v, []).append(_ang(bis))
        if text:
            # Walk out along the bisector from just past the arc to the first spot clear of every stroke
            # and of the labels so far, staying nearer this vertex than any other labelled one (so that
            # each value reads as belonging to its own angle).
            hw, hh = cv.half_extent(text)
            first = r + 0.2 * cv.fs + hw * abs(bis[0]) + hh * abs(bis[1])
            last = max(0.85 * limit, first)
            rivals = [px[w] for _, w, _, t in fig.angles if t and w != v]
            best, best_room = first, -math.inf
            for i in range(60):
                reach = first + i * 0.08 * cv.fs
                spot = (V[0] + bis[0] * reach, V[1] + bis[1] * reach)
                if reach > last or any(_dist(spot, w) < _dist(spot, V) for w in rivals):
                    break
                room = min(_clearance(spot, hw, hh, strokes), _box_room(spot, hw, hh, placed))
                if room >= 0.12 * cv.fs + cv.lw / 2:
                    best = reach
                    break
                if room > best_room:
                    best, best_room = reach, room
            spot = (V[0] + bis[0] * best, V[1] + bis[1] * best)
            placed.append((spot, hw, hh))
            angle_labels.append((spot, text))
    for p, v, q in fig.right_angles:
        V = px[v]
        bis = _unit(*(a + b for a, b in zip(_direction(V, px[p]), _direction(V, px[q]))))
        angle_dirs.setdefault(v, []).append(_ang(bis))

    for a, b, n in fig.ticks:
        P, Q = px[a], px[b]
        d = _direction(P, Q)
        nrm = (-d[1], d[0])
        mid = _lerp(P, Q, 0.5)
        half = 0.03 * size
        for i in range(n):
            off = (i - (n - 1) / 2) * 0.02 * size
            c = (mid[0] + d[0] * off, mid[1] + d[1] * off)
            cv.line((c[0] - nrm[0] * half, c[1] - nrm[1] * half), (c[0] + nrm[0] * half, c[1] + nrm[1] * half))
    for a, b, n in fig.arrows:
        P, Q = px[a], px[b]
        d = _direction(P, Q)
        nrm = (-d[1], d[0])
        s = 0.03 * size
        lo, hi = _free_stretch(px, a, b)
        for i in range(n):
            tip = _lerp(P, Q, lo + (hi - lo) * (0.3 + 0.04 * i))
            back = (tip[0] - d[0] * s, tip[1] - d[1] * s)
            cv.draw.line([(back[0] + nrm[0] * s * 0.7, back[1] + nrm[1] * s * 0.7), tip,
                          (back[0] - nrm[0] * s * 0.7, back[1] - nrm[1] * s * 0.7)], fill=ink, width=cv.lw)

    shown = [n for n in fig.points if n not in fig.hidden]
    if st.dots:
        dot = 1.2 * cv.lw
        for n in shown:
            x, y = px[n]
            cv.draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=ink)
    for centre, _ in fig.circles:  # the centre of a circle always gets a dot
        x, y = px[centre]
        dot = max(1.2 * cv.lw, 0.008 * size)
        cv.draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=ink)

    centroid = (sum(p[0] for p in px.values()) / len(px), sum(p[1] for p in px.values()) / len(px))
    gap = 0.25 * cv.fs + cv.lw
    for a, b, text, away in fig.sides:
        P, Q = px[a], px[b]
        d = _direction(P, Q)
        nrm = (-d[1], d[0])
        mid = _lerp(P, Q, _free_middle(px, a, b, fig.hidden))
        ref = px[away] if away else centroid
        if (ref[0] - mid[0]) * nrm[0] + (ref[1] - mid[1]) * nrm[1] > 0:
            nrm = (-nrm[0], -nrm[1])
        cv.label_at(mid, nrm, text, gap, value_ink)
    for centre, text in angle_labels:
        cv.text(centre, text, value_ink)
    for n in shown:
        P = px[n]
        prefer = _ang(_direction(centroid, P)) if _dist(centroid, P) > 1 else -math.pi * 3 / 4
        direction = _free_direction(_occupied(fig, px, cv.scale, n, angle_dirs), prefer)
        cv.label_at(P, direction, n, gap, st.point_color)
    # BOX = exact area average for the integer factor; LANCZOS rings into a light halo at edges.
    return cv.img.resize((spec.image_size, spec.image_size), Image.BOX)


# ----------------------------------------------------------------------------------------------
# Dataset writing and loading
# ----------------------------------------------------------------------------------------------

def generate(out_dir, n: int, seed: int, spec: SceneSpec = SceneSpec(), split: str = "train") -> pathlib.Path:
    """Write n records to out_dir/{split}.json and images to out_dir/images/{split}/.

    Deterministic: the same (n, seed, spec, split) gives byte-identical JSON and PNGs. Records are
    drawn from one sequential stream, so the first m records of a size-n run equal a size-m run.
    """
    _check_spec(spec)
    out = pathlib.Path(out_dir)
    image_dir = out / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = []
    for i in range(n):
        fig = sample_figure(rng, spec)
        problem, answer, cot = make_question(rng, fig, spec)
        rel = f"images/{split}/{i:06d}.png"
        render(fig, spec).save(out / rel, format="PNG")
        records.append({"id": f"{NAME}-{split}-{i:06d}", "image": rel, "problem": problem,
                        "answer": answer, "cot": cot})
    json_path = out / f"{split}.json"
    _write_json_atomic(json_path, records)
    return json_path


def load(json_path, image_root=None) -> list[dict]:
    """Read a Reason-RFT JSON file (GeoMath / Geometry3K, or the synthetic ones); see ``counting.load``.

    The schema and its checks are the same for every task family, so this is the counting loader:
    absolute image paths, ``answer`` (or ``solution``) with any answer tag stripped, ``cot`` defaulting
    to "", and one-line ValueErrors naming the file, the record and the fix.
    """
    return _load_records(json_path, image_root)


# ----------------------------------------------------------------------------------------------
# Prompt, target text and answer check
# ----------------------------------------------------------------------------------------------

def is_choice(problem: str, answer=None) -> bool:
    """Whether a problem is multiple choice: by its answer when given (a letter A-D), else by its text."""
    if answer is not None:
        return str(answer).strip() in tuple(LETTERS)
    return bool(_CHOICES.search(problem))


def prompt(problem: str, style: str = "cot", answer=None) -> str:
    """The user-turn text: cot (think/answer instruction), bare (zero-shot) or ans (question only).

    Multiple-choice problems (choices "A. .. B. .. C. .. D. .." in the text, or ``answer`` a letter A-D)
    get the paper's letter instruction; the others its number instruction.
    """
    choice = is_choice(problem, answer)
    if style == "cot":
        return f"{problem} {CHOICE_INSTRUCTION if choice else NUMBER_INSTRUCTION}"
    if style == "bare":
        return f"{problem} {BARE_CHOICE_INSTRUCTION if choice else BARE_NUMBER_INSTRUCTION}"
    if style == "ans":
        return problem
    raise ValueError(f"structure.prompt: unknown style {style!r}; use one of {', '.join(STYLES_PROMPT)}")


def target(record: dict, style: str = "cot") -> str:
    """The SFT assistant text: cot -> think/answer tags; ans -> the answer alone (tasks/schema.py)."""
    return schema.target(record, style, NAME)


def verify(text: str, answer: str) -> float:
    """The as-trained accuracy check: answer-tag strings equal (math-verify only without a tag)."""
    return rewards.match_answer(text, answer)
