"""Turn per-frame digit predictions into the number shown: a confidence gate, then a vote over recent frames.

A single frame can misread (motion blur, a finger over a stroke); a vote over the last few frames
keeps the shown number from flickering, at the price of a few frames of delay when it changes.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

DEFAULT_WINDOW = 7  # frames in the vote
DEFAULT_MIN_CONFIDENCE = 0.5  # below this softmax probability a region is "no digit" (label smoothing caps confident reads near 0.97)


def frame_text(digits: list[int], confidences: list[float], boxes: list[tuple[int, int, int, int]],
               min_confidence: float) -> str:
    """The number read in one frame: the confident digits on one line, left to right.

    Regions below `min_confidence` are "no digit" (clutter the detector let through). A number's digits
    are about the same height, on one line, and close together, so a confident blob elsewhere in the
    frame does not become part of it. "" when nothing is read confidently. Boxes are (x, y, w, h).
    """
    sure = [i for i, confidence in enumerate(confidences) if confidence >= min_confidence]
    if not sure:
        return ""
    # Each confident digit anchors a line; the line the model is surest of, in total, is the number.
    line = max((_line_through(anchor, sure, boxes) for anchor in sure),
               key=lambda members: sum(confidences[i] for i in members))
    return "".join(str(digits[i]) for i in line)


def _line_through(anchor: int, candidates: list[int], boxes) -> list[int]:
    """The anchor and its neighbours on the same line, grown outwards one at a time, left to right."""
    line = [anchor]
    for direction in (-1, 1):
        current = anchor
        while True:
            nxt = _neighbour(current, candidates, boxes, direction)
            if nxt is None or nxt in line:
                break
            line.append(nxt)
            current = nxt
    return sorted(line, key=lambda i: boxes[i][0])


def _neighbour(current: int, candidates: list[int], boxes, direction: int) -> int | None:
    x, y, w, h = boxes[current]
    best, best_gap = None, None
    for i in candidates:
        cx, cy, cw, ch = boxes[i]
        gap = cx - (x + w) if direction > 0 else x - (cx + cw)
        # Digits of one number are written on one line, at about one size, close together; a blob
        # beside the card (clutter, the card's edge) rarely is all three.
        same_line = abs((y + h / 2) - (cy + ch / 2)) <= 0.35 * max(h, ch)
        similar = 0.6 <= ch / h <= 1 / 0.6
        if i != current and same_line and similar and -0.3 * h <= gap <= 0.8 * h:
            if best_gap is None or gap < best_gap:
                best, best_gap = i, gap
    return best


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
