"""Writing styles MNIST rarely shows, made from MNIST's own strokes (and, for a few, from printed digits).

MNIST's writers were American: a 1 is a bare stroke, a 7 has no bar, a 9's tail is straight. Writers
elsewhere add a flag and a base to the 1, cross the 7, hook the 9's tail and close or angle the 4, and
a model that never saw them reads a flagged 1 as a 7 and a hooked 9 as a 3 or an 8. These edits add the
strokes to real MNIST digits at the pen width of the digit itself, so only the style changes.
`printed_digit` adds the shapes of printed digits (an angular 4, a 1 with serifs), heavily distorted by
the training augmentation, as a small share.
"""
from __future__ import annotations

import cv2
import numpy as np

from edge_app.preprocess import digit_mask, stroke_width, to_mnist_input

SCALE = 2  # edits are drawn at twice MNIST's size, then prepared like any crop
# A 1's flag: its length as a share of the digit's height, and its angle below the level (flatter, a long
# flag is a 7's top stroke). Flags up to 0.55 read European long-flagged 1s far better than the 0.2-0.38
# at 32-62 degrees of the earlier models, at no cost against a control fine-tune (README, Training).
FLAG_LENGTH = (0.2, 0.55)
FLAG_ANGLE_DEGREES = (30, 62)
PRINTED_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                 cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
PRINTED_DIGITS = "123456789"  # this OpenCV's 0 is slashed: not a handwritten 0


def _ink_points(digit: np.ndarray) -> np.ndarray:
    """(k, 2) x, y of the ink pixels of a (28, 28) digit."""
    ys, xs = np.nonzero(digit > 96)
    return np.stack([xs, ys], axis=1)


def _pen(digit: np.ndarray) -> int:
    mask = digit_mask(digit.astype(np.float32) / 255.0)
    return max(2, int(round(SCALE * stroke_width(mask))))


def _upscaled(digit: np.ndarray) -> np.ndarray:
    return cv2.resize(digit, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_LINEAR)


def _bar(image: np.ndarray, centre_x: float, y: float, half: float, pen: int) -> None:
    """A level stroke `2 * half` px long centred on (centre_x, y): a 1's base, a 7's cross bar."""
    cv2.line(image, (int(centre_x - half), int(y)), (int(centre_x + half), int(y)), 255, pen, cv2.LINE_AA)


def one_with_flag(digit: np.ndarray, rng: np.random.Generator, base: bool,
                  flag_length: tuple[float, float] = FLAG_LENGTH) -> np.ndarray | None:
    """A 1 with the flag down-left from its top (and, with `base`, a bar under its foot); `flag_length` as a
    share of the 1's height."""
    points = _ink_points(digit)
    if len(points) < 8:
        return None
    top = points[points[:, 1].argmin()] * SCALE
    bottom = points[points[:, 1].argmax()] * SCALE
    height = bottom[1] - top[1]
    image, pen = _upscaled(digit), _pen(digit)
    length, angle = rng.uniform(*flag_length) * height, np.deg2rad(rng.uniform(*FLAG_ANGLE_DEGREES))
    flag_end = top + length * np.array([-np.cos(angle), np.sin(angle)])
    cv2.line(image, tuple(int(v) for v in top), tuple(int(v) for v in flag_end), 255, pen, cv2.LINE_AA)
    if base:
        _bar(image, bottom[0], bottom[1], rng.uniform(0.2, 0.35) * height, pen)
    return to_mnist_input(image)


def seven_with_bar(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 7 crossed by a short bar halfway down its stem."""
    points = _ink_points(digit)
    if len(points) < 8:
        return None
    top, bottom = points[:, 1].min(), points[:, 1].max()
    row = int(round(top + rng.uniform(0.45, 0.6) * (bottom - top)))
    on_row = points[points[:, 1] == row]
    if len(on_row) == 0:
        return None
    centre = on_row[:, 0].mean() * SCALE, row * SCALE
    half = rng.uniform(0.15, 0.28) * (bottom - top) * SCALE
    image, pen = _upscaled(digit), _pen(digit)
    _bar(image, centre[0], centre[1], half, pen)
    return to_mnist_input(image)


def nine_with_hook(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 9 whose tail ends in a hook to the left."""
    points = _ink_points(digit)
    if len(points) < 8:
        return None
    foot = points[points[:, 1].argmax()] * SCALE
    height = (points[:, 1].max() - points[:, 1].min()) * SCALE
    image, pen = _upscaled(digit), _pen(digit)
    radius = rng.uniform(0.08, 0.16) * height
    centre = (int(foot[0] - radius), int(foot[1] - radius * 0.3))
    cv2.ellipse(image, centre, (int(radius), int(radius * 0.8)), 0, 0, 180, 255, pen, cv2.LINE_AA)
    return to_mnist_input(image)


def printed_digit(label: int, rng: np.random.Generator) -> np.ndarray | None:
    image = np.zeros((64, 64), np.uint8)
    font = int(rng.choice(PRINTED_FONTS))
    (width, height), _ = cv2.getTextSize(str(label), font, 1.8, 3)
    cv2.putText(image, str(label), ((64 - width) // 2, (64 + height) // 2), font, 1.8, 255,
                int(rng.integers(2, 6)), cv2.LINE_AA)
    return to_mnist_input(image)


def style_variants(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`count` extra training digits in the styles above, from `images`/`labels` (the training split), seeded."""
    rng = np.random.default_rng(seed)
    by_label = {d: np.flatnonzero(labels == d) for d in range(10)}
    # (label, edit) and its share of the extra digits
    plan = [(1, lambda d: one_with_flag(d, rng, base=False), 0.25), (1, lambda d: one_with_flag(d, rng, base=True), 0.2),
            (7, lambda d: seven_with_bar(d, rng), 0.2), (9, lambda d: nine_with_hook(d, rng), 0.15),
            (None, None, 0.2)]
    out_images, out_labels = [], []
    for label, edit, share in plan:
        made = 0
        wanted = int(round(share * count))
        while made < wanted:
            if label is None:
                digit_label = int(rng.choice(list(PRINTED_DIGITS)))
                edited = printed_digit(digit_label, rng)
            else:
                digit_label = label
                edited = edit(images[int(rng.choice(by_label[label]))])
            if edited is not None:
                out_images.append(edited)
                out_labels.append(digit_label)
                made += 1
    return np.stack(out_images), np.array(out_labels, np.uint8)
