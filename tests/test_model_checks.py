"""Models that are not what they claim: changed after export, or made for another task. Refused at load, in one line."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import MODELS, ROOT, run_digits

IMAGE = ROOT / "tests" / "data" / "handdrawn" / "7.png"


@pytest.fixture
def shipped_copy(tmp_path):
    """The shipped int8 models and their manifest, in a folder of their own."""
    for name in ("cnn_int8.tflite", "cnn_int8.onnx", "manifest.json"):
        shutil.copy(MODELS / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", ["cnn_int8.tflite", "cnn_int8.onnx"])
@pytest.mark.parametrize("seed", range(5))
def test_a_model_changed_after_export_is_refused(shipped_copy, name, seed):
    """One byte flipped somewhere in the file (10 tampered models): refused, unless the user insists."""
    model = shipped_copy / name
    data = bytearray(model.read_bytes())
    position = int(np.random.default_rng(seed).integers(len(data) // 4, len(data)))
    data[position] ^= 0xFF
    model.write_bytes(bytes(data))
    refused = run_digits("predict", str(IMAGE), "--model", str(model))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "sha256" in refused.stderr and str(model) in refused.stderr
    insisted = run_digits("predict", str(IMAGE), "--model", str(model), "--allow_modified_model")
    assert "sha256" not in insisted.stderr and "Traceback" not in insisted.stderr


def test_an_unchanged_copy_loads(shipped_copy):
    result = run_digits("predict", str(IMAGE), "--model", str(shipped_copy / "cnn_int8.tflite"))
    assert result.returncode == 0 and result.stdout.strip().split(": ")[1].startswith("7 ")


def _onnx_model(path, input_shape, classes):
    """A tiny ONNX model (flatten, one matrix, softmax) with the given input shape and output width."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    features = int(np.prod([d for d in input_shape[1:]]))
    weights = numpy_helper.from_array(np.zeros((features, classes), np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"]), helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"])],
        "wrong", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *input_shape[1:]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("input_shape,classes,message", [
    ((None, 32, 32, 3), 10, "takes input [-1, 32, 32, 3]"),
    ((None, 784), 10, "takes input [-1, 784]"),
    ((None, 28, 28, 1), 5, "gives output [-1, 5]"),
    ((None, 28, 28, 1), 12, "gives output [-1, 12]"),
    ((None, 1, 28, 28), 10, "takes input [-1, 1, 28, 28]"),
], ids=["rgb_32", "flat", "five_classes", "twelve_classes", "nchw"])
def test_a_model_of_the_wrong_shape_is_refused_at_load(tmp_path, input_shape, classes, message):
    model = tmp_path / "other.onnx"
    _onnx_model(model, input_shape, classes)
    for command in (["predict", str(IMAGE)], ["run", "--source", str(IMAGE), "--headless"]):
        result = run_digits(*command, "--model", str(model))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr and str(model) in result.stderr


def test_doctor_checks_every_model_against_its_manifest(tmp_path):
    shipped_copy = tmp_path / "models"
    shutil.copytree(MODELS, shipped_copy, ignore=shutil.ignore_patterns("*.keras", "*.train.json"))
    healthy = run_digits("doctor", "--models", str(shipped_copy), "--cameras", "0", "--format", "jsonl")
    checks = {c["item"]: c for c in map(__import__("json").loads, healthy.stdout.splitlines())}
    assert healthy.returncode == 0 and "Traceback" not in healthy.stderr
    assert checks["cnn_int8.tflite"]["status"] == "ok" and "sha256 ok" in checks["cnn_int8.tflite"]["detail"]
    assert {"digits", "numpy", "opencv-python", "display", "picamera2"} <= set(checks)
    model = shipped_copy / "cnn_int8.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    broken = run_digits("doctor", "--models", str(shipped_copy), "--cameras", "0")
    assert broken.returncode == 1 and "FAIL  cnn_int8.onnx" in broken.stdout
    assert broken.stderr.strip() == "digits doctor: 1 problem(s): cnn_int8.onnx"
