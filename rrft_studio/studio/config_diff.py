"""What two runs did differently: the keys of their config.yaml whose values differ, as dotted keys
(`grpo.temperature`) with the value in each run, and how many keys are equal. A sub-tab of Compare, beside the
results table: where two runs' accuracies differ, this says what was changed between them.

Each run's config.yaml is read as written (the resolved config the run started with, every key present), not
parsed into today's config tree: a run from an older version, whose file has a key since renamed, still
compares, that key shown as absent from the other run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from .. import runs
from ..config import ConfigError
from . import catalog
from .folders import Folders


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # the value of a key one of the two configs does not have


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'grpo': {'temperature': 1.0}} -> {'grpo.temperature': 1.0}; lists and empty mappings are values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def diff(a: dict, b: dict) -> tuple[list[tuple[str, Any, Any]], int]:
    """([(dotted key, value in a, value in b)] for the keys whose values differ, ABSENT where a tree lacks the key,
    in a's order then b's new keys; how many keys are equal)."""
    flat_a, flat_b = flatten(a), flatten(b)
    keys = list(dict.fromkeys([*flat_a, *flat_b]))
    rows = [(k, flat_a.get(k, ABSENT), flat_b.get(k, ABSENT)) for k in keys
            if k not in flat_a or k not in flat_b or not _same(flat_a[k], flat_b[k])]
    return rows, len(keys) - len(rows)


def _same(x: Any, y: Any) -> bool:
    """Equal as config values: 1 and 1.0 are, true and 1 are not."""
    return type(x) is type(y) and x == y or (isinstance(x, (int, float)) and isinstance(y, (int, float))
                                              and not isinstance(x, bool) and not isinstance(y, bool) and x == y)


def shown(value: Any) -> str:
    """A value as YAML would read it back: strings bare, the rest as JSON (lists, true, null, 1e-05)."""
    if value is ABSENT:
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value)


def read_tree(run_dir: Path) -> dict:
    """A run's config.yaml as written; ConfigError (one line) where it is missing or not a mapping."""
    try:
        tree = yaml.safe_load(runs.config_path(run_dir).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{Path(run_dir).name}: its config.yaml cannot be read ({type(e).__name__})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{Path(run_dir).name}: its config.yaml is not a mapping of keys")
    return tree


def diff_runs(a: Path, b: Path) -> tuple[list[list[str]], str]:
    """(rows of [key, value in a, value in b] as text, the summary line) of two runs."""
    rows, equal = diff(read_tree(a), read_tree(b))
    if not rows:
        return [], f"No key differs: all {equal} keys of the two configs are equal."
    keys = "key differs" if len(rows) == 1 else "keys differ"
    return [[k, shown(x), shown(y)] for k, x, y in rows], f"**{len(rows)} {keys}**; {equal} keys are equal."


def build(runs_dir: Path, folders: Folders, tab: gr.Tab) -> None:
    """Two run pickers, the summary line and the table of differing keys (filled when Compare opens)."""
    with gr.Row():
        run_a = gr.Dropdown([], label="Run A", elem_id="config-diff-a")
        run_b = gr.Dropdown([], label="Run B", elem_id="config-diff-b")
    summary = gr.Markdown(elem_id="config-diff-summary")
    table = gr.Dataframe(headers=["key", "run A", "run B"], interactive=False, elem_id="config-diff-table",
                         max_height=480, wrap=True)

    def compared(a, b):
        if not a or not b:
            return "*pick two runs*", gr.Dataframe(value=[], headers=["key", "run A", "run B"])
        try:
            first, second = (folders.confine(v, "run", ("runs",)) for v in (a, b))
            rows, line = diff_runs(first, second)
        except ConfigError as e:
            return f"✗ {e}", gr.Dataframe(value=[], headers=["key", "run A", "run B"])
        if first == second:
            line = "The same run twice: pick another run as B."
        return line, gr.Dataframe(value=rows, headers=["key", first.name, second.name])

    def refresh(a, b):
        choices = [(info.name, str(info.path)) for info in catalog.list_runs(runs_dir)]
        values = [v for _, v in choices]
        a = a if a in values else (values[1] if len(values) > 1 else (values or [None])[0])  # older as A
        b = b if b in values else (values[0] if values else None)
        return gr.Dropdown(choices=choices, value=a), gr.Dropdown(choices=choices, value=b), *compared(a, b)

    tab.select(refresh, [run_a, run_b], [run_a, run_b, summary, table])
    run_a.input(compared, [run_a, run_b], [summary, table])
    run_b.input(compared, [run_a, run_b], [summary, table])
