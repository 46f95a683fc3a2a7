"""Augmentation that makes an MNIST model hold up on other writers, pens, photos and scans.

Pure numpy/OpenCV on (n, 28, 28) uint8 batches, so it runs the same under any Keras backend.
Affine magnitudes are modest on purpose: `to_mnist_input` already normalises size and position at
inference, so the model only has to tolerate what that normalisation leaves over (a slightly off
box, a tilted or sheared digit, another pen's stroke width, camera blur and sensor noise). What it
does not normalise is the writer's hand: elastic distortion (Simard et al., 2003) bends strokes the way
another writer's would, and pen pressure makes a stroke fade and darken along its length. Nor does it
add detail a digit never had: a small digit on a page photo, or a low-resolution scan, reaches the
model as a few pixels scaled up, blocky or blurred, and a reject class that has never seen one calls
it "not a digit" (`low_resolution`). Old scanned sets also stretched every digit to fill a square box
(`fill_box`). These and the aspect change are off by default (`digits train --low-res-share`,
`--fill-box-share`, `--max-aspect`): they read other writers' scans far better, at a cost measured in
README, Training. When off they draw no random numbers, so the shipped model's recipe gives the same
batches as before they existed.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    max_rotation_deg: float = 12.0
    max_shift_px: float = 2.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_shear: float = 0.3  # x-shift per unit of y, as in slanted handwriting
    max_aspect: float = 1.0  # width / height changed by up to this factor either way: narrow and wide hands,
    # and scanners that stretch every digit to fill a square box (1: never)
    elastic_prob: float = 0.5
    elastic_alpha: tuple[float, float] = (8.0, 30.0)  # px of displacement before smoothing (Simard: 34)
    elastic_sigma: float = 4.0  # px: how smooth the displacement field is (Simard: 4)
    pressure_prob: float = 0.3  # chance the pen's pressure varies along the strokes
    thickness_prob: float = 0.3  # chance of one erode or dilate step (thinner or thicker pen)
    blur_prob: float = 0.2
    max_blur_sigma: float = 1.0  # pixels
    noise_prob: float = 0.2
    max_noise_std: float = 12.0  # grey levels
    low_res_prob: float = 0.0  # chance the digit was only this many pixels tall or wide ...
    low_res_px: tuple[int, int] = (6, 16)  # ... against MNIST's 20 (8x8 scans, 16x16 ones, small page digits)
    binarize_prob: float = 0.4  # of those, the share a scanner thresholded to black and white
    fill_box_prob: float = 0.0  # chance the digit was stretched to fill a square box, as scanned sets did
    max_fill_stretch: float = 6.0  # a hairline 1 is widened at most this much (to a bar, not a block)


def random_affine(rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """A 2x3 matrix: rotation, scale, shear and aspect about the image centre, then a shift."""
    angle = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    scale = rng.uniform(*cfg.scale_range)
    shear = rng.uniform(-cfg.max_shear, cfg.max_shear)
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = scale * rotate @ np.array([[1.0, shear], [0.0, 1.0]])
    if cfg.max_aspect > 1.0:
        aspect = np.exp(rng.uniform(-np.log(cfg.max_aspect), np.log(cfg.max_aspect)))
        linear = linear @ np.diag([np.sqrt(aspect), 1.0 / np.sqrt(aspect)])  # the same area, wider or narrower
    centre = np.array([13.5, 13.5])
    shift = rng.uniform(-cfg.max_shift_px, cfg.max_shift_px, size=2)
    offset = centre - linear @ centre + shift
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


def elastic(digit: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """(28, 28) uint8 bent by a smooth random displacement field (Simard et al., 2003)."""
    shape = digit.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, shape).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, shape).astype(np.float32), (0, 0), sigma) * alpha
    ys, xs = np.indices(shape, dtype=np.float32)
    return cv2.remap(digit, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def pen_pressure(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes that fade to about half and back along their length, as a ballpoint pressed unevenly."""
    field = cv2.resize(rng.uniform(0.45, 1.0, (3, 3)).astype(np.float32), digit.shape[::-1],
                       interpolation=cv2.INTER_CUBIC)
    faded = digit.astype(np.float32) * np.clip(field, 0.3, 1.0)
    return np.clip(faded * (255.0 / max(float(faded.max()), 1.0)), 0, 255).astype(np.uint8)


# Upscaled by a photo app, a scanner or our own resize: blocky, soft, or with cubic overshoot.
UPSCALINGS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def low_resolution(digit: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """The digit as if it had been `low_res_px` pixels across (MNIST's box is 20) and scaled back up."""
    pixels = rng.uniform(cfg.low_res_px[0], cfg.low_res_px[1])
    small_size = max(4, int(round(28 * pixels / 20)))
    small = cv2.resize(digit, (small_size, small_size), interpolation=cv2.INTER_AREA)
    if rng.random() < cfg.binarize_prob:
        # Relative to the darkest ink, so that a thin faint stroke thresholds to a thin line, not to nothing.
        small = np.where(small > rng.uniform(0.25, 0.6) * float(small.max()), 255, 0).astype(np.uint8)
    upscaling = UPSCALINGS[int(rng.integers(len(UPSCALINGS)))]
    out = cv2.resize(small, (28, 28), interpolation=upscaling).astype(np.float32)
    return np.clip(out * (255.0 / max(float(out.max()), 1.0)), 0, 255).astype(np.uint8)


def fill_box(digit: np.ndarray, max_stretch: float) -> np.ndarray:
    """The digit stretched so that its ink fills a square, centred.

    Scanned digit sets normalised every digit to a box without keeping its aspect (UCI optdigits: a 1 is
    5 of 8 pixels wide; Semeion: 16x16), so their 1s are thick bars with a flag and their 7s and 4s are
    wide. MNIST kept the aspect, so a model trained on it alone reads such a 1 as a 7, a 4 or "not a digit".
    """
    ys, xs = np.nonzero(digit > 0.2 * float(digit.max()))
    if len(xs) == 0:
        return digit
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    side = max(width, height)
    stretch_x, stretch_y = min(side / width, max_stretch), min(side / height, max_stretch)
    centre_x, centre_y = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    matrix = np.float32([[stretch_x, 0, 13.5 - stretch_x * centre_x], [0, stretch_y, 13.5 - stretch_y * centre_y]])
    return cv2.warpAffine(digit, matrix, (28, 28), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def augment_digit(digit: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """(28, 28) uint8 -> (28, 28) uint8, one random variation of the digit."""
    out = cv2.warpAffine(digit, random_affine(rng, cfg), (28, 28), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if rng.random() < cfg.elastic_prob:
        out = elastic(out, rng, rng.uniform(*cfg.elastic_alpha), cfg.elastic_sigma)
    if rng.random() < cfg.pressure_prob:
        out = pen_pressure(out, rng)
    if rng.random() < cfg.thickness_prob:
        kernel = np.ones((2, 2), np.uint8)
        out = cv2.dilate(out, kernel) if rng.random() < 0.5 else cv2.erode(out, kernel)
    # A scanner boxes the digit as written (slant, pen and all), then samples it: box, then resolution.
    if cfg.fill_box_prob > 0 and rng.random() < cfg.fill_box_prob:
        out = fill_box(out, cfg.max_fill_stretch)
    if cfg.low_res_prob > 0 and rng.random() < cfg.low_res_prob:
        out = low_resolution(out, rng, cfg)
    if rng.random() < cfg.blur_prob:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, cfg.max_blur_sigma))
    if rng.random() < cfg.noise_prob:
        noise = rng.normal(0.0, rng.uniform(1.0, cfg.max_noise_std), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


def augment_batch(digits: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    return np.stack([augment_digit(d, rng, cfg) for d in digits])
