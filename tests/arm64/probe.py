"""Dump what the edge pipeline computes on each image, at full precision, for an x86-vs-arm64 diff.

    python probe.py MODEL... -- IMAGE...

Prints one JSON object per image: the SHA-256 of the 28x28 input that preprocessing produced (so an
OpenCV difference between architectures shows up before the model does) and, per model, the ten
probabilities as exact float32 hex strings plus the runtime that ran it. `digits predict` rounds
its output for people; this keeps every bit, so "int8 outputs match exactly" is checkable.
"""
from __future__ import annotations

import hashlib
import json
import sys

import cv2
import numpy as np

from edge_app.classifier import load_classifier
from edge_app.preprocess import to_mnist_input


def main(argv: list[str]) -> int:
    split = argv.index("--")
    models, images = argv[:split], argv[split + 1:]
    classifiers = {model: load_classifier(model) for model in models}
    for image_path in images:
        image = cv2.imread(image_path, cv2.IMREAD_UNCHANGED)
        digit = to_mnist_input(image)  # (28, 28) uint8, or None for a blank page
        record = {"path": image_path,
                  "input_sha256": None if digit is None else hashlib.sha256(digit.tobytes()).hexdigest()}
        for model, classifier in classifiers.items():
            if digit is None:
                continue
            probabilities = classifier.probabilities(digit[None])[0].astype(np.float32)
            record[model] = {"runtime": classifier.runtime,
                             "probabilities": [float(p).hex() for p in probabilities]}
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
