"""Plane-geometry problems for structure perception: thirteen figure kinds, built exactly.

Each kind (``KINDS``) is a builder ``(rng, ood) -> Figure``: it picks the measures, places points whose
coordinates realise them exactly, and writes down what is given (``Figure.givens``), what is asked
(``Figure.asked``), the exact answer, a few plausible wrong answers, the question text and the chain of
thought (the rule, the formula and the numbers, ending where the rounded answer goes). It also lists
what the diagram shows: segments, circles, shaded polygons, angle arcs with their labels, right-angle,
equal-length and parallel marks, and side labels.

``ood`` selects the Geometry3K-like phrasing: the givens are written on the figure, the unknown is
marked ``x`` and asked as "Find x.", and answers may be rounded to a tenth. Otherwise questions follow
GeoQA ("As shown in the figure, in triangle ABC, ∠A = 50° ... Find ∠C."). ``sample_figure`` draws a
kind by the style's mix and the figure's pose (rotation, mirroring, fill colour) for drawing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from ...options import doc


STYLES = ("id", "ood")
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
PALETTES = 5  # fill colour schemes of the OOD drawing; each figure gets one


@dataclass(frozen=True)
class SceneSpec:
    """The generator's settings; the documented ones are the `data.structure` section of a run's config."""
    image_size: int = doc(224, "geometry diagrams: square image side in pixels", ge=64, le=2048)
    style: str = "id"            # "id" (GeoMath-like) or "ood" (Geometry3K-like): drawing and phrasing
    choice_fraction: float = doc(0.5, "geometry: share of multiple-choice (A-D) problems; the rest are numeric", ge=0, le=1)
    kinds: tuple[str, ...] = ()  # restrict to these problem kinds (see KINDS); empty: the style's mix


def check_spec(spec: SceneSpec) -> None:
    """One-line ValueErrors for settings the generator cannot honour."""
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


@dataclass
class Figure:
    """One problem's construction: coordinates (math axes, y up), what is drawn, given and asked.

    ``givens`` entries: ``("angle", p, v, q, degrees)`` for the angle p-v-q, ``("length", p, q, value)``.
    ``asked``: ``("angle", p, v, q)``, ``("length", p, q)``, ``("area", names)``, ``("perimeter", names)``,
    ``("circle_area", centre, point_on_circle)`` or ``("circumference", centre, point_on_circle)``.
    """

    kind: str
    points: dict[str, tuple[float, float]]
    question: str = ""
    value: float = 0             # the exact answer
    cot: str = ""                # the reasoning; the rounded answer is appended when the question is made
    givens: list[tuple] = field(default_factory=list)
    asked: tuple = ()
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
    palette: int = 0             # which of the PALETTES fill colours the OOD drawing uses


# ----------------------------------------------------------------------------------------------
# Numbers and words
# ----------------------------------------------------------------------------------------------

def fmt(value: float, decimals: int = 2) -> str:
    """``value`` rounded half-up to ``decimals`` places, trailing zeros dropped: 70, 22.5, 11.4, 6.88."""
    text = str(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _deg(value: float) -> str:
    return f"{fmt(value)}°"


def is_exact(value: float, decimals: int) -> bool:
    """Whether ``value`` needs no rounding at ``decimals`` places."""
    scaled = value * 10 ** decimals
    return abs(scaled - round(scaled)) < 1e-6


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


def lerp(p, q, t: float) -> tuple[float, float]:
    return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t)


def dist(p, q) -> float:
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
# What the builders share: rounding, and the labels of angle problems
# ----------------------------------------------------------------------------------------------

def _decimals(rng: random.Random, ood: bool) -> int:
    """Places a non-integer answer is rounded to: a tenth or a hundredth in the OOD style, two in the ID one."""
    return rng.choice((1, 2)) if ood else 2


def _rounding_note(fig: Figure, ood: bool) -> str:
    """The question's rounding instruction; empty when the answer is exact at the figure's places."""
    if is_exact(fig.value, fig.decimals):
        return ""
    if ood:
        return " Round to the nearest tenth." if fig.decimals == 1 else " Round to the nearest hundredth."
    return " Round the answer to two decimal places."


def _label_angles(fig: Figure, ood: bool) -> None:
    """Write each given angle's measure at its arc; in the OOD style also mark the asked angle x."""
    fig.angles += [(p, v, q, _deg(degrees)) for _, p, v, q, degrees in fig.givens]
    if ood:
        fig.angles.append((*fig.asked[1:], "x°"))


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
    pts = dict(zip(names, _triangle_on_base(10.0, a, b)))
    measures = dict(zip(names, (a, b, c)))
    asked = names[rng.randrange(3)]
    given = sorted(n for n in names if n != asked)

    def at(v):  # the interior angle at vertex v, as p-v-q
        p, q = (n for n in names if n != v)
        return p, v, q

    fig = Figure("angle_sum", pts, value=measures[asked], givens=[("angle", *at(v), measures[v]) for v in given],
                 asked=("angle", *at(asked)), unit="°",
                 segments=[(names[0], names[1]), (names[1], names[2]), (names[2], names[0])], fills=[tuple(names)])
    _label_angles(fig, ood)
    g1, g2 = (measures[v] for v in given)
    fig.distractors = [180 - g1, 180 - g2, g1 + g2, abs(g1 - g2), 90 - fig.value]
    if ood:
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
    fig = Figure("exterior_angle", pts, unit="°", segments=[("A", "B"), ("A", "C"), ("B", "D")],
                 fills=[("A", "B", "C")])
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
    _label_angles(fig, ood)
    if ood:
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
    fig = Figure("isosceles", pts, unit="°", segments=[("A", "B"), ("B", "C"), ("C", "A")], fills=[("A", "B", "C")],
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
    _label_angles(fig, ood)
    if ood:
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
    fig = Figure("parallel_lines", pts, value=ans, givens=[("angle", *angle(x1, s1, t1), given)],
                 asked=("angle", *angle(*second)), unit="°", segments=[("A", "B"), ("C", "D"), ("E", "F")],
                 hidden=("G", "H"))
    fig.distractors = [180 - ans, abs(90 - ans), ans / 2, 2 * ans]
    equal = ans == given and relation != "linear pair"
    rule = {"corresponding": "corresponding angles", "alternate interior": "alternate interior angles",
            "alternate exterior": "alternate exterior angles", "same-side interior": "same-side interior angles",
            "vertical": "vertical angles", "linear pair": "a linear pair"}[relation]
    verb = "form" if relation == "linear pair" else "are"
    if ood:
        fig.hidden = tuple(pts)
        fig.arrows = [("A", "B", 1), ("C", "D", 1)]
        _label_angles(fig, ood)
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
    fig = Figure("intersecting_lines", pts, givens=[("angle", "A", "O", "C", a)], unit="°",
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
    _label_angles(fig, ood)
    if ood:
        fig.hidden = tuple(pts)
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
    fig = Figure("inscribed_angle", pts, unit="°", circles=[("O", r)],
                 segments=[("O", "A"), ("O", "B"), ("C", "A"), ("C", "B")])
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
    _label_angles(fig, ood)
    if ood:
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
    fig = Figure("diameter_angle", pts, value=90 - given, givens=[("angle", *given_at, given)],
                 asked=("angle", *asked_at), unit="°", circles=[("O", r)],
                 segments=[("A", "B"), ("A", "C"), ("B", "C")], fills=[("A", "B", "C")])
    fig.distractors = [given, 180 - given, 90 + given, 2 * given]
    _label_angles(fig, ood)
    name_g, name_a = "∠" + "".join(given_at), "∠" + "".join(asked_at)
    if ood:
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
    fig = Figure("circle_measure", pts, circles=[("O", radius)], hidden=("P", "Q"),
                 decimals=_decimals(rng, ood))
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
    note = _rounding_note(fig, ood)
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
    fig = Figure("pythagoras", pts, segments=[(rv, pa), (pa, pb), (pb, rv)],
                 fills=[tuple(names)], right_angles=[(pa, rv, pb)], decimals=_decimals(rng, ood))
    hyp, leg_a, leg_b = _seg(pa, pb), _seg(rv, pa), _seg(rv, pb)
    if find_hyp:
        fig.givens = [("length", rv, pa, a), ("length", rv, pb, b)]
        fig.asked, fig.value = ("length", pa, pb), c
        fig.distractors = [a + b, math.sqrt(abs(a * a - b * b)) or a + 1, (a + b) / 2 + 1, c + 1, c - 1]
        unknown = (pa, pb)
        total, expr = a * a + b * b, f"{a}² + {b}²"
        sums = f"{a * a} + {b * b}"
    else:
        hyp_len = c if is_exact(c, 0) else math.ceil(c)  # keep the given hypotenuse an integer
        if not is_exact(c, 0):
            b = math.sqrt(hyp_len ** 2 - a * a)
            pts[pb] = (0.0, b)
            c = hyp_len
        c = round(c)
        fig.givens = [("length", pa, pb, c), ("length", rv, pa, a)]
        fig.asked, fig.value = ("length", rv, pb), b
        fig.distractors = [math.hypot(a, c), c - a, (c + a) / 2, b + 1, b - 1]
        unknown = (rv, pb)
        total, expr = c * c - a * a, f"{c}² - {a}²"
        sums = f"{c * c} - {a * a}"
    known = [given[1:] for given in fig.givens]
    for p, q, v in known:
        fig.sides.append((p, q, fmt(v), ""))
    root = fmt(math.sqrt(total)) if is_exact(math.sqrt(total), 0) else None
    tail = f"√{total} = " if root else f"√{total} ≈ "
    note = _rounding_note(fig, ood)
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
    fig = Figure("trigonometry", pts, givens=[("angle", vc, va, vb, theta)],
                 segments=[(va, vc), (vc, vb), (vb, va)], fills=[tuple(names)], right_angles=[(va, vc, vb)],
                 decimals=_decimals(rng, ood))
    s_hyp, s_adj, s_opp = (va, vb), (va, vc), (vc, vb)
    known, asked, fn = {
        "opp_from_hyp": ((s_hyp, hyp), s_opp, "sin"), "adj_from_hyp": ((s_hyp, hyp), s_adj, "cos"),
        "opp_from_adj": ((s_adj, adj), s_opp, "tan"), "hyp_from_opp": ((s_opp, opp), s_hyp, "sin"),
    }[mode]
    (kp, kq), kv = known
    fig.givens.append(("length", kp, kq, kv))
    fig.asked = ("length", *asked)
    fig.value = dist(pts[asked[0]], pts[asked[1]])
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
    note = _rounding_note(fig, ood)
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
    fig = Figure("rectangle", pts, givens=[("length", "A", "B", w), ("length", "B", "C", h)],
                 segments=[("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")], fills=[("A", "B", "C", "D")],
                 right_angles=[("B", "A", "D")], decimals=_decimals(rng, ood))
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
        tail = f"√{total} = " if is_exact(math.sqrt(total), 0) else f"√{total} ≈ "
        fig.cot = (f"Each angle of a rectangle is 90°, so by the Pythagorean theorem "
                   f"{'x' if ood else 'AC'} = √({w}² + {h}²) = √({w * w} + {h * h}) = {tail}")
    note = _rounding_note(fig, ood)
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
    fig = Figure("triangle_area", pts, segments=[("A", "B"), ("B", "C"), ("C", "A")],
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
    D, E = lerp(A, B, p / ab), lerp(A, C, p / ab)
    pts = {"A": A, "B": B, "C": C, "D": D, "E": E}
    fig = Figure("similar_triangles", pts, givens=[("length", "A", "D", p), ("length", "D", "B", q)],
                 segments=[("A", "B"), ("B", "C"), ("C", "A"), ("D", "E")], fills=[("A", "D", "E")],
                 decimals=_decimals(rng, ood))
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
    note = _rounding_note(fig, ood)
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


def sample_figure(rng: random.Random, spec: SceneSpec = SceneSpec()) -> Figure:
    """Draw one problem kind (by the style's mix, or among ``spec.kinds``) and build its figure."""
    check_spec(spec)
    kinds = spec.kinds or KINDS
    weights = [MIX[spec.style][KINDS.index(k)] for k in kinds]
    kind = rng.choices(kinds, weights=weights)[0]
    ood = spec.style == "ood"
    fig = _BUILDERS[kind](rng, ood)
    if ood:
        fig.rotation, fig.mirror = rng.uniform(0, 360), rng.random() < 0.5
        fig.palette = rng.randrange(PALETTES)
    else:
        fig.mirror = rng.random() < 0.5
    return fig
