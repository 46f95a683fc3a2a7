"""Find the handwritten digits in a camera frame or photo: pure functions from a frame to boxes and crops.

Detection runs on a grayscale working copy of the frame (the longer side `DetectorConfig.working_size`
px: 256 for live frames, 1280 for photos, where a whole page of small digits must be seen), so its
cost does not grow with the camera resolution, and every threshold is relative to that copy's size,
not a pixel count; all of them live in `DetectorConfig`. Ink is whatever is darker than its
neighbourhood (an adaptive threshold). Paper and ink levels are read on a light-normalised twin of
that copy (each pixel over the paper level under it), so shadows and light gradients across the card
do not count as uneven paper. In live frames, blobs mostly of a hue no pen writes (skin, paint) are
dropped first. A blob of ink counts as a digit when its size, aspect and ink fill look like a written
digit, it does not touch a live frame's border, and it sits on plain paper: the ring around it is
light, even and grey, with coloured pixels (the fingers holding the card) tolerated as occluders.
That is what rejects the card's own edge, the fingers and the clutter behind it. Crops come from the
full-resolution frame, with other ink (a neighbouring digit, the card edge) painted over with the
paper's colour, so that `preprocess.to_mnist_input` sees one digit alone. `detect` also returns
every refused candidate with the test that refused it (`--debug`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from edge_app.preprocess import to_grayscale

MIN_FRAME_SIZE = 16  # px; anything smaller cannot show a readable digit
DARK_MEDIAN = 100  # grey level: a still whose median is darker may be light writing on a dark ground


# Upper bounds for DetectorConfig's settings (shares and ratios: 10; grey levels: 255), so that a typo cannot
# ask for a 37 GB structuring element. These are the ones that differ.
SETTING_LIMITS = {"working_size": 8192, "max_candidates": 100_000}


@dataclass(frozen=True)
class DetectorConfig:
    """Every threshold of the detector, in one place. Sizes are shares of the working copy (the frame
    shrunk so its longer side is `working_size`), so they hold at any camera resolution.

    `LIVE` suits a camera frame with a card held up (small working copy, the frame border is clutter);
    `STILL` suits a photo (digits from 2% of the shorter side, a page of them, digits up to the edge).
    Users tuning to their camera override single fields: `--detector min_digit_share=0.04`.
    """
    working_size: int = 256  # px, the longer side of the copy detection runs on (its cost grows with its area)
    min_digit_share: float = 0.06  # smallest digit height, share of the frame's shorter side
    max_digit_share: float = 0.75  # largest digit height, share of the frame's height (a card held close)
    # A blob touching the frame border is cut off (clutter beside the card, the page's edge) unless it is at
    # least this share of the frame height and centred: the digit of a tight crop. Live frames: never (2.0).
    min_border_digit_share: float = 2.0
    # Ink: darker than the local mean (a window of this share of the shorter side) by this many levels.
    block_share: float = 0.12
    ink_offset: int = 12
    # Pale horizontal rules of a notebook page: paler than rule_ratio of the paper, runs this share of the width.
    rule_ratio: float = 0.7
    rule_length_share: float = 0.12
    # Long thin pale lines at any angle (a ruled page held askew, squared paper, a hand-ruled table) lose
    # their pale pixels before blobs are cut: photos.
    long_pale_lines: bool = False
    # The paper level under a pixel: the brightest light within this share of the shorter side.
    paper_share: float = 0.25
    min_aspect: float = 0.08  # width / height of a digit's ink box
    max_aspect: float = 2.2  # a wide 0 or 2 reaches 1.5, a flat 5 on a tilted card 1.8
    min_fill: float = 0.08  # ink pixels / ink-box area
    max_fill: float = 0.75  # (thin blobs, a "1", are exempt)
    thin_stroke_aspect: float = 0.3  # narrower than this (w / h), a blob is one stroke: a 1
    ring_share: float = 0.45  # the paper ring around a digit, as wide as this share of its height
    min_paper_share: float = 0.75  # of the ring that must be paper (other ink and coloured pixels count half)
    max_paper_spread: float = 0.6  # (p90 - p10) of the ring's paper, as a share of the paper-to-ink contrast
    # Paper-to-ink contrast: in grey levels of the light-normalised copy (paper = 255, so a share of the
    # paper's own brightness: dim light does not lower it) and, as the camera saw it, at least
    # min_grey_contrast levels and this share of the paper's grey level.
    min_ink_contrast: int = 40
    min_grey_contrast: int = 40
    min_grey_contrast_share: float = 0.0
    max_paper_saturation: float = 0.2  # colourfulness (max - min) / max of B, G, R above which a pixel is coloured
    # Ink of any hue (a red or green pen), and the brightest pixels' colour taken as the paper's (a yellow
    # note): the skin and paint this lets in are turned away by the paper tests below and by the model's
    # "not a digit". False takes black, grey or blue pen ink only, dropping colourful blobs before any
    # test: about 1 ms less per frame in a colourful room (the model without a reject class needs it).
    any_pen_colour: bool = True
    max_white_gain: float = 1.6  # white balance amplifies no channel more than this (a yellow note needs ~2)
    # With any_pen_colour, the brightest pixels' colour is taken for the paper's only when at least this share
    # of them is of one colour (B/G and R/G within paper_colour_tolerance of their medians): a sheet of paper
    # is one colour, while a room's brightest things are many, and balancing them grey made its tinted walls
    # paper (rendered clips: 44-57% or more in 95% of frames showing a yellow or pink card; 5-29% in half of
    # the empty frames).
    min_paper_colour_share: float = 0.35
    paper_colour_tolerance: float = 0.06
    white_share: float = 0.1  # the brightest share of the frame, taken to be white paper under the scene's light
    illuminant_slope: float = 0.15  # a lamp's cast: R/G - 1 at least this share of 1 - B/G (or cold: the reverse)
    min_chroma: int = 20  # grey levels between a pixel's brightest and darkest channel before its hue counts
    max_ink_chroma: float = 0.7  # pen ink's colourfulness, at most this share of its contrast with the paper
    max_coloured_ink_share: float = 0.5  # of a blob's pixels that may be more colourful than pen ink
    # Ink more colourful than a pen's (a red or green pen, with any_pen_colour) is read only on white or grey
    # paper: nine tenths of its ring's paper at most this saturated ((max - min) / max of B, G, R). Measured
    # on rendered clips: 0.042 or less around 90% of red and green digits, above 0.1 around 97% of the room's
    # coloured sticks and shapes (its tinted ground, or a shape peeking out beside a card).
    max_coloured_ink_paper_saturation: float = 0.1
    crop_pad_share: float = 0.2  # the crop's margin around the ink, as a share of its longer side
    min_hole_brightness: float = 0.6  # non-ink inside the box, share of the way from ink up to paper
    min_box_brightness: float = 0.15  # likewise, for the level under which max_box_ink_share of the box lies:
    max_box_ink_share: float = 0.7  # a digit's box is not mostly ink (a bold marker 8 is about 0.6 ink)
    max_candidates: int = 200  # blobs tested one by one; beyond this the largest are kept (bounds the work)
    # Specks: blobs smaller than this share of the smallest digit's height squared (the bar of a 5 is
    # about 0.1) are noise, never tested.
    min_speck_share: float = 0.15
    # Light writing on a dark ground (chalk on a board, a white-on-black crop) is read inverted, in stills.
    either_polarity: bool = False
    # Bold strokes that the adaptive threshold hollows out are filled back in (`_with_hollow_strokes_filled`).
    fill_hollow_strokes: bool = True
    # Near an edge of the light (a hard shadow across a photographed page), ink is thresholded on the
    # light-normalised copy (`_ink_mask_across_light_edges`). Stills only: the live goals were measured without it.
    light_edges: bool = False

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"detector setting {item.name}={value} must be a finite number, not negative")
            limit = SETTING_LIMITS.get(item.name, 10.0 if isinstance(value, float) else 255)
            if value > limit:
                raise ValueError(f"detector setting {item.name}={value} is beyond its sensible range (at most {limit})")
        if self.working_size < 2 * MIN_FRAME_SIZE:
            raise ValueError(f"detector setting working_size={self.working_size} must be at least {2 * MIN_FRAME_SIZE}")
        if not 0 < self.min_digit_share < self.max_digit_share:
            raise ValueError(f"detector settings: min_digit_share={self.min_digit_share} must be above 0 and "
                             f"below max_digit_share={self.max_digit_share}")


LIVE = DetectorConfig()
# A photo: digits from 2% of the shorter side on a 1280-px working copy, tight crops, any pen and paper
# colour (coloured ink on tinted paper too: a photo is of the page, and the light tints it; real photos lose
# 15 of 480 digits when coloured ink must sit on white paper), a contrast floor relative to the paper (dim
# light, pencil), light-on-dark read inverted.
STILL = DetectorConfig(working_size=1280, min_digit_share=0.02, max_digit_share=1.0, min_border_digit_share=0.6,
                       min_fill=0.025, min_speck_share=0.1, min_grey_contrast=16, min_grey_contrast_share=0.1,
                       max_white_gain=2.5, max_candidates=600, either_polarity=True,
                       long_pale_lines=True, max_coloured_ink_paper_saturation=1.0, light_edges=True)


def config_with(base: DetectorConfig, overrides: dict[str, str]) -> DetectorConfig:
    """`base` with fields set from text (the CLI's KEY=VALUE, a JSON file's values); ValueError names a bad one."""
    types = {f.name: f.type for f in fields(DetectorConfig)}
    values = {}
    for name, text in overrides.items():
        if name not in types:
            raise ValueError(f"unknown detector setting {name!r}; known: {', '.join(types)}")
        kind = types[name]
        try:
            if kind == "bool":
                if str(text).lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                values[name] = str(text).lower() in ("1", "true", "yes")
            else:
                values[name] = {"int": int, "float": float}[kind](str(text))  # JSON 8.5 for an int is an error
        except ValueError:
            raise ValueError(f"detector setting {name}={text!r} is not a valid {kind}") from None
    return replace(base, **values)  # __post_init__ refuses values out of range


PAPER_WORKING_SIZE = 256  # px: the paper level is smooth, so it is found on a copy this small and scaled up
# A long line's blob: at least LINE_MIN_DIGITS times as long as the digit-shaped blobs are tall, filling at
# most LINE_MAX_FILL of its box (a tilted line) or LINE_MIN_ASPECT times longer than wide (a level one),
# and at least LINE_MIN_PALE_SHARE of its pixels pale.
LINE_MIN_DIGITS, LINE_MAX_FILL, LINE_MIN_ASPECT, LINE_MIN_PALE_SHARE = 2.5, 0.15, 6.0, 0.5
LINE_MAX_BREADTH = 0.2
TOUCHING_MIN_ASPECT = 0.75  # width / height of an ink blob that may be two digits written touching
MAX_PIECES = 6  # separate pieces of ink tried as cut points of such a blob; more is a scribble, not two digits
MIN_PIECE_SHARE = 0.05  # of the largest piece's area: smaller pieces (specks) are never a cut point


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
    ink: Box | None = None  # the digit's ink alone (frame pixels): where it sits on its line


@dataclass(frozen=True)
class Rejected:
    """A blob (or group of blobs) that was tested as a digit and refused, with the test that refused it."""
    box: Box  # the ink box, frame pixels
    reason: str  # one of REASONS


# Why a candidate is not a digit, in the order the tests run (`--debug` shows them); the last is the reading
# pipeline's, not detection's: a still read whole as one digit lists the regions it replaced.
READ_WHOLE_INSTEAD = "read whole instead"
REASONS = ("over the candidate budget", "not pen ink (coloured)", "too small", "too large", "too wide or thin",
           "too little or too much ink", "touches the frame border", "not on paper", "paper too uneven",
           "low contrast", "dark inside", "faint in the frame", READ_WHOLE_INSTEAD)


@dataclass(frozen=True, eq=False)
class Detection:
    regions: list[DigitRegion]  # the digits, left to right
    rejected: list[Rejected]  # every other candidate, with its reason


@dataclass(frozen=True, eq=False)
class _Scene:
    """One frame as the per-blob tests see it: the working copy, its light-normalised twin, the ink
    mask with its labelled blobs, and which pixels are coloured."""
    config: DetectorConfig
    small: np.ndarray  # (h, w) uint8 grey working copy
    flat: np.ndarray  # (h, w) uint8: `small` divided by the local paper level, paper ~255 in light and shadow
    mask: np.ndarray  # (h, w) uint8, 255 = ink
    labels: np.ndarray  # (h, w) int32 blob labels of `mask`
    areas: np.ndarray  # ink pixels per label
    coloured: np.ndarray  # (h, w) bool: colourful pixels (skin, paint, objects, a blue pen's ink), never paper
    colour: np.ndarray | None = None  # (h, w, 3) uint8 BGR at the working size; None for a grey frame
    chroma: np.ndarray | None = None  # (h, w) uint8 max - min of B, G, R (white-balanced when that is less)
    paper_sums: np.ndarray = field(init=False)  # (h + 1, w + 1) integral image of the pixels neither ink nor coloured

    def __post_init__(self):
        # Most blobs of a cluttered room fail the first paper test; counted on an integral image, they
        # cost a few lookups each instead of their ring's pixels.
        object.__setattr__(self, "paper_sums", cv2.integral(((self.mask == 0) & ~self.coloured).view(np.uint8)))

    def paper_count(self, top: int, left: int, bottom: int, right: int) -> int:
        """Pixels neither ink nor coloured in rows top:bottom, columns left:right."""
        sums = self.paper_sums
        return int(sums[bottom, right] - sums[top, right] - sums[bottom, left] + sums[top, left])


def _working_copy(gray: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """(h, w) uint8 -> (small gray, scale from small to frame pixels)."""
    height, width = gray.shape
    scale = max(height, width) / size
    if scale <= 1.0:
        return gray, 1.0
    small = cv2.resize(gray, (round(width / scale), round(height / scale)), interpolation=cv2.INTER_AREA)
    return small, scale


def may_be_light_on_dark(small: np.ndarray) -> bool:
    """Light writing on a dark ground (chalk on a board, a white-on-black crop) is possible: the median is
    dark. Half of such a still is dark ground, but so is half of a dim photo of a page, and the share of
    light pixels tells neither (sparse chalk strokes are a few percent of a board; a page on a dark table
    may be a third of the photo), so `detect` reads such stills both ways."""
    return _levels(small.ravel(), (0.5,))[0] < DARK_MEDIAN


def _odd_share(small: np.ndarray, share: float) -> int:
    """An odd window size: `share` of the shorter side, at least 3 px."""
    return max(3, int(min(small.shape) * share) | 1)


def ink_mask(small: np.ndarray, config: DetectorConfig = LIVE) -> np.ndarray:
    """(h, w) uint8 -> (h, w) uint8 mask (255 = ink): darker than the local mean, robust to uneven light."""
    return cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
                                 _odd_share(small, config.block_share), config.ink_offset)


def paper_level(small: np.ndarray, config: DetectorConfig = LIVE) -> np.ndarray:
    """(h, w) uint8 -> (h, w) uint8: the level of the paper under each pixel, as if nothing were written on it.

    A grey closing (a max then a min filter) wider than any pen stroke: it wipes the ink off the paper
    and keeps the light. Dividing by it turns a shadow across the card or a light gradient into flat
    paper, so the paper and ink tests need no allowance for light. The light is smooth, so on a large
    working copy it is found on a PAPER_WORKING_SIZE copy and scaled back up (a wide closing is slow).
    """
    reduced, factor = _working_copy(small, PAPER_WORKING_SIZE)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (_odd_share(reduced, config.paper_share),) * 2)
    # The max filter first: stroke pixels would drag a shrunken copy's minimum down, never its maximum.
    closed = cv2.morphologyEx(reduced, cv2.MORPH_CLOSE, kernel)
    if factor == 1.0:
        return closed
    return cv2.max(cv2.resize(closed, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR), small)


# The paper level changing by more than this share between neighbouring pixels of its PAPER_WORKING_SIZE copy is
# an edge of the light (a hard shadow, the page's edge on a table); a vignette or a lamp's gradient changes it by
# well under 1%.
LIGHT_EDGE_STEP = 0.08
# Where the paper level is under this share of the brightest paper's (its 95th percentile), the light does not
# explain the darkness: a dark object wider than the paper window, which the normalising would make paper.
LIT_PAPER_SHARE = 0.25


def _ink_mask_across_light_edges(small: np.ndarray, paper: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """`ink_mask`, taken on the light-normalised copy (`small` / `paper`) within a threshold window of an edge of
    the light.

    Across a hard shadow's edge (a hand, a phone, a lamp over the page) the shadowed side is darker than its
    window's mean, so the grey copy's threshold takes a band along the edge for ink, which joins every stroke it
    crosses. The paper level follows the edge, so in the normalised copy the edge is gone. Only there: elsewhere
    that copy adds nothing, and its paper texture is amplified where the light is dim. Paper lit less than
    LIT_PAPER_SHARE of the brightest keeps the grey copy's threshold (the normalising would make a dark block's
    outline ink).
    """
    ink = ink_mask(small, config)
    reduced, factor = _working_copy(paper, PAPER_WORKING_SIZE)
    reduced = reduced.astype(np.float32)
    brighter, darker = cv2.dilate(reduced, np.ones((3, 3), np.uint8)), cv2.erode(reduced, np.ones((3, 3), np.uint8))
    edges = ((brighter - darker) > LIGHT_EDGE_STEP * np.maximum(brighter, 1.0)).astype(np.uint8)
    if not edges.any():
        return ink
    window = _odd_share(small, config.block_share)
    edges = cv2.resize(edges, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    near_edge = cv2.dilate(edges, np.ones((window, window), np.uint8)) > 0
    lit = paper >= LIT_PAPER_SHARE * float(np.percentile(paper, 95))
    # The paper level was found on a small copy and scaled up, so at a sharp edge it runs a few pixels into the
    # shadow, which then looks like a thin dark line along the edge; the darkest level within that reach is the
    # shadow's.
    reach = 2 * int(np.ceil(factor)) + 1
    under_edge = np.maximum(cv2.erode(paper, np.ones((reach, reach), np.uint8)), small)
    return np.where(near_edge & lit, ink_mask(cv2.divide(small, np.maximum(under_edge, 1), scale=255), config), ink)


# A hole in a blob of ink is the inside of a bold stroke, not paper, when on the light-normalised copy
# (paper = 255) it is darker than this ...
HOLLOW_STROKE_LEVEL = 175
# ... and no lighter than the ink around it by more than this share of the way from that ink up to paper. A
# small or blurred 0's loop is greyer than paper but clearly lighter than its ring; a stroke's inside is
# as dark as its edges.
HOLLOW_STROKE_MARGIN = 0.2


def _with_hollow_strokes_filled(mask: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """The ink mask with the insides of bold strokes filled back in.

    The adaptive threshold marks what is darker than its window's mean. A stroke wider than about half the
    window (a marker digit filling a close-up photo, a box-normalised scan scaled up) is darker than its
    surroundings only near its edges, so it comes out as an outline with a hole along its middle, and the
    model would be shown a hollow digit. A hole as dark as the ink around it is such a stroke's inside; a
    hole of paper (the loops of a 0, 6, 8 or 9, the gaps of a 4) stays a hole.
    """
    count, holes = cv2.connectedComponents(cv2.bitwise_not(mask), connectivity=4)  # label 0: the ink
    if count <= 2:
        return mask
    # Cheap first, for every frame: holes mostly darker than HOLLOW_STROKE_LEVEL, counted on the few dark
    # pixels that are not ink, and not the paper around everything (what reaches the frame's border).
    sizes = np.bincount(holes.ravel(), minlength=count)
    dark_counts = np.bincount(holes[(mask == 0) & (flat < HOLLOW_STROKE_LEVEL)], minlength=count)
    dark = 2 * dark_counts > sizes
    dark[np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]])] = False
    dark[0] = False
    if not dark.any():
        return mask
    # Then, for those: as dark as the ink on their rim (the ink pixels a 3x3 max filter spreads their label onto)?
    in_dark_hole = dark[holes]
    labelled = np.where(in_dark_hole, holes, 0).astype(np.float32)
    rim_labels = cv2.dilate(labelled, np.ones((3, 3), np.uint8)).astype(np.int32)
    rim = (mask > 0) & (rim_labels > 0)
    hole_means = np.bincount(holes[in_dark_hole], weights=flat[in_dark_hole], minlength=count) / np.maximum(sizes, 1)
    rim_sizes = np.bincount(rim_labels[rim], minlength=count)
    rim_means = np.bincount(rim_labels[rim], weights=flat[rim], minlength=count) / np.maximum(rim_sizes, 1)
    stroke_inside = dark & (rim_sizes > 0) & (hole_means <= rim_means + HOLLOW_STROKE_MARGIN * (255.0 - rim_means))
    return np.where(stroke_inside[holes], np.uint8(255), mask)


def _without_ruled_lines(mask: np.ndarray, flat: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """The ink mask without the pale horizontal rules of a notebook page.

    A rule is pale (over `rule_ratio` of the paper's level, a pen stroke is under half) and long and
    thin: an opening with a horizontal bar keeps exactly such runs. Only pale pixels are removed, so
    a digit's dark strokes stay whole where a rule crosses them; without this, the rules join every
    digit on the page into one blob far too wide to be a digit.
    """
    pale = cv2.bitwise_and(mask, cv2.compare(flat, config.rule_ratio * 255, cv2.CMP_GE))
    length = max(3, int(mask.shape[1] * config.rule_length_share))
    bar = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
    rules = cv2.morphologyEx(pale, cv2.MORPH_OPEN, bar)
    # Between the digits written on it a rule's runs are too short for the bar: pale pixels within a bar's
    # length of a found rule, on its own row, go too. (Not the whole row: on a hand-ruled table the rules
    # are the same pale ink as the digits.)
    return cv2.subtract(mask, cv2.bitwise_and(cv2.dilate(rules, bar), pale))


def _without_long_pale_lines(mask, flat, count, labels, stats, config: DetectorConfig):
    """The ink mask (and its labelled blobs) without the pale pixels of long thin lines at any angle.

    The rules of a page held askew, the lines of squared paper or of a hand-ruled table are long,
    thin and mostly pale, and a digit touching one becomes part of a blob far too long to be a digit.
    Taking out such a blob's pale pixels leaves the digit's dark strokes standing on their own.
    """
    x, y, w, h, area = (stats[:, k] for k in range(5))
    long_side = np.maximum(w, h)
    thin = (area <= LINE_MAX_FILL * w * h) | (w >= LINE_MIN_ASPECT * h) | (h >= LINE_MIN_ASPECT * w)
    # Long next to the writing: several times as long as the tallest blobs shaped like digits are tall (a
    # red pen's 7 is as pale and as thin as a rule, but no longer than the digits beside it).
    shaped = (w >= config.min_aspect * h) & (w <= config.max_aspect * h) & (h >= config.min_digit_share * min(mask.shape))
    shaped[0] = False
    writing = float(np.median(h[shaped])) if shaped.any() else 0.0
    long_enough = np.maximum(config.rule_length_share * max(mask.shape), LINE_MIN_DIGITS * writing)
    lines = np.flatnonzero((long_side >= long_enough) & thin)
    lines = np.array([i for i in lines if i != 0 and _straight(labels, stats, i)], int)
    if len(lines) == 0:
        return mask, count, labels, stats
    pale = flat >= config.rule_ratio * 255
    pale_share = np.bincount(labels[pale & (mask > 0)], minlength=count) / np.maximum(area, 1)
    lines = lines[pale_share[lines] >= LINE_MIN_PALE_SHARE]
    if len(lines) == 0:
        return mask, count, labels, stats
    on_lines = np.zeros(count, bool)
    on_lines[lines] = True
    mask = mask.copy()
    mask[on_lines[labels] & pale] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return mask, count, labels, stats


def _straight(labels: np.ndarray, stats: np.ndarray, label: int) -> bool:
    """Whether a blob runs straight: the thinnest rectangle around it (at any angle) is LINE_MAX_BREADTH
    as broad as it is long. A rule with digits hanging on it still is; a 7 or a curled stroke is not."""
    x, y, w, h = (int(v) for v in stats[label, :4])
    points = cv2.findNonZero((labels[y:y + h, x:x + w] == label).astype(np.uint8))
    (_, _), (side_a, side_b), _ = cv2.minAreaRect(points)
    return min(side_a, side_b) <= LINE_MAX_BREADTH * max(side_a, side_b, 1.0)


# Colourful blobs further apart in hue are not one pen's strokes. Skin is about 20 degrees from a red pen:
# at 30 a red digit joined the fingertips under it (rendered red-pen clips 94.51% of digit frames; 96.94% at 15).
MAX_PEN_HUE_SPREAD = np.deg2rad(15)


def _merge_broken_strokes(boxes: np.ndarray, max_gap: float, coloured: np.ndarray | None = None,
                          hues: np.ndarray | None = None) -> list[list[int]]:
    """Group blobs that are parts of one digit: stacked one above the other, no wider together.

    `boxes` is (n, 4) int x, y, w, h; returns lists of row indices. A pen lifts mid-digit (the bar
    of a 5, an open 4), so one digit can be two blobs. Neighbouring digits sit side by side, so
    their columns barely overlap; the card's edge and the fingers overlap a digit's rows, contain
    it or are wider than it, so merging with them is refused; the next line of a page is further
    below than a stroke's break. `coloured` (n bools, when the frame has colour): blobs mostly more
    colourful than pen ink join only each other, and the others only each other: one pen wrote a digit,
    so the fingertips over a card stay apart from a black digit above them, even when any pen colour is
    taken. `hues` (n, radians, with `coloured`): colourful blobs join only those of about their hue (one
    pen has one colour), so a pink stick does not join the skin of a hand. Pairs are tested at once (numpy),
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
             & (vertical_gap >= -0.6 * min_h) & (vertical_gap <= np.minimum(max_gap, 0.5 * max_h)) & ~nested
             & (union_w <= 1.15 * max_w) & (union_h <= 1.7 * max_h))
    if coloured is not None:
        joins &= coloured[:, None] == coloured[None]
        if hues is not None:
            apart = np.abs(np.angle(np.exp(1j * (hues[:, None] - hues[None]))))
            joins &= ~(coloured[:, None] & (apart > MAX_PEN_HUE_SPREAD))
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
    if len(group) == 1:  # most groups: no array reductions (a cluttered frame judges hundreds per second)
        x, y, w, h = boxes[group[0]]
        return int(x), int(y), int(w), int(h)
    part = boxes[group]
    left, top = part[:, 0].min(), part[:, 1].min()
    right, bottom = (part[:, 0] + part[:, 2]).max(), (part[:, 1] + part[:, 3]).max()
    return int(left), int(top), int(right - left), int(bottom - top)


def _shape_problem(box: tuple[int, int, int, int], ink_area: int, shape: tuple[int, int],
                   config: DetectorConfig) -> str | None:
    """Why an ink box is not shaped like a written digit, or None when it is."""
    x, y, w, h = box
    height, width = shape
    if _too_short(h, shape, config):
        return "too small"
    if h > config.max_digit_share * height:
        return "too large"
    if not config.min_aspect <= w / h <= config.max_aspect:
        return "too wide or thin"
    fill = ink_area / (w * h)
    # A straight "1" fills its thin box almost entirely; only wider blobs must leave room for paper.
    if fill < config.min_fill or (fill > config.max_fill and w / h > config.thin_stroke_aspect):
        return "too little or too much ink"
    if _touches_border(box, shape) and not (h >= config.min_border_digit_share * height and _centred(box, shape)):
        return "touches the frame border"  # a blob cut by the border is not whole
    return None


def _too_short(height: int, shape: tuple[int, int], config: DetectorConfig) -> bool:
    """Shorter than any digit the detector looks for."""
    return height < config.min_digit_share * min(shape)


def _touches_border(box: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    x, y, w, h = box
    return x <= 0 or y <= 0 or x + w >= shape[1] or y + h >= shape[0]


def _centred(box: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """The box's centre lies in the middle half of the frame both ways, as a tight crop frames its digit."""
    x, y, w, h = box
    return abs(x + w / 2 - shape[1] / 2) <= shape[1] / 4 and abs(y + h / 2 - shape[0] / 2) <= shape[0] / 4


def _levels(values: np.ndarray, shares: tuple[float, ...]) -> list[float]:
    """Quantiles of uint8 grey levels from their histogram: far cheaper than np.percentile per candidate."""
    cumulative = np.cumsum(np.bincount(values, minlength=256))
    return [float(np.searchsorted(cumulative, share * cumulative[-1])) for share in shares]


def _blob_hues(colour: np.ndarray, colourful_ink: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Each blob's mean hue in radians (circular), over its colourful ink pixels (0 for a blob with none)."""
    hue = cv2.cvtColor(colour, cv2.COLOR_BGR2HSV_FULL)[:, :, 0][colourful_ink].astype(np.float32) * np.float32(2 * np.pi / 256)
    owners = labels[colourful_ink]
    return np.angle(np.bincount(owners, np.cos(hue), minlength=count) + 1j * np.bincount(owners, np.sin(hue), minlength=count))


def _colour_copy(frame: np.ndarray, small_shape: tuple[int, int]) -> np.ndarray | None:
    """The frame's BGR pixels at the working copy's size (nearest: no blending of ink with paper); None for grey."""
    if frame.ndim != 3 or frame.shape[2] < 3 or frame.dtype != np.uint8:
        return None  # a grey frame has no colour to tell; the other tests still apply
    bgr = np.ascontiguousarray(frame[:, :, :3])
    return cv2.resize(bgr, (small_shape[1], small_shape[0]), interpolation=cv2.INTER_NEAREST)


def _white_balanced(colour: np.ndarray, small: np.ndarray, config: DetectorConfig) -> np.ndarray | None:
    """`colour` with its channels scaled so that the typical hue of the brightest pixels becomes grey.

    In a frame that holds a card, most of the brightest pixels are the paper, so this undoes the light's
    colour (a warm lamp, a cold window) that the camera's white balance left in. None when there is
    nothing to undo. The hue (medians of B/G and R/G) is read on every other row and column.
    """
    sample, sample_colour = small[::2, ::2], colour[::2, ::2]
    bright = sample_colour[sample >= _levels(sample.ravel(), (1 - config.white_share,))[0]].astype(np.float32) + 1.0
    blue_green, red_green = bright[:, 0] / bright[:, 1], bright[:, 2] / bright[:, 1]
    blue_cast, red_cast = np.median(blue_green), np.median(red_green)
    # Light is warm (less blue, more red than green) or cold (the reverse), the two moving together.
    # Bright pixels of any other hue (an olive, green or magenta wall) are no white paper under a
    # lamp: leave the colours alone. In a still photo the brightest pixels are the page itself, which
    # may be a yellow note, pink or kraft paper: `any_pen_colour` takes their colour as the paper's, when
    # enough of them are of one colour (`min_paper_colour_share`).
    warm = blue_cast < 1.0 and red_cast - 1.0 >= config.illuminant_slope * (1.0 - blue_cast)
    cold = red_cast < 1.0 and blue_cast - 1.0 >= config.illuminant_slope * (1.0 - red_cast)
    one_colour = np.mean((np.abs(blue_green - blue_cast) <= config.paper_colour_tolerance)
                         & (np.abs(red_green - red_cast) <= config.paper_colour_tolerance))
    if not (warm or cold or (config.any_pen_colour and one_colour >= config.min_paper_colour_share)):
        return None
    cast = np.array([blue_cast, 1.0, red_cast])
    return cv2.transform(colour, np.diag(np.minimum(cast.max() / cast, config.max_white_gain)))


def _hues(colour: np.ndarray, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, w, 3) uint8 BGR -> (coloured, not blue, chroma): colourful pixels, those whose hue is not blue, max - min."""
    blue, green, red = cv2.split(colour)
    brightest = cv2.max(cv2.max(blue, green), red)
    chroma = cv2.subtract(brightest, cv2.min(cv2.min(blue, green), red))
    # Dark pixels' hue is noise (a few grey levels of JPEG colour swing it), so colour needs both a
    # share of the brightness and a floor in grey levels. (uint8 OpenCV arithmetic: no float copies.)
    coloured = (chroma > cv2.convertScaleAbs(brightest, alpha=config.max_paper_saturation)) & (chroma > config.min_chroma)
    return coloured, blue < brightest, chroma


def _colour_classes(colour: np.ndarray, small: np.ndarray, paper: np.ndarray, config: DetectorConfig
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coloured, not pen ink, chroma): what is not paper and what no black, grey or blue pen wrote, each
    (h, w) bool, and each pixel's max - min of B, G, R ((h, w) uint8).

    A pixel counts as coloured only when it is coloured both as the camera saw it and white-balanced
    on the frame's brightest pixels: the balance rescues white paper under a coloured light, and the
    camera's own colours keep a wrong balance (a bright coloured wall taken for the paper) from
    turning the real card colourful.
    """
    coloured, not_blue, chroma = _hues(colour, config)
    balanced = _white_balanced(colour, small, config)
    if balanced is not None:
        balanced_coloured, balanced_not_blue, balanced_chroma = _hues(balanced, config)
        coloured &= balanced_coloured
        not_blue &= balanced_not_blue
        chroma = cv2.min(chroma, balanced_chroma)
    # Pen ink is black, grey (pencil) or blue. Skin, paint and coloured objects are colourful in
    # another hue, or as colourful as they are dark (ratio ~1 against ~0.25 for a blue ballpoint).
    # The cost: a red or green pen's digits are refused. (The closing never lies below the pixel.)
    darkness = cv2.subtract(paper, small)
    as_colourful_as_dark = chroma > cv2.convertScaleAbs(darkness, alpha=config.max_ink_chroma)
    return coloured, coloured & (not_blue | as_colourful_as_dark), chroma


def _ring_window(scene: _Scene, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right): `box` grown by its ring of paper, cut off at the frame's edge."""
    x, y, w, h = box
    pad = max(2, int(scene.config.ring_share * h))
    return (max(0, y - pad), max(0, x - pad),
            min(scene.small.shape[0], y + h + pad), min(scene.small.shape[1], x + w + pad))


def _ring_problem(scene: _Scene, box: tuple[int, int, int, int]) -> str | None:
    """The reason "not on paper" when too little of the ring around `box` is paper, else None.

    Most of the ring must be paper. Ink of other blobs (a neighbouring digit, a finger's edge) and coloured
    pixels (fingers over the card) count half against it: a digit beside the fingers is still read, a dark
    blob on a coloured wall is not. A ring the frame's edge cuts off counts as it is. (Paper is white or
    grey whatever the light; colourful pixels are something else: the fingers holding the card, a painted
    wall, an object. The ring holds paper, other ink and colourful pixels only.) Counted on the scene's
    integral image: most of a cluttered room's blobs end here, at the cost of a few lookups.
    """
    x, y, w, h = box
    top, left, bottom, right = _ring_window(scene, box)
    ring_size = (bottom - top) * (right - left) - w * h
    paper_size = scene.paper_count(top, left, bottom, right) - scene.paper_count(y, x, y + h, x + w)
    if paper_size < scene.config.min_paper_share * ring_size - 0.5 * (ring_size - paper_size):
        return "not on paper"
    return None


def _paper_problem(scene: _Scene, own: np.ndarray, box: tuple[int, int, int, int],
                   coloured_ink: bool = False) -> tuple[float | None, str | None]:
    """(the paper's grey level, None) when the ring around `box`, mostly paper (`_ring_problem`), is light,
    even paper darker ink sits on (white or grey paper, for `coloured_ink`); else (None, why not).

    `own` is the digit's own ink (bool, same shape as `scene.small`); ink of other blobs in the ring (a
    neighbouring digit) is left out of the paper statistics. Levels are read on the paper-normalised copy,
    so a shadow across the card is not uneven paper.
    """
    config = scene.config
    x, y, w, h = box
    top, left, bottom, right = _ring_window(scene, box)
    rows, cols = slice(top, bottom), slice(left, right)
    window = scene.flat[rows, cols]
    ink_here = scene.mask[rows, cols] > 0
    own_here = own[rows, cols]
    ring = np.ones(window.shape, bool)
    ring[y - top:y - top + h, x - left:x - left + w] = False
    paper = ring & ~ink_here & ~scene.coloured[rows, cols]
    paper_levels = window[paper]
    ink_levels = window[own_here]
    if len(paper_levels) < 8 or len(ink_levels) == 0:
        return None, "not on paper"
    # Coloured sticks and shapes around a room read as 1s and 7s; a coloured pen writes on a card.
    if coloured_ink and scene.colour is not None:
        brightest = np.maximum(scene.colour[rows, cols][paper].max(axis=1), 1).astype(np.float32)
        if np.percentile(scene.chroma[rows, cols][paper] / brightest, 90) > config.max_coloured_ink_paper_saturation:
            return None, "coloured ink off white paper"
    p10, paper_level, p90 = _levels(paper_levels, (0.1, 0.5, 0.9))
    ink_level = _levels(ink_levels, (0.5,))[0]
    contrast = paper_level - ink_level
    if contrast < config.min_ink_contrast:
        return None, "low contrast"
    if p90 - p10 > config.max_paper_spread * contrast:
        return None, "paper too uneven"
    # The holes and gaps inside a digit are paper too. A dark blob that the adaptive threshold hollowed
    # out (a filled circle reads as a ring, a "0") has a dark inside.
    box_window = (slice(y - top, y - top + h), slice(x - left, x - left + w))
    inside = window[box_window][~ink_here[box_window]]
    if len(inside) and _levels(inside, (0.5,))[0] - ink_level < config.min_hole_brightness * contrast:
        return None, "dark inside"
    # Most of a written digit's box is paper. A dark object whose outline the adaptive threshold
    # traced (a picture frame, a dark box crossed by a cable) is mostly dark inside its box. A bold
    # marker digit may be more ink than paper, so only a box that is mostly ink is refused, and a
    # straight "1" is all stroke, so thin blobs are exempt.
    box_level = _levels(window[box_window].ravel(), (config.max_box_ink_share,))[0]
    if w / h > config.thin_stroke_aspect and box_level - ink_level < config.min_box_brightness * contrast:
        return None, "dark inside"
    grey = scene.small[rows, cols]
    grey_paper, grey_ink = _levels(grey[paper], (0.5,))[0], _levels(grey[own_here], (0.5,))[0]
    # Too faint in the frame itself: noise, or a shadow's edge that the normalising magnified.
    if grey_paper - grey_ink < max(config.min_grey_contrast, config.min_grey_contrast_share * grey_paper):
        return None, "faint in the frame"
    return grey_paper, None


def _judge(scene: _Scene, boxes: np.ndarray, candidates: list[int], group: list[int], coloured_ink: bool = False):
    """((box, own ink mask, paper level), None) when the blobs in `group` together look like a digit on
    paper, else (None, (box, reason)). `coloured_ink`: the blobs are more colourful than pen ink."""
    box = _group_box(boxes, group)
    members = [candidates[i] for i in group]
    problem = (_shape_problem(box, sum(int(scene.areas[m]) for m in members), scene.small.shape, scene.config)
               or _ring_problem(scene, box))
    if problem:
        return None, (box, problem)
    x, y, w, h = box
    own = np.zeros(scene.small.shape, bool)
    window = scene.labels[y:y + h, x:x + w]
    own[y:y + h, x:x + w] = window == members[0] if len(members) == 1 else np.isin(window, members)
    paper_grey, problem = _paper_problem(scene, own, box, coloured_ink)
    if problem:
        return None, (box, problem)
    return (box, own, paper_grey), None


def detect(frame: np.ndarray, config: DetectorConfig = LIVE) -> Detection:
    """A camera frame or photo (any channels/dtype) -> the digits in it, left to right, each with its
    isolated crop, and every refused candidate with the reason.

    Never raises on odd frames: an empty, tiny, flat (all black/white) or unreadable frame has no digits.
    """
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or min(frame.shape[:2], default=0) < MIN_FRAME_SIZE or frame.size == 0:
        return Detection([], [])
    gray = to_grayscale(frame)
    small, scale = _working_copy(gray, config.working_size)
    if config.either_polarity and may_be_light_on_dark(small):
        # The polarity whose reading finds more digits on paper wins (a dim page read inverted finds none).
        inverted_gray = 255 - gray  # grey: the inverted frame's colours would mean nothing
        inverted = _detect_dark_on_light(inverted_gray, inverted_gray, 255 - small, scale, config)
        as_given = _detect_dark_on_light(frame, gray, small, scale, config)
        return as_given if len(as_given.regions) > len(inverted.regions) else inverted
    return _detect_dark_on_light(frame, gray, small, scale, config)


def _detect_dark_on_light(frame: np.ndarray, gray: np.ndarray, small: np.ndarray, scale: float,
                          config: DetectorConfig) -> Detection:
    """`detect` for a frame whose writing is darker than its paper: `gray` is the frame in grey, `small` its
    working copy, `scale` from that copy to frame pixels."""
    nothing = Detection([], [])
    paper = paper_level(small, config)
    flat = cv2.divide(small, np.maximum(paper, 1), scale=255)
    ink = _ink_mask_across_light_edges(small, paper, config) if config.light_edges else ink_mask(small, config)
    mask = _without_ruled_lines(ink, flat, config)
    if config.fill_hollow_strokes:
        mask = _with_hollow_strokes_filled(mask, flat)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if config.long_pale_lines:
        mask, count, labels, stats = _without_long_pale_lines(mask, flat, count, labels, stats, config)
    if count <= 1:
        return nothing
    shorter = min(small.shape)
    min_height = config.min_digit_share * shorter
    max_side = config.max_digit_share * small.shape[0]
    min_area = max(4.0, config.min_speck_share * min_height ** 2)
    areas, widths, heights = stats[:, cv2.CC_STAT_AREA], stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    # Cheap, vectorised pre-filter: specks and blobs bigger than any digit go before the per-blob tests.
    candidates = np.flatnonzero((areas >= min_area) & (widths <= 2 * max_side) & (heights <= max_side))
    candidates = candidates[candidates != 0]
    rejected: list[tuple[tuple[int, int, int, int], str]] = []
    if len(candidates) > config.max_candidates:
        # Bound the work, not the answer: a page of texture keeps its largest blobs.
        order = np.argsort(-areas[candidates], kind="stable")
        rejected += [(tuple(int(v) for v in stats[i, :4]), "over the candidate budget")
                     for i in candidates[order[config.max_candidates:]]]
        candidates = np.sort(candidates[order[:config.max_candidates]])
    candidates = [int(i) for i in candidates]
    coloured, chroma = np.zeros(small.shape, bool), None
    colour = _colour_copy(frame, small.shape)
    colourful_blob = None  # per blob: mostly more colourful than pen ink (None: the frame has no colour)
    if colour is not None and candidates:
        coloured, not_pen, chroma = _colour_classes(colour, small, paper, config)
        # Blobs that are mostly not pen ink are dropped before any merging, so a digit is never joined
        # to the fingertips over the card. A photo takes any ink, but not at its border: what the
        # border cuts there is the cloth or table around the page.
        coloured_ink = not_pen & (mask > 0)
        coloured_share = np.bincount(labels[coloured_ink], minlength=count) / np.maximum(areas, 1)
        judged = [i for i in candidates if not config.any_pen_colour or _touches_border(stats[i, :4], small.shape)]
        colourful_blob = coloured_share > config.max_coloured_ink_share
        refused = {i for i in judged if colourful_blob[i]}
        rejected += [(tuple(int(v) for v in stats[i, :4]), "not pen ink (coloured)")
                     for i in refused if heights[i] >= min_height]
        candidates = [i for i in candidates if i not in refused]
    found = []
    if candidates:
        boxes = stats[candidates, :4]
        scene = _Scene(config, small, flat, mask, labels, areas, coloured, colour, chroma)  # colour: None for grey
        kinds = None if colourful_blob is None else colourful_blob[candidates]
        hues = _blob_hues(colour, not_pen & (mask > 0), labels, count)[candidates] if kinds is not None and kinds.any() else None
        for group in _merge_broken_strokes(boxes, max_gap=0.08 * shorter, coloured=kinds, hues=hues):
            coloured_ink = kinds is not None and bool(kinds[group[0]])  # a group is all colourful or none
            if len(group) == 1 and _too_short(boxes[group[0], 3], small.shape, config):
                # Most of a room's colourful blobs: refused without the per-blob tests.
                digit, refusal = None, (_group_box(boxes, group), "too small")
            else:
                digit, refusal = _judge(scene, boxes, candidates, group, coloured_ink)
            if digit is None and len(group) > 1:
                # A merge is a guess: when the whole fails, its parts may still be digits on their own.
                for i in group:
                    part, part_refusal = _judge(scene, boxes, candidates, [i], coloured_ink)
                    if part is not None:
                        found.append(part)
                    elif part_refusal[1] != "too small":
                        rejected.append(part_refusal)
            elif digit is not None:
                found.append(digit)
            elif refusal[1] != "too small" or boxes[group[0], 3] >= 0.5 * min_height:
                rejected.append(refusal)
    found.sort(key=lambda item: item[0][0])
    regions = [_isolated_crop(gray, scale, box, own, paper_grey, config.crop_pad_share) for box, own, paper_grey in found]
    return Detection(regions, [Rejected(_to_frame(box, scale, gray.shape), reason) for box, reason in rejected])


def _to_frame(box: tuple[int, int, int, int], scale: float, shape: tuple[int, int]) -> Box:
    x, y, w, h = box
    left, top = int(x * scale), int(y * scale)
    return Box(left, top, min(shape[1], int(np.ceil((x + w) * scale))) - left,
               min(shape[0], int(np.ceil((y + h) * scale))) - top)


def find_digits(frame: np.ndarray, config: DetectorConfig = LIVE) -> list[DigitRegion]:
    """A camera frame -> the digits in it, left to right, each with its isolated crop."""
    return detect(frame, config).regions


def _isolated_crop(gray: np.ndarray, scale: float, box: tuple[int, int, int, int], own: np.ndarray,
                   paper_level: float, pad_share: float) -> DigitRegion:
    """Cut the digit out of the full-resolution frame with a margin; other ink inside becomes paper."""
    x, y, w, h = box
    pad = pad_share * max(w, h)
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
    return DigitRegion(Box(left, top, right - left, bottom - top), isolated, _to_frame(box, scale, gray.shape))


def split_touching(region: DigitRegion) -> list[tuple[DigitRegion, DigitRegion]]:
    """A region that may be two digits written close together (the "20" or "15" of "2015") -> ways to cut it
    into a left and a right digit; none when it is too narrow to hold two.

    Three kinds of cut: a straight one at the column with the least ink in the middle of the blob (strokes
    that touch side by side); a seam, the path through the least ink from top to bottom (one digit's stroke
    running under or over the other's, as a 2's tail under a 0); and cuts between separate pieces of ink
    ordered left to right (digits that only overlap in x, as a 1's flag over the next digit), each side keeping
    its own pieces. Which cut is right is for the classifier to say: the pipeline keeps the one whose halves
    both read as clear digits.
    """
    if region.ink is None or region.ink.w < TOUCHING_MIN_ASPECT * region.ink.h or region.crop.size == 0:
        return []
    paper = int(np.percentile(region.crop, 90))
    ink_map = np.clip(paper - region.crop.astype(np.int16), 0, 255).astype(np.uint8)
    _, ink = cv2.threshold(ink_map, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = ink > 0
    left, width = region.ink.x - region.box.x, region.ink.w
    start, stop = left + int(0.3 * width), left + int(0.7 * width)
    if stop - start < 2:
        return []
    columns = np.arange(ink_map.shape[1])[None, :]
    straight = start + int(np.argmin(ink_map.sum(axis=0, dtype=np.int64)[start:stop]))
    seam = _least_ink_seam(ink_map[:, start:stop]) + start  # per row, the first column of the right side
    sides = [columns >= straight, columns >= seam[:, None]] + _pieces_on_the_right(ink)
    return [(_side(region, ink, ~right, paper), _side(region, ink, right, paper)) for right in sides
            if (ink & right).any() and (ink & ~right).any()]


def _least_ink_seam(band: np.ndarray) -> np.ndarray:
    """Per row of `band`, the column of the top-to-bottom path through the least ink, moving at most one column
    per row (dynamic programming, as in seam carving)."""
    total = band.astype(np.float32)
    for row in range(1, len(total)):
        above = total[row - 1]
        total[row] += np.minimum(above, np.minimum(np.r_[np.inf, above[:-1]], np.r_[above[1:], np.inf]))
    path = np.empty(len(total), np.int64)
    path[-1] = int(np.argmin(total[-1]))
    for row in range(len(total) - 2, -1, -1):
        lo = max(0, path[row + 1] - 1)
        path[row] = lo + int(np.argmin(total[row, lo:path[row + 1] + 2]))
    return path


def _pieces_on_the_right(ink: np.ndarray) -> list[np.ndarray]:
    """For each way to split the separate pieces of ink, ordered by their centres left to right, into a left
    and a right group: the pixels that belong to the right group (each piece grown by a pixel, so that its
    anti-aliased edge goes with it, but never over a piece of the left group). Cuts fall only between large
    pieces; a speck goes with the side its centre is on."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if count < 3:
        return []
    pieces = sorted((k + 1 for k in np.flatnonzero(areas >= MIN_PIECE_SHARE * areas.max())),
                    key=lambda k: centroids[k][0])
    if not 2 <= len(pieces) <= MAX_PIECES:
        return []
    grow = np.ones((3, 3), np.uint8)
    sides = []
    for before, after in zip(pieces, pieces[1:]):
        cut = (centroids[before][0] + centroids[after][0]) / 2
        on_the_right = [k for k in range(1, count) if centroids[k][0] >= cut]
        right = np.isin(labels, on_the_right).astype(np.uint8)
        sides.append((cv2.dilate(right, grow) > 0) & ~((labels > 0) & (right == 0)))
    return sides


def _side(region: DigitRegion, ink: np.ndarray, own: np.ndarray, paper: int) -> DigitRegion:
    """The part of the region that `own` marks, the rest painted paper, cropped to its own ink's columns."""
    ys, xs = np.nonzero(ink & own)
    lo, hi = int(xs.min()), int(xs.max()) + 1
    crop = np.where(own, region.crop, paper).astype(np.uint8)[:, lo:hi]
    box = region.box
    return DigitRegion(Box(box.x + lo, box.y, hi - lo, box.h), crop,
                       Box(box.x + lo, box.y + int(ys.min()), hi - lo, int(ys.max()) + 1 - int(ys.min())))


def find_digit_regions(frame: np.ndarray, config: DetectorConfig = LIVE) -> list[Box]:
    """A camera frame -> boxes (frame pixels, clamped) of the digits in it, left to right."""
    return [region.box for region in find_digits(frame, config)]
