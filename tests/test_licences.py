"""docs/licences.md against the installed packages: the AGPL-3.0 headers in unsloth and unsloth_zoo
are counted as stated, and the transformers backend's code path never imports unsloth."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import ROOT


def _headers(package: str) -> Counter:
    """Licence named in the first 25 lines of each Python file: agpl, lgpl, apache or none."""
    root = Path(importlib.util.find_spec(package).origin).parent
    kinds: Counter = Counter()
    for path in root.rglob("*.py"):
        head = "\n".join(path.read_text(errors="ignore").splitlines()[:25])
        kind = "agpl" if "AGPL" in head or "Affero" in head else "lgpl" if "Lesser General Public" in head \
            else "apache" if "Apache" in head else "none"
        kinds[kind] += 1
        folder = path.relative_to(root).parts[0]
        kinds[(folder, kind)] += 1
        kinds[(folder, "files")] += 1
        kinds["files"] += 1
    return kinds


def test_unsloth_agpl_headers_are_as_the_licences_page_says():
    readme = (ROOT / "docs" / "licences.md").read_text()
    unsloth, zoo = _headers("unsloth"), _headers("unsloth_zoo")
    assert f"{unsloth['agpl']} of its {unsloth['files']} Python files carry an AGPL-3.0 header" in readme
    for folder in ("kernels", "models"):
        counts = f"{unsloth[(folder, 'agpl')]} of the {unsloth[(folder, 'files')]} in `unsloth/{folder}/`"
        assert counts in readme, counts
    assert f"{zoo['agpl']} of its {zoo['files']} Python files carry an AGPL-3.0 header, {zoo['lgpl']} an LGPL-3.0" in readme


CHECK = """
import sys
from rrft_studio import config, models
cfg = config.load("tests/data/micro.yaml", ["model.backend=transformers"])
assert models.choose_backend(cfg)[0] == "transformers"
from rrft_studio.eval import evaluate  # noqa: F401
from rrft_studio.serve import export, server, inference  # noqa: F401
from rrft_studio.train import sft, grpo, trackers  # noqa: F401
from trl import GRPOTrainer, SFTTrainer  # noqa: F401
print(sorted(m for m in sys.modules if m.split(".")[0] in ("unsloth", "unsloth_zoo")))
"""


def test_the_transformers_backend_never_imports_unsloth():
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
