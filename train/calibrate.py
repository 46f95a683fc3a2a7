"""Temperature scaling (Guo et al., 2017): one number that makes the model's confidence mean what it says.

A network trained with label smoothing is under-confident (its top probability stops near 0.97), one
trained without is over-confident. Dividing the logits by a temperature T fitted on held-out data
fixes both without changing any prediction. T is folded into the last Dense layer (W/T, b/T), so every
exported format (float, int8, TFLite, ONNX) gives calibrated probabilities with no code on the device.
"""
from __future__ import annotations

import numpy as np

from edge_app.classifier import log_probabilities, softmax, with_reject_bias

TEMPERATURE_RANGE = (0.05, 20.0)


def scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits)."""
    return softmax(log_probabilities(probabilities) / temperature)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = scaled(probabilities, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the held-out negative log-likelihood (a golden-section search over log T:
    the likelihood is convex in 1/T, so one minimum)."""
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    golden = (np.sqrt(5) - 1) / 2
    a, b = high - golden * (high - low), low + golden * (high - low)
    fa = negative_log_likelihood(probabilities, labels, np.exp(a))
    fb = negative_log_likelihood(probabilities, labels, np.exp(b))
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - golden * (high - low)
            fa = negative_log_likelihood(probabilities, labels, np.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + golden * (high - low)
            fb = negative_log_likelihood(probabilities, labels, np.exp(b))
    return float(np.exp((low + high) / 2))


def fold_temperature(model, temperature: float) -> None:
    """Divide the last Dense layer's kernel and bias by T, in place: softmax((Wx + b) / T)."""
    head = model.layers[-1]
    kernel, bias = head.get_weights()
    head.set_weights([kernel / temperature, bias / temperature])


REJECT_BIASES = np.arange(0.0, 3.01, 0.25)  # added to the "not a digit" logit, in steps of e^0.25 = 1.28x its odds


def fit_reject_bias(probabilities: np.ndarray, labels: np.ndarray, reject_class: int,
                    max_digits_rejected: float) -> float:
    """The largest bias on the "not a digit" logit that still rejects at most `max_digits_rejected` of
    the held-out digits: the operating point of the reject class, chosen on validation data.

    Trained on one negative in four examples, the model's prior for "not a digit" is that share, while a
    detector's crops in the app are mostly clutter when no digit is shown. A bias trades digits rejected
    for non-digits caught; the budget on digits is the goal's (README, Classifier), less a margin.
    """
    digits = probabilities[labels != reject_class]
    best = 0.0
    for bias in REJECT_BIASES:
        if (with_reject_bias(digits, reject_class, bias).argmax(axis=1) == reject_class).mean() > max_digits_rejected:
            break
        best = float(bias)
    return best


def fold_reject_bias(model, reject_class: int, bias: float) -> None:
    """Add `bias` to the last Dense layer's "not a digit" output, in place (after the temperature)."""
    head = model.layers[-1]
    kernel, dense_bias = head.get_weights()
    dense_bias = dense_bias.copy()
    dense_bias[reject_class] += bias
    head.set_weights([kernel, dense_bias])
