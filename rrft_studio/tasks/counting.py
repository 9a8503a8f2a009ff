"""Visual counting: CLEVR-Math-style scenes, questions, prompts and SFT targets.

Reason-RFT's counting family trains on CLEVR-Math: 3-D rendered CLEVR scenes with questions such as
"Subtract all red cubes. How many objects are left?". Nothing can be downloaded on this project's
machines, so this module offers two things:

* ``generate``: a seeded, deterministic synthetic generator that writes records in exactly the
  Reason-RFT JSON schema (``id``, ``image``, ``problem``, ``answer``, ``cot``) plus PNG images.
  It departs from the real data on purpose: scenes are drawn flat in 2-D with PIL (a square for a
  cube, a circle for a sphere, a rectangle with an elliptical cap for a cylinder; metal is shown by
  a white highlight and a light outline) instead of ray-traced 3-D renders with perspective,
  shadows and occlusion, and the chain of thought is a short template built from the scene facts
  rather than GPT-4o distillations. It is meant for fast, small-model runs and for tests.
* ``load``: a loader for real Reason-RFT JSON files (or the synthetic ones), ``prompt`` for the
  instruction text and ``target`` for the SFT target text.
"""

from __future__ import annotations

import pathlib
import random
from collections import Counter
import dataclasses
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw

from ..options import doc
from . import consistency, schema
from .clevr import PALETTE
from .family import TaskFamily


NAME = "counting"
# The released code's prompts, word for word (utils/prompts.py, the evaluation script): CoT-SFT, GRPO and CoT
# evaluation append INSTRUCTION; zero-shot evaluation puts ZERO_SHOT before the question; ANS-SFT and its
# evaluation send the bare question.
INSTRUCTION = (
    "Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags."
)
ZERO_SHOT = "Please answer in Arabic numerals. For example, if the answer is 3, please respond with 3."
# Checkers (tasks/__init__.py: CHECKERS): the training reward, and the evaluation scorers by name.
REWARD = "match"
SCORERS = {"paper": "math_verify", "strict": "match"}
# Text tokens of a prompt plus its CoT target, for the memory preflight when the data is not read.
PROMPT_TOKENS = 60
# The public dataset's files (data.root): the training file and one test file per evaluation split.
DATASET = {"train": "A3-Visual-Counting-train-35k-cot.json",
           "id": "Visual-Counting-id-test-1k.json", "ood": "Visual-Counting-ood-test-1k.json"}

BACKGROUND = (214, 214, 214)

# Half-extent of an object's bounding box as a fraction of the canvas side. Large/small = 1.71, so
# the two sizes are told apart at a glance, while six large objects still fit in the canvas.
RADIUS_FRACTION = {"small": 0.07, "large": 0.12}
GAP_FRACTION = 0.035      # free space kept between objects and to the border, so none touch
SUPERSAMPLE = 4           # draw large, then downscale: anti-aliased edges without extra dependencies
PRESENT_PAIR_SHARE = 0.85  # share of subtract questions that name something in the scene (k >= 1)
# Which attribute a subtract or add question names beside the shape: colour+shape is the CLEVR-Math
# staple; size and material add variety.
ATTRIBUTE_KINDS = (("color", 0.7), ("size", 0.15), ("material", 0.15))
MAX_ADDED = 3             # "Add k ..." questions add 1 to MAX_ADDED objects
MAX_OBJECTS = 10          # CLEVR's most; more do not fit reliably at these radii
# Super-CLEVR's five vehicle categories: the out-of-domain split's objects, unseen in training.
VEHICLES = ("car", "bus", "motorbike", "aeroplane", "bicycle")


@dataclass(frozen=True)
class SceneSpec:
    """The generator's settings; the documented ones are the `data.counting` section of a run's config."""
    image_size: int = doc(112, "counting scenes: square image side in pixels", ge=28, le=2048)
    min_objects: int = doc(1, "counting scenes: fewest objects", ge=1, le=MAX_OBJECTS)
    max_objects: int = doc(6, "counting scenes: most objects", ge=1, le=MAX_OBJECTS)
    shapes: tuple[str, ...] = ("cube", "sphere", "cylinder")
    colors: tuple[str, ...] = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
    sizes: tuple[str, ...] = ("small", "large")
    materials: tuple[str, ...] = ("rubber", "metal")
    subtract_fraction: float = doc(0.5, "counting: share of 'Subtract all X. How many objects are left?' questions", ge=0, le=1)
    add_fraction: float = doc(0.2, "counting: share of 'Add k X. How many objects exist?' questions (the rest ask for the total)", ge=0, le=1)
    # "random": anywhere, as in CLEVR. "grid": one object per grid_cell x grid_cell cell; with 28 pixels
    # (14-pixel patches merged 2x2) each of the model's visual tokens sees at most one object, which lets
    # a tiny model learn to count within minutes on a CPU.
    layout: Literal["random", "grid"] = doc("random", "counting scenes: objects anywhere (CLEVR) or one per 28-pixel cell, i.e. per visual token (learnable by a tiny model)")
    grid_cell: int = 28


def check_options(spec) -> None:
    """One-line ValueErrors for settings the generator cannot honour (`spec`: SceneSpec or its config section)."""
    if not 1 <= spec.min_objects <= spec.max_objects:
        raise ValueError("data.counting: need 1 <= min_objects <= max_objects")
    if spec.image_size < 28:
        raise ValueError(f"data.counting.image_size={spec.image_size} is too small: use at least 28 pixels")
    if not (spec.subtract_fraction >= 0 and spec.add_fraction >= 0 and spec.subtract_fraction + spec.add_fraction <= 1):
        raise ValueError("data.counting: subtract_fraction and add_fraction are shares of the questions: "
                         "each >= 0, sum <= 1")
    cells = (spec.image_size // 28) ** 2
    if spec.layout == "grid" and not (spec.max_objects <= cells and spec.image_size <= 116):
        raise ValueError(f"data.counting.layout=grid fits at most {cells} objects and images up to 116 pixels: "
                         "lower data.counting.max_objects / image_size or use layout=random")


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    material: str
    x: float  # centre, pixels
    y: float


# Evaluation splits, named as the paper's benchmarks. As Super-CLEVR is to CLEVR-Math, the OOD split keeps
# the colours, sizes, materials, layout and questions but replaces the objects: vehicles instead of cubes,
# spheres and cylinders.
BENCHMARKS = {"id": "CLEVR-Math", "ood": "Super-CLEVR"}


def split_spec(spec: SceneSpec, split: str) -> SceneSpec:
    """The generator settings of a split ('train', 'id' or 'ood')."""
    if split in ("train", "id"):
        return spec
    return dataclasses.replace(spec, shapes=VEHICLES)


def plural(shape: str) -> str:
    return f"{shape}es" if shape.endswith("s") else f"{shape}s"


def _named(k: int, value: str, shape: str) -> str:
    return f"{k} {value} {shape if k == 1 else plural(shape)}"


# ----------------------------------------------------------------------------------------------
# Scene sampling
# ----------------------------------------------------------------------------------------------

def _radius(size: str, image_size: int) -> float:
    return RADIUS_FRACTION.get(size, RADIUS_FRACTION["small"]) * image_size


def _clear_of(x: float, y: float, r: float, placed: list[SceneObject], image_size: int) -> bool:
    # Bounding boxes (not circles) are compared because cube corners reach the box corners.
    gap = GAP_FRACTION * image_size
    for other in placed:
        reach = r + _radius(other.size, image_size) + gap
        if abs(x - other.x) < reach and abs(y - other.y) < reach:
            return False
    return True


def _place(attrs: list[tuple[str, str, str, str]], rng: random.Random, image_size: int):
    """Rejection-sample non-overlapping positions; None when this attempt got jammed."""
    placed: list[SceneObject] = []
    margin = GAP_FRACTION * image_size
    # Large objects first: they are the hard ones to fit, so they get the emptiest canvas.
    order = sorted(range(len(attrs)), key=lambda i: attrs[i][2] != "large")
    for i in order:
        shape, color, size, material = attrs[i]
        r = _radius(size, image_size)
        lo, hi = r + margin, image_size - r - margin
        for _ in range(200):
            x, y = rng.uniform(lo, hi), rng.uniform(lo, hi)
            if _clear_of(x, y, r, placed, image_size):
                placed.append(SceneObject(shape, color, size, material, x, y))
                break
        else:
            return None
    return placed


def _place_grid(attrs: list[tuple[str, str, str, str]], rng: random.Random, spec: SceneSpec):
    """One object per cell of a grid centred on the canvas, jittered as far as the cell allows."""
    side = spec.image_size // spec.grid_cell
    if len(attrs) > side * side or _radius("large", spec.image_size) > spec.grid_cell / 2 - 0.5:
        raise ValueError(f"counting: a grid of {spec.grid_cell}-pixel cells on a {spec.image_size}px canvas "
                         f"holds at most {side * side} objects of radius < {spec.grid_cell / 2 - 0.5:.0f}px; "
                         "lower max_objects or image_size, or use layout=random")
    offset = (spec.image_size - side * spec.grid_cell) / 2
    placed = []
    for (shape, color, size, material), cell in zip(attrs, rng.sample(range(side * side), len(attrs))):
        slack = max(0.0, spec.grid_cell / 2 - _radius(size, spec.image_size) - 1)
        x = offset + (cell % side + 0.5) * spec.grid_cell + rng.uniform(-slack, slack)
        y = offset + (cell // side + 0.5) * spec.grid_cell + rng.uniform(-slack, slack)
        placed.append(SceneObject(shape, color, size, material, x, y))
    return placed


def sample_scene(rng: random.Random, spec: SceneSpec = SceneSpec()) -> list[SceneObject]:
    """Draw attributes and non-overlapping positions for one scene."""
    n = rng.randint(spec.min_objects, spec.max_objects)

    def draw_attrs():
        return [(rng.choice(spec.shapes), rng.choice(spec.colors), rng.choice(spec.sizes),
                 rng.choice(spec.materials)) for _ in range(n)]

    attrs = draw_attrs()
    if spec.layout == "grid":
        return _place_grid(attrs, rng, spec)
    for attempt in range(2000):
        if attempt and attempt % 100 == 0:  # these n do not fit (too many large ones, ~1 in 8 at 10): others
            attrs = draw_attrs()
        placed = _place(attrs, rng, spec.image_size)
        if placed is not None:
            return placed
    raise ValueError(f"counting: cannot place {n} objects without overlap on a {spec.image_size}px "
                     f"canvas; lower SceneSpec.max_objects or raise image_size")


# ----------------------------------------------------------------------------------------------
# Questions, answers and chains of thought
# ----------------------------------------------------------------------------------------------

def _attribute_kind(rng: random.Random, spec: SceneSpec):
    kind = rng.choices([k for k, _ in ATTRIBUTE_KINDS], weights=[w for _, w in ATTRIBUTE_KINDS])[0]
    return kind, {"color": spec.colors, "size": spec.sizes, "material": spec.materials}[kind]


def _choose_subtract(rng: random.Random, scene: list[SceneObject], spec: SceneSpec):
    """Pick (attribute kind, attribute value, shape) to subtract; usually one present in the scene."""
    kind, values = _attribute_kind(rng, spec)
    present = sorted({(getattr(o, kind), o.shape) for o in scene})
    absent = [(v, s) for v in values for s in spec.shapes if (v, s) not in present]
    if absent and rng.random() >= PRESENT_PAIR_SHARE:
        value, shape = rng.choice(absent)
    else:
        value, shape = rng.choice(present)
    return kind, value, shape


def _count_cot(scene: list[SceneObject], spec: SceneSpec) -> str:
    counts = Counter(o.shape for o in scene)
    # Always list shapes in the spec's order, so the template is predictable for a small model.
    shapes = [s for s in spec.shapes if counts[s]]
    parts = [f"{counts[s]} {s if counts[s] == 1 else plural(s)}" for s in shapes]
    total = len(scene)
    if len(shapes) == 1:
        arithmetic = f"Total: {total}."
    else:
        arithmetic = " + ".join(str(counts[s]) for s in shapes) + f" = {total}."
    return f"I count the objects by shape: {', '.join(parts)}. {arithmetic}"


def make_question(rng: random.Random, scene: list[SceneObject], spec: SceneSpec = SceneSpec()):
    """Return (problem, answer, cot) for a scene, all derived from the scene facts."""
    n = len(scene)
    there = "There is 1 object." if n == 1 else f"There are {n} objects."
    draw = rng.random()
    if draw >= spec.subtract_fraction + spec.add_fraction:
        return "How many objects are there?", str(n), _count_cot(scene, spec)
    if draw >= spec.subtract_fraction:
        _, values = _attribute_kind(rng, spec)
        k, value, shape = rng.randint(1, MAX_ADDED), rng.choice(values), rng.choice(spec.shapes)
        problem = f"Add {_named(k, value, shape)}. How many objects exist?"
        return problem, str(n + k), f"{there} Adding {k}: {n} + {k} = {n + k}."
    kind, value, shape = _choose_subtract(rng, scene, spec)
    k = sum(1 for o in scene if o.shape == shape and getattr(o, kind) == value)
    named = f"{value} {plural(shape)}"
    problem = f"Subtract all {named}. How many objects are left?"
    cot = f"{there} The {named}: {k}. {n} - {k} = {n - k}."
    return problem, str(n - k), cot


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------

def _mix(rgb, other, t: float):
    return tuple(round(a + (b - a) * t) for a, b in zip(rgb, other))


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject, scale: float, r: float) -> None:
    """Draw one object centred at (obj.x, obj.y) * scale with bounding half-extent r (scaled)."""
    x, y = obj.x * scale, obj.y * scale
    base = PALETTE.get(obj.color, PALETTE["gray"])
    metal = obj.material == "metal"
    # Metal: light rim; rubber: dark rim. The rim also separates same-coloured neighbours.
    rim = _mix(base, (255, 255, 255), 0.65) if metal else _mix(base, (0, 0, 0), 0.45)
    width = max(1, round(0.09 * r))
    if obj.shape == "cube":
        h = 0.85 * r  # area close to the sphere's, so size reads the same across shapes
        draw.rectangle((x - h, y - h, x + h, y + h), fill=base, outline=rim, width=width)
    elif obj.shape == "sphere":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=base, outline=rim, width=width)
    elif obj.shape == "cylinder":
        _draw_cylinder(draw, x, y, r, base, rim, width)
    else:
        _draw_vehicle(draw, obj.shape, x, y, r, base, rim, width)
    if metal:
        _draw_highlight(draw, obj.shape, x, y, r)


def _draw_cylinder(draw, x, y, r, base, rim, width) -> None:
    # Upright cylinder seen from slightly above: body, rounded bottom, lighter elliptical top cap.
    hw, cap = 0.72 * r, 0.28 * r
    top, bottom = y - r + cap, y + r - cap
    draw.ellipse((x - hw, bottom - cap, x + hw, bottom + cap), fill=base, outline=rim, width=width)
    draw.rectangle((x - hw, top, x + hw, bottom), fill=base)
    draw.line((x - hw, top, x - hw, bottom), fill=rim, width=width)
    draw.line((x + hw, top, x + hw, bottom), fill=rim, width=width)
    cap_fill = _mix(base, (255, 255, 255), 0.35)
    draw.ellipse((x - hw, top - cap, x + hw, top + cap), fill=cap_fill, outline=rim, width=width)


TYRE = (38, 38, 38)
GLASS = (225, 236, 242)


def _wheel(draw, x: float, y: float, radius: float, hub=None) -> None:
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=TYRE)
    if hub:
        h = 0.45 * radius
        draw.ellipse((x - h, y - h, x + h, y + h), fill=hub)


def _draw_vehicle(draw, shape: str, x, y, r, base, rim, width) -> None:
    """Side views of Super-CLEVR's vehicles, each filling the object's 2r-wide bounding box."""
    if shape == "car":
        draw.polygon([(x - 0.55 * r, y - 0.15 * r), (x - 0.3 * r, y - 0.6 * r), (x + 0.3 * r, y - 0.6 * r),
                      (x + 0.6 * r, y - 0.15 * r)], fill=GLASS, outline=rim, width=width)
        draw.rounded_rectangle((x - r, y - 0.2 * r, x + r, y + 0.4 * r), radius=0.2 * r, fill=base,
                               outline=rim, width=width)
        for dx in (-0.55, 0.55):
            _wheel(draw, x + dx * r, y + 0.42 * r, 0.27 * r, hub=rim)
    elif shape == "bus":
        draw.rounded_rectangle((x - r, y - 0.65 * r, x + r, y + 0.4 * r), radius=0.15 * r, fill=base,
                               outline=rim, width=width)
        for i in range(4):
            left = x - 0.85 * r + i * 0.45 * r
            draw.rectangle((left, y - 0.5 * r, left + 0.3 * r, y - 0.15 * r), fill=GLASS)
        for dx in (-0.6, 0.6):
            _wheel(draw, x + dx * r, y + 0.45 * r, 0.25 * r, hub=rim)
    elif shape == "motorbike":
        _wheel(draw, x - 0.62 * r, y + 0.42 * r, 0.36 * r, hub=rim)
        _wheel(draw, x + 0.62 * r, y + 0.42 * r, 0.36 * r, hub=rim)
        draw.polygon([(x - 0.7 * r, y - 0.05 * r), (x - 0.2 * r, y - 0.45 * r), (x + 0.45 * r, y - 0.4 * r),
                      (x + 0.3 * r, y + 0.3 * r), (x - 0.3 * r, y + 0.3 * r)], fill=base, outline=rim, width=width)
        draw.line((x + 0.4 * r, y - 0.4 * r, x + 0.62 * r, y + 0.42 * r), fill=rim, width=2 * width)
        draw.line((x + 0.3 * r, y - 0.75 * r, x + 0.55 * r, y - 0.55 * r), fill=TYRE, width=2 * width)
    elif shape == "aeroplane":
        draw.polygon([(x - 0.95 * r, y - 0.15 * r), (x - 0.75 * r, y - 0.8 * r), (x - 0.5 * r, y - 0.8 * r),
                      (x - 0.45 * r, y - 0.1 * r)], fill=base, outline=rim, width=width)
        draw.ellipse((x - r, y - 0.25 * r, x + r, y + 0.25 * r), fill=base, outline=rim, width=width)
        draw.polygon([(x - 0.25 * r, y), (x + 0.3 * r, y), (x - 0.1 * r, y + 0.75 * r), (x - 0.4 * r, y + 0.75 * r)],
                     fill=base, outline=rim, width=width)
    else:  # bicycle: two rings and a frame in the object's colour
        frame = 2 * width
        for dx in (-0.55, 0.55):
            c = (x + dx * r, y + 0.3 * r)
            draw.ellipse((c[0] - 0.42 * r, c[1] - 0.42 * r, c[0] + 0.42 * r, c[1] + 0.42 * r),
                         outline=TYRE, width=frame)
        rear, front, pedal = (x - 0.55 * r, y + 0.3 * r), (x + 0.55 * r, y + 0.3 * r), (x - 0.05 * r, y + 0.3 * r)
        seat, head = (x - 0.2 * r, y - 0.4 * r), (x + 0.4 * r, y - 0.35 * r)
        draw.line([rear, seat, pedal, rear], fill=base, width=frame)
        draw.line([seat, head, pedal], fill=base, width=frame)
        draw.line([head, front], fill=base, width=frame)
        draw.line([(seat[0] - 0.2 * r, seat[1] - 0.1 * r), (seat[0] + 0.15 * r, seat[1] - 0.1 * r)], fill=TYRE,
                  width=frame)
        draw.line([(head[0] - 0.05 * r, head[1] - 0.25 * r), head], fill=TYRE, width=frame)


def _draw_highlight(draw, shape: str, x: float, y: float, r: float) -> None:
    white = (255, 255, 255)
    if shape in VEHICLES:
        # A glint along the body's upper edge.
        top = {"car": -0.1, "bus": -0.6, "motorbike": -0.3, "aeroplane": -0.15, "bicycle": -0.1}[shape]
        draw.line((x - 0.6 * r, y + top * r, x + 0.2 * r, y + top * r), fill=white, width=max(1, round(0.1 * r)))
        return
    if shape == "sphere":
        c, s = (x - 0.38 * r, y - 0.38 * r), 0.24 * r
        draw.ellipse((c[0] - s, c[1] - s, c[0] + s, c[1] + s), fill=white)
    elif shape == "cube":
        # A diagonal glint across the upper-left corner, as on a polished face.
        h = 0.85 * r
        draw.polygon([(x - 0.7 * h, y - 0.2 * h), (x - 0.2 * h, y - 0.7 * h),
                      (x + 0.0 * h, y - 0.5 * h), (x - 0.5 * h, y + 0.0 * h)], fill=white)
    else:
        # A vertical band: how a shiny cylinder reflects a light source.
        hw = 0.72 * r
        top, bottom = y - r + 0.56 * r, y + r - 0.28 * r
        draw.rectangle((x - 0.5 * hw, top, x - 0.2 * hw, bottom), fill=white)


def render(scene: list[SceneObject], image_size: int) -> Image.Image:
    """Render a scene onto a light-gray square canvas; deterministic for a given scene."""
    big = image_size * SUPERSAMPLE
    img = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for obj in sorted(scene, key=lambda o: (o.y, o.x)):  # back to front, like a camera view
        _draw_object(draw, obj, SUPERSAMPLE, _radius(obj.size, image_size) * SUPERSAMPLE)
    # BOX = exact area average for the integer factor; LANCZOS rings into a light halo at edges.
    return img.resize((image_size, image_size), Image.BOX)


# ----------------------------------------------------------------------------------------------
# Dataset writing and loading
# ----------------------------------------------------------------------------------------------

def generate(out_dir, n: int, seed: int, spec: SceneSpec = SceneSpec(), split: str = "train") -> pathlib.Path:
    """Write n records to out_dir/{split}.json and images to out_dir/images/{split}/.

    Deterministic: the same (n, seed, spec, split) gives byte-identical JSON and PNGs. Records are
    drawn from one sequential stream, so the first m records of a size-n run equal a size-m run.
    """
    def sample(rng: random.Random):
        scene = sample_scene(rng, spec)
        problem, answer, cot = make_question(rng, scene, spec)
        return render(scene, spec.image_size), problem, answer, cot

    return schema.write(out_dir, n, seed, split, NAME, sample)


load = schema.load  # the Reason-RFT JSON loader, the same for every task family


# ----------------------------------------------------------------------------------------------
# Prompt and target text
# ----------------------------------------------------------------------------------------------

def prompt(problem: str, style: str = "cot", **context) -> str:
    """The user-turn text: cot (think/answer instruction), bare (zero-shot) or ans (the question alone).
    One prompt set: the released code's strings (``context``: answer, split, prompt set, unused here)."""
    if style == "cot":
        return f"{problem} {INSTRUCTION}"
    if style == "bare":
        return f"{ZERO_SHOT} {problem}"
    if style == "ans":
        return problem
    raise ValueError(f"counting.prompt: unknown style {style!r}; use one of {', '.join(schema.PROMPT_STYLES)}")


def target(record: dict, style: str = "cot") -> str:
    """The SFT assistant text: cot -> think/answer tags; ans -> the answer alone (tasks/schema.py)."""
    return schema.target(record, style, NAME)


# The paper's accuracy (%) on BENCHMARKS, by (model, method): its share of the paper's results table.
PAPER = {
    ("Qwen2-VL-2B", "zero_shot"): (82.40, 32.00),
    ("Qwen2-VL-2B", "ans_sft"): (96.20, 39.20),
    ("Qwen2-VL-2B", "cot_sft"): (85.50, 46.50),
    ("Qwen2-VL-2B", "rft_zero"): (98.40, 44.80),
    ("Qwen2-VL-2B", "rft"): (96.80, 51.20),
    ("Qwen2-VL-7B", "zero_shot"): (98.60, 42.10),
    ("Qwen2-VL-7B", "rft_zero"): (99.40, 53.00),
    ("Qwen2-VL-7B", "rft"): (95.60, 51.00),
}


FAMILY = TaskFamily(
    name=NAME, position=1, about="visual counting", section="synthetic visual-counting scenes (CLEVR-Math-like)",
    card="visual counting (CLEVR-Math-like scenes: how many, subtract, add)", benchmarks=BENCHMARKS, spec=SceneSpec,
    check_options=check_options, prompt=prompt, reward=REWARD, scorers=SCORERS, prompt_tokens=PROMPT_TOKENS,
    dataset=DATASET, generate=generate, split_spec=split_spec, paper=PAPER,
    consistency=consistency.arithmetic, claims_true=consistency.claims_true)
