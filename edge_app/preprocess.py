"""Turn any image of one digit into the model's input, the way MNIST itself was made.

This is the project's one preprocessing path: `digits predict`, the webcam app, the drawing canvas,
int8 calibration and evaluation all call `to_mnist_input`. MNIST digits are white ink on black,
fitted into a 20x20 box with their aspect ratio kept (anti-aliased), then placed in a 28x28 field
so that their centre of mass sits at the centre. A photo of a digit on paper must be brought to the
same form, or a model that scores 99.5% on MNIST reads real handwriting badly.
"""
from __future__ import annotations

import cv2
import numpy as np

MNIST_SIZE = 28
BOX_SIZE = 20  # MNIST fitted each digit's longer side into 20 px
MIN_CONTRAST = 24  # grey levels between paper and ink below which we call an image blank (pencil in dim light: ~30)
# A component smaller than this share of the largest ink component is a speck, not part of the digit.
MIN_PART_OF_LARGEST = 0.04
# MNIST strokes are about 2-3 px wide in the 20 px box; thinner ones (a fine pen on a large image)
# are thickened to this width before shrinking so they do not fade to a faint grey line.
MIN_STROKE_IN_BOX = 1.8
TARGET_STROKE_IN_BOX = 2.4


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Any dtype -> uint8: uint16 keeps its high byte, floats in [0, 1] or [0, 255] are scaled and clipped."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    scaled = image.astype(np.float32)
    if scaled.max(initial=0.0) <= 1.0:
        scaled = scaled * 255.0
    return np.clip(scaled, 0, 255).astype(np.uint8)


def over_white(bgra: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 BGRA -> (h, w, 3) BGR: transparent pixels are white paper, which is what a viewer shows."""
    alpha = bgra[:, :, 3:4].astype(np.float32) / 255.0
    return (bgra[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Any 2-D/3-D image (gray, BGR, BGRA; uint8, uint16 or float) -> (h, w) uint8.

    Transparent pixels of a BGRA image count as white paper, which is what a viewer shows.
    """
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected an image of 2 or 3 dimensions, got shape {image.shape}")
    image = to_uint8(image)
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return image[:, :, 0]
    if channels == 4:
        return cv2.cvtColor(over_white(image), cv2.COLOR_BGR2GRAY)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image[:, :, 0]  # odd channel counts: the first channel is as good a guess as any


def _border_pixels(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def ink_strength(gray: np.ndarray) -> np.ndarray | None:
    """(h, w) uint8 -> (h, w) float32 ink in [0, 1] (1 = full ink), whatever the polarity.

    The paper is whatever the image border mostly is; the ink is the extreme on the other side of
    it, so dark ink on light paper and light chalk on a dark board both work. None when the image
    holds no ink that stands out from the paper (a blank page).
    """
    paper = float(np.median(_border_pixels(gray)))
    # Extremes of a slightly blurred copy: robust to salt noise, yet a small digit on a large page
    # (well under 1% of the pixels) still counts, which a percentile would miss.
    smooth = cv2.GaussianBlur(gray, (5, 5), 0)
    darkest, brightest = float(smooth.min()), float(smooth.max())
    if paper - darkest >= brightest - paper:
        ink, contrast = paper - gray.astype(np.float32), paper - darkest
    else:
        ink, contrast = gray.astype(np.float32) - paper, brightest - paper
    if contrast < MIN_CONTRAST:
        return None
    return np.clip(ink / contrast, 0.0, 1.0)


def digit_mask(ink: np.ndarray) -> np.ndarray:
    """Pixels that are ink (Otsu's threshold on the ink map), without specks far smaller than the digit."""
    ink8 = (ink * 255).astype(np.uint8)
    _, mask = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= MIN_PART_OF_LARGEST * areas.max()])  # per label; 0 is the paper
    return keep[labels].astype(np.uint8) * 255


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: a stroke of length L and width w has area L*w and perimeter ~2L."""
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, closed=True) for c in contours)
    return 2.0 * float(np.count_nonzero(mask)) / max(perimeter, 1.0)


def _thicken_thin_strokes(ink: np.ndarray, mask: np.ndarray, box_scale: float) -> np.ndarray:
    """Dilate the ink when its strokes would end up thinner than MNIST's after shrinking to the box."""
    width_in_box = stroke_width(mask) * box_scale
    if width_in_box >= MIN_STROKE_IN_BOX:
        return ink
    grow_px = int(round((TARGET_STROKE_IN_BOX - width_in_box) / box_scale))
    if grow_px < 1:
        return ink
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow_px + 1, grow_px + 1))
    return cv2.dilate(ink, kernel)


def fit_to_mnist_field(ink: np.ndarray) -> np.ndarray:
    """Cropped ink (h, w) float in [0, 1] -> (28, 28) uint8: longest side 20 px, centre of mass centred."""
    height, width = ink.shape
    scale = BOX_SIZE / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    boxed = cv2.resize(ink, (new_w, new_h), interpolation=interpolation)
    field = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    top, left = (MNIST_SIZE - new_h) // 2, (MNIST_SIZE - new_w) // 2
    field[top:top + new_h, left:left + new_w] = boxed
    total = field.sum()
    if total > 0:
        rows, cols = np.indices(field.shape)
        # MNIST put the centre of mass at pixel index 14 (measured on the test set), not at 13.5.
        shift_y = round(MNIST_SIZE / 2 - (rows * field).sum() / total)
        shift_x = round(MNIST_SIZE / 2 - (cols * field).sum() / total)
        shift = np.float32([[1, 0, shift_x], [0, 1, shift_y]])
        field = cv2.warpAffine(field, shift, (MNIST_SIZE, MNIST_SIZE), flags=cv2.INTER_NEAREST)
    peak = field.max()
    if peak > 0:
        field = field / peak
    return np.round(field * 255).astype(np.uint8)


def to_mnist_input(image: np.ndarray) -> np.ndarray | None:
    """Any image of one digit -> (28, 28) uint8, white ink on black as in MNIST; None if blank.

    Steps: grayscale, polarity and contrast from the paper, ink mask without specks, crop to the
    ink, thicken hair-thin strokes, fit the longer side into 20 px, centre by centre of mass.
    """
    prepared = to_mnist_input_and_ink_box(image)
    return None if prepared is None else prepared[0]


def to_mnist_input_and_ink_box(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """`to_mnist_input`, with the (x, y, w, h) box of the ink it cropped, in the image's pixels."""
    gray = to_grayscale(image)
    ink = ink_strength(gray)
    if ink is None:
        return None
    mask = digit_mask(ink)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    top, bottom, left, right = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    # Keep the anti-aliased edge of the strokes but drop paper texture away from them.
    near_ink = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0
    ink = np.where(near_ink, ink, 0.0).astype(np.float32)
    crop, crop_mask = ink[top:bottom, left:right], mask[top:bottom, left:right]
    crop = _thicken_thin_strokes(crop, crop_mask, BOX_SIZE / max(crop.shape))
    return fit_to_mnist_field(crop), (left, top, right - left, bottom - top)


def to_model_batch(digits: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 MNIST-style digits -> (n, 28, 28, 1) float32 in [0, 1], the models' input."""
    digits = np.asarray(digits)
    if digits.ndim == 2:
        digits = digits[None]
    return (digits.astype(np.float32) / 255.0)[..., None]
