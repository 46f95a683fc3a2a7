"""`digits predict` as a user runs it: files, folders, globs, JSON output, and every kind of bad input."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import MODELS, ROOT, needs_mnist, run_digits
from rendering import render_on_paper


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, mnist_test):
    folder = tmp_path_factory.mktemp("digits")
    truth = {}
    for i in range(8):
        path = folder / f"digit_{i}.{'png' if i % 2 else 'jpg'}"
        cv2.imwrite(str(path), render_on_paper(mnist_test.images[i], seed=i, dark_on_light=i % 3 != 0))
        truth[str(path)] = int(mnist_test.labels[i])
    return folder, truth


@needs_mnist
def test_folder_json_output(digit_files):
    folder, truth = digit_files
    result = run_digits("predict", str(folder), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {row["path"] for row in rows} == set(truth)
    for row in rows:
        assert row["digit"] == truth[row["path"]]
        assert 0 < row["confidence"] <= 1 and row["top3"][0] == [row["digit"], row["confidence"]]
        assert len(row["top3"]) == 3


@needs_mnist
@pytest.mark.parametrize("model", ["cnn_float32.onnx", "cnn_int8.onnx", "cnn_float32.tflite"])
def test_every_shipped_format_predicts(model, digit_files):
    folder, truth = digit_files
    result = run_digits("predict", str(folder / "digit_*.png"), "--model", str(MODELS / model), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4 and all(row["digit"] == truth[row["path"]] for row in rows)


@needs_mnist
def test_bad_inputs_are_reported_and_the_rest_processed(digit_files, tmp_path):
    folder, truth = digit_files
    good = sorted(truth)[0]
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image")
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 200, 3), 235, np.uint8))
    bad = [tmp_path / "empty.png", tmp_path / "notes.png", tmp_path / "blank.png", tmp_path / "missing.png"]
    result = run_digits("predict", *map(str, bad), good, str(tmp_path / "*.gif"))
    assert result.returncode == 1
    assert result.stdout.startswith(good + ": ")  # the good file is still read
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 5 and "Traceback" not in result.stderr
    for fragment in ("empty.png: file is empty", "notes.png: not an image", "blank.png: no digit found",
                     "missing.png: file not found", "*.gif: no file matches"):
        assert any(fragment in line for line in errors), fragment


@pytest.mark.parametrize("content,suffix,message", [
    (None, ".tflite", "not found"),
    (b"", ".tflite", "is empty"),
    (b"garbage" * 10, ".tflite", "not a valid TFLite model"),
    (b"garbage" * 10, ".onnx", "not a valid ONNX model"),
    (b"garbage", ".h5", "unknown model format"),
])
def test_bad_model_files_give_one_line(tmp_path, content, suffix, message):
    model = tmp_path / f"model{suffix}"
    if content is not None:
        model.write_bytes(content)
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((50, 50), 255, np.uint8))
    result = run_digits("predict", str(image), "--model", str(model))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr and str(model) in result.stderr


def test_predict_never_imports_tensorflow(tmp_path):
    image = tmp_path / "one.png"
    canvas = np.full((120, 120), 240, np.uint8)
    canvas[20:100, 55:65] = 15
    cv2.imwrite(str(image), canvas)
    code = (
        "import sys\n"
        "from edge_app.cli import main\n"
        f"status = main(['predict', {str(image)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'tf_keras'))\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_edge_app_sources_never_import_tensorflow():
    offenders = []
    for path in (ROOT / "edge_app").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("import", "from") and \
                    words[1].split(".")[0] in ("tensorflow", "keras", "tf2onnx", "tf_keras", "train", "export"):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders


HANDDRAWN = ROOT / "tests" / "data" / "handdrawn"


@pytest.mark.parametrize("model", ["cnn_int8.tflite", "cnn_float32.onnx"])
def test_pen_drawn_digits_not_from_mnist_are_read(model):
    """Digits drawn as pen strokes (tests/make_handdrawn.py), not MNIST's writers: the README's quick start."""
    result = run_digits("predict", str(HANDDRAWN), "--model", str(MODELS / model), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 10
    assert all(row["digit"] == int(Path(row["path"]).stem) for row in rows)
