"""Turn one frame's digit predictions into what is read: a confidence gate, lines of numbers in reading
order, and for live frames a vote over recent frames.

Lines follow the writing, not the frame: the direction it runs is found from the digits' layout, so a
page held askew or turned reads line by line. A single frame can misread (motion blur, a finger over
a stroke); a vote over the last few frames keeps the shown reading from flickering, at the price of a
few frames of delay when it changes.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

DEFAULT_WINDOW = 7  # frames in the vote
# Below this softmax probability a region is "no digit" (label smoothing caps confident reads near 0.97).
DEFAULT_MIN_CONFIDENCE = 0.5

MAX_NUMBER_GAP = 4.0  # digit heights: the widest gap between neighbours on one line (widely spaced rows)
MIN_SPLIT_GAP = 0.6  # digit heights: a narrower gap never separates two numbers
TOUCHING_GAP = 0.2  # digit heights: the spacing assumed between digits that touch
PAGE_HEIGHT_RATIO = 3.3  # the most two neighbouring digits' heights differ on a page (a 0 after a long 7)
CARD_HEIGHT_RATIO = 1 / 0.6  # ... in a number held up to a live camera, where clutter beside it is common
MIN_LINE_HEIGHT_SHARE = 0.4  # of a line's median digit height: smaller marks are not its digits
MAX_DIGIT_SPACING = 0.5  # digit heights: the digits of a number of several digits are at least this close
SPLIT_RATIO = 2.5  # a gap separates two numbers when it is this many times the line's gaps between digits


@dataclass(frozen=True)
class Line:
    """One written line: indices of its digits (into the frame's readings) in reading order, and its numbers."""
    members: tuple[int, ...]
    numbers: tuple[str, ...]  # the digits split where the writer left a wider gap

    @property
    def text(self) -> str:
        return " ".join(self.numbers)


def _centres(boxes) -> np.ndarray:
    return np.array([(x + w / 2, y + h / 2) for x, y, w, h in boxes], np.float64).reshape(-1, 2)


def writing_angle(boxes) -> float:
    """The direction the writing runs, in degrees (0 = left to right, 90 = downwards), from the digits' layout.

    Each digit's nearest neighbour, measured edge to edge, is almost always the next digit on its line
    (lines are further apart than the digits on them); the direction to it, folded into (-90, 90],
    is voted in 10-degree bins, the winning bin refined by a mean. 0 with fewer than two digits.
    """
    if len(boxes) < 2:
        return 0.0
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x, y, w, h = b.T
    gap_x = np.maximum(0, np.maximum(x[:, None], x[None]) - np.minimum((x + w)[:, None], (x + w)[None]))
    gap_y = np.maximum(0, np.maximum(y[:, None], y[None]) - np.minimum((y + h)[:, None], (y + h)[None]))
    size = np.sqrt(w * h)
    similar = (size[:, None] <= 2 * size[None]) & (size[None] <= 2 * size[:, None])
    distance = np.hypot(gap_x, gap_y) / np.maximum(size[:, None], 1) + np.where(similar, 0, np.inf)
    np.fill_diagonal(distance, np.inf)
    nearest = distance.argmin(axis=1)
    usable = np.isfinite(distance[np.arange(len(b)), nearest]) & (distance[np.arange(len(b)), nearest] <= MAX_NUMBER_GAP)
    if usable.sum() < 1:
        return 0.0
    centres = _centres(boxes)
    delta = centres[nearest[usable]] - centres[usable]
    angles = np.degrees(np.arctan2(delta[:, 1], delta[:, 0]))
    angles = (angles + 90) % 180 - 90  # (-90, 90]: a neighbour to the left points the same way as one to the right
    bins = np.round(angles / 10).astype(int)
    bins[bins == -9] = 9  # -90 and 90 are one direction
    values, counts = np.unique(bins, return_counts=True)
    best = values[counts == counts.max()]
    mode = best[np.argmin(np.abs(best))]  # a tie (a square grid of digits) reads as rows
    near = np.abs(((angles - mode * 10) + 90) % 180 - 90) <= 10
    doubled = np.radians(2 * angles[near])
    return float(np.degrees(np.arctan2(np.sin(doubled).mean(), np.cos(doubled).mean())) / 2)


def read_lines(digits: list[int], confidences: list[float], boxes: list[tuple[int, int, int, int]],
               min_confidence: float, angle: float = 0.0, max_height_ratio: float = PAGE_HEIGHT_RATIO) -> list[Line]:
    """The confident digits of one frame as lines of numbers, top line first, each read in writing order.

    Regions below `min_confidence` are "no digit". Consecutive digits of a line sit side by side along
    the writing direction (`angle`, degrees), about level and of a similar size, at most MAX_NUMBER_GAP
    digit heights apart; each digit links to its nearest such neighbour ahead when that neighbour's
    nearest one behind is this digit, so two lines never cross-link. Boxes are (x, y, w, h).
    """
    sure = [i for i, confidence in enumerate(confidences) if confidence >= min_confidence]
    if not sure:
        return []
    theta = np.radians(angle)
    centres = _centres([boxes[i] for i in sure])
    along = centres[:, 0] * np.cos(theta) + centres[:, 1] * np.sin(theta)
    across = -centres[:, 0] * np.sin(theta) + centres[:, 1] * np.cos(theta)
    heights = np.array([boxes[i][3] for i in sure], np.float64)
    widths = np.array([boxes[i][2] for i in sure], np.float64)
    ahead, behind = _neighbours(along, across, widths, heights, max_height_ratio)
    lines = []
    starts = [k for k in range(len(sure)) if behind[k] is None or ahead[behind[k]] != k]
    for start in starts:
        chain = [start]
        while ahead[chain[-1]] is not None and behind[ahead[chain[-1]]] == chain[-1]:
            chain.append(ahead[chain[-1]])
        lines.append(chain)
    lines = [part for chain in lines for part in _without_dwarfs(chain, heights)]
    lines.sort(key=lambda chain: float(np.mean(across[chain])))
    return [Line(tuple(sure[k] for k in chain),
                 _numbers([str(digits[sure[k]]) for k in chain], _gaps(chain, along, widths, heights)))
            for chain in lines]


def _without_dwarfs(chain: list[int], heights: np.ndarray) -> list[list[int]]:
    """A line of three or more digits keeps those at least MIN_LINE_HEIGHT_SHARE of its median height;
    each smaller one (a speck, a mark beside the number) becomes a line of its own."""
    if len(chain) < 3:
        return [chain]
    floor = MIN_LINE_HEIGHT_SHARE * float(np.median(heights[chain]))
    kept = [k for k in chain if heights[k] >= floor]
    return [kept] + [[k] for k in chain if heights[k] < floor]


def held_up_lines(lines: list[Line], confidences: list[float], boxes) -> list[Line]:
    """A live frame's lines without the clutter that reads as digits beside a number held up to the camera.

    In a live frame the hand, the room and the card's edge now and then give a confident digit. Next
    to the written number such a digit is on its own, or far smaller than the writing: a line of one
    digit beside a line of several, or a line under CARD_HEIGHT_RATIO of the tallest line's height,
    is dropped; of single digits only, the surest is kept. (Stills keep every line: a page's lines
    may be short, and a photo has no hand in it.)
    """
    if len(lines) < 2:
        return lines
    if all(len(line.members) == 1 for line in lines):
        # Single digits only: one of them is the card, the rest clutter or the halves of a broken digit.
        return [max(lines, key=lambda line: confidences[line.members[0]])]
    heights = [float(np.median([boxes[i][3] for i in line.members])) for line in lines]
    tallest = max(heights)
    return [line for line, height in zip(lines, heights)
            if height * CARD_HEIGHT_RATIO >= tallest and len(line.members) > 1]


def _gaps(chain: list[int], along: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> list[float]:
    """Edge-to-edge gaps between consecutive digits of a line, in the line's median digit height (a 7 or 9
    reaching below the line does not make its gaps look narrower)."""
    height = max(float(np.median(heights[chain])), 1.0)
    return [float((along[b] - widths[b] / 2) - (along[a] + widths[a] / 2)) / height for a, b in zip(chain, chain[1:])]


def _neighbours(along, across, widths, heights, max_ratio: float) -> tuple[list[int | None], list[int | None]]:
    """For each digit, its nearest neighbour ahead and behind on the same line (indices), or None."""
    count = len(along)
    ahead: list[int | None] = [None] * count
    behind: list[int | None] = [None] * count
    best_ahead, best_behind = [np.inf] * count, [np.inf] * count
    for a in range(count):
        for b in range(count):
            if a == b or along[b] <= along[a]:
                continue
            size = max(heights[a], heights[b])
            gap = ((along[b] - widths[b] / 2) - (along[a] + widths[a] / 2)) / size
            level = abs(across[b] - across[a]) / size
            # Digits of one line: about level, not far apart, of a similar height (on a page a small 0
            # after a 7 with a long tail is still part of it; a number on a held card is written at one size).
            if level > 0.45 or not -0.4 <= gap <= MAX_NUMBER_GAP or not 1 / max_ratio <= heights[a] / heights[b] <= max_ratio:
                continue
            cost = (gap + 2 * level) * size  # in pixels: the nearest neighbour, whatever its height
            if cost < best_ahead[a]:
                best_ahead[a], ahead[a] = cost, b
            if cost < best_behind[b]:
                best_behind[b], behind[b] = cost, a
    return ahead, behind


def _numbers(digits: list[str], gaps: list[float]) -> tuple[str, ...]:
    """Split a line's digits into numbers where the writer left a gap much wider than between digits.

    The line's narrowest gap is its spacing between digits (touching digits count as TOUCHING_GAP
    apart); a gap SPLIT_RATIO times that and at least MIN_SPLIT_GAP separates two numbers. A row
    whose digits are all spaced apart (no gap under MAX_DIGIT_SPACING) stays one number however
    wide and uneven its spacing: that is how people write a row of digits to be read as one.
    """
    threshold = _number_gap(gaps)
    numbers, current = [], digits[0]
    for digit, gap in zip(digits[1:], gaps):
        if gap >= threshold:
            numbers.append(current)
            current = digit
        else:
            current += digit
    return tuple(numbers + [current])


def _number_gap(gaps: list[float]) -> float:
    """The narrowest gap that separates two numbers on a line (gaps in digit heights); inf for none."""
    if len(gaps) < 2 or min(gaps) > MAX_DIGIT_SPACING:
        return np.inf  # one gap says nothing of the writer's spacing; a row with no close pair is one number
    return max(MIN_SPLIT_GAP, SPLIT_RATIO * max(min(gaps), TOUCHING_GAP))


def lines_text(lines: list[Line]) -> str:
    """The frame's reading as one string: lines top to bottom, joined by newlines ("" for none)."""
    return "\n".join(line.text for line in lines)


@dataclass
class StableReadout:
    """Majority vote over the last `window` frame texts; keeps the previous answer until a new one wins."""
    window: int = DEFAULT_WINDOW

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"the vote window must be at least 1 frame, got {self.window}")
        self._recent: deque[str] = deque(maxlen=self.window)
        self.text = ""  # the stable number shown, "" for none

    def update(self, text: str) -> str:
        self._recent.append(text)
        winner, votes = Counter(self._recent).most_common(1)[0]
        if votes > self.window // 2:  # a strict majority of the full window, so one odd frame never wins
            self.text = winner
        return self.text

    def reset(self) -> None:
        self._recent.clear()
        self.text = ""
