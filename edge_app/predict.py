"""`digits predict PATH...`: read the digit in each image file with a .tflite or .onnx model."""
from __future__ import annotations

import argparse
import glob
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_app.classifier import ModelError, Prediction, load_classifier
from edge_app.models import default_model_path
from edge_app.preprocess import to_mnist_input

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
BATCH_SIZE = 256


class InputError(ValueError):
    """One input file that cannot be read as a digit; the message names the file and what is wrong."""


@dataclass(frozen=True)
class FileResult:
    path: str
    prediction: Prediction | None
    error: str | None  # one line, set when prediction is None


def expand_inputs(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their images, sorted) and globs -> (paths, errors for patterns that match nothing)."""
    paths, errors = [], []
    for pattern in patterns:
        candidate = Path(pattern)
        if candidate.is_dir():
            found = sorted(p for p in candidate.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                errors.append(f"{pattern}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths.extend(found)
        elif candidate.exists() or not glob.has_magic(pattern):
            paths.append(candidate)  # a missing plain path is reported when it is read
        else:
            matched = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matched:
                errors.append(f"{pattern}: no file matches this pattern")
            paths.extend(matched)
    return paths, errors


def read_image(path: Path) -> np.ndarray:
    """Decode an image file as stored (alpha kept); InputError with the reason otherwise."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    data = path.read_bytes()
    if not data:
        raise InputError(f"{path}: file is empty")
    # imdecode instead of imread: it handles any path name and never prints its own warnings.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(f"{path}: not an image OpenCV can read (PNG, JPEG, BMP, TIFF, WebP, PNM ...)")
    return image


def prepare_file(path: Path) -> np.ndarray:
    """One file -> (28, 28) uint8 model input, through the project's one preprocessing module."""
    digit = to_mnist_input(read_image(path))
    if digit is None:
        raise InputError(f"{path}: no digit found (blank page or too little contrast)")
    return digit


def predict_files(paths: list[Path], classifier, save_inputs: Path | None = None) -> list[FileResult]:
    prepared: list[tuple[int, np.ndarray]] = []
    results: list[FileResult | None] = [None] * len(paths)
    for index, path in enumerate(paths):
        try:
            prepared.append((index, prepare_file(path)))
        except InputError as error:
            results[index] = FileResult(str(path), None, str(error))
    for start in range(0, len(prepared), BATCH_SIZE):
        chunk = prepared[start:start + BATCH_SIZE]
        predictions = classifier.predict(np.stack([digit for _, digit in chunk]))
        for (index, digit), prediction in zip(chunk, predictions):
            results[index] = FileResult(str(paths[index]), prediction, None)
            if save_inputs is not None:
                save_inputs.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(save_inputs / f"{index:05d}_{paths[index].stem}_{prediction.digit}.png"), digit)
    return results


def format_result(result: FileResult, output_format: str) -> str:
    prediction = result.prediction
    if output_format == "json":
        return json.dumps({"path": result.path, "digit": prediction.digit,
                           "confidence": round(prediction.confidence, 4),
                           "top3": [[digit, round(p, 4)] for digit, p in prediction.top3]})
    top3 = ", ".join(f"{digit} {p:.3f}" for digit, p in prediction.top3)
    return f"{result.path}: {prediction.digit} ({100 * prediction.confidence:.1f}%)  top3: {top3}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    parser.add_argument("--model", default=None, help=f"a .tflite or .onnx model (default: {default_model_path()})")
    parser.add_argument("--format", dest="output_format", choices=["text", "json"], default="text",
                        help="text lines, or one JSON object per line")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: the runtime's)")
    parser.add_argument("--save_inputs", type=Path, default=None,
                        help="also write the 28x28 image the model saw for each file into this folder")


def main(args: argparse.Namespace) -> int:
    try:
        classifier = load_classifier(args.model or default_model_path(), threads=args.threads)
    except ModelError as error:
        print(f"digits predict: {error}", file=sys.stderr)
        return 2
    paths, failures = expand_inputs(args.paths)
    for message in failures:
        print(f"digits predict: {message}", file=sys.stderr)
    for result in predict_files(paths, classifier, args.save_inputs):
        if result.error:
            failures.append(result.error)
            print(f"digits predict: {result.error}", file=sys.stderr)
        else:
            print(format_result(result, args.output_format), flush=True)
    return 1 if failures else 0
