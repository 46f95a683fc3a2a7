"""`digits doctor`: what this device has and whether `digits` can work on it, in one screen.

Like `yolo checks`: versions, the runtimes that load, every shipped model against its manifest's sha256,
the cameras that open, a display for the windows, Picamera2 for a CSI camera, and MNIST for training.
Each line is ok, warn (works, with less) or FAIL (something a command will need is broken); the exit
status is 1 when anything failed. Nothing here imports TensorFlow.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import platform
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CAMERAS_TRIED = 4  # camera indices 0..3
PACKAGES = ("numpy", "opencv-python", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow", "picamera2")


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "warn" or "FAIL"
    item: str
    detail: str


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def check_versions() -> list[Check]:
    from edge_app.cli import version as digits_version

    checks = [Check("ok", "digits", digits_version()),
              Check("ok", "python", f"{platform.python_version()} on {platform.machine()} ({platform.platform()})")]
    for name in PACKAGES:
        found = _installed(name)
        if found:
            checks.append(Check("ok", name, found))
        elif name in ("numpy", "opencv-python"):
            checks.append(Check("FAIL", name, f"not installed: pip install {name}"))
        else:
            checks.append(Check("warn" if name in ("ai-edge-litert", "onnxruntime") else "ok", name, "not installed"))
    return checks


def check_models(folder: Path) -> list[Check]:
    """Every model the manifest lists: present, the recorded sha256, and it loads and answers with its runtime."""
    import numpy as np

    from edge_app.classifier import ModelError, load_classifier
    from edge_app.models import read_manifest

    try:
        artifacts = read_manifest(folder).get("artifacts", {})
    except (OSError, ValueError) as error:
        return [Check("FAIL", "manifest", f"{folder / 'manifest.json'}: cannot be read ({error})")]
    if not artifacts:
        return [Check("FAIL", "models", f"no manifest.json with models in {folder}")]
    checks = []
    for name, entry in sorted(artifacts.items()):
        path = folder / name
        if not path.is_file():
            checks.append(Check("FAIL", name, f"listed in the manifest, missing from {folder}"))
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry.get("sha256"):
            checks.append(Check("FAIL", name, f"sha256 {digest[:12]}... is not the manifest's "
                                              f"{str(entry.get('sha256'))[:12]}...: changed after export"))
            continue
        try:
            classifier = load_classifier(path, threads=1)
            classifier.predict(np.zeros((1, 28, 28), np.uint8))
        except ModelError as error:
            checks.append(Check("warn", name, f"sha256 ok, but it does not run here: {error}"))
            continue
        accuracy = entry.get("mnist_test_accuracy")
        checks.append(Check("ok", name, f"sha256 ok, runs with {classifier.runtime}"
                                        + (f", {100 * accuracy:.2f}% on MNIST test at export" if accuracy else "")))
    return checks


def check_cameras(count: int = CAMERAS_TRIED) -> list[Check]:
    if count == 0:
        return [Check("ok", "cameras", "not checked (--cameras 0)")]
    import cv2

    from edge_app.stderr import native_stderr_silenced

    log = getattr(cv2.utils, "logging", cv2)
    previous = log.getLogLevel()
    log.setLogLevel(0)
    opened = []
    try:
        for index in range(count):
            with native_stderr_silenced():
                capture = cv2.VideoCapture(index)
                ok = capture.isOpened() and capture.read()[0]
                capture.release()
            if ok:
                opened.append(index)
    finally:
        log.setLogLevel(previous)
    if opened:
        return [Check("ok", "cameras", f"delivering frames: --source {', '.join(map(str, opened))}")]
    return [Check("warn", "cameras", f"none of indices 0-{count - 1} delivers frames (a CSI camera needs "
                                      "--source picamera; files, folders and streams work without one)")]


def check_display() -> list[Check]:
    from edge_app.run import display_problem

    problem = display_problem()
    if problem:
        return [Check("warn", "display", f"{problem}: run and draw need --headless or a screen")]
    return [Check("ok", "display", "windows can open (digits run, digits draw)")]


def check_picamera() -> list[Check]:
    if importlib.util.find_spec("picamera2") is None:
        return [Check("ok", "picamera2", "not installed (only for CSI camera modules: sudo apt install "
                                         "python3-picamera2 and a --system-site-packages venv)")]
    return [Check("ok", "picamera2", "importable: --source picamera can be used")]


def check_mnist() -> list[Check]:
    from edge_app.mnist import find_mnist_dir, mnist_available

    folder = find_mnist_dir(None)
    if folder is not None and mnist_available(folder):
        return [Check("ok", "MNIST", f"{folder} (train, export, bench accuracy)")]
    return [Check("ok", "MNIST", "not found: only train, export and bench's accuracy need it (--data DIR)")]


def run_checks(models: Path, cameras: int) -> list[Check]:
    return [*check_versions(), *check_models(models), *check_cameras(cameras), *check_display(),
            *check_picamera(), *check_mnist()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge_app.models import models_dir

    parser.add_argument("--models", type=Path, default=None,
                        help=f"the models folder to check (default: {models_dir()})")
    parser.add_argument("--cameras", type=int, default=CAMERAS_TRIED, help="camera indices to try, from 0")
    parser.add_argument("--format", dest="output_format", choices=("text", "jsonl"), default="text",
                        help="text lines, or one JSON object per check")


def main(args: argparse.Namespace) -> int:
    from edge_app.models import models_dir

    checks = run_checks(args.models or models_dir(), max(0, args.cameras))
    for check in checks:
        if args.output_format == "jsonl":
            print(json.dumps(asdict(check)))
        else:
            print(f"{check.status:4s}  {check.item:18s} {check.detail}")
    failed = [check for check in checks if check.status == "FAIL"]
    if failed and args.output_format == "text":
        print(f"digits doctor: {len(failed)} problem(s): {', '.join(check.item for check in failed)}", file=sys.stderr)
    return 1 if failed else 0
