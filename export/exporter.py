"""Export a .keras model to every format in the registry, verify each file with the edge runtime, record it.

Each artifact is written to a temporary file, loaded back with the same `load_classifier` the device
uses, scored on the MNIST test set next to the Keras model, and only then renamed into place. A file
that loses more than `max_drop_points` of accuracy never appears in models/ or in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from edge_app import mnist
from edge_app.classifier import Classifier, ModelError, OnnxClassifier, TFLiteClassifier, load_classifier
from edge_app.evaluate import evaluate, reprepare
from edge_app.files import atomic_path, write_json_atomic
from edge_app.models import MANIFEST_NAME
from edge_app.preprocess import to_model_batch
from export.formats import FORMATS, LABELS, PREPROCESSING, ExportFormat


class ExportError(RuntimeError):
    """An export that must not ship: a bad source model, missing data, or an artifact that lost accuracy."""


@dataclass(frozen=True)
class ArtifactReport:
    file: str
    format: str
    dtype: str
    size_bytes: int
    sha256: str
    accuracy: float  # MNIST test set, [0, 1]
    keras_accuracy: float
    agreement: float  # share of test images where the artifact's top digit equals Keras'
    seconds: float  # to write and verify


def package_versions() -> dict[str, str]:
    names = ["tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy", "opencv-python"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_keras_model(path: Path):
    import keras

    if not path.is_file():
        raise ExportError(f"model {path} not found: train one with `digits train -o {path}`")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a corrupt archive
        raise ExportError(f"{path} is not a loadable .keras model ({str(error).splitlines()[0][:120]})") from None


def calibration_batch(train: mnist.MnistSplit, size: int, seed: int = 0) -> np.ndarray:
    """(size, 28, 28, 1) float32: training digits prepared exactly as inputs are at inference."""
    picked = np.random.default_rng(seed).choice(len(train.images), size=min(size, len(train.images)), replace=False)
    return to_model_batch(reprepare(train.images[picked]))


def describe_io(classifier: Classifier) -> dict:
    """Input/output shape, layout and quantization, read from the model file itself."""
    if isinstance(classifier, TFLiteClassifier):
        details = {}
        for role, tensor in (("input", classifier.input), ("output", classifier.output)):
            scale, zero_point = tensor["quantization"]
            details[role] = {"name": tensor["name"], "shape": [int(d) for d in tensor["shape_signature"]],
                             "dtype": np.dtype(tensor["dtype"]).name,
                             "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None}
        details["input"]["layout"] = "NHWC"
        return details
    if isinstance(classifier, OnnxClassifier):
        inp, out = classifier.session.get_inputs()[0], classifier.session.get_outputs()[0]
        as_shape = lambda shape: [d if isinstance(d, int) else -1 for d in shape]
        return {"input": {"name": inp.name, "shape": as_shape(inp.shape), "dtype": "float32", "layout": "NHWC",
                          "quantization": None},
                "output": {"name": out.name, "shape": as_shape(out.shape), "dtype": "float32", "quantization": None}}
    return {}


def write_and_verify(fmt: ExportFormat, model, out_dir: Path, stem: str, calibration: np.ndarray,
                     test: mnist.MnistSplit, keras_predicted: np.ndarray, max_drop_points: float) -> tuple[ArtifactReport, dict]:
    started = time.perf_counter()
    keras_accuracy = float((keras_predicted == test.labels).mean())
    final = out_dir / fmt.filename(stem)
    with atomic_path(final) as tmp:
        fmt.write(model, tmp, calibration)
        try:
            classifier = load_classifier(tmp, threads=2)
        except ModelError as error:
            raise ExportError(f"{final.name}: the exported file does not load ({error})") from None
        result = evaluate(classifier, test)
        drop_points = 100 * (keras_accuracy - result.accuracy)
        if drop_points > max_drop_points:
            raise ExportError(f"{final.name}: accuracy {100 * result.accuracy:.2f}% is {drop_points:.2f} points below "
                              f"Keras ({100 * keras_accuracy:.2f}%), more than --max_drop {max_drop_points}; not written")
        io = describe_io(classifier)
        del classifier  # release the file before it is renamed
    report = ArtifactReport(
        file=final.name, format=fmt.name, dtype=fmt.dtype, size_bytes=final.stat().st_size, sha256=sha256_of(final),
        accuracy=result.accuracy, keras_accuracy=keras_accuracy,
        agreement=float((result.predicted == keras_predicted).mean()), seconds=time.perf_counter() - started)
    return report, io


def manifest_entry(report: ArtifactReport, fmt: ExportFormat, io: dict, source: Path, command_line: str,
                   calibration_size: int) -> dict:
    return {
        "file": report.file, "format": fmt.name, "dtype": fmt.dtype, "runtime": fmt.runtime,
        "description": fmt.description, **io,
        "size_bytes": report.size_bytes, "sha256": report.sha256,
        "mnist_test_accuracy": round(report.accuracy, 5), "keras_accuracy": round(report.keras_accuracy, 5),
        "agreement_with_keras": round(report.agreement, 5),
        "calibration_images": calibration_size if fmt.dtype == "int8" else None,
        "source_model": source.name, "command": command_line, "versions": package_versions(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def update_manifest(out_dir: Path, entries: dict[str, dict], training: dict | None) -> Path:
    path = out_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    manifest.setdefault("labels", LABELS)
    manifest["preprocessing"] = PREPROCESSING
    manifest.setdefault("artifacts", {}).update(entries)
    if training:
        manifest.setdefault("training", {}).update(training)
    manifest["artifacts"] = dict(sorted(manifest["artifacts"].items()))
    return write_json_atomic(path, manifest)


def export_model(keras_path: Path, out_dir: Path, format_names: list[str], data_dir: str | None,
                 calibration_size: int = 500, max_drop_points: float = 0.3,
                 command_line: str = "digits export", progress=print) -> tuple[list[ArtifactReport], list[str]]:
    """Write, verify and record every requested format. Returns (reports of written files, error messages)."""
    keras_path, out_dir = Path(keras_path), Path(out_dir)
    model = load_keras_model(keras_path)
    try:
        train_split, test_split = mnist.load_split("train", data_dir), mnist.load_split("test", data_dir)
    except mnist.MnistNotFound as error:
        raise ExportError(f"{error} (export verifies every file on the MNIST test set)") from None

    from train.keras_classifier import KerasClassifier

    keras_predicted = evaluate(KerasClassifier(keras_path, model=model), test_split).predicted
    progress(f"{keras_path.name}: Keras accuracy {100 * (keras_predicted == test_split.labels).mean():.2f}% "
             f"on {len(test_split.labels)} MNIST test images")
    calibration = calibration_batch(train_split, calibration_size)
    stem = keras_path.stem
    reports, errors, entries = [], [], {}
    for name in format_names:
        fmt = FORMATS[name]
        try:
            report, io = write_and_verify(fmt, model, out_dir, stem, calibration, test_split, keras_predicted,
                                          max_drop_points)
        except ExportError as error:
            errors.append(str(error))
            progress(f"FAILED {error}")
            continue
        reports.append(report)
        entries[report.file] = manifest_entry(report, fmt, io, keras_path, command_line, len(calibration))
        progress(f"{report.file}: {100 * report.accuracy:.2f}% (Keras {100 * report.keras_accuracy:.2f}%), "
                 f"agreement {100 * report.agreement:.2f}%, {report.size_bytes / 1024:.1f} KiB, {report.seconds:.1f} s")
    if entries:
        train_report = keras_path.with_suffix(".train.json")
        training = None
        if train_report.is_file():
            info = json.loads(train_report.read_text())
            training = {keras_path.name: {k: info.get(k) for k in
                                          ("command", "seconds", "best_epoch", "parameters", "machine", "versions")}}
            training[keras_path.name]["keras_test_accuracy"] = info.get("test", {}).get("accuracy")
        update_manifest(out_dir, entries, training)
    return reports, errors
