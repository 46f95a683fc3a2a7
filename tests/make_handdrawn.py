"""Write tests/data/handdrawn/: digits drawn as pen strokes (not MNIST), used by the quick start and tests.

Each digit is a few control points of a pen path, smoothed (Catmull-Rom) and drawn with OpenCV in dark
ink on off-white paper, with a little slant and wobble. Run: python tests/make_handdrawn.py
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Pen paths in a 100x100 box (x, y), one or more strokes per digit.
STROKES = {
    0: [[(50, 10), (28, 25), (24, 55), (34, 84), (55, 90), (72, 72), (76, 40), (66, 17), (50, 10)]],
    1: [[(38, 24), (54, 10), (52, 50), (50, 90)]],
    2: [[(28, 30), (45, 12), (68, 18), (72, 40), (50, 65), (26, 88), (55, 86), (78, 88)]],
    3: [[(28, 18), (55, 10), (72, 24), (62, 44), (46, 48), (66, 56), (74, 76), (55, 90), (26, 84)]],
    4: [[(56, 10), (40, 40), (22, 62), (78, 62)], [(62, 34), (60, 90)]],
    5: [[(74, 12), (38, 12), (32, 44), (56, 40), (74, 58), (70, 82), (48, 90), (26, 82)]],
    6: [[(66, 10), (42, 28), (30, 58), (34, 84), (54, 91), (70, 76), (66, 56), (46, 52), (32, 64)]],
    7: [[(24, 14), (76, 14), (58, 46), (44, 90)]],
    8: [[(62, 16), (46, 10), (30, 22), (38, 42), (62, 56), (70, 78), (50, 91), (30, 80), (36, 58),
         (60, 42), (68, 24), (62, 16)]],
    9: [[(70, 30), (54, 12), (32, 20), (30, 42), (50, 50), (70, 34), (68, 60), (62, 90)]],
}


def catmull_rom(points: list[tuple[float, float]], samples: int = 12) -> np.ndarray:
    """A smooth pen path through the control points, (m, 2) float."""
    p = np.asarray(points, np.float64)
    p = np.vstack([p[0], p, p[-1]])
    out = []
    for i in range(1, len(p) - 2):
        for t in np.linspace(0, 1, samples, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(0.5 * ((2 * p[i]) + (-p[i - 1] + p[i + 1]) * t
                              + (2 * p[i - 1] - 5 * p[i] + 4 * p[i + 1] - p[i + 2]) * t2
                              + (-p[i - 1] + 3 * p[i] - 3 * p[i + 1] + p[i + 2]) * t3))
    out.append(p[-2])
    return np.array(out)


def draw_digit(digit: int, size: int = 240, pen: int = 9, slant: float = 0.12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + digit)
    canvas = np.full((size, size, 3), (228, 232, 236), np.uint8)  # off-white paper, BGR
    scale, offset = size * 0.8 / 100, size * 0.1
    for stroke in STROKES[digit]:
        path = catmull_rom(stroke) + rng.normal(0, 0.8, (1, 2))
        path[:, 0] += slant * (50 - path[:, 1])  # right-leaning handwriting
        pixels = np.round((path * scale + offset) * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(canvas, [pixels], False, (60, 40, 30), pen, cv2.LINE_AA, shift=4)
    noise = rng.normal(0, 3, canvas.shape)
    return np.clip(canvas + noise, 0, 255).astype(np.uint8)


def main() -> None:
    folder = Path(__file__).resolve().parent / "data" / "handdrawn"
    folder.mkdir(parents=True, exist_ok=True)
    for digit in STROKES:
        cv2.imwrite(str(folder / f"{digit}.png"), draw_digit(digit))


if __name__ == "__main__":
    main()
