"""Export a .keras model to every format in the registry, verify each file with the edge runtime, record it.

Each artifact is written to a staging file, loaded back with the same `load_classifier` the device
uses, and scored on the MNIST test set next to the Keras model. Only when every format is done are the
files and the manifest renamed into place together, under a lock (`commit`). A file that loses more
than `max_drop_points` of accuracy never appears in models/ or in the manifest; what a killed export
left behind is removed by the next one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import secrets
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from edge_app import mnist
from edge_app.classifier import Classifier, ModelError, OnnxClassifier, TFLiteClassifier, load_classifier
from edge_app.evaluate import evaluate, reprepare
from edge_app.models import MANIFEST_NAME
from edge_app.preprocess import to_model_batch
from export.formats import FORMATS, PREPROCESSING, ExportFormat, model_labels


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


NOT_DIGIT_CALIBRATION_SHARE = 0.1  # of the int8 calibration images, for models with a "not a digit" class


def calibration_batch(train: mnist.MnistSplit, size: int, seed: int = 0, not_digits: bool = False) -> np.ndarray:
    """(size, 28, 28, 1) float32: training digits prepared exactly as inputs are at inference; with
    `not_digits`, a share of "not a digit" crops too (a filled blob drives activations far beyond a
    digit's, and int8 ranges fitted on digits alone would clip them)."""
    extra = int(round(size * NOT_DIGIT_CALIBRATION_SHARE)) if not_digits else 0
    picked = np.random.default_rng(seed).choice(len(train.images), size=min(size - extra, len(train.images)),
                                                replace=False)
    digits = reprepare(train.images[picked])
    if extra:
        from train.negatives import not_digit_examples

        digits = np.concatenate([digits, not_digit_examples(train, extra, seed)[0]])
    return to_model_batch(digits)


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
        def as_shape(shape):
            return [d if isinstance(d, int) else -1 for d in shape]

        return {"input": {"name": inp.name, "shape": as_shape(inp.shape), "dtype": "float32", "layout": "NHWC",
                          "quantization": None},
                "output": {"name": out.name, "shape": as_shape(out.shape), "dtype": "float32", "quantization": None}}
    return {}


def staging_path(final: Path) -> Path:
    """Where an artifact is written and verified before it is moved into place: a hidden name carrying this
    process' id, so a later export can tell a killed export's leftovers from a running one's."""
    return final.with_name(f".{final.stem}.{os.getpid()}.{secrets.token_hex(4)}{final.suffix}")


def remove_stale_files(out_dir: Path) -> list[Path]:
    """Delete what exports that were killed left behind: staging files whose process is gone."""
    removed = []
    for path in Path(out_dir).glob(".*.*.*"):
        parts = path.name.split(".")
        if len(parts) < 4 or not parts[2].isdigit() or _alive(int(parts[2])):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@contextlib.contextmanager
def manifest_lock(out_dir: Path):
    """One export at a time commits into a folder: two manifest updates at once would lose an entry."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".manifest.lock", "a") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX (Windows): no lock, as before
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_and_verify(fmt: ExportFormat, model, out_dir: Path, stem: str, calibration: np.ndarray,
                     test: mnist.MnistSplit, keras_predicted: np.ndarray, max_drop_points: float
                     ) -> tuple[ArtifactReport, dict, Path]:
    """Write one artifact to a staging file and verify it; (report, io, staging file). The caller moves it
    into place together with the manifest (`commit`); a failure leaves nothing behind."""
    started = time.perf_counter()
    keras_accuracy = float((keras_predicted == test.labels).mean())
    final = out_dir / fmt.filename(stem)
    staged = staging_path(final)
    try:
        fmt.write(model, staged, calibration)
        try:
            classifier = load_classifier(staged, threads=2, verify=False)
        except ModelError as error:
            raise ExportError(f"{final.name}: the exported file does not load ({error})") from None
        result = evaluate(classifier, test)
        drop_points = 100 * (keras_accuracy - result.accuracy)
        if drop_points > max_drop_points:
            raise ExportError(f"{final.name}: accuracy {100 * result.accuracy:.2f}% is {drop_points:.2f} points below "
                              f"Keras ({100 * keras_accuracy:.2f}%), more than --max-drop {max_drop_points}; not written")
        io = describe_io(classifier)
        del classifier  # release the file before it is moved
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    report = ArtifactReport(
        file=final.name, format=fmt.name, dtype=fmt.dtype, size_bytes=staged.stat().st_size, sha256=sha256_of(staged),
        accuracy=result.accuracy, keras_accuracy=keras_accuracy,
        agreement=float((result.predicted == keras_predicted).mean()), seconds=time.perf_counter() - started)
    return report, io, staged


def manifest_entry(report: ArtifactReport, fmt: ExportFormat, io: dict, source: Path, command_line: str,
                   calibration_size: int, labels: list[str]) -> dict:
    train_report = source.with_suffix(".train.json")
    training = json.loads(train_report.read_text()) if train_report.is_file() else {}
    return {
        "file": report.file, "format": fmt.name, "dtype": fmt.dtype, "runtime": fmt.runtime,
        "description": fmt.description, "labels": labels,
        # softmax(logits / T), folded into the last layer at training; None: not calibrated
        "temperature": training.get("temperature"),
        # added to the "not a digit" logit after T, also folded in (train.calibrate.fit_reject_bias); None: none
        "reject_bias": training.get("reject_bias"),
        # the share of "not a digit" among the training examples: the model's prior for it; None: not known
        "not_digit_share": _not_digit_share(training, labels), **io,
        "size_bytes": report.size_bytes, "sha256": report.sha256,
        "mnist_test_accuracy": round(report.accuracy, 5), "keras_accuracy": round(report.keras_accuracy, 5),
        "agreement_with_keras": round(report.agreement, 5),
        "calibration_images": calibration_size if fmt.dtype == "int8" else None,
        "source_model": source.name, "command": command_line, "versions": package_versions(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _not_digit_share(training: dict, labels: list[str]) -> float | None:
    images, not_digits = training.get("train_images"), training.get("train_not_digit_images")
    if len(labels) <= 10 or not isinstance(images, int) or not isinstance(not_digits, int) or not 0 < not_digits < images:
        return None
    return round(not_digits / images, 6)


def updated_manifest(out_dir: Path, entries: dict[str, dict], training: dict | None) -> dict:
    path = out_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    manifest.pop("labels", None)  # each artifact records its own classes: 10-class and 11-class models live side by side
    manifest["preprocessing"] = PREPROCESSING
    manifest.setdefault("artifacts", {}).update(entries)
    if training:
        manifest.setdefault("training", {}).update(training)
    manifest["artifacts"] = dict(sorted(manifest["artifacts"].items()))
    return manifest


def commit(out_dir: Path, staged: dict[str, Path], entries: dict[str, dict], training: dict | None) -> Path:
    """Move the verified artifacts into place and record them, under the folder's lock.

    Everything slow (writing, verifying) happened before: here the new manifest is written to a staging
    file, then the artifacts and the manifest are renamed in one go, so a kill leaves the old files under
    the old manifest, or (for a few milliseconds of renames) part of the new ones; never a minutes-long
    window as when each file was moved as soon as it was verified.
    """
    path = out_dir / MANIFEST_NAME
    with manifest_lock(out_dir):
        manifest_staged = staging_path(path)
        manifest_staged.write_text(json.dumps(updated_manifest(out_dir, entries, training), indent=2) + "\n")
        for name, source in staged.items():
            os.replace(source, out_dir / name)
        os.replace(manifest_staged, path)
    return path


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
    labels = model_labels(model)
    calibration = calibration_batch(train_split, calibration_size, not_digits=len(labels) > 10)
    stem = keras_path.stem
    reports, errors, entries, staged = [], [], {}, {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in remove_stale_files(out_dir):
        progress(f"removed {leftover.name}, left behind by an export that was killed")
    try:
        for name in format_names:
            fmt = FORMATS[name]
            try:
                report, io, staged[fmt.filename(stem)] = write_and_verify(
                    fmt, model, out_dir, stem, calibration, test_split, keras_predicted, max_drop_points)
            except ExportError as error:
                errors.append(str(error))
                progress(f"FAILED {error}")
                continue
            reports.append(report)
            entries[report.file] = manifest_entry(report, fmt, io, keras_path, command_line, len(calibration), labels)
            progress(f"{report.file}: {100 * report.accuracy:.2f}% (Keras {100 * report.keras_accuracy:.2f}%), "
                     f"agreement {100 * report.agreement:.2f}%, {report.size_bytes / 1024:.1f} KiB, "
                     f"{report.seconds:.1f} s")
        if entries:
            commit(out_dir, staged, entries, _training_record(keras_path))
    finally:
        for leftover in staged.values():
            leftover.unlink(missing_ok=True)  # what was not committed (an error, Ctrl-C) leaves nothing
    return reports, errors


def _training_record(keras_path: Path) -> dict | None:
    train_report = keras_path.with_suffix(".train.json")
    if not train_report.is_file():
        return None
    info = json.loads(train_report.read_text())
    training = {keras_path.name: {k: info.get(k) for k in
                                  ("command", "seconds", "best_epoch", "parameters", "machine", "versions",
                                   "labels", "temperature", "reject_bias")}}
    training[keras_path.name]["keras_test_accuracy"] = info.get("test", {}).get("accuracy")
    return training
