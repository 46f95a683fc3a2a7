"""Turn per-frame digit predictions into the number shown: a confidence gate, then a vote over recent frames.

A single frame can misread (motion blur, a finger over a stroke); a vote over the last few frames
keeps the shown number from flickering, at the price of a few frames of delay when it changes.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

DEFAULT_WINDOW = 7  # frames in the vote
DEFAULT_MIN_CONFIDENCE = 0.7  # below this softmax probability a region is "no digit"


def frame_text(digits: list[int], confidences: list[float], min_confidence: float) -> str:
    """The number read in one frame, left to right: "" when any region is not confidently a digit.

    One doubtful region makes the whole number doubtful: "4?" is not "4", so the frame votes for
    nothing rather than for a shorter number.
    """
    if not digits or min(confidences) < min_confidence:
        return ""
    return "".join(str(digit) for digit in digits)


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
