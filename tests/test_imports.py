"""The package's layers, read from its own imports (those inside functions included): no module imports one of a
layer above its own, and no modules import each other in a circle; the benchmark scripts neither."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "rrft_studio"
# From the bottom up; a module may import its own layer and the layers below it. A name is a module or a package
# (with everything in it); `rrft_studio` is the package's own __init__.
LAYERS = [
    ("base", ["rrft_studio", "options", "answers", "tiny"]),
    ("tasks", ["tasks"]),
    ("config", ["config"]),
    ("run directory", ["ranks", "runs"]),
    ("parts", ["data", "rewards", "models"]),
    ("checks", ["settings", "workbench", "datacheck"]),
    ("evaluation", ["eval"]),
    ("training", ["train"]),
    ("serving", ["serve"]),
    ("studio", ["studio"]),
    ("command line", ["cli"]),
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path, known: set[str]) -> set[str]:
    """The modules of `known` that the file imports, anywhere in it."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {m for m in found if m in known} - {name}


def graph(root: Path, files: list[Path]) -> dict[str, set[str]]:
    known = {module_name(p, root) for p in files}
    return {module_name(p, root): imported(p, root, known) for p in files}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports (its modules in order, the first one again at the end), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], path[len(path):] = "open", [node]
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    return next((found for node in sorted(edges) if node not in state and (found := visit(node))), None)


def layer_of(module: str) -> int:
    name = module.removeprefix("rrft_studio.")
    for index, (_, members) in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_imports.py")


def package_graph() -> dict[str, set[str]]:
    return graph(ROOT, sorted(PACKAGE.rglob("*.py")))


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {o} ({LAYERS[layer_of(o)][0]})"
              for m, others in package_graph().items() for o in sorted(others) if layer_of(o) > layer_of(m)]
    assert not upward, "imports up a layer:\n" + "\n".join(upward)


def test_no_import_cycle_in_the_package():
    found = cycle(package_graph())
    assert found is None, "import cycle: " + " -> ".join(found)


def test_no_import_cycle_among_the_benchmark_scripts():
    found = cycle(graph(ROOT / "benchmarks", sorted((ROOT / "benchmarks").glob("*.py"))))
    assert found is None, "import cycle: " + " -> ".join(found)


def test_the_checks_see_what_they_check():
    """The reader finds imports inside functions and relative ones, and the cycle finder finds a circle."""
    edges = package_graph()
    assert "rrft_studio.train.progress" in edges["rrft_studio.train.pipeline"]  # imported inside a function
    assert "rrft_studio.tasks.structure.geometry" in edges["rrft_studio.tasks.structure.draw"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
