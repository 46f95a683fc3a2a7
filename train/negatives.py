"""What detection cuts out that is not a digit: the examples of the classifier's "not a digit" class.

Each kind below is drawn the way the app would see it: strokes on a small canvas, then through
`to_mnist_input` (the one preprocessing), so the 28x28 result is exactly what the model is fed at run
time. Kinds, and why each is here:

- `letter`: letters and symbols in pen-like strokes (notes beside the numbers, headers, units);
- `rule`: ruled and squared paper, page and card edges, corners and crossings (what a page shows besides ink);
- `blob`: specks, smudges, filled shapes, a few scattered dots (dust, shadows, a finger's tip);
- `hand`: a palm with two to five fingers, from any side (the hand that holds the card, or one waved in
  front of the camera): cut out alone, it is a filled blob on stems, which a model that has never seen one
  reads as a 4, 7 or 9 (one of the shapes the previous models took for digits in rendered empty frames);
- `merged`: two MNIST digits touching or overlapping (detection took them as one region);
- `half`: the left or right part of a digit (a region cut too early, or a digit cut in two);
- `scene`: whatever the detector itself finds in rendered camera frames that hold no digit
  (clutter, hands, blank cards, edges).

Shapes that are fair digits are left out on purpose (`looks_like_a_digit`): anything narrow or a
stroke standing roughly upright (a 1, whatever it was cut from), a blob with a large loop (a ring is a
0), and halves that still read as a digit (the left of a 2 or 5, the right of most digits). Everything is seeded, so a
training run's negatives can be made again.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from edge_app.detect import LIVE, STILL, detect
from edge_app.mnist import MnistSplit
from edge_app.preprocess import to_mnist_input
from edge_app.synthetic import ClipOptions, render_frames

CANVAS = 64  # px: strokes are drawn at about twice MNIST's scale, then prepared like any crop
LETTERS = "ACEFHKMNPRUVWXacehkmnpuvwx+=#%&@*<>~"  # none of them a fair digit (no O, l, I, S, Z, B, g, q...)
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
# Digits whose left part is no digit: the left of a 3, 8 or 9 is one or two arcs ("c", "3" mirrored); the
# left of a 2 or 5 still reads as that digit, the right of almost any digit as a 1, 3 or the digit itself.
HALF_DIGITS = (3, 8, 9)
# Detection as permissive as the app may become once the model rejects: any pen and paper colour, small
# regions; the live detector and the still detector, one clip each in turn.
SCENE_DETECTORS = (replace(LIVE, any_pen_colour=True, min_digit_share=0.03, max_paper_saturation=1.0),
                   replace(STILL, working_size=640))
SCENE_CLIP = ClipOptions(segments=8, segment_frames=6)
MIN_WIDTH = 10  # px of 28: a narrower shape is a fair 1, whatever it was cut from, so it is never a negative
MAX_STROKE_ASPECT = 0.35  # a shape this thin (short / long side of its rotated box) is one stroke ...
# ... and a 1 when it stands within this many degrees of vertical: a card held askew tilts a 1 by 45 degrees
# and more (measured on rendered clips), so only strokes near level are rules, never ones.
MAX_STROKE_TILT = 65
MAX_RULE_TILT = 90 - MAX_STROKE_TILT
MIN_HOLE_SHARE = 0.06  # of the shape's box: a loop this large makes a blob a 0, 6, 8 or 9 to anyone


def looks_like_a_digit(prepared: np.ndarray, loops_count: bool = True) -> bool:
    """Shapes that are fair digits whatever they were cut from, so never negatives: a tall thin shape or a
    stroke that stands roughly upright (a rule seen end on, a cable, a finger's edge: a 1), and, for
    blobs (`loops_count`), one with a large hole (a ring: a 0; a loop on a stem: a 6 or 9)."""
    mask = (prepared > 64).astype(np.uint8)
    columns = np.flatnonzero(mask.max(axis=0))
    if len(columns) == 0 or columns[-1] - columns[0] + 1 < MIN_WIDTH:
        return True
    points = cv2.findNonZero(mask)
    (_, _), (width, height), angle = cv2.minAreaRect(points)
    if min(width, height) < MAX_STROKE_ASPECT * max(width, height):
        along = angle if width >= height else angle + 90  # the long side's angle from the x axis, degrees
        if abs(abs(along % 180) - 90) <= MAX_STROKE_TILT:
            return True
    if loops_count:
        contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        box_area = float(np.count_nonzero(mask.any(axis=1))) * len(columns)
        holes = [cv2.contourArea(c) for c, h in zip(contours, hierarchy[0]) if h[3] >= 0]
        if holes and max(holes) >= MIN_HOLE_SHARE * box_area:
            return True
    return False


def _canvas() -> np.ndarray:
    return np.zeros((CANVAS, CANVAS), np.uint8)  # white ink on black, as MNIST


def _letter(rng: np.random.Generator) -> np.ndarray:
    image = _canvas()
    text = "".join(rng.choice(list(LETTERS), size=1 if rng.random() < 0.8 else 2))
    font = int(rng.choice(FONTS))
    scale = 1.6 if len(text) == 1 else 0.9
    (width, height), _ = cv2.getTextSize(text, font, scale, 3)
    origin = ((CANVAS - width) // 2, (CANVAS + height) // 2)
    cv2.putText(image, text, origin, font, scale, 255, int(rng.integers(2, 6)), cv2.LINE_AA)
    return image


def _near_level(rng: np.random.Generator) -> float:
    """An angle (radians from horizontal) within MAX_RULE_TILT of level: a steeper stroke is a 1 on a tilted card."""
    return float(np.deg2rad(rng.uniform(-MAX_RULE_TILT, MAX_RULE_TILT)))


def _rule(rng: np.random.Generator) -> np.ndarray:
    image = _canvas()
    thickness = int(rng.integers(1, 5))
    kind = rng.integers(4)
    if kind == 0:  # a ruled line's piece, or two
        for k in range(int(rng.integers(1, 3))):
            angle, y = _near_level(rng), rng.uniform(12, 52)
            dx, dy = 28 * np.cos(angle), 28 * np.sin(angle)
            cv2.line(image, (int(32 - dx), int(y - dy)), (int(32 + dx), int(y + dy)), 255, thickness, cv2.LINE_AA)
    elif kind == 1:  # a corner of a card or page
        x, y = int(rng.integers(10, 30)), int(rng.integers(10, 30))
        cv2.line(image, (x, y), (x + int(rng.integers(20, 44)), y), 255, thickness, cv2.LINE_AA)
        cv2.line(image, (x, y), (x, y + int(rng.integers(20, 44))), 255, thickness, cv2.LINE_AA)
    elif kind == 2:  # squared paper: a grid of 2-4 cells across
        step = int(rng.integers(14, 30))
        offset = int(rng.integers(0, step))
        for position in range(offset, CANVAS, step):
            cv2.line(image, (position, 4), (position, CANVAS - 4), 255, thickness)
            cv2.line(image, (4, position), (CANVAS - 4, position), 255, thickness)
    else:  # a crossing of two rules, or a T where one meets another
        cv2.line(image, (6, 32), (58, 32), 255, thickness)
        cv2.line(image, (32, int(rng.choice([6, 32]))), (32, 58), 255, thickness)
    return image


def _blob(rng: np.random.Generator) -> np.ndarray:
    image = _canvas()
    kind = rng.integers(3)
    if kind == 0:  # a filled smudge, round or lying down (standing up, it would be a 1)
        axes = (int(rng.integers(8, 26)), int(rng.integers(6, 20)))
        cv2.ellipse(image, (32, 32), (max(axes), min(axes)), float(rng.uniform(-40, 40)), 0, 360, 255, -1)
    elif kind == 1:  # scattered specks
        for _ in range(int(rng.integers(3, 9))):
            centre = (int(rng.integers(6, 58)), int(rng.integers(6, 58)))
            cv2.circle(image, centre, int(rng.integers(1, 5)), 255, -1)
    else:  # a shadow's or finger's soft edge: a filled region with a curved border
        points = np.array([[0, 64], [0, int(rng.integers(10, 50))], [int(rng.integers(20, 64)), int(rng.integers(0, 40))],
                           [64, int(rng.integers(20, 64))], [64, 64]], np.int32)
        cv2.fillPoly(image, [points], 255)
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(1, 4)))
    return image


def _hand(rng: np.random.Generator) -> np.ndarray:
    """A palm, partly out of the crop, with fanned fingers and sometimes a thumb, turned to any side."""
    image = _canvas()
    palm = (int(rng.integers(24, 40)), int(rng.integers(40, 60)))
    palm_axes = (int(rng.integers(10, 20)), int(rng.integers(8, 18)))
    cv2.ellipse(image, palm, palm_axes, float(rng.uniform(-20, 20)), 0, 360, 255, -1)
    fingers = int(rng.integers(2, 6))
    spread = rng.uniform(0.05, 0.35)  # radians between neighbouring fingers: closed to splayed
    for k in range(fingers):
        offset = k - (fingers - 1) / 2
        angle = -np.pi / 2 + offset * spread + rng.normal(0, 0.05)
        base = (palm[0] + offset * palm_axes[0] * 1.6 / fingers, palm[1] - palm_axes[1] * 0.6)
        length = rng.uniform(14, 30)
        tip = (base[0] + length * np.cos(angle), base[1] + length * np.sin(angle))
        cv2.line(image, (int(base[0]), int(base[1])), (int(tip[0]), int(tip[1])), 255, int(rng.integers(4, 9)),
                 cv2.LINE_AA)
    if rng.random() < 0.5:  # a thumb, out to one side and a little up
        side = rng.choice([-1, 1])
        reach = np.cos(rng.uniform(0.9, 1.4))  # of its length, sideways
        base = (palm[0] + side * palm_axes[0] * 0.7, palm[1])
        tip = (base[0] + side * rng.uniform(10, 18) * reach, base[1] - rng.uniform(4, 12))
        cv2.line(image, (int(base[0]), int(base[1])), (int(tip[0]), int(tip[1])), 255, int(rng.integers(5, 9)),
                 cv2.LINE_AA)
    turn = cv2.getRotationMatrix2D((CANVAS / 2, CANVAS / 2), float(rng.uniform(0, 360)), 1.0)
    image = cv2.warpAffine(image, turn, (CANVAS, CANVAS))
    return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 2.0)))


def _merged(rng: np.random.Generator, mnist: MnistSplit) -> np.ndarray:
    first, second = (mnist.images[int(i)] for i in rng.integers(0, len(mnist.labels), 2))
    step = int(rng.integers(12, 21))  # MNIST ink is about 20 px wide: the two touch or overlap
    image = np.zeros((28, 28 + step), np.uint8)
    image[:, :28] = first
    image[:, step:step + 28] = np.maximum(image[:, step:step + 28], second)
    return image


def _half(rng: np.random.Generator, mnist: MnistSplit) -> np.ndarray | None:
    candidates = np.flatnonzero(np.isin(mnist.labels, HALF_DIGITS))
    digit = mnist.images[int(rng.choice(candidates))].copy()
    columns = np.flatnonzero(digit.max(axis=0) > 0)
    if len(columns) < 6:
        return None
    digit[:, int(columns[0] + rng.uniform(0.35, 0.5) * (columns[-1] - columns[0])):] = 0
    return digit


def scene_clip_crops(mnist: MnistSplit, seed: int, clip: int) -> list[np.ndarray]:
    """The crops the detector takes from the empty frames of one rendered clip (clutter, hands, blank cards).

    Each clip depends only on (`mnist`, `seed`, `clip`), so clips can be made in any order or process and
    joined in clip order to the same set.
    """
    crops: list[np.ndarray] = []
    config = SCENE_DETECTORS[clip % len(SCENE_DETECTORS)]
    for frame, truth in render_frames(mnist, seed=seed * 100_000 + clip, options=SCENE_CLIP):
        if truth:
            continue
        for region in detect(frame, config).regions:
            prepared = to_mnist_input(region.crop)
            if prepared is not None and not looks_like_a_digit(prepared):
                crops.append(prepared)
    return crops


def _scene_crops(mnist: MnistSplit, seed: int, wanted: int) -> list[np.ndarray]:
    crops: list[np.ndarray] = []
    clip = 0
    while len(crops) < wanted and clip < 50 + wanted:
        crops += scene_clip_crops(mnist, seed, clip)
        clip += 1
    return crops[:wanted]


DRAWN_KINDS = {"letter": _letter, "rule": _rule, "blob": _blob, "hand": _hand}
DIGIT_KINDS = {"merged": _merged, "half": _half}
# Shares of each kind in a set of negatives.
SHARES = {"letter": 0.2, "rule": 0.15, "blob": 0.1, "hand": 0.1, "merged": 0.15, "half": 0.05, "scene": 0.25}


def kind_shares(scene_share: float = SHARES["scene"]) -> dict[str, float]:
    """SHARES with the scene crops' share changed, the other kinds keeping their proportions."""
    if scene_share == SHARES["scene"]:
        return SHARES
    rest = (1 - scene_share) / (1 - SHARES["scene"])
    return {kind: scene_share if kind == "scene" else share * rest for kind, share in SHARES.items()}


def not_digit_examples(mnist: MnistSplit, count: int, seed: int = 0,
                       scene_share: float = SHARES["scene"]) -> tuple[np.ndarray, np.ndarray]:
    """`count` (28, 28) uint8 "not a digit" inputs and their kind names, seeded.

    `mnist` gives the digits that merged pairs and halves are made of: the training split for training,
    the test split for evaluation, so the two never share a digit. `scene_share` of them are crops from
    rendered scenes (the slowest kind to make, and the one the app meets most).
    """
    rng = np.random.default_rng(seed)
    examples, kinds = [], []
    # Each kind's count, rounded so that they add up to `count` however small it is (the largest shares first).
    shares = kind_shares(scene_share)
    wanted_counts = {kind: int(share * count) for kind, share in shares.items()}
    for kind in sorted(shares, key=lambda k: -(shares[k] * count % 1))[:count - sum(wanted_counts.values())]:
        wanted_counts[kind] += 1
    for kind, wanted in wanted_counts.items():
        if kind == "scene":
            made = _scene_crops(mnist, seed, wanted)
        else:
            made = []
            while len(made) < wanted:
                drawn = DRAWN_KINDS[kind](rng) if kind in DRAWN_KINDS else DIGIT_KINDS[kind](rng, mnist)
                prepared = None if drawn is None else to_mnist_input(drawn)
                # Letters and merged digits have loops of their own (A, e, two 0s): only blobs' and hands' loops count.
                if prepared is not None and not looks_like_a_digit(prepared, loops_count=kind in ("blob", "hand")):
                    made.append(prepared)
        examples += made
        kinds += [kind] * len(made)
    if not examples:
        return np.zeros((0, 28, 28), np.uint8), np.array([], dtype=str)
    order = rng.permutation(len(examples))
    return np.stack(examples)[order], np.array(kinds)[order]
