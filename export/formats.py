"""The one table of export formats: name -> how to write it, its file name, dtype and runtime.

`digits export`, `digits bench` and the README's model table all read this table; nothing else
decides which formats exist. TensorFlow and tf2onnx are imported inside the writers, so the table
itself can be read on an edge install (bench uses it to name and order the shipped files).
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

PREPROCESSING = ("edge_app.preprocess.to_mnist_input: grayscale, polarity from the paper, ink crop, longer side "
                 "fitted to 20 px (aspect kept), centre of mass at the centre of 28x28; white ink on black; "
                 "then float32 in [0, 1], NHWC (n, 28, 28, 1)")
ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str  # decides the runtime that loads it (edge_app.classifier.BACKENDS)
    dtype: str  # of weights and activations
    runtime: str  # what runs it on the device
    description: str
    # (keras model, destination path, calibration batch (n, 28, 28, 1) float32 in [0, 1]) -> None
    write: Callable[[object, Path, np.ndarray], None]

    def filename(self, stem: str) -> str:
        return f"{stem}_{self.dtype}{self.suffix}"


def _tflite_converter(model):
    import tensorflow as tf

    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def _convert_quietly(converter) -> bytes:
    # The converter prints the whole SavedModel signature to stdout; keep the export log readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def write_tflite_float32(model, destination: Path, calibration: np.ndarray) -> None:
    _, converter = _tflite_converter(model)
    destination.write_bytes(_convert_quietly(converter))


def write_tflite_int8(model, destination: Path, calibration: np.ndarray) -> None:
    """Full-integer int8: weights, activations, input and output, calibrated on prepared training digits."""
    tf, converter = _tflite_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    destination.write_bytes(_convert_quietly(converter))


def _onnx_float_proto(model):
    # tf2onnx.convert.from_keras fails on Keras 3 models; converting a tf.function works.
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec((None, 28, 28, 1), tf.float32, name="image"),)
    forward = tf.function(lambda image: model(image, training=False))
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=ONNX_OPSET)
    return proto


def model_labels(model) -> list[str]:
    """The class names of a Keras model, by its output size (ten digits, then "not a digit" if it has one)."""
    from edge_app.classifier import class_names

    return list(class_names(int(model.output_shape[-1])))


def _attach_onnx_metadata(proto, model, extra: dict[str, str]) -> None:
    import json

    # The labels travel inside the file, so an ONNX model copied without its manifest still says its classes.
    fields = {"labels": json.dumps(model_labels(model)), "preprocessing": PREPROCESSING, **extra}
    del proto.metadata_props[:]
    for key, value in fields.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def write_onnx_float32(model, destination: Path, calibration: np.ndarray) -> None:
    import onnx

    proto = _onnx_float_proto(model)
    _attach_onnx_metadata(proto, model, {"dtype": "float32"})
    onnx.save(proto, str(destination))


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol: one input dict per call, None when done."""

    def __init__(self, input_name: str, calibration: np.ndarray):
        self.samples = iter(calibration[i:i + 1] for i in range(len(calibration)))
        self.input_name = input_name

    def get_next(self):
        sample = next(self.samples, None)
        return None if sample is None else {self.input_name: sample}


def write_onnx_int8(model, destination: Path, calibration: np.ndarray) -> None:
    """Static QDQ int8 through onnxruntime's quantizer (per-channel weights), calibrated like TFLite int8."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as scratch:
        float_path = Path(scratch) / "float.onnx"
        onnx.save(_onnx_float_proto(model), str(float_path))
        quantize_static(str(float_path), str(destination), _CalibrationReader("image", calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    proto = onnx.load(str(destination))
    _attach_onnx_metadata(proto, model, {"dtype": "int8"})
    onnx.save(proto, str(destination))


FORMATS: dict[str, ExportFormat] = {fmt.name: fmt for fmt in (
    ExportFormat("tflite_int8", ".tflite", "int8", "LiteRT (ai-edge-litert)",
                 "full-integer int8 TFLite, calibrated", write_tflite_int8),
    ExportFormat("tflite_float32", ".tflite", "float32", "LiteRT (ai-edge-litert)",
                 "float32 TFLite", write_tflite_float32),
    ExportFormat("onnx_float32", ".onnx", "float32", "ONNX Runtime", "float32 ONNX (tf2onnx)", write_onnx_float32),
    ExportFormat("onnx_int8", ".onnx", "int8", "ONNX Runtime",
                 "static QDQ int8 ONNX (onnxruntime quantizer)", write_onnx_int8),
)}
