"""`digits predict PATH...`: read the digits in each image file with a .tflite or .onnx model.

A still is read exactly as `digits run --source FILE` reads it (`run.read_still`: the guarded decode,
the still detector, lines of numbers). A photo of one digit answers that digit with its top 3; a
photo of several answers its lines. Each file's line is printed as soon as it is read.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_app.classifier import ModelError, load_classifier
from edge_app.files import write_png_atomic
from edge_app.images import IMAGE_SUFFIXES, ImageError
from edge_app.models import default_model_path
from edge_app.run import (
    DigitPipeline,
    DigitReading,
    FrameResult,
    add_reading_arguments,
    detector_configs,
    one_line,
    output_folder_problem,
    read_still,
    thread_count,
)

# A still in which nothing reads as a digit: `digits predict`'s line (after the file name) and `digits serve`'s
# answer to an upload.
NO_DIGIT_FOUND = "no digit found (blank page, too little contrast, or nothing shaped like a digit on paper; " \
                 "--debug shows why)"


@dataclass(frozen=True)
class FileResult:
    path: str
    reading: FrameResult | None
    error: str | None  # one line, set when reading is None


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


def predict_file(path: Path, pipeline: DigitPipeline, index: int = 0, debug_dir: Path | None = None) -> FileResult:
    """One file, read exactly as `digits run --source FILE` reads it (`run.read_still`)."""
    try:
        reading = read_still(path, pipeline, index, debug_dir)
    except ImageError as error:
        return FileResult(str(path), None, str(error))
    if not reading.digits:
        return FileResult(str(path), None, f"{path}: {NO_DIGIT_FOUND}")
    return FileResult(str(path), reading, None)


def save_inputs(result: FileResult, index: int, folder: Path) -> None:
    """Write the 28x28 images the model read for this file, each under its final name only once complete."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(result.path).stem
    for k, (digit_input, reading) in enumerate(zip(result.reading.inputs, result.reading.digits)):
        name = f"{index:05d}_{stem}_{reading.digit}.png" if len(result.reading.digits) == 1 else \
            f"{index:05d}_{stem}_{k:03d}_{reading.digit}.png"
        write_png_atomic(folder / name, digit_input)


def _single(reading: FrameResult) -> DigitReading | None:
    """The one digit of a still that shows one digit, else None. A lone region is answered even when the
    model is unsure of it (its confidence and top 3 say so), as `digits predict` always has."""
    if len(reading.digits) == 1:
        return reading.digits[0]
    if len(reading.lines) == 1 and len(reading.lines[0].members) == 1:
        return reading.digits[reading.lines[0].members[0]]
    return None


def format_result(result: FileResult, output_format: str, debug: bool = False) -> str:
    """A still that shows one digit: the digit with its top 3; several: its lines of numbers."""
    reading = result.reading
    single = _single(reading)
    if output_format in ("jsonl", "json"):
        row = {"path": result.path, "text": reading.text}
        if single is not None:
            # "digit": null when the model says the region is no digit (its top 3 digits are still given)
            row.update({"digit": single.digit if single.is_digit else None, "confidence": round(single.confidence, 4),
                        "not_digit": round(single.not_digit, 4),
                        "top3": [[digit, round(p, 4)] for digit, p in single.top3]})
        full = reading.to_json(debug)
        row.update({key: full[key] for key in ("lines", "digits", "latency_ms") + (("rejected",) if debug else ())})
        return json.dumps(row)
    if single is not None:
        top3 = ", ".join(f"{digit} {p:.3f}" for digit, p in single.top3)
        if not single.is_digit:
            return f"{result.path}: no digit (not a digit {100 * single.not_digit:.1f}%)  top3: {top3}"
        return f"{result.path}: {single.digit} ({100 * single.confidence:.1f}%)  top3: {top3}"
    if not reading.text:
        return f"{result.path}: (no digit: {len(reading.digits)} regions below the confidence gate)"
    return f"{result.path}: {one_line(reading.text)}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    parser.add_argument("--model", default=None, help=f"a .tflite or .onnx model (default: {default_model_path()})")
    parser.add_argument("--format", dest="output_format", choices=["text", "jsonl", "json"], default="text",
                        help="text lines, or one JSON object per line ('jsonl', as digits run; 'json' is the same)")
    parser.add_argument("--threads", type=thread_count, default=None, help="inference threads (default: the runtime's)")
    parser.add_argument("--save-inputs", type=Path, default=None,
                        help="also write the 28x28 images the model saw for each file into this folder")
    add_reading_arguments(parser)


def main(args: argparse.Namespace) -> int:
    try:
        live, still = detector_configs(args)
        classifier = load_classifier(args.model or default_model_path(), threads=args.threads,
                                     verify=not args.allow_modified_model)
    except (ModelError, ValueError) as error:
        print(f"digits predict: {error}", file=sys.stderr)
        return 2
    if args.save_inputs is not None and args.save_inputs.exists() and not args.save_inputs.is_dir():
        print(f"digits predict: --save-inputs {args.save_inputs}: is a file; give a folder (it is created if missing)",
              file=sys.stderr)
        return 2
    for folder, flag in ((args.save_inputs, "--save-inputs"), (args.debug_dir, "--debug-dir")):
        if problem := output_folder_problem(folder, flag):
            print(f"digits predict: {problem}", file=sys.stderr)
            return 2
    pipeline = DigitPipeline(classifier, args.min_confidence, live_detector=live, still_detector=still)
    paths, failures = expand_inputs(args.paths)
    for message in failures:
        print(f"digits predict: {message}", file=sys.stderr)
    for index, path in enumerate(paths):
        result = predict_file(path, pipeline, index, args.debug_dir)
        if result.error:
            failures.append(result.error)
            print(f"digits predict: {result.error}", file=sys.stderr, flush=True)
            continue
        if args.save_inputs is not None:
            save_inputs(result, index, args.save_inputs)
        print(format_result(result, args.output_format, args.debug or args.debug_dir is not None), flush=True)
    return 1 if failures else 0
