"""Render test inputs: MNIST test digits as ink on paper, at any size, place, polarity and pen width."""
from __future__ import annotations

import cv2
import numpy as np


def render_on_paper(digit: np.ndarray, canvas: tuple[int, int] = (300, 400), height: int = 160,
                    centre: tuple[int, int] | None = None, dark_on_light: bool = True, pen: int = 0,
                    noise_std: float = 0.0, paper: int = 235, ink: int = 30, seed: int = 0) -> np.ndarray:
    """(28, 28) white-on-black MNIST digit -> (h, w, 3) uint8 BGR photo-like image of it written on paper.

    `height` is the digit's 28-px field scaled to this many pixels; `pen` > 0 thickens and < 0 thins the
    strokes by that many pixels at the rendered scale.
    """
    rng = np.random.default_rng(seed)
    big = cv2.resize(digit, (height, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    big = np.clip((big - 0.5) * 3 + 0.5, 0, 1)  # sharpen the upscaled blur back into a pen stroke
    if pen:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(pen) + 1, 2 * abs(pen) + 1))
        big = cv2.dilate(big, kernel) if pen > 0 else cv2.erode(big, kernel)
    rows, cols = canvas
    cy, cx = centre if centre is not None else (rows // 2, cols // 2)
    coverage = np.zeros((rows, cols), np.float32)
    top, left = cy - height // 2, cx - height // 2
    src_top, src_left = max(0, -top), max(0, -left)
    dst_top, dst_left = max(0, top), max(0, left)
    h = min(height - src_top, rows - dst_top)
    w = min(height - src_left, cols - dst_left)
    coverage[dst_top:dst_top + h, dst_left:dst_left + w] = big[src_top:src_top + h, src_left:src_left + w]
    background, foreground = (paper, ink) if dark_on_light else (ink, paper)
    image = background + (foreground - background) * coverage
    if noise_std:
        image = image + rng.normal(0, noise_std, image.shape)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def render_page(lines: list[list[np.ndarray]], size: tuple[int, int] = (1500, 2000), digit_height: int = 120,
                paper=(228, 230, 232), ink=(40, 35, 30), background=(60, 70, 80), turn: float = 0.0,
                seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 BGR photo of a sheet with lines of MNIST digits (white-on-black 28x28), left to right,
    top line first, on a darker table; `turn` degrees counter-clockwise; `paper` and `ink` are BGR colours."""
    rng = np.random.default_rng(seed)
    rows, cols = size
    frame = np.empty((rows, cols, 3), np.float32)
    frame[:] = background
    margin = rows // 10
    frame[margin:rows - margin, margin:cols - margin] = paper
    pitch = int(digit_height * 0.75)
    for row, digits in enumerate(lines):
        top = 2 * margin + row * int(digit_height * 1.6)
        for k, digit in enumerate(digits):
            left = 2 * margin + k * pitch
            big = cv2.resize(digit, (digit_height, digit_height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
            coverage = np.clip((big - 0.5) * 3 + 0.5, 0, 1)[:, :, None]
            window = frame[top:top + digit_height, left:left + digit_height]
            frame[top:top + digit_height, left:left + digit_height] = window * (1 - coverage) + np.float32(ink) * coverage
    light = np.linspace(0.8, 1.05, cols, dtype=np.float32)[None, :, None]
    frame = frame * light + rng.normal(0, 3, frame.shape)
    image = np.clip(frame, 0, 255).astype(np.uint8)
    if turn:
        matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), turn, 1.0)
        image = cv2.warpAffine(image, matrix, (cols, rows), borderMode=cv2.BORDER_REPLICATE)
    return image


def render_close_up(digit: np.ndarray, share: float, boldness: float = 1.0, size: int = 800, seed: int = 0,
                    card: bool = False) -> np.ndarray:
    """One digit whose 28x28 box fills `share` of a `size` x `size` photo (of a 4:3 frame's height with `card`:
    a card on a darker table), its strokes widened `boldness` times MNIST's (a marker held close), BGR."""
    height, width = (size, size) if not card else (size * 3 // 4, size)
    side = int(share * height)
    ink = cv2.resize(digit, (side, side), interpolation=cv2.INTER_CUBIC)
    grow = int(side / 28 * (boldness - 1))
    if grow:
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    photo = np.full((height, width), 225, np.float32)
    if card:
        photo[:] = 90
        photo[height // 24:height - height // 24, width // 8:width - width // 8] = 225
    top, left = (height - side) // 2, (width - side) // 2
    photo[top:top + side, left:left + side] -= ink.astype(np.float32) / 255 * 190
    photo += np.random.default_rng(seed).normal(0, 3, photo.shape)
    photo = cv2.GaussianBlur(photo, (0, 0), 1.2)
    return cv2.cvtColor(np.clip(photo, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
