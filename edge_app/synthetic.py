"""Render test clips of handwritten digits held up to a camera, without TensorFlow and without a camera.

MNIST test digits are drawn as dark strokes on a light paper card; the card is held (with a hand-like
blob at its edge) in front of a cluttered background, with rotation, perspective, uneven light and
shadow, blur, noise and JPEG artefacts. Stretches of empty frames (background only, a hand, or a
blank card) sit between the held cards. `render_clip` writes the video plus the truth per frame, and
`render_frames` yields the same frames in memory for benchmarks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge_app.mnist import MnistSplit


@dataclass(frozen=True)
class ClipOptions:
    segments: int = 24  # held cards and empty stretches, alternating
    segment_frames: int = 24  # frames per segment
    width: int = 640
    height: int = 480
    fps: float = 25.0
    two_digit_share: float = 0.4  # share of cards that carry a two-digit number
    blank_card_share: float = 0.3  # share of empty stretches that show a blank card instead of nothing
    # The pen's and the paper's BGR colours on every card; None: a black or dark blue pen on white-ish paper.
    # (Set, they replace the random colour after it is drawn, so the rest of a seed's clip stays the same.)
    pen_bgr: tuple[float, float, float] | None = None
    paper_bgr: tuple[float, float, float] | None = None


SKIN_BGR = np.array([120, 150, 205], np.float32)  # a mid skin tone; jittered per clip


def _clutter_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A room-like background: a gradient wall, furniture-like blocks, lines, blobs and texture, no digits."""
    top = rng.uniform(60, 200, 3)
    bottom = rng.uniform(40, 180, 3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp) * np.ones((height, width, 3), np.float32)
    for _ in range(rng.integers(6, 14)):
        colour = rng.uniform(0, 255, 3).tolist()
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 12, width // 3)), int(rng.integers(height // 12, height // 3))
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, -1)
    for _ in range(rng.integers(4, 10)):
        colour = rng.uniform(0, 255, 3).tolist()
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(8, width // 8)), int(rng.integers(8, height // 8)))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    for _ in range(rng.integers(6, 16)):
        colour = rng.uniform(0, 255, 3).tolist()
        # Long edges (shelves, cables): a short dark dash on pale paint would be a fair "1", not clutter.
        p1 = np.array([rng.integers(0, width), rng.integers(0, height)], np.float64)
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.4, 0.9) * width
        p2 = p1 + length * np.array([np.cos(angle), np.sin(angle)])
        cv2.line(image, tuple(int(v) for v in p1), tuple(int(v) for v in p2), colour, int(rng.integers(1, 6)))
    texture = cv2.resize(rng.normal(0, 12, (height // 8, width // 8, 3)).astype(np.float32), (width, height))
    image = cv2.GaussianBlur(image, (0, 0), 1.5) + texture
    return np.clip(image, 0, 255).astype(np.float32)


def _digit_card(rng: np.random.Generator, digits: list[np.ndarray], pen_bgr=None, paper_bgr=None) -> np.ndarray:
    """A paper card (BGR float32) with the given MNIST digits (white-on-black 28x28) as ink strokes."""
    cell = int(rng.integers(100, 150))  # px per 28x28 digit on the card
    # Each digit's inked columns, so neighbours are written close but never touching (a run-together
    # "04" is one blob, a segmentation problem of its own that these clips do not pose).
    spans = []
    for digit in digits:
        columns = np.flatnonzero(digit.max(axis=0) > 50)
        spans.append((columns[0] * cell // 28, (columns[-1] + 1) * cell // 28))
    gap = int(cell * rng.uniform(0.1, 0.25))
    offsets, cursor = [], 0
    for left, right in spans:
        offsets.append(cursor - left)
        cursor += right - left + gap
    ink_width = cursor - gap
    margin_x, margin_y = int(cell * rng.uniform(0.35, 0.6)), int(cell * rng.uniform(0.3, 0.5))
    card_w, card_h = ink_width + 2 * margin_x, cell + 2 * margin_y
    paper = rng.uniform(200, 250) * np.array([1.0, rng.uniform(0.97, 1.0), rng.uniform(0.98, 1.03)])
    ink_colour = rng.uniform(10, 60) * np.array([rng.uniform(0.8, 1.6), 1.0, 1.0])  # black or dark blue pen
    if pen_bgr is not None:
        ink_colour = np.array(pen_bgr, np.float64)
    if paper_bgr is not None:
        paper = np.array(paper_bgr, np.float64)
    ink = np.zeros((card_h, card_w + cell), np.float32)  # + cell: room for a digit's blank side columns
    for digit, offset in zip(digits, offsets):
        big = cv2.resize(digit.astype(np.float32) / 255.0, (cell, cell), interpolation=cv2.INTER_CUBIC)
        x = margin_x + offset + cell // 2
        region = ink[margin_y:margin_y + cell, x:x + cell]
        np.maximum(region, np.clip(big, 0, 1), out=region)
    ink = ink[:, cell // 2:cell // 2 + card_w]
    ink = ink[:, :, None] * rng.uniform(0.85, 1.0)
    card = paper * (1 - ink) + ink_colour * ink
    card += rng.normal(0, 3, card.shape)  # paper grain
    return card.astype(np.float32)


def _blank_card(rng: np.random.Generator, paper_bgr=None) -> np.ndarray:
    card_w, card_h = int(rng.integers(180, 360)), int(rng.integers(150, 240))
    paper = rng.uniform(200, 250) * np.array([1.0, rng.uniform(0.97, 1.0), rng.uniform(0.98, 1.03)])
    if paper_bgr is not None:
        paper = np.array(paper_bgr, np.float64)
    return (np.ones((card_h, card_w, 3)) * paper + rng.normal(0, 3, (card_h, card_w, 3))).astype(np.float32)


@dataclass(frozen=True)
class _Pose:
    """Where a card is held: a homography from card pixels to frame pixels, plus where the hand grips."""
    centre: tuple[float, float]  # frame px
    scale: float  # frame px per card px
    angle: float  # degrees
    tilt: tuple[float, float]  # perspective terms
    grip_side: int  # 0 bottom, 1 left, 2 right


def _random_pose(rng: np.random.Generator, card: np.ndarray, width: int, height: int) -> _Pose:
    card_h, card_w = card.shape[:2]
    # The card fills 30-60% of the frame height, whatever its pixel size.
    scale = rng.uniform(0.3, 0.6) * height / card_h
    scale = min(scale, 0.75 * width / card_w)
    half_w, half_h = card_w * scale / 2, card_h * scale / 2
    cx = rng.uniform(half_w + 0.08 * width, width - half_w - 0.08 * width)
    cy = rng.uniform(half_h + 0.08 * height, height - half_h - 0.08 * height)
    return _Pose((cx, cy), scale, rng.uniform(-12, 12), (rng.uniform(-4e-4, 4e-4), rng.uniform(-4e-4, 4e-4)),
                 int(rng.integers(0, 3)))


def _homography(pose: _Pose, card_w: int, card_h: int, shake: np.ndarray) -> np.ndarray:
    centre = np.array([[1, 0, -card_w / 2], [0, 1, -card_h / 2], [0, 0, 1]], np.float64)
    tilt = np.array([[1, 0, 0], [0, 1, 0], [pose.tilt[0], pose.tilt[1], 1]], np.float64)
    angle = np.deg2rad(pose.angle + shake[2])
    cos, sin = np.cos(angle) * pose.scale, np.sin(angle) * pose.scale
    place = np.array([[cos, -sin, pose.centre[0] + shake[0]], [sin, cos, pose.centre[1] + shake[1]], [0, 0, 1]])
    # Perspective in card units (centred), so the tilt does not depend on the card's pixel size.
    unit = np.diag([card_w / 2, card_h / 2, 1.0])
    return place @ unit @ tilt @ np.linalg.inv(unit) @ centre


def _draw_card(frame: np.ndarray, card: np.ndarray, homography: np.ndarray) -> None:
    height, width = frame.shape[:2]
    warped = cv2.warpPerspective(card, homography, (width, height), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(np.ones(card.shape[:2], np.float32), homography, (width, height))[:, :, None]
    frame *= 1 - alpha
    frame += warped * alpha


def _draw_hand(frame: np.ndarray, rng: np.random.Generator, anchor: tuple[float, float], side: int,
               size: float, skin: np.ndarray) -> None:
    """A palm off the card's edge with fingers reaching over it: skin-coloured, softly shaded ellipses.

    `skin` is (h, w, 3) float32: the skin colour already multiplied by its shading.
    """
    layer = np.zeros(frame.shape[:2], np.float32)
    ax, ay = anchor
    outward = {0: (0.0, 1.0), 1: (-1.0, 0.0), 2: (1.0, 0.0)}[side]
    palm = (int(ax + outward[0] * size * 0.9), int(ay + outward[1] * size * 0.9))
    cv2.ellipse(layer, palm, (int(size * 0.8), int(size * 0.6)), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    for k in range(int(rng.integers(2, 5))):
        offset = (k - 1.5) * size * 0.3
        base = (ax + outward[1] * offset, ay + outward[0] * offset)
        tip = (int(base[0] - outward[0] * size * 0.4), int(base[1] - outward[1] * size * 0.4))
        cv2.line(layer, (int(base[0] + outward[0] * size * 0.5), int(base[1] + outward[1] * size * 0.5)), tip,
                 1.0, max(3, int(size * 0.2)))
    layer = cv2.GaussianBlur(layer, (0, 0), 2.0)[:, :, None]
    frame *= 1 - layer
    frame += skin * layer


def _shaded_skin(rng: np.random.Generator, skin: np.ndarray, width: int, height: int) -> np.ndarray:
    shade = cv2.GaussianBlur(rng.uniform(0.75, 1.1, (12, 16)).astype(np.float32), (0, 0), 2)
    return cv2.resize(shade, (width, height))[:, :, None] * skin


def _lighting(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(h, w, 1) float32 gain: a gradient across the frame and one soft shadow."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(-1, 1, 2)
    ramp = (xs / width - 0.5) * direction[0] + (ys / height - 0.5) * direction[1]
    gain = rng.uniform(0.8, 1.0) + rng.uniform(0.3, 0.55) * ramp
    shadow = np.zeros((height, width), np.float32)
    centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    cv2.ellipse(shadow, centre, (int(rng.integers(width // 8, width // 3)), int(rng.integers(height // 8, height // 3))),
                float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.2, 0.4)), -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), width / 30)
    return np.clip(gain - shadow, 0.35, 1.3)[:, :, None].astype(np.float32)


NOISE_MARGIN = 32  # px of extra sensor noise around the frame, so each frame can take a shifted window of it


def _camera_artefacts(frame: np.ndarray, rng: np.random.Generator, blur: float, noise: float, quality: int,
                      noise_bank: np.ndarray) -> np.ndarray:
    if blur > 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    # A random window of one unit-noise image per clip: fresh-looking noise each frame at a fraction of the cost.
    dy, dx = rng.integers(0, NOISE_MARGIN, 2)
    height, width = frame.shape[:2]
    frame += noise * noise_bank[dy:dy + height, dx:dx + width]
    image = np.clip(frame, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else image


def _segment_plan(rng: np.random.Generator, mnist: MnistSplit, options: ClipOptions) -> list[tuple[str, list[np.ndarray]]]:
    """(truth, digit images) per segment: empty stretches and held cards alternate, starting empty."""
    plan = []
    for index in range(options.segments):
        if index % 2 == 0:
            plan.append(("", []))
            continue
        count = 2 if rng.random() < options.two_digit_share else 1
        picks = rng.integers(0, len(mnist.labels), count)
        plan.append(("".join(str(int(mnist.labels[i])) for i in picks), [mnist.images[i] for i in picks]))
    return plan


def render_frames(mnist: MnistSplit, seed: int = 0, options: ClipOptions = ClipOptions()
                  ) -> Iterator[tuple[np.ndarray, str]]:
    """Yield (frame (h, w, 3) uint8 BGR, truth) for a whole clip; truth is the number shown, "" for none."""
    rng = np.random.default_rng(seed)
    width, height = options.width, options.height
    backgrounds = [_clutter_background(rng, width, height) for _ in range(3)]
    skin = np.clip(SKIN_BGR * rng.uniform(0.7, 1.15) + rng.normal(0, 8, 3), 0, 255).astype(np.float32)
    noise_bank = rng.standard_normal((height + NOISE_MARGIN, width + NOISE_MARGIN, 3), np.float32)
    for truth, digits in _segment_plan(rng, mnist, options):
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        light = _lighting(rng, width, height)
        if digits:
            card = _digit_card(rng, digits, options.pen_bgr, options.paper_bgr)
        elif rng.random() < options.blank_card_share:
            card = _blank_card(rng, options.paper_bgr)
        else:
            card = None
        show_hand = card is not None or rng.random() < 0.5
        pose = _random_pose(rng, card if card is not None else _blank_card(rng), width, height)
        blur, noise, quality = rng.uniform(0, 1.5), rng.uniform(2, 7), int(rng.integers(40, 85))
        shaded_skin = _shaded_skin(rng, skin, width, height)
        shake = np.zeros(3)
        for _ in range(options.segment_frames):
            shake = 0.8 * shake + rng.normal(0, [2.0, 2.0, 0.6])  # a hand never holds still
            frame = background.copy()
            if card is not None:
                card_h, card_w = card.shape[:2]
                homography = _homography(pose, card_w, card_h, shake)
                _draw_card(frame, card, homography)
                grip = {0: (card_w * 0.5, card_h), 1: (0, card_h * 0.6), 2: (card_w, card_h * 0.6)}[pose.grip_side]
                anchor = cv2.perspectiveTransform(np.float32([[grip]]), homography)[0, 0]
            else:
                anchor = (pose.centre[0] + shake[0], pose.centre[1] + height * 0.2 + shake[1])
            if show_hand:
                _draw_hand(frame, rng, (float(anchor[0]), float(anchor[1])), pose.grip_side, height * 0.12, shaded_skin)
            frame *= light
            yield _camera_artefacts(frame, rng, blur, noise, quality, noise_bank), truth


def truth_path(video_path: str | Path) -> Path:
    """Where `render_clip` writes the truth for a video: beside it, `<name>.truth.json`."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.stem + ".truth.json")


def render_clip(path: str | Path, mnist: MnistSplit, seed: int = 0, options: ClipOptions = ClipOptions()) -> list[str]:
    """Write an MJPG .avi clip of held digit cards to `path`; return (and save beside it) the truth per frame.

    The truth list has one string per frame: the number on the card ("7", "42"), or "" for an empty frame.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), options.fps, (options.width, options.height))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}: OpenCV has no MJPG writer for it")
    truths = []
    try:
        for frame, truth in render_frames(mnist, seed, options):
            writer.write(frame)
            truths.append(truth)
    finally:
        writer.release()
    truth_path(path).write_text(json.dumps({"seed": seed, "fps": options.fps, "truth": truths}) + "\n")
    return truths


SETTLE_FRAMES = 6  # frames after each change of what is shown before the stable readout is scored


@dataclass(frozen=True)
class ClipScore:
    digit_frames: int  # settled frames showing a number
    digit_right: int  # ... whose stable readout is that number
    empty_frames: int  # settled frames showing no number
    empty_right: int  # ... where no number is reported

    @property
    def digit_accuracy(self) -> float:
        return self.digit_right / max(1, self.digit_frames)

    @property
    def empty_accuracy(self) -> float:
        return self.empty_right / max(1, self.empty_frames)


def score_readout(truth: list[str], stable_texts: list[str], settle: int = SETTLE_FRAMES) -> ClipScore:
    """Score a clip's stable readout against its truth, skipping `settle` frames after every change.

    The vote needs a few frames to follow a new card, so the frames right after each change are not
    scored; every other frame counts, digit frames and empty frames apart.
    """
    right = {True: 0, False: 0}
    total = {True: 0, False: 0}
    since_change = 0
    for index, (expected, shown) in enumerate(zip(truth, stable_texts)):
        since_change = since_change + 1 if index and truth[index - 1] == expected else 0
        if since_change < settle:
            continue
        shows_digit = bool(expected)
        total[shows_digit] += 1
        right[shows_digit] += shown == expected
    return ClipScore(total[True], right[True], total[False], right[False])


def photographed_digit(digit: np.ndarray, rng: np.random.Generator, ink_bgr: tuple[float, float, float] | None = None
                       ) -> np.ndarray:
    """(h, w, 3) uint8 BGR: one MNIST digit on a card as a camera sees it close up (tilt, light, blur,
    noise, JPEG), with the card's edges in view. The detector and `to_mnist_input` then cut it out as in
    `digits run`, which gives the "rendered camera crops" that calibration and accuracy are measured on.
    `ink_bgr`: the pen's colour (default: a black or dark blue pen, as on the held cards)."""
    card = _digit_card(rng, [digit], ink_bgr)
    card_h, card_w = card.shape[:2]
    width, height = int(card_w * rng.uniform(1.2, 1.6)), int(card_h * rng.uniform(1.2, 1.6))
    frame = np.empty((height, width, 3), np.float32)
    frame[:] = rng.uniform(40, 160, 3)
    jitter = rng.uniform(-0.06, 0.06, (4, 2)) * [card_w, card_h]
    corners = np.float32([[0, 0], [card_w, 0], [card_w, card_h], [0, card_h]])
    placed = corners + np.float32([(width - card_w) / 2, (height - card_h) / 2]) + jitter.astype(np.float32)
    _draw_card(frame, card, cv2.getPerspectiveTransform(corners, placed.astype(np.float32)))
    frame *= _lighting(rng, width, height)
    noise_bank = rng.standard_normal((height + NOISE_MARGIN, width + NOISE_MARGIN, 3), np.float32)
    return _camera_artefacts(frame, rng, rng.uniform(0, 1.5), rng.uniform(2, 7), int(rng.integers(40, 85)), noise_bank)
