"""The edge app with only one runtime installed, or none for a model's format.

A Raspberry Pi may have only ai-edge-litert, only onnxruntime, or the older tflite-runtime. Rather
than build a venv per combination, each test runs Python in a subprocess where the absent packages
are set to None in `sys.modules`, which makes `import` fail exactly as if they were not installed.
TensorFlow is always blocked: the edge install never has it, and the TFLite backend would otherwise
fall back to it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parent.parent / "models"
INT8_TFLITE = MODELS / "cnn_int8.tflite"
FLOAT_ONNX = MODELS / "cnn_float32.onnx"
LITERT = ("ai_edge_litert", "ai_edge_litert.interpreter")
TFLITE_RUNTIME = ("tflite_runtime", "tflite_runtime.interpreter")
ONNXRUNTIME = ("onnxruntime",)
TENSORFLOW = ("tensorflow",)


def run_without(blocked: tuple[str, ...], code: str, prelude: str = "") -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python where the modules in `blocked` cannot be imported."""
    script = "import sys\n" + textwrap.dedent(prelude) + "".join(
        f"sys.modules[{name!r}] = None\n" for name in blocked) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def classify_a_digit(model: Path) -> str:
    """Code that loads `model`, classifies a rendered 7 and prints {"runtime", "digit"} as JSON."""
    return f"""
        import json
        import cv2, numpy as np
        from edge_app.classifier import load_classifier
        from edge_app.preprocess import to_mnist_input
        page = np.full((120, 100), 255, np.uint8)
        cv2.line(page, (20, 20), (80, 20), 0, 9)
        cv2.line(page, (80, 20), (40, 105), 0, 9)
        classifier = load_classifier({str(model)!r})
        print(json.dumps({{"runtime": classifier.runtime,
                           "digit": classifier.predict(to_mnist_input(page)[None])[0].digit}}))
    """


def model_error(model: Path) -> str:
    return f"""
        from edge_app.classifier import ModelError, load_classifier
        try:
            load_classifier({str(model)!r})
        except ModelError as error:
            print(error)
    """


@pytest.fixture
def fake_model_files(tmp_path):
    """Non-empty files of each format: the runtime check comes before the file is parsed."""
    tflite, onnx = tmp_path / "any.tflite", tmp_path / "any.onnx"
    tflite.write_bytes(b"not parsed")
    onnx.write_bytes(b"not parsed")
    return tflite, onnx


def test_no_tflite_runtime_names_what_to_install(fake_model_files):
    tflite, _ = fake_model_files
    result = run_without(LITERT + TFLITE_RUNTIME + TENSORFLOW, model_error(tflite))
    assert result.returncode == 0, result.stderr
    assert "no TFLite runtime is installed: pip install ai-edge-litert" in result.stdout
    assert "tflite-runtime" in result.stdout  # the older Pi route is named too


def test_no_onnxruntime_names_what_to_install(fake_model_files):
    _, onnx = fake_model_files
    result = run_without(ONNXRUNTIME, model_error(onnx))
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime is not installed: pip install onnxruntime" in result.stdout


@pytest.mark.skipif(not INT8_TFLITE.is_file(), reason=f"{INT8_TFLITE} not exported yet (digits export)")
def test_tflite_model_runs_with_only_litert():
    result = run_without(ONNXRUNTIME + TFLITE_RUNTIME + TENSORFLOW, classify_a_digit(INT8_TFLITE))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"runtime": "ai_edge_litert", "digit": 7}


@pytest.mark.skipif(not FLOAT_ONNX.is_file(), reason=f"{FLOAT_ONNX} not exported yet (digits export)")
def test_onnx_model_runs_with_only_onnxruntime():
    result = run_without(LITERT + TFLITE_RUNTIME + TENSORFLOW, classify_a_digit(FLOAT_ONNX))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"runtime": "onnxruntime", "digit": 7}


@pytest.mark.skipif(not INT8_TFLITE.is_file(), reason=f"{INT8_TFLITE} not exported yet (digits export)")
def test_tflite_runtime_is_used_when_litert_is_absent():
    # tflite-runtime (the older Pi route) has LiteRT's Interpreter API under another name; stand it in
    # with LiteRT's class so the test needs no extra install, then block LiteRT itself.
    prelude = """
        import types
        from ai_edge_litert.interpreter import Interpreter
        package, module = types.ModuleType("tflite_runtime"), types.ModuleType("tflite_runtime.interpreter")
        module.Interpreter, package.interpreter = Interpreter, module
        sys.modules.update({"tflite_runtime": package, "tflite_runtime.interpreter": module})
    """
    result = run_without(LITERT + ONNXRUNTIME + TENSORFLOW, classify_a_digit(INT8_TFLITE), prelude)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"runtime": "tflite_runtime", "digit": 7}


def test_digits_predict_without_a_runtime_is_one_line_and_nonzero(tmp_path, fake_model_files):
    pytest.importorskip("edge_app.predict", reason="edge_app/predict.py not written yet")
    tflite, _ = fake_model_files
    import cv2
    import numpy as np

    image = tmp_path / "seven.png"
    cv2.imwrite(str(image), np.full((40, 40), 255, np.uint8))
    code = f"""
        from edge_app.cli import main
        sys.exit(main(["predict", {str(image)!r}, "--model", {str(tflite)!r}]))
    """
    result = run_without(LITERT + TFLITE_RUNTIME + TENSORFLOW, code)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "pip install ai-edge-litert" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
