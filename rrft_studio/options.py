"""Documented settings: a dataclass field carries its default and its one-line doc, where it is declared.

The config tree (config.py) is made of such fields, and so are the settings a task family owns (its
generator's knobs, its prompts, its checker): `config.Data` takes each task's section from the task module
(`options_of`), so a knob, its default and its doc are written once, next to the code that uses them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any


def doc(default: Any, text: str) -> Any:
    """A dataclass field with a default and its one-line doc."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


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
