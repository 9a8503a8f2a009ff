"""Documented settings: a dataclass field carries its default and its one-line doc, where it is declared.

The config tree (config.py) is made of such fields, and so are the settings a task family owns (its
generator's knobs, its prompts, its checker): `config.Data` takes each task's section from the task module
(`options_of`), so a knob, its default and its doc are written once, next to the code that uses them.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field
from typing import Any


def doc(default: Any, text: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
        lt: float | None = None, also: tuple = ()) -> Any:
    """A dataclass field with a default, its one-line doc and, for numbers, its valid range: ge/gt/le/lt
    bound the value (each item of a list), `also` lists values allowed outside them (-1 = "unset").
    `config.validate` checks every field against its range; floats must be finite wherever they are."""
    metadata = {"doc": text}
    bounds = {name: value for name, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if value is not None}
    if bounds:
        metadata["bounds"] = bounds
    if also:
        metadata["also"] = tuple(also)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


_RULES = {"ge": ("at least", lambda v, b: v >= b), "gt": ("greater than", lambda v, b: v > b),
          "le": ("at most", lambda v, b: v <= b), "lt": ("less than", lambda v, b: v < b)}


def range_text(metadata: Any) -> str:
    """The valid range of a field in words ('at least 1', 'greater than 0 and at most 1 (or -1)'); '' without one."""
    bounds = metadata.get("bounds", {})
    text = " and ".join(f"{_RULES[name][0]} {value!r}" for name, value in bounds.items())
    if bounds.keys() == {"gt", "lt"}:
        text = f"between {bounds['gt']!r} and {bounds['lt']!r}, both excluded"
    also = metadata.get("also", ())
    return text + (f" (or {', '.join(map(str, also))})" if text and also else "")


def in_range(value: float, metadata: Any) -> bool:
    """Whether a number is finite (floats) and within the field's bounds (or one of its `also` values)."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if value in metadata.get("also", ()):
        return True
    return all(_RULES[name][1](value, bound) for name, bound in metadata.get("bounds", {}).items())


def section(cls: type, text: str) -> Any:
    """A field holding a nested settings dataclass, with its doc."""
    return field(default_factory=cls, metadata={"doc": text})


def options_of(spec: type, name: str) -> type:
    """A mutable settings dataclass made of the documented fields of `spec` (a task's frozen generator spec):
    the config section a user edits; `spec(**vars(options))` turns it back into the generator's spec."""
    hints = typing.get_type_hints(spec)
    fields = [(f.name, hints[f.name], field(default=f.default, metadata=f.metadata))
              for f in dataclasses.fields(spec) if "doc" in f.metadata]
    return dataclasses.make_dataclass(name, fields)
