"""Score shipped (edge) models on every held-out set: how README's classifier table was measured.

    python tests/score_classifier.py                               # every cnn artifact in models/
    python tests/score_classifier.py --models models/cnn_int8.tflite --count 4000 --json out.json

Per model and set (`train.heldout`: MNIST test, rendered camera crops, red and green pens, not-a-digit crops,
box-normalised 16x16 scans of MNIST test, the real photos' digits, other writers' 8x8 scans): accuracy (a "not
a digit" answer to a digit counts as wrong), the share of digits rejected, the share of non-digits answered
"not a digit", the expected calibration error, and the weakest classes. `--curve` adds the right / wrong /
refused shares of the digits and the non-digits taken for digits at each confidence gate: how
`--min-confidence`'s default was chosen.
The models run through the edge runtimes (`load_classifier`), exactly as the app runs them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edge_app import mnist  # noqa: E402
from edge_app.classifier import NOT_A_DIGIT_INDEX, load_classifier  # noqa: E402
from train import heldout  # noqa: E402

GATES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def probabilities(classifier, images: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([classifier.probabilities(images[i:i + batch]) for i in range(0, len(images), batch)])


def gate_curve(digit_probs: np.ndarray, digit_labels: np.ndarray, other_probs: np.ndarray) -> list[dict]:
    """At each gate: of the digits, the shares read right, read wrong and refused; of the non-digits, the share
    taken for a digit. A region counts as a digit when its likeliest digit's probability reaches the gate."""
    rows = []
    digit_conf = digit_probs[:, :NOT_A_DIGIT_INDEX].max(axis=1)
    digit_pred = digit_probs[:, :NOT_A_DIGIT_INDEX].argmax(axis=1)
    other_conf = other_probs[:, :NOT_A_DIGIT_INDEX].max(axis=1) if len(other_probs) else np.zeros(0)
    for gate in GATES:
        taken = digit_conf >= gate
        rows.append({"gate": gate, "right": round(float((taken & (digit_pred == digit_labels)).mean()), 5),
                     "wrong": round(float((taken & (digit_pred != digit_labels)).mean()), 5),
                     "refused": round(float((~taken).mean()), 5),
                     "non_digits_taken": round(float((other_conf >= gate).mean()), 5) if len(other_conf) else None})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, default=None)
    parser.add_argument("--data", default=None, help="MNIST folder (default: $DIGITS_MNIST_DIR)")
    parser.add_argument("--count", type=int, default=2000, help="rendered crops per set")
    parser.add_argument("--curve", action="store_true", help="the confidence-gate curve on camera crops + not-digits")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args()
    models = args.models or sorted((ROOT / "models").glob("cnn_*.tflite")) + sorted((ROOT / "models").glob("cnn_*.onnx"))
    test = mnist.load_split("test", args.data)
    sets = heldout.all_sets(test, args.count)
    for s in sets:
        print(f"{s.name}: {s.description}")
    report = {}
    for path in models:
        classifier = load_classifier(path)
        results = {}
        print(f"\n{path.name} ({len(classifier.labels)} classes)")
        print(f"  {'set':<20} {'count':>6} {'accuracy':>9} {'rejected':>9} {'ECE':>7}  weakest")
        for s in sets:
            probs = probabilities(classifier, s.images)
            result = heldout.score(probs, s.labels)
            results[s.name] = result
            weakest = sorted(result["per_class_accuracy"].items(), key=lambda item: item[1])[:3]
            rejected = result["digits_rejected"]
            print(f"  {s.name:<20} {result['count']:>6} {100 * result['accuracy']:>8.2f}% "
                  f"{'' if rejected is None else f'{100 * rejected:.2f}%':>9} "
                  f"{100 * result['expected_calibration_error']:>6.2f}%  "
                  + ", ".join(f"{k} {100 * v:.1f}%" for k, v in weakest))
        if args.curve:
            by_name = {s.name: s for s in sets}
            digit_sets = [by_name[n] for n in ("camera_crops", "coloured_pen_crops", "real_crops") if n in by_name]
            digit_probs = np.concatenate([probabilities(classifier, s.images) for s in digit_sets])
            digit_labels = np.concatenate([s.labels for s in digit_sets])
            curve = gate_curve(digit_probs, digit_labels, probabilities(classifier, by_name["not_digit_crops"].images))
            results["gate_curve"] = curve
            print(f"  {'gate':>5} {'right':>8} {'wrong':>8} {'refused':>8} {'non-digits taken':>17}")
            for row in curve:
                taken = row["non_digits_taken"]
                print(f"  {row['gate']:>5.2f} {100 * row['right']:>7.2f}% {100 * row['wrong']:>7.2f}% "
                      f"{100 * row['refused']:>7.2f}% {'' if taken is None else f'{100 * taken:.2f}%':>17}")
        report[path.name] = results
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
