"""The held-out sets a classifier is measured on, and the report made of them.

- `mnist_test`: MNIST's test set as published;
- `camera_crops`: MNIST test digits on a card photographed by the renderer (tilt, light, blur, noise,
  JPEG), cut out by the live detector and `to_mnist_input` as `digits run` does (a shifted set);
- `coloured_pen_crops`: the same with red and green ink, which the live detector refuses today;
- `not_digit_crops`: "not a digit" crops made from MNIST's test digits and rendered scenes with seeds
  that training never uses;
- `real_crops`: the digits of the real photos (`$DIGITS_REAL_DIR`, single digits and one-line numbers
  whose detected regions match the truth one to one), labelled by the photos' truth;
- `other_writers`: 1,797 digits by 43 writers who are not MNIST's (the UCI optdigits set that scikit-learn
  ships inside its wheel, so it needs no download): 8x8 scans, scaled up blocky, soft or sharp in turn,
  as a low-resolution scan or a small digit on a page photo reaches the app;
- `long_flag_ones`: MNIST test 1s with the long flag (and base) of European writers;
- `boxed_scans`: MNIST test digits as a scanner that stretches every digit to fill a 16x16 box and
  thresholds it to black and white gives them (as the Semeion set of European writers was made, which
  the classifier issue's writers goal is measured on and which is not here).

Everything goes through the app's own detector and preprocessing, never a copy of them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_app.classifier import NOT_A_DIGIT_INDEX, class_names
from edge_app.detect import LIVE, STILL, detect
from edge_app.evaluate import expected_calibration_error
from edge_app.images import ImageError, read_still
from edge_app.mnist import MnistSplit
from edge_app.preprocess import to_mnist_input
from edge_app.synthetic import photographed_digit
from train import styles
from train.negatives import not_digit_examples

HELDOUT_SEED = 7_000_000  # far from any training seed (training uses its own seed and seed + 1)
RED_BGR, GREEN_BGR = (40.0, 40.0, 190.0), (60.0, 150.0, 40.0)


@dataclass(frozen=True)
class LabelledSet:
    name: str
    images: np.ndarray  # (n, 28, 28) uint8, what the model is fed
    labels: np.ndarray  # (n,) int: a digit 0-9, or NOT_A_DIGIT_INDEX
    description: str


def mnist_test(split: MnistSplit) -> LabelledSet:
    return LabelledSet("mnist_test", split.images, split.labels.astype(np.int64), "MNIST test set (10,000)")


def _central_region(frame: np.ndarray, config) -> np.ndarray | None:
    """The prepared input of the detected region nearest the frame's centre (the card's digit)."""
    regions = detect(frame, config).regions
    if not regions:
        return None
    height, width = frame.shape[:2]
    region = min(regions, key=lambda r: (r.box.x + r.box.w / 2 - width / 2) ** 2 + (r.box.y + r.box.h / 2 - height / 2) ** 2)
    return to_mnist_input(region.crop)


def camera_crops(split: MnistSplit, count: int, seed: int = HELDOUT_SEED, ink_bgr=None, config=LIVE,
                 name: str = "camera_crops") -> LabelledSet:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(split.labels), count, replace=False)
    images, labels = [], []
    for index in picks:
        prepared = _central_region(photographed_digit(split.images[index], rng, ink_bgr), config)
        if prepared is not None:
            images.append(prepared)
            labels.append(int(split.labels[index]))
    return LabelledSet(name, np.stack(images), np.array(labels), f"{len(labels)} of {count} MNIST test digits "
                       "photographed on a card by the renderer, cut out by the detector")


def coloured_pen_crops(split: MnistSplit, count: int, seed: int = HELDOUT_SEED + 1) -> LabelledSet:
    """Red and green pens, cut out by a live detector that takes any pen colour."""
    from dataclasses import replace

    config = replace(LIVE, any_pen_colour=True)
    half = count // 2
    red = camera_crops(split, half, seed, RED_BGR, config)
    green = camera_crops(split, count - half, seed + 1, GREEN_BGR, config)
    return LabelledSet("coloured_pen_crops", np.concatenate([red.images, green.images]),
                       np.concatenate([red.labels, green.labels]),
                       f"{len(red.labels) + len(green.labels)} of {count} MNIST test digits in red and green ink")


def not_digit_crops(split: MnistSplit, count: int, seed: int = HELDOUT_SEED) -> LabelledSet:
    images, _ = not_digit_examples(split, count, seed)
    return LabelledSet("not_digit_crops", images, np.full(len(images), NOT_A_DIGIT_INDEX),
                       f"{len(images)} not-a-digit crops (letters, rules, blobs, hands, merged and half digits of the "
                       "test split, detector crops of rendered empty frames)")


def real_crops(real_dir: str | Path | None = None) -> LabelledSet | None:
    """The real photos' digits whose regions the still detector finds one to one with the truth."""
    folder = Path(real_dir or os.environ.get("DIGITS_REAL_DIR", "../shared/data/real"))
    truth_file = folder / "truth.json"
    if not truth_file.is_file():
        return None
    images, labels = [], []
    for entry in json.loads(truth_file.read_text()):
        if entry["kind"] not in ("single", "line"):
            continue
        try:
            frame = read_still(folder / entry["file"]).image
        except ImageError:
            continue
        digits = "".join(entry["lines"]).replace(" ", "")
        regions = detect(frame, STILL).regions
        if entry["kind"] == "single":
            regions = sorted(regions, key=lambda r: r.box.w * r.box.h)[-1:]
        else:
            regions = sorted(regions, key=lambda r: r.box.x)
        if len(regions) != len(digits):
            continue
        for region, digit in zip(regions, digits):
            prepared = to_mnist_input(region.crop)
            if prepared is not None:
                images.append(prepared)
                labels.append(int(digit))
    if not images:
        return None
    return LabelledSet("real_crops", np.stack(images), np.array(labels),
                       f"{len(labels)} digits of the real single-digit and one-line photos in {folder}")


OPTDIGITS_UPSCALINGS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def _optdigits() -> tuple[np.ndarray, np.ndarray] | None:
    """(1797, 8, 8) counts of inked pixels in 4x4 cells of a 32x32 scan (0-16) and the labels; None without
    scikit-learn, which ships them."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    optdigits = load_digits()
    return optdigits.images, optdigits.target.astype(np.int64)


def other_writers_scans() -> tuple[list[np.ndarray], np.ndarray] | None:
    """The optdigits digits as 12x12 scans of dark ink on white with a 2 px margin, and their labels; None without
    scikit-learn."""
    if (found := _optdigits()) is None:
        return None
    counts, labels = found
    scans = [cv2.copyMakeBorder(np.round(255.0 - cells * (255.0 / 16.0)).astype(np.uint8), 2, 2, 2, 2,
                                cv2.BORDER_CONSTANT, value=255) for cells in counts]
    return scans, labels


def other_writers_box_normalised(margin: int = 0) -> tuple[list[np.ndarray], np.ndarray] | None:
    """The optdigits digits as box-normalised 16x16 scans (`boxed_scan` of the 8x8 counts scaled to 32x32): other
    writers as Semeion's scanner gave them, the writers goal's hidden set; None without scikit-learn."""
    if (found := _optdigits()) is None:
        return None
    counts, labels = found
    written = [cv2.resize(np.clip(cells * 16.0, 0, 255).astype(np.uint8), (32, 32), interpolation=cv2.INTER_CUBIC)
               for cells in counts]
    return [boxed_scan(digit, margin) for digit in written], labels


def other_writers() -> LabelledSet | None:
    """The optdigits scans scaled up blocky, soft and sharp in turn, prepared by `to_mnist_input`; None without
    scikit-learn."""
    found = other_writers_scans()
    if found is None:
        return None
    scans, labels = found
    images = []
    for index, scan in enumerate(scans):
        upscaling = OPTDIGITS_UPSCALINGS[index % len(OPTDIGITS_UPSCALINGS)]
        prepared = to_mnist_input(cv2.resize(scan, (96, 96), interpolation=upscaling))
        images.append(prepared if prepared is not None else np.zeros((28, 28), np.uint8))
    return LabelledSet("other_writers", np.stack(images), labels,
                       f"{len(images)} optdigits digits by 43 writers outside MNIST (8x8 scans, scaled up "
                       "blocky, soft and sharp in turn)")


BOXED_SCAN_PX = 16


def boxed_scan(digit: np.ndarray, margin: int = 2) -> np.ndarray:
    """A (28, 28) MNIST digit as a 16x16 box-normalising scan: its ink box stretched to fill 16x16 whatever
    its aspect, thresholded, dark ink on white paper with a `margin` px border (0: the ink touches every side)."""
    ys, xs = np.nonzero(digit > 40)
    ink = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    boxed = cv2.resize(ink, (BOXED_SCAN_PX, BOXED_SCAN_PX), interpolation=cv2.INTER_AREA)
    page = np.where(boxed > 100, 0, 255).astype(np.uint8)
    return cv2.copyMakeBorder(page, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255)


def boxed_scans(split: MnistSplit, count: int, seed: int = HELDOUT_SEED) -> LabelledSet:
    chosen = np.random.default_rng(seed).choice(len(split.images), min(count, len(split.images)), replace=False)
    images = []
    for index in chosen:
        prepared = to_mnist_input(boxed_scan(split.images[index]))
        images.append(prepared if prepared is not None else np.zeros((28, 28), np.uint8))
    return LabelledSet("boxed_scans", np.stack(images), split.labels[chosen].astype(np.int64),
                       f"{len(images)} MNIST test digits stretched to fill a 16x16 box and thresholded, "
                       "as Semeion's scans were")


LONG_FLAGS = (0.4, 0.65)  # of the 1's height; models before 2026-12-07 were trained on flags up to 0.38


def long_flag_ones(split: MnistSplit, count: int, seed: int = HELDOUT_SEED) -> LabelledSet:
    """MNIST test 1s given a long flag (0.4-0.65 of their height), half of them a base too: the European 1
    that the classifier issue's writers set loses to 7 and 4."""
    rng = np.random.default_rng(seed)
    ones = rng.permutation(np.flatnonzero(split.labels == 1))
    images = []
    for index in ones:
        made = styles.one_with_flag(split.images[index], rng, base=len(images) % 2 == 1, flag_length=LONG_FLAGS)
        if made is not None:
            images.append(made)
        if len(images) == count:
            break
    return LabelledSet("long_flag_ones", np.stack(images), np.ones(len(images), np.int64),
                       f"{len(images)} MNIST test 1s with a long flag (0.4-0.65 of their height), half with a base")


def all_sets(test_split: MnistSplit, count: int) -> list[LabelledSet]:
    """Every held-out set: the rendered ones with `count` crops, and those whose data is here."""
    sets = [mnist_test(test_split), camera_crops(test_split, count), coloured_pen_crops(test_split, count // 2),
            not_digit_crops(test_split, count), boxed_scans(test_split, count),
            long_flag_ones(test_split, count // 4)]
    return sets + [s for s in (real_crops(), other_writers()) if s is not None]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts; row = truth, column = answer."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def score(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy (a "not a digit" answer to a digit is wrong), per-class accuracy, rejected share,
    calibration error and the confusion matrix of one set."""
    classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, max(classes, NOT_A_DIGIT_INDEX + 1))[:, :classes]
    present = matrix.sum(axis=1) > 0
    per_class = {class_names(classes)[k]: round(float(matrix[k, k] / matrix[k].sum()), 5)
                 for k in range(min(classes, len(matrix))) if present[k]}
    digits = labels < NOT_A_DIGIT_INDEX
    rejected = predicted == NOT_A_DIGIT_INDEX
    return {
        "count": int(len(labels)),
        "accuracy": round(float((predicted == labels).mean()), 5),
        "per_class_accuracy": per_class,
        "digits_rejected": round(float(rejected[digits].mean()), 5) if digits.any() else None,
        "expected_calibration_error": round(expected_calibration_error(probabilities, labels), 5),
        "confusion_matrix": matrix.tolist(),
    }


def confusion_picture(matrix: np.ndarray, title: str, cell: int = 40) -> np.ndarray:
    """(h, w, 3) uint8: the confusion matrix as a heat map with counts, rows normalised (truth down, answer across)."""
    matrix = np.asarray(matrix)
    rows, cols = matrix.shape
    names = class_names(max(rows, cols))
    short = [n if len(n) == 1 else "no" for n in names]
    margin = 40
    image = np.full((margin + rows * cell + 10, margin + cols * cell + 10, 3), 255, np.uint8)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for r in range(rows):
        for c in range(cols):
            if not matrix[r].sum():
                continue
            level = shares[r, c] ** 0.5  # a square root shows the rare confusions too
            colour = (255, int(255 * (1 - level)), int(255 * (1 - level))) if r == c else \
                (int(255 * (1 - level)), int(255 * (1 - level)), 255)
            x, y = margin + c * cell, margin + r * cell
            cv2.rectangle(image, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            if matrix[r, c]:
                text = str(int(matrix[r, c]))
                cv2.putText(image, text, (x + 2, y + cell // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX,
                            0.32 if len(text) > 3 else 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for k in range(rows):
        cv2.putText(image, short[k], (8, margin + k * cell + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    for k in range(cols):
        cv2.putText(image, short[k], (margin + k * cell + 8, margin - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(image, title[:60], (margin, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return image


def confusion_sheet(report: dict) -> np.ndarray:
    """Every set's confusion matrix side by side, one picture for the training report."""
    pictures = [confusion_picture(np.array(result["confusion_matrix"]), f"{name}: {100 * result['accuracy']:.2f}%")
                for name, result in report.items()]
    height = max(p.shape[0] for p in pictures)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 10), (0, 0)), constant_values=255) for p in pictures]
    return np.hstack(padded)
