import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tests" / "data" / "micro.yaml"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache (tiny models, synthetic data) for the whole session: each is built once."""
    return tmp_path_factory.mktemp("cache")


def cli(*args: str, cwd: Path | None = None, **popen) -> subprocess.CompletedProcess:
    """Run the real command line in a fresh process, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "rrft_studio.cli", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **popen)


def free_port() -> int:
    """A TCP port nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_configure(config):
    """Under pytest-xdist each worker gets its share of the cores (torch and every process it starts), before
    torch is imported: workers that each spin one thread per core slow one another down."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA: skipped, with the reason, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
