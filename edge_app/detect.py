"""Find the handwritten digits in a camera frame: pure functions from a frame to boxes and crops.

Detection runs on a small grayscale copy of the frame (the longer side DETECT_SIZE px), so its cost
does not grow with the camera resolution, and every threshold is relative to that copy's size, not
a pixel count. Ink is whatever is darker than its neighbourhood (an adaptive threshold). Paper and
ink levels are read on a light-normalised twin of that copy (each pixel over the paper level under
it), so shadows and light gradients across the card do not count as uneven paper. Blobs mostly of a
hue no pen writes (skin, paint) are dropped first. A blob of ink counts as a digit when its size,
aspect and ink fill look like a written digit, it does not touch the frame border, and it sits on
plain paper: the ring around it is light, even and grey, with coloured pixels (the fingers holding
the card) tolerated as occluders. That is what rejects the card's own edge, the fingers and the
clutter behind it. Crops come from the full-resolution frame, with other ink (a neighbouring digit,
the card edge) painted over with the paper's colour, so that `preprocess.to_mnist_input` sees one
digit alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_app.preprocess import to_grayscale

DETECT_SIZE = 256  # px, the longer side of the working copy
MIN_FRAME_SIZE = 16  # px; anything smaller cannot show a readable digit
# Ink: darker than the local mean (a window of this share of the working height) by this many levels.
BLOCK_SHARE = 0.12
INK_OFFSET = 12
# Ruled lines of a notebook page: ink paler than RULE_RATIO of the paper's level in horizontal runs of
# at least RULE_LENGTH_SHARE of the working width (shorter runs are the fringes of strokes and clutter).
RULE_RATIO = 0.7
RULE_LENGTH_SHARE = 0.12
# The paper level under a pixel: the brightest light nearby, over a square of this share of the working
# height. Dark things narrower than it (strokes, fingers, small objects) are wiped off; shading is kept.
PAPER_SHARE = 0.25
# What a digit looks like, relative to the working copy's height (H).
MIN_HEIGHT_SHARE, MAX_HEIGHT_SHARE = 0.06, 0.75  # a card held close fills most of the frame
MIN_ASPECT, MAX_ASPECT = 0.08, 2.2  # width / height of the ink box (a wide 0 or 2 reaches 1.5, a flat 5 on a tilted card 1.8)
MIN_FILL, MAX_FILL = 0.08, 0.75  # ink pixels / ink-box area
THIN_STROKE_ASPECT = 0.3  # narrower than this (w / h), a blob is one stroke: a 1
MIN_SPECK_SHARE = 0.0004  # components smaller than this share of the frame area are noise, ignored
# The paper around a digit (a ring as wide as this share of the digit height).
RING_SHARE = 0.45
MIN_PAPER_SHARE = 0.75  # of the ring that must be paper (other ink and coloured pixels count half)
MAX_PAPER_SPREAD = 0.6  # (p90 - p10) of the light-normalised paper, as a share of the paper-to-ink contrast
MIN_INK_CONTRAST = 40  # grey levels between paper and ink, both light-normalised and as the camera saw them
# Paper is white or grey, whatever the light: its colourfulness (max - min) / max of B, G, R stays
# below this. Painted walls, skin and coloured objects sit above it.
MAX_PAPER_SATURATION = 0.2
# White balance: the brightest WHITE_SHARE of the frame is taken to be white paper under the scene's light;
# no channel is amplified more than MAX_WHITE_GAIN.
WHITE_SHARE = 0.1
MAX_WHITE_GAIN = 1.6
ILLUMINANT_SLOPE = 0.15  # a lamp's cast: R/G - 1 at least this share of 1 - B/G (or cold: the reverse)
MIN_CHROMA = 20  # grey levels between a pixel's brightest and darkest channel before its hue counts
MAX_INK_CHROMA = 0.7  # the ink's colourfulness, as a share of its contrast with the paper
MAX_COLOURED_INK_SHARE = 0.5  # of a blob's pixels that may be more colourful than pen ink
MIN_HOLE_BRIGHTNESS = 0.6  # the non-ink inside the ink box, as a share of the way from ink up to paper
MIN_BOX_BRIGHTNESS = 0.15  # the median of the whole ink box, likewise: a digit's box is mostly paper
CROP_PAD_SHARE = 0.2  # the crop's margin around the ink, as a share of its longer side
MAX_DIGITS = 8  # more candidates than this in one frame is clutter, not a number


@dataclass(frozen=True)
class Box:
    """A rectangle in frame pixels."""
    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True, eq=False)
class DigitRegion:
    box: Box  # the crop: the ink box with a margin, clamped to the frame (frame pixels)
    crop: np.ndarray  # (box.h, box.w) uint8 grayscale; other ink inside the box painted the paper's colour


@dataclass(frozen=True, eq=False)
class _Scene:
    """One frame as the per-blob tests see it: the working copy, its light-normalised twin, the ink
    mask with its labelled blobs, and which pixels are coloured."""
    small: np.ndarray  # (h, w) uint8 grey working copy
    flat: np.ndarray  # (h, w) uint8: `small` divided by the local paper level, paper ~255 in light and shadow
    mask: np.ndarray  # (h, w) uint8, 255 = ink
    labels: np.ndarray  # (h, w) int32 blob labels of `mask`
    areas: np.ndarray  # ink pixels per label
    coloured: np.ndarray  # (h, w) bool: colourful pixels (skin, paint, objects, a blue pen's ink), never paper


def _working_copy(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """(h, w) uint8 -> (small gray, scale from small to frame pixels)."""
    height, width = gray.shape
    scale = max(height, width) / DETECT_SIZE
    if scale <= 1.0:
        return gray, 1.0
    small = cv2.resize(gray, (round(width / scale), round(height / scale)), interpolation=cv2.INTER_AREA)
    return small, scale


def ink_mask(small: np.ndarray) -> np.ndarray:
    """(h, w) uint8 -> (h, w) uint8 mask (255 = ink): darker than the local mean, robust to uneven light."""
    block = max(3, int(small.shape[0] * BLOCK_SHARE) | 1)
    return cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, INK_OFFSET)


def paper_level(small: np.ndarray) -> np.ndarray:
    """(h, w) uint8 -> (h, w) uint8: the level of the paper under each pixel, as if nothing were written on it.

    A grey closing (a max then a min filter) wider than any pen stroke: it wipes the ink off the paper
    and keeps the light. Dividing by it turns a shadow across the card or a light gradient into flat
    paper, so the paper and ink tests need no allowance for light.
    """
    size = max(3, int(small.shape[0] * PAPER_SHARE) | 1)
    return cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))


def _without_ruled_lines(mask: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """The ink mask without the pale horizontal rules of a notebook page.

    A rule is pale (over RULE_RATIO of the paper's level, a pen stroke is under half) and long and
    thin: an opening with a horizontal bar keeps exactly such runs. Only pale pixels are removed, so
    a digit's dark strokes stay whole where a rule crosses them; without this, the rules join every
    digit on the page into one blob far too wide to be a digit.
    """
    pale = cv2.bitwise_and(mask, cv2.compare(flat, RULE_RATIO * 255, cv2.CMP_GE))
    length = max(3, int(mask.shape[1] * RULE_LENGTH_SHARE))
    rules = cv2.morphologyEx(pale, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1)))
    return cv2.subtract(mask, rules)


def _merge_broken_strokes(boxes: np.ndarray, gap: float) -> list[list[int]]:
    """Group blobs that are parts of one digit: stacked one above the other, no wider together.

    `boxes` is (n, 4) int x, y, w, h; returns lists of row indices. A pen lifts mid-digit (the bar
    of a 5, an open 4), so one digit can be two blobs. Neighbouring digits sit side by side, so
    their columns barely overlap; the card's edge and the fingers overlap a digit's rows, contain
    it or are wider than it, so merging with them is refused. Pairs are tested at once (numpy),
    then joined transitively.
    """
    x, y, w, h = (boxes[:, k].astype(np.int64) for k in range(4))
    right, bottom = x + w, y + h
    overlap = np.minimum(right[:, None], right[None]) - np.maximum(x[:, None], x[None])
    vertical_gap = np.maximum(y[:, None], y[None]) - np.minimum(bottom[:, None], bottom[None])
    union_w = np.maximum(right[:, None], right[None]) - np.minimum(x[:, None], x[None])
    union_h = np.maximum(bottom[:, None], bottom[None]) - np.minimum(y[:, None], y[None])
    min_h, max_h = np.minimum(h[:, None], h[None]), np.maximum(h[:, None], h[None])
    max_w = np.maximum(w[:, None], w[None])
    # Nested boxes grow neither side: a blob inside another (a digit inside the card's outline).
    nested = (union_w == max_w) & (union_h == max_h)
    joins = ((overlap >= 0.5 * np.minimum(w[:, None], w[None]))
             & (vertical_gap >= -0.6 * min_h) & (vertical_gap <= gap) & ~nested
             & (union_w <= 1.15 * max_w) & (union_h <= 1.7 * max_h))
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(joins, 1))):
        parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _group_box(boxes: np.ndarray, group: list[int]) -> tuple[int, int, int, int]:
    part = boxes[group]
    left, top = part[:, 0].min(), part[:, 1].min()
    right, bottom = (part[:, 0] + part[:, 2]).max(), (part[:, 1] + part[:, 3]).max()
    return int(left), int(top), int(right - left), int(bottom - top)


def _looks_like_digit(box: tuple[int, int, int, int], ink_area: int, shape: tuple[int, int]) -> bool:
    x, y, w, h = box
    height, width = shape
    if not MIN_HEIGHT_SHARE * height <= h <= MAX_HEIGHT_SHARE * height:
        return False
    if not MIN_ASPECT <= w / h <= MAX_ASPECT:
        return False
    fill = ink_area / (w * h)
    # A straight "1" fills its thin box almost entirely; only wider blobs must leave room for paper.
    if fill < MIN_FILL or (fill > MAX_FILL and w / h > THIN_STROKE_ASPECT):
        return False
    return x > 0 and y > 0 and x + w < width and y + h < height  # a blob cut by the border is not whole


def _levels(values: np.ndarray, shares: tuple[float, ...]) -> list[float]:
    """Quantiles of uint8 grey levels from their histogram: far cheaper than np.percentile per candidate."""
    cumulative = np.cumsum(np.bincount(values, minlength=256))
    return [float(np.searchsorted(cumulative, share * cumulative[-1])) for share in shares]


def _colour_copy(frame: np.ndarray, small_shape: tuple[int, int]) -> np.ndarray | None:
    """The frame's BGR pixels at the working copy's size (nearest: no blending of ink with paper); None for grey."""
    if frame.ndim != 3 or frame.shape[2] < 3 or frame.dtype != np.uint8:
        return None  # a grey frame has no colour to tell; the other tests still apply
    bgr = np.ascontiguousarray(frame[:, :, :3])
    return cv2.resize(bgr, (small_shape[1], small_shape[0]), interpolation=cv2.INTER_NEAREST)


def _white_balanced(colour: np.ndarray, small: np.ndarray) -> np.ndarray | None:
    """`colour` with its channels scaled so that the typical hue of the brightest pixels becomes grey.

    In a frame that holds a card, most of the brightest pixels are the paper, so this undoes the light's
    colour (a warm lamp, a cold window) that the camera's white balance left in. None when there is
    nothing to undo. The hue (medians of B/G and R/G) is read on every other row and column.
    """
    sample, sample_colour = small[::2, ::2], colour[::2, ::2]
    bright = sample_colour[sample >= _levels(sample.ravel(), (1 - WHITE_SHARE,))[0]].astype(np.float32) + 1.0
    blue_cast, red_cast = np.median(bright[:, 0] / bright[:, 1]), np.median(bright[:, 2] / bright[:, 1])
    # Light is warm (less blue, more red than green) or cold (the reverse), the two moving together.
    # Bright pixels of any other hue (an olive, green or magenta wall) are no white paper under a
    # lamp: leave the colours alone.
    warm = blue_cast < 1.0 and red_cast - 1.0 >= ILLUMINANT_SLOPE * (1.0 - blue_cast)
    cold = red_cast < 1.0 and blue_cast - 1.0 >= ILLUMINANT_SLOPE * (1.0 - red_cast)
    if not (warm or cold):
        return None
    cast = np.array([blue_cast, 1.0, red_cast])
    return cv2.transform(colour, np.diag(np.minimum(cast.max() / cast, MAX_WHITE_GAIN)))


def _hues(colour: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, w, 3) uint8 BGR -> (coloured, not blue, chroma): colourful pixels, those whose hue is not blue, max - min."""
    blue, green, red = cv2.split(colour)
    brightest = cv2.max(cv2.max(blue, green), red)
    chroma = cv2.subtract(brightest, cv2.min(cv2.min(blue, green), red))
    # Dark pixels' hue is noise (a few grey levels of JPEG colour swing it), so colour needs both a
    # share of the brightness and a floor in grey levels. (uint8 OpenCV arithmetic: no float copies.)
    coloured = (chroma > cv2.convertScaleAbs(brightest, alpha=MAX_PAPER_SATURATION)) & (chroma > MIN_CHROMA)
    return coloured, blue < brightest, chroma


def _colour_classes(colour: np.ndarray, small: np.ndarray, paper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coloured, not pen ink), each (h, w) bool: what is not white/grey paper, and what no pen wrote.

    A pixel counts as coloured only when it is coloured both as the camera saw it and white-balanced
    on the frame's brightest pixels: the balance rescues white paper under a coloured light, and the
    camera's own colours keep a wrong balance (a bright coloured wall taken for the paper) from
    turning the real card colourful.
    """
    coloured, not_blue, chroma = _hues(colour)
    balanced = _white_balanced(colour, small)
    if balanced is not None:
        balanced_coloured, balanced_not_blue, balanced_chroma = _hues(balanced)
        coloured &= balanced_coloured
        not_blue &= balanced_not_blue
        chroma = cv2.min(chroma, balanced_chroma)
    # Pen ink is black, grey (pencil) or blue. Skin, paint and coloured objects are colourful in
    # another hue, or as colourful as they are dark (ratio ~1 against ~0.25 for a blue ballpoint).
    # The cost: a red or green pen's digits are refused. (The closing never lies below the pixel.)
    darkness = cv2.subtract(paper, small)
    as_colourful_as_dark = chroma > cv2.convertScaleAbs(darkness, alpha=MAX_INK_CHROMA)
    return coloured, coloured & (not_blue | as_colourful_as_dark)


def _on_plain_paper(scene: _Scene, own: np.ndarray, box: tuple[int, int, int, int]) -> float | None:
    """The paper's grey level when the ring around `box` is light, even paper darker ink sits on; else None.

    `own` is the digit's own ink (bool, same shape as `scene.small`); ink of other blobs in the ring (a
    neighbouring digit) is left out of the paper statistics but counts against the paper share. Levels
    are read on the paper-normalised copy, so a shadow across the card is not uneven paper.
    """
    x, y, w, h = box
    pad = max(2, int(RING_SHARE * h))
    top, left = max(0, y - pad), max(0, x - pad)
    bottom, right = min(scene.small.shape[0], y + h + pad), min(scene.small.shape[1], x + w + pad)
    rows, cols = slice(top, bottom), slice(left, right)
    window = scene.flat[rows, cols]
    ink_here = scene.mask[rows, cols] > 0
    own_here = own[rows, cols]
    ring = np.ones(window.shape, bool)
    ring[y - top:y - top + h, x - left:x - left + w] = False
    # Paper is white or grey whatever the light; colourful pixels are something else: the fingers
    # holding the card, a painted wall, an object.
    coloured = scene.coloured[rows, cols]
    paper = ring & ~ink_here & ~coloured
    other_ink = ring & ink_here & ~own_here
    occluded = ring & ~ink_here & coloured
    # Most of the ring is paper. Ink of other blobs (a neighbouring digit, a finger's edge) and coloured
    # pixels (fingers over the card) count half against it: a digit beside the fingers is still read,
    # a dark blob on a coloured wall is not.
    if paper.sum() < MIN_PAPER_SHARE * ring.sum() - 0.5 * (other_ink.sum() + occluded.sum()):
        return None
    paper_levels = window[paper]
    ink_levels = window[own_here]
    if len(paper_levels) < 8 or len(ink_levels) == 0:
        return None
    p10, paper_level, p90 = _levels(paper_levels, (0.1, 0.5, 0.9))
    ink_level = _levels(ink_levels, (0.5,))[0]
    contrast = paper_level - ink_level
    if contrast < MIN_INK_CONTRAST or p90 - p10 > MAX_PAPER_SPREAD * contrast:
        return None
    # The holes and gaps inside a digit are paper too. A dark blob that the adaptive threshold hollowed
    # out (a filled circle reads as a ring, a "0") has a dark inside.
    box_window = (slice(y - top, y - top + h), slice(x - left, x - left + w))
    inside = window[box_window][~ink_here[box_window]]
    if len(inside) and _levels(inside, (0.5,))[0] - ink_level < MIN_HOLE_BRIGHTNESS * contrast:
        return None
    # Most of a written digit's box is paper. A dark object whose outline the adaptive threshold
    # traced (a picture frame, a dark box crossed by a cable) is mostly dark inside its box. A
    # straight "1" is all stroke, so thin blobs are exempt.
    if w / h > THIN_STROKE_ASPECT and _levels(window[box_window].ravel(), (0.5,))[0] - ink_level < MIN_BOX_BRIGHTNESS * contrast:
        return None
    grey = scene.small[rows, cols]
    grey_paper, grey_ink = _levels(grey[paper], (0.5,))[0], _levels(grey[own_here], (0.5,))[0]
    if grey_paper - grey_ink < MIN_INK_CONTRAST:
        return None  # too faint in the frame itself: noise, or a shadow's edge the normalising magnified
    return grey_paper


def _accept_digit(scene: _Scene, boxes: np.ndarray, candidates: list[int], group: list[int]):
    """(box, own ink mask, paper level) when the blobs in `group` together look like a digit on paper, else None."""
    box = _group_box(boxes, group)
    members = [candidates[i] for i in group]
    if not _looks_like_digit(box, int(scene.areas[members].sum()), scene.small.shape):
        return None
    x, y, w, h = box
    own = np.zeros(scene.small.shape, bool)
    own[y:y + h, x:x + w] = np.isin(scene.labels[y:y + h, x:x + w], members)
    paper_level = _on_plain_paper(scene, own, box)
    return None if paper_level is None else (box, own, paper_level)


def find_digits(frame: np.ndarray) -> list[DigitRegion]:
    """A camera frame (any channels/dtype) -> the digits in it, left to right, each with its isolated crop.

    Never raises on odd frames: an empty, tiny, flat (all black/white) or unreadable frame has no digits.
    """
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or min(frame.shape[:2], default=0) < MIN_FRAME_SIZE or frame.size == 0:
        return []
    gray = to_grayscale(frame)
    small, scale = _working_copy(gray)
    paper = paper_level(small)
    flat = cv2.divide(small, np.maximum(paper, 1), scale=255)
    mask = _without_ruled_lines(ink_mask(small), flat)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return []
    height, width = small.shape
    min_area = max(4, MIN_SPECK_SHARE * height * width)
    max_side = MAX_HEIGHT_SHARE * height
    areas, widths, heights = stats[:, cv2.CC_STAT_AREA], stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    # Cheap, vectorised pre-filter: specks and blobs bigger than any digit go before the per-blob tests.
    candidates = np.flatnonzero((areas >= min_area) & (widths <= 2 * max_side) & (heights <= max_side))
    candidates = [int(i) for i in candidates if i != 0]
    if not candidates or len(candidates) > 200:
        return []  # nothing, or a frame of pure texture
    coloured = np.zeros(small.shape, bool)
    colour = _colour_copy(frame, small.shape)
    if colour is not None:
        coloured, not_pen = _colour_classes(colour, small, paper)
        # Blobs that are mostly not pen ink are dropped before any merging, so a digit is never joined
        # to the fingertips over the card.
        coloured_ink = not_pen & (mask > 0)
        coloured_share = np.bincount(labels[coloured_ink], minlength=count) / np.maximum(areas, 1)
        candidates = [i for i in candidates if coloured_share[i] <= MAX_COLOURED_INK_SHARE]
        if not candidates:
            return []
    boxes = stats[candidates, :4]
    scene = _Scene(small, flat, mask, labels, areas, coloured)
    found = []
    for group in _merge_broken_strokes(boxes, gap=0.08 * height):
        digit = _accept_digit(scene, boxes, candidates, group)
        if digit is None and len(group) > 1:
            # A merge is a guess: when the whole fails, its parts may still be digits on their own.
            digit_parts = (_accept_digit(scene, boxes, candidates, [i]) for i in group)
            found.extend(part for part in digit_parts if part is not None)
        elif digit is not None:
            found.append(digit)
    if len(found) > MAX_DIGITS:
        return []
    found.sort(key=lambda item: item[0][0])
    return [_isolated_crop(gray, scale, box, own, paper_grey) for box, own, paper_grey in found]


def _isolated_crop(gray: np.ndarray, scale: float, box: tuple[int, int, int, int], own: np.ndarray,
                   paper_level: float) -> DigitRegion:
    """Cut the digit out of the full-resolution frame with a margin; other ink inside becomes paper."""
    x, y, w, h = box
    pad = CROP_PAD_SHARE * max(w, h)
    frame_h, frame_w = gray.shape
    left, top = max(0, int((x - pad) * scale)), max(0, int((y - pad) * scale))
    right, bottom = min(frame_w, int(np.ceil((x + w + pad) * scale))), min(frame_h, int(np.ceil((y + h + pad) * scale)))
    crop = gray[top:bottom, left:right]
    # The digit's own ink, grown a little to keep its anti-aliased edges, at the crop's resolution.
    small_window = own[int(top / scale):int(np.ceil(bottom / scale)), int(left / scale):int(np.ceil(right / scale))]
    keep = cv2.resize(small_window.astype(np.uint8), (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST)
    grow = max(3, int(round(scale * 2)) | 1)
    keep = cv2.dilate(keep, np.ones((grow, grow), np.uint8)) > 0
    paper = np.uint8(min(255, round(paper_level)))
    isolated = np.where(keep, crop, paper).astype(np.uint8)
    return DigitRegion(Box(left, top, right - left, bottom - top), isolated)


def find_digit_regions(frame: np.ndarray) -> list[Box]:
    """A camera frame -> boxes (frame pixels, clamped) of the digits in it, left to right."""
    return [region.box for region in find_digits(frame)]
