"""A normal pip package: built into a wheel, installed in a fresh venv, used from outside the clone."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

HANDDRAWN = ROOT / "tests" / "data" / "handdrawn"


@pytest.mark.slow
def test_the_wheel_works_outside_the_clone(tmp_path):
    """`pip wheel .`, a fresh venv, `pip install` the wheel, then `digits predict` from another directory:
    the shipped model comes with the package (10/10 of the sample digits), and `digits --version` answers."""
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(wheels)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("digits_edge-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(HANDDRAWN, elsewhere / "digits")
    digits = str(venv / "bin" / "digits")
    result = subprocess.run([digits, "predict", "digits"], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == 10 and all(row.split(": ")[1].startswith(row.split("/")[-1][0]) for row in rows), rows
    version = subprocess.run([digits, "--version"], cwd=elsewhere, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("digits ")
