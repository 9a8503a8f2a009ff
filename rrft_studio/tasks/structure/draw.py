"""Drawing geometry figures on a white square canvas, in the ID or the OOD drawing style.

``render`` turns a ``Figure`` into a PIL image: it fits the (rotated, mirrored) points into the canvas,
draws fills, circles, segments, dashed lines, right-angle, equal-length and parallel marks and angle
arcs, then places the labels where they stay clear of the strokes: angle values along the angle's
bisector, side values beside the side, point letters in the freest direction around their point.
The ID style (GeoMath-like) is thin black ink on white; the OOD style (Geometry3K-like) has thick
lines, pastel fills, bold labels with the values in dark red and dots on the points. Everything is
drawn at ``SUPERSAMPLE`` times the size and box-filtered down, so the same figure and spec always
give the same pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from .geometry import Figure, SceneSpec, check_spec, dist, lerp


SUPERSAMPLE = 4  # draw large, then downscale: anti-aliased lines without extra dependencies
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
# OOD fill colours, one per palette a figure can be given (geometry.PALETTES)
PASTELS = ((204, 226, 255), (208, 240, 208), (255, 243, 196), (255, 218, 228), (228, 214, 250))


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
        length = dist(p, q)
        dash, gap = 0.028 * self.size, 0.018 * self.size
        t = 0.0
        while t < length:
            a, b = t / length, min(t + dash, length) / length
            self.line(lerp(p, q, a), lerp(p, q, b))
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
        seg = dist(pa, pb)
        if seg > 0 and abs(dist(pa, p) + dist(p, pb) - seg) < 1e-6 * seg + 1e-6:
            taken += [_ang(_direction(p, pa)), _ang(_direction(p, pb))]
    for centre, r in fig.circles:
        c = px[centre]
        if centre != name and abs(dist(c, p) - r * scale) < 1e-6 * r * scale + 1e-6:
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
            near = lerp(a, b, min(1.0, max(0.0, t)))
        else:
            u = _direction(a, centre)
            near = (a[0] + u[0] * b, a[1] + u[1] * b)
        d = dist(near, centre)
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
    length = dist(P, Q)
    stops = [0.0, 1.0]
    for n, R in px.items():
        if n not in (a, b, *skip) and length > 0 and abs(dist(P, R) + dist(R, Q) - length) < 1e-6 * length + 1e-6:
            stops.append(dist(P, R) / length)
    stops.sort()
    return max(zip(stops, stops[1:]), key=lambda s: s[1] - s[0])


def _free_middle(px: dict, a: str, b: str, hidden=()) -> float:
    """Where along segment ab to put its label: the middle of its longest stretch free of other lettered
    points (an unlettered point such as the foot of an altitude does not move it off the middle)."""
    lo, hi = _free_stretch(px, a, b, hidden)
    return (lo + hi) / 2


def render(fig: Figure, spec: SceneSpec = SceneSpec()) -> Image.Image:
    """Draw the figure on a white square canvas; deterministic for a given figure and spec."""
    check_spec(spec)
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
        s = min(mark, 0.3 * dist(V, px[p]), 0.3 * dist(V, px[q]))
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
        limit = min(dist(V, px[p]), dist(V, px[q]))
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
                if reach > last or any(dist(spot, w) < dist(spot, V) for w in rivals):
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
        mid = lerp(P, Q, 0.5)
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
            tip = lerp(P, Q, lo + (hi - lo) * (0.3 + 0.04 * i))
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
        mid = lerp(P, Q, _free_middle(px, a, b, fig.hidden))
        ref = px[away] if away else centroid
        if (ref[0] - mid[0]) * nrm[0] + (ref[1] - mid[1]) * nrm[1] > 0:
            nrm = (-nrm[0], -nrm[1])
        cv.label_at(mid, nrm, text, gap, value_ink)
    for centre, text in angle_labels:
        cv.text(centre, text, value_ink)
    for n in shown:
        P = px[n]
        prefer = _ang(_direction(centroid, P)) if dist(centroid, P) > 1 else -math.pi * 3 / 4
        direction = _free_direction(_occupied(fig, px, cv.scale, n, angle_dirs), prefer)
        cv.label_at(P, direction, n, gap, st.point_color)
    # BOX = exact area average for the integer factor; LANCZOS rings into a light halo at edges.
    return cv.img.resize((spec.image_size, spec.image_size), Image.BOX)
