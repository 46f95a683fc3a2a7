"""`digits export`: parse options and call export.exporter.export_model."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from export.formats import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default="models/cnn.keras", help="the .keras model to export")
    parser.add_argument("--out-dir", default=None, help="where to write the files and manifest.json "
                        "(default: the model's folder)")
    parser.add_argument("--formats", default="all",
                        help=f"comma-separated subset of: {', '.join(FORMATS)}")
    parser.add_argument("--data", default=None, help="MNIST IDX folder (default: $DIGITS_MNIST_DIR)")
    parser.add_argument("--calibration-size", type=int, default=500,
                        help="training images used to calibrate int8 ranges")
    parser.add_argument("--max-drop", type=float, default=0.3,
                        help="largest accuracy loss against Keras, in points, before an artifact is refused")


def parse_formats(text: str) -> list[str]:
    if text == "all":
        return list(FORMATS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise ValueError(f"--formats {text!r}: unknown {', '.join(unknown) or 'empty list'}; "
                         f"choose from {', '.join(FORMATS)} or 'all'")
    return names


def main(args: argparse.Namespace) -> int:
    try:
        formats = parse_formats(args.formats)
    except ValueError as error:
        print(f"digits export: {error}", file=sys.stderr)
        return 2
    if args.calibration_size < 1:
        print("digits export: --calibration-size must be at least 1", file=sys.stderr)
        return 2
    model = Path(args.model)
    if not model.is_file():  # said before TensorFlow takes seconds to load
        print(f"digits export: model {model} not found: train one with `digits train -o {model}`", file=sys.stderr)
        return 1
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    from export.exporter import ExportError, export_model

    out_dir = Path(args.out_dir) if args.out_dir else model.parent
    try:
        reports, errors = export_model(model, out_dir, formats, args.data, args.calibration_size, args.max_drop,
                                       getattr(args, "command_line", "digits export"))
    except ExportError as error:
        print(f"digits export: {error}", file=sys.stderr)
        return 1
    for message in errors:
        print(f"digits export: {message}", file=sys.stderr)
    print(f"wrote {len(reports)} file(s) to {out_dir} and updated {out_dir / 'manifest.json'}")
    return 1 if errors else 0
