"""Accuracy of any Classifier on MNIST, in batches, through the project's one preprocessing module."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_app.classifier import Classifier
from edge_app.mnist import MnistSplit
from edge_app.preprocess import to_mnist_input


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # share of images whose top digit is the label, in [0, 1]
    predicted: np.ndarray  # (n,) int, the top digit per image
    count: int


def predict_digits(classifier: Classifier, digits: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n,) predicted digits."""
    chunks = [classifier.probabilities(digits[i:i + batch_size]).argmax(axis=1)
              for i in range(0, len(digits), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int64)


def evaluate(classifier: Classifier, split: MnistSplit, batch_size: int = 256) -> Evaluation:
    """Accuracy on MNIST images as published (already in MNIST form, so they go straight to the model)."""
    predicted = predict_digits(classifier, split.images, batch_size)
    return Evaluation(float((predicted == split.labels).mean()), predicted, len(predicted))


def reprepare(images: np.ndarray) -> np.ndarray:
    """Pass MNIST images through `to_mnist_input` again, exactly as a camera crop or a file would go.

    Used for int8 calibration (so the quantization ranges are those of real inputs) and to check that
    our preprocessing leaves MNIST digits as MNIST made them. Blank results (none expected) stay zeros.
    """
    prepared = [to_mnist_input(image) for image in images]
    return np.stack([p if p is not None else np.zeros((28, 28), np.uint8) for p in prepared])


CALIBRATION_BINS = 15  # equal-width confidence bins, as in Guo et al. (2017)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """The gap between confidence and accuracy, averaged over confidence bins weighted by their share of
    the answers: 0.02 means a model that says 90% is right between about 88% and 92% of the time."""
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)
