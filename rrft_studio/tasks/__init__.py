"""Task families: synthetic generators, loaders, prompts and SFT targets, one module per task."""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS = ("counting", "structure", "spatial")


def get(name: str) -> ModuleType:
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}': choose one of {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{name}")
