"""`digits predict` as a user runs it: files, folders, globs, JSON output, and every kind of bad input."""
import json
import struct
import subprocess
import sys
import zlib
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


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height grey pixels: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1))) + \
        chunk(b"IEND", b"")


def test_decompression_bombs_and_damaged_files_are_refused_in_one_line(tmp_path):
    """A PNG claiming 20000x20000, a BMP claiming 10000x10000, a truncated PNG: one line each, no codec
    noise on stderr, the good file still read, and the process never holds the pixels it was promised."""
    (tmp_path / "bomb.png").write_bytes(_png_header(20000, 20000))
    (tmp_path / "truncated.png").write_bytes(_png_header(3000, 3000))
    (tmp_path / "bomb.bmp").write_bytes(b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) +
                                         struct.pack("<IiiHHIIiiII", 40, 10000, 10000, 1, 24, 0, 0, 0, 0, 0, 0))
    good = HANDDRAWN / "3.png"
    files = [str(tmp_path / name) for name in ("bomb.png", "truncated.png", "bomb.bmp")] + [str(good)]
    # The command in a fresh interpreter that reports its own peak RSS when it ends: VmHWM (KiB), which
    # starts afresh at exec (ru_maxrss would carry over the test process' own peak from the fork).
    code = ("import sys\n"
            "from edge_app.cli import main\n"
            f"status = main(['predict', *{files!r}])\n"
            "peak = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
            f"open({str(tmp_path / 'rss')!r}, 'w').write(peak)\n"
            "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    peak_mb = int((tmp_path / "rss").read_text()) / 1024
    assert result.returncode == 1 and result.stdout.startswith(f"{good}: 3 ")
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("digits predict: ") for line in errors), result.stderr
    assert "over the limit of 50,000,000" in errors[0] and "bomb.bmp" in errors[2]
    assert peak_mb <= 300, f"peak RSS {peak_mb:.0f} MB"


def test_ctrl_c_keeps_what_was_printed_and_exits_130(tmp_path):
    """Each file's line is printed when it is read: Ctrl-C in the middle loses nothing already done."""
    import shutil
    import signal
    import time

    for k in range(400):
        shutil.copy(HANDDRAWN / f"{k % 10}.png", tmp_path / f"{k:04d}.png")
    process = subprocess.Popen([sys.executable, "-m", "edge_app", "predict", str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()  # the first result arrives long before the folder is done
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=60)
    lines = [first] + rest.splitlines()
    assert process.returncode == 130 and "Traceback" not in errors and errors.strip() == "digits predict: interrupted"
    assert 0 < len(lines) < 400 and all(": " in line for line in lines)


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


@pytest.mark.parametrize("threads", ["0", "100000", "many"])
def test_bad_thread_counts_are_refused_before_loading(threads):
    for command in (["predict", str(HANDDRAWN / "1.png")], ["run", "--source", str(HANDDRAWN / "1.png"), "--headless"]):
        result = run_digits(*command, "--threads", threads)
        assert result.returncode == 2 and "--threads" in result.stderr and "Traceback" not in result.stderr


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


def test_save_inputs_pointing_at_a_file_is_one_line(tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("x")
    result = run_digits("predict", str(HANDDRAWN / "1.png"), "--save-inputs", str(target))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"digits predict: --save-inputs {target}: is a file; give a folder " \
                                     "(it is created if missing)"


def test_export_of_a_missing_model_answers_before_loading_tensorflow():
    code = ("import sys\nfrom edge_app.cli import main\nstatus = main(['export', '/no/such/model.keras'])\n"
            "print('TF' if 'tensorflow' in sys.modules else 'no TF')\nsys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout.strip() == "no TF" and "not found" in result.stderr
