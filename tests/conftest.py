"""Shared fixtures: where the project and the MNIST files are, and a helper to run `digits` as a user does."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/rendering.py

# A shell without job control starts background jobs (`pytest &`, nohup) with SIGINT ignored, and children
# inherit that: the tests that stop `digits` with Ctrl-C would then wait forever. Children of a process with a
# handler start with the default instead, which Python turns into KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _mnist_dir() -> Path | None:
    for candidate in (os.environ.get("DIGITS_MNIST_DIR"), ROOT.parent / "shared" / "data" / "mnist"):
        if candidate and (Path(candidate) / "t10k-labels-idx1-ubyte.gz").exists() or \
                candidate and (Path(candidate) / "t10k-labels-idx1-ubyte").exists():
            return Path(candidate)
    return None


MNIST_DIR = _mnist_dir()
needs_mnist = pytest.mark.skipif(MNIST_DIR is None, reason="MNIST IDX files not found: set DIGITS_MNIST_DIR")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if MNIST_DIR is None:
        pytest.skip("MNIST IDX files not found: set DIGITS_MNIST_DIR")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    from edge_app.mnist import load_split

    return load_split("test", mnist_dir)


def run_digits(*args: str, env_extra: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `digits` CLI in a fresh interpreter, as a user would from the project root."""
    env = {**os.environ, **(env_extra or {})}
    if MNIST_DIR is not None:
        env.setdefault("DIGITS_MNIST_DIR", str(MNIST_DIR))
    return subprocess.run([sys.executable, "-m", "edge_app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
