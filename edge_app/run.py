"""`digits run`: read handwritten digits held up to a camera (or in a video, images, a stream), live or headless.

The per-frame path is a chain of small functions: frame -> regions (`detect.detect`, the live or the
still detector) -> 28x28 inputs (`preprocess.to_mnist_input`, the project's one preprocessing) -> one
batched classification -> lines of numbers (`readout.read_lines`; writing that is not level is read
again on the frame turned upright) -> for live frames, a vote. `DigitPipeline.process` runs it and
times each stage; `read_still` is the one way a photo is read (`digits predict` and `digits run` on
image files); the loop in `run` only wires a source, the pipeline, the output and the window
together; `draw_overlay` is the only code that draws.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from edge_app.classifier import MAX_THREADS, NOT_A_DIGIT_INDEX, Classifier, ModelError, Prediction, load_classifier, prior_shift
from edge_app.detect import (
    LIVE,
    MIN_FRAME_SIZE,
    READ_WHOLE_INSTEAD,
    STILL,
    Box,
    DetectorConfig,
    DigitRegion,
    Rejected,
    config_with,
    detect,
    split_touching,
)
from edge_app.files import write_json_atomic, write_png_atomic
from edge_app.images import Still
from edge_app.images import read_still as read_image
from edge_app.models import default_model_path
from edge_app.mqtt import add_mqtt_arguments, mqtt_sinks
from edge_app.preprocess import MNIST_SIZE, to_grayscale, to_mnist_input, to_mnist_input_and_ink_box
from edge_app.readout import (
    CARD_HEIGHT_RATIO,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_WINDOW,
    PAGE_HEIGHT_RATIO,
    Line,
    StableReadout,
    held_up_lines,
    lines_text,
    read_lines,
    writing_angle,
)
from edge_app.service import heartbeat, notify
from edge_app.sources import CameraOptions, SourceError, open_source

WINDOW_NAME = "digits run"
KEY_QUIT, KEY_PAUSE, KEY_SNAPSHOT = (ord("q"), 27), ord(" "), ord("s")
INITIAL_BATCH = 2  # batch slots allocated up front: one- and two-digit numbers never resize the model


MIN_TURN_DEGREES = 20  # writing turned further than this is read on a frame turned back upright
MIN_TURN_DIGITS = 3  # ... when at least this many digits show which way it runs
SPLIT_BELOW_CONFIDENCE = 0.8  # a wide region read less surely than this may be two touching digits
# ... and is cut when both halves read at least this surely: the model reads half a digit as some digit
# (half a 5 as a 3 at 0.94), so one clear half says little; a 6 cut in two reads 1 at 0.93 and 2 at 0.65.
SPLIT_MIN_CONFIDENCE = 0.9
# A region read surely may still be two digits: a "2" touching a "4" reads as one 4 at 0.94. Among other digits
# its width gives it away: one handwritten digit is seldom wider than the line's digits are tall (the widest of
# page_001's 2s and 5s, 1.14 times), two touching are (that "24", 1.7 times). Such a region is cut too, and
# the halves replace it when they read more surely than the whole did.
WIDE_AMONG_NEIGHBOURS = 1.4
WIDE_NEIGHBOURS_AT_LEAST = 3
TINY_STILL = 64  # px: a still no longer than this (an MNIST-sized crop) is read whole, as one digit
# ... and it is a crop someone made of one character, so "not a digit" is rarer there than among the model's
# training examples (the shipped model's: 18,900 of 77,220, as its manifest entry records), which were
# weighted for camera frames full of clutter. Taking one such crop in 20 to be no digit shifts that class's
# log-odds by log-odds(0.05) - log-odds(the training share), -1.8 for the shipped model (a prior shift,
# Saerens et al., 2002; measured in README, Photos). A model whose share is not recorded keeps its own prior.
TINY_STILL_NOT_DIGIT_SHARE = 0.05
WHOLE_READ_MAX_DIGITS = 2  # a still read as this many digits or fewer is also read whole (pieces of one digit)
WHOLE_READ_SIZE = 256  # px: a still read whole is shrunk to this first (the model sees 20 px; a 12 MP photo stays fast)
# A box-normalising scan (Semeion's, many form readers') stretches each character's ink to fill a square, so a 1
# becomes a slanted block the model refuses or reads unsurely. Ink that is square to within this share
# (thresholding the stretched scan drops faint edge columns) and spans at least BOX_FILLED of the still one way
# is taken for such a scan. It is read again at the aspect a handwritten digit has (BOX_RESTORED_ASPECT: the median
# width / height of MNIST's training digits other than 1s, 0.80), the surer reading kept (stretched square, an
# open 4 reads as a 6, a 9 as a 3); when that is below BOX_NARROWED_MIN_CONFIDENCE, it is read with its width cut
# to BOX_NARROWED, kept when it reaches the same confidence: narrow characters get their shape back, and the model
# still decides (measured in README, Photos).
BOX_SQUARE_TOLERANCE = 0.25
BOX_RESTORED_ASPECT = 0.8
BOX_FILLED = 0.75
BOX_NARROWED = 0.45
BOX_NARROWED_MIN_CONFIDENCE = 0.9
# The one narrow digit. A 1 with a long flag stretched to a square reads as a sure 7; narrowed, it reads as a sure 1
# again, which a stretched 7 narrowed does in a few scans in a hundred (README, Photos). So a sure narrowed 1 is kept
# where the whole scan read as a sure 7, and only there: narrowed, a bold 2 or 0 is a bar too, and reads as a 1.
NARROW_DIGIT = 1
STRETCHED_NARROW_DIGIT = 7


@dataclass(frozen=True)
class DigitReading:
    digit: int
    confidence: float  # softmax probability of `digit`, in [0, 1]
    box: Box  # the region the model read (the ink with a margin), frame pixels
    ink: Box  # the digit's ink alone, frame pixels
    top3: tuple[tuple[int, float], ...] = ()  # (digit, probability), most likely first
    not_digit: float = 0.0  # probability that the region is no digit at all (0 for 10-class models)

    @property
    def is_digit(self) -> bool:
        return self.confidence >= self.not_digit

    def to_json(self) -> dict:
        return {"digit": self.digit, "confidence": round(self.confidence, 4), "not_digit": round(self.not_digit, 4),
                "box": self.box.as_list(), "ink": self.ink.as_list()}


@dataclass(frozen=True, eq=False)
class FrameResult:
    frame: int  # index from 0
    time_ms: float  # the frame's time: video position, or milliseconds since a live source opened
    text: str  # this frame's reading: its lines top to bottom, joined by newlines; "" when nothing is read
    stable_text: str  # the voted reading shown to the user (the same as `text` for still images)
    digits: list[DigitReading]  # every region found, confident or not
    inputs: np.ndarray  # (n, 28, 28) uint8, what the model saw, aligned with `digits`
    latency_ms: dict[str, float]  # capture, detect (regions + 28x28 inputs), classify, total
    lines: list[Line] = field(default_factory=list)  # the confident digits as lines of numbers (indices into `digits`)
    path: str | None = None  # the image file, for stills
    angle: float = 0.0  # degrees the frame was turned to read writing that was not level
    rejected: list[Rejected] = field(default_factory=list)  # candidates refused by the detector, with reasons

    def in_file_pixels(self, scale: float) -> "FrameResult":
        """The same result with every box multiplied by `scale`: from a reduced decode to the file's pixels."""
        if scale == 1.0:
            return self
        digits = [replace(d, box=_scaled(d.box, scale), ink=_scaled(d.ink, scale)) for d in self.digits]
        rejected = [Rejected(_scaled(r.box, scale), r.reason) for r in self.rejected]
        return replace(self, digits=digits, rejected=rejected)

    def to_json(self, debug: bool = False) -> dict:
        head = {"frame": self.frame} if self.path is None else {"path": self.path}
        result = {
            **head,
            "time_ms": round(self.time_ms, 1),
            "text": self.text,
            "stable_text": self.stable_text,
            "lines": [{"text": line.text, "numbers": list(line.numbers),
                       "digits": [self.digits[i].to_json() for i in line.members]} for line in self.lines],
            "digits": [d.to_json() for d in self.digits],
            "latency_ms": {name: round(ms, 3) for name, ms in self.latency_ms.items()},
        }
        if self.angle:
            result["turned_degrees"] = round(self.angle, 1)
        if debug:
            result["rejected"] = [{"box": r.box.as_list(), "reason": r.reason} for r in self.rejected]
        return result


def _scaled(box: Box, scale: float) -> Box:
    return Box(round(box.x * scale), round(box.y * scale), round(box.w * scale), round(box.h * scale))


@dataclass(frozen=True, eq=False)
class _Reading:
    """One look at a frame (as it is, or turned): what was found and read."""
    regions: list[DigitRegion]
    inputs: list[np.ndarray]
    readings: list[DigitReading]
    rejected: list[Rejected]
    angle: float  # degrees the frame was turned before reading
    upright: list[list[int]]  # the readings' boxes on the turned frame, where the writing is level
    whole: bool = False  # the still was read whole, as one digit's crop

    def confident(self, min_confidence: float) -> float:
        return sum(r.confidence for r in self.readings if r.confidence >= min_confidence)

    def sure_boxes(self, min_confidence: float) -> list[list[int]]:
        """The upright boxes of the digits read at `min_confidence` or more."""
        return [box for reading, box in zip(self.readings, self.upright) if reading.confidence >= min_confidence]


@dataclass(frozen=True, eq=False)
class _Whole:
    """A still read whole, as one digit's crop."""
    mnist: np.ndarray  # what the model read
    reading: DigitReading  # boxed on the still's ink
    narrow_one: bool  # a box-normalised scan read as a sure 1 narrowed: one character, a 1 the scanner widened


@dataclass
class DigitPipeline:
    """The per-frame path with its state: the loaded model, the vote, and a batch buffer allocated once."""
    classifier: Classifier
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    vote_window: int = DEFAULT_WINDOW
    live_detector: DetectorConfig = LIVE
    still_detector: DetectorConfig = STILL
    tiny_still_not_digit_bias: float | None = None  # None: from the model's recorded training share
    readout: StableReadout = field(init=False)

    def __post_init__(self):
        self.readout = StableReadout(self.vote_window)
        if self.tiny_still_not_digit_bias is None:
            self.tiny_still_not_digit_bias = prior_shift(self.classifier.not_digit_share, TINY_STILL_NOT_DIGIT_SHARE)
        if len(self.classifier.labels) <= NOT_A_DIGIT_INDEX:
            # Without "not a digit" the model names a digit for every colourful blob of the room a live frame
            # lets in: such a model reads pen ink only (black, grey or blue) live.
            self.live_detector = replace(self.live_detector, any_pen_colour=False)
        # (slots, 28, 28) uint8. The batch always fills every slot, so the interpreter keeps one input
        # shape (resizing re-plans the graph); it grows only when a frame holds more digits than ever.
        self._batch = np.zeros((INITIAL_BATCH, MNIST_SIZE, MNIST_SIZE), np.uint8)
        self._classify_ms = 0.0

    def process(self, frame: np.ndarray, index: int = 0, time_ms: float = 0.0, capture_ms: float = 0.0,
                still: bool = False, path: str | None = None) -> FrameResult:
        """One frame (any shape/dtype; odd frames read as "no digit") -> FrameResult with per-stage times.

        `still`: a photo, read on its own (the still detector, no vote); else a live or video frame.
        """
        config = self.still_detector if still else self.live_detector
        start = time.perf_counter()
        self._classify_ms = 0.0  # summed over every look at the frame
        # Touching digits are cut apart only once the writing's direction is known: a digit turned on its
        # side is as wide as two.
        look = self._look(frame, config, cut_touching=False)
        if still:
            look = self._read_whole(frame, look)
        angle = writing_angle(look.upright)
        if len(look.readings) >= MIN_TURN_DIGITS and abs(angle) >= MIN_TURN_DEGREES:
            # Writing that is not level, by every region found (the model calls most digits turned on their
            # side "not a digit"): read the frame turned back upright. Writing that runs up or down the frame
            # could be turned either way; the turn whose digits the model is surer of wins, when it is surer
            # of them than of the frame as it is: tilted digits read as digits too (a 1 turned 30 degrees) but
            # fewer and less surely than upright ones, while a level number with a mark beside it that the
            # model calls no digit (a fingertip at a card's edge) reads surer as it is.
            turns = [angle] + ([angle - 180 if angle > 0 else angle + 180] if abs(angle) > 60 else [])
            found = [r.ink.as_list() for r in look.readings]
            turned = max((self._look(frame, config, turn, found) for turn in turns),
                         key=lambda candidate: candidate.confident(self.min_confidence))
            look = turned if turned.confident(self.min_confidence) > look.confident(self.min_confidence) else look
        # The lines follow the digits that are read; the regions below the gate say nothing of their direction.
        angle = writing_angle(look.sure_boxes(self.min_confidence))
        if not look.angle:
            look = self._cut_touching(look)
        if still:
            look = self._whole_if_surer(frame, look)
        lines = read_lines([r.digit for r in look.readings], [r.confidence for r in look.readings], look.upright,
                           self.min_confidence, angle, PAGE_HEIGHT_RATIO if still else CARD_HEIGHT_RATIO)
        if not still:
            lines = held_up_lines(lines, [r.confidence for r in look.readings], look.upright)
        elapsed = time.perf_counter() - start
        text = lines_text(lines)
        stable = text if still else self.readout.update(text)
        classify_ms = self._classify_ms
        detect_ms = elapsed * 1000 - classify_ms
        latency = {"capture": capture_ms, "detect": detect_ms, "classify": classify_ms,
                   "total": capture_ms + detect_ms + classify_ms}
        stacked = np.stack(look.inputs) if look.inputs else np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.uint8)
        return FrameResult(index, time_ms, text, stable, look.readings, stacked, latency, lines, path,
                           look.angle, look.rejected)

    def _look(self, frame: np.ndarray, config: DetectorConfig, turn: float = 0.0, around=(),
              cut_touching: bool = True) -> _Reading:
        """Detect, prepare and classify the frame, or the part of it `around` these boxes turned by `turn`
        degrees; boxes in the frame's own pixels, `upright` in the turned view's."""
        if not turn:
            view, offset = frame, (0, 0)
        else:
            view, offset = _turned_part(np.asarray(frame), turn, around)
            # Detect at the frame's pixels per digit, whatever the size of the turned part.
            shape = np.asarray(frame).shape
            share = config.min_digit_share * min(shape[:2]) / min(view.shape[:2])
            config = replace(config, working_size=round(config.working_size * max(view.shape[:2]) / max(shape[:2])),
                             min_digit_share=min(share, 0.99 * config.max_digit_share))
        detection = detect(view, config)
        regions, inputs = [], []
        for region in detection.regions:
            mnist = to_mnist_input(region.crop)
            if mnist is not None:
                regions.append(region)
                inputs.append(mnist)
        started = time.perf_counter()
        readings = self._classify(regions, inputs)
        self._classify_ms += (time.perf_counter() - started) * 1000
        if cut_touching:
            regions, inputs, readings = self._split_touching(regions, inputs, readings)
        upright = [r.ink.as_list() for r in readings]
        rejected = detection.rejected
        if turn:
            shape = np.asarray(frame).shape
            back = partial(_box_back, shape=shape, degrees=turn, offset=offset)
            readings = [replace(r, box=back(r.box), ink=back(r.ink)) for r in readings]
            rejected = [Rejected(back(r.box), r.reason) for r in rejected]
        return _Reading(regions, inputs, readings, rejected, turn, upright)

    def _cut_touching(self, look: _Reading) -> _Reading:
        """`look` (of the frame as it is) with touching digits cut apart."""
        regions, inputs, readings = self._split_touching(look.regions, look.inputs, look.readings)
        if len(readings) == len(look.readings):
            return look
        return replace(look, regions=regions, inputs=inputs, readings=readings,
                       upright=[r.ink.as_list() for r in readings])

    def _split_touching(self, regions, inputs, readings):
        """Regions the model is unsure of, or much wider than their neighbours are tall, and wide enough to be two
        digits written close together are cut in two; of the ways to cut one (`split_touching`), the one whose
        halves read most surely stays, when both halves read as clear digits (SPLIT_MIN_CONFIDENCE) and more
        surely than the whole."""
        wide = _wide_among_neighbours([r.ink for r in readings])
        unsure = [k for k, r in enumerate(readings) if r.confidence < SPLIT_BELOW_CONFIDENCE or k in wide]
        trials = [(k, halves, [to_mnist_input(half.crop) for half in halves])
                  for k in unsure for halves in split_touching(regions[k])]
        trials = [(k, halves, pair) for k, halves, pair in trials if all(p is not None for p in pair)]
        if not trials:
            return regions, inputs, readings
        started = time.perf_counter()
        halves_read = self._classify([h for _, halves, _ in trials for h in halves],
                                     [p for _, _, pair in trials for p in pair])
        self._classify_ms += (time.perf_counter() - started) * 1000
        replaced, surest = {}, {}
        for (k, halves, pair), left, right in zip(trials, halves_read[::2], halves_read[1::2]):
            sure = min(left.confidence, right.confidence)
            if sure >= SPLIT_MIN_CONFIDENCE and sure > surest.get(k, 0.0) and sure > readings[k].confidence:
                replaced[k], surest[k] = (list(halves), list(pair), [left, right]), sure
        if not replaced:
            return regions, inputs, readings
        new_regions, new_inputs, new_readings = [], [], []
        for k in range(len(readings)):
            parts = replaced.get(k, ([regions[k]], [inputs[k]], [readings[k]]))
            new_regions += parts[0]
            new_inputs += parts[1]
            new_readings += parts[2]
        return new_regions, new_inputs, new_readings

    def _read_whole(self, frame: np.ndarray, look: _Reading) -> _Reading:
        """A still that is one digit's crop is read whole: one no larger than an MNIST-sized crop, whatever
        detection found, and one where detection found nothing but refused something (a digit's pieces, or a
        blurred or bold digit whose paper tests failed): the model, not the paper tests, then says whether the
        still is a digit.

        Detection is made for photos: on a crop of a few dozen pixels its window is a few pixels wide, and it
        cuts strokes apart or takes a white-on-black crop's background for ink; a digit cropped without margin
        (a box-normalised scan, scaled up) has no paper around it, which the paper tests need; and a scan
        scaled up smoothly has a grey halo that they take for uneven paper (measured on MNIST test, 16x16
        box-normalised scans and other writers' 8x8 scans, README, Photos). Other stills keep what detection
        found. A tiny still is read with "not a digit" taken to be rarer (`tiny_still_not_digit_bias`)."""
        tiny = max(np.shape(frame)[:2], default=0) <= TINY_STILL
        if not (tiny or (not look.regions and look.rejected)):
            return look
        whole = self._whole(frame, self.tiny_still_not_digit_bias if tiny else 0.0)
        return look if whole is None else self._kept_whole(frame, look, whole)

    def _whole_if_surer(self, frame: np.ndarray, look: _Reading) -> _Reading:
        """A still read as one or two digits is read whole as well: detection may have found only a piece of a
        digit that fills the still, or cut it in two (a scan scaled up: its thin parts fade, its blocks come
        apart). The whole reading stays when it passes the confidence gate and the model is surer of it than of
        every digit it would replace: surer than only the less sure of two is not enough, since two digits
        stacked and touching can read as one sure digit (an "18" as a 9). A photo of one digit among clutter
        reads less surely whole than its region, so the region stays. Run after touching digits are cut apart,
        so two digits written close together stay two. A box-normalised scan whose narrowed reading is a sure 1 is
        one character, whatever detection cut from it (a flagged 1 stretched to a square reads as a sure 7)."""
        if not 1 <= len(look.readings) <= WHOLE_READ_MAX_DIGITS or look.angle or look.whole:
            return look
        whole = self._whole(frame)
        if whole is None:
            return look
        surer = whole.reading.confidence > max(reading.confidence for reading in look.readings)
        kept = whole.narrow_one or (surer and whole.reading.confidence >= self.min_confidence)
        return self._kept_whole(frame, look, whole) if kept else look

    def _whole(self, frame: np.ndarray, not_digit_bias: float = 0.0) -> _Whole | None:
        """The whole still read as one digit's crop; None when it holds no ink. Read on a grey copy shrunk to
        WHOLE_READ_SIZE: the model sees 20 px, and a 12 MP photo stays fast. A box-normalised scan is read at a
        digit's aspect too (BOX_RESTORED_ASPECT, kept when surer) and narrowed (BOX_NARROWED), kept when the reading
        so far is unsure, or when it is a sure 1 where the scan read as a 7."""
        frame = np.asarray(frame)
        if frame.ndim not in (2, 3) or frame.size == 0:
            return None
        small = _small_grey(frame, WHOLE_READ_SIZE)
        prepared = to_mnist_input_and_ink_box(small)
        if prepared is None:
            return None
        mnist, ink = prepared
        box = _box_scaled(ink, small.shape, frame.shape)
        started = time.perf_counter()
        predicted = self._predict([mnist], not_digit_bias)[0]
        narrow_one = False
        if _box_normalised(ink, small.shape):
            mnist, predicted, narrow_one = self._box_normalised_reading(small, mnist, predicted, not_digit_bias)
        self._classify_ms += (time.perf_counter() - started) * 1000
        reading = DigitReading(predicted.digit, predicted.confidence, box, box, predicted.top3, predicted.not_digit)
        return _Whole(mnist, reading, narrow_one)

    def _box_normalised_reading(self, small: np.ndarray, mnist: np.ndarray, predicted: Prediction,
                                not_digit_bias: float) -> tuple[np.ndarray, Prediction, bool]:
        """A box-normalised scan's reading: (model input, prediction, whether it is a sure narrowed 1 kept over a
        sure 7), from the whole scan's (`mnist`, `predicted`), its reading at a digit's aspect and narrowed."""
        restored = to_mnist_input(_narrowed(small, BOX_RESTORED_ASPECT))
        restored_read = None if restored is None else self._predict([restored], not_digit_bias)[0]
        if restored_read is not None and restored_read.confidence > predicted.confidence:
            mnist, predicted = restored, restored_read
        narrowed = to_mnist_input(_narrowed(small, BOX_NARROWED))
        narrowed_read = None if narrowed is None else self._predict([narrowed], not_digit_bias)[0]
        if narrowed_read is None or narrowed_read.confidence < BOX_NARROWED_MIN_CONFIDENCE:
            return mnist, predicted, False
        unsure = predicted.confidence < BOX_NARROWED_MIN_CONFIDENCE
        narrow_one = narrowed_read.digit == NARROW_DIGIT and (unsure or predicted.digit == STRETCHED_NARROW_DIGIT)
        if unsure or narrow_one:
            return narrowed, narrowed_read, narrow_one
        return mnist, predicted, False

    @staticmethod
    def _kept_whole(frame: np.ndarray, look: _Reading, whole: _Whole) -> _Reading:
        """`look` replaced by the whole still's reading; the regions it replaces are listed as refused, with why."""
        mnist, reading = whole.mnist, whole.reading
        box = reading.box
        region = DigitRegion(box, to_grayscale(np.asarray(frame)[box.y:box.y + box.h, box.x:box.x + box.w]))
        replaced = [Rejected(r.ink, READ_WHOLE_INSTEAD) for r in look.readings]
        return _Reading([region], [mnist], [reading], look.rejected + replaced, 0.0, [box.as_list()], whole=True)

    def _classify(self, regions, inputs, not_digit_bias: float = 0.0) -> list[DigitReading]:
        predictions = self._predict(inputs, not_digit_bias)
        return [DigitReading(p.digit, p.confidence, r.box, r.ink or r.box, p.top3, p.not_digit)
                for p, r in zip(predictions, regions)]

    def _predict(self, inputs, not_digit_bias: float = 0.0) -> list[Prediction]:
        count = len(inputs)
        if count == 0:
            return []
        if count > len(self._batch):
            self._batch = np.zeros((count, MNIST_SIZE, MNIST_SIZE), np.uint8)
        self._batch[:count] = inputs
        self._batch[count:] = 0
        return self.classifier.predict(self._batch, not_digit_bias)[:count]  # one call for every digit in the frame


def _small_grey(frame: np.ndarray, size: int) -> np.ndarray:
    """The frame in grey with its longer side at most `size` px: every k-th pixel down to twice that, made grey
    (any dtype and channel count, as `to_grayscale` takes them), then averaged down (a 12 MP photo in a few ms
    instead of the 36 ms of one area resize)."""
    step = max(1, max(frame.shape[:2]) // (2 * size))
    coarse = to_grayscale(frame[::step, ::step])
    height, width = coarse.shape
    scale = size / max(height, width)
    if scale >= 1:
        return coarse
    # At least one pixel each way: a strip of a still (1 x 5000) must shrink, not fail.
    return cv2.resize(coarse, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def _box_normalised(ink: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """Whether ink with this (x, y, w, h) box on a still of `shape` looks stretched to fill a square box."""
    _, _, width, height = ink
    square = abs(width - height) <= max(1.0, BOX_SQUARE_TOLERANCE * max(width, height))
    return square and (width >= BOX_FILLED * shape[1] or height >= BOX_FILLED * shape[0])


def _wide_among_neighbours(inks: Sequence[Box]) -> set[int]:
    """Indices of the ink boxes at least WIDE_AMONG_NEIGHBOURS times as wide as the frame's boxes are tall (their
    median), when there are at least WIDE_NEIGHBOURS_AT_LEAST of them: two digits written touching, whatever
    the model makes of them."""
    if len(inks) < WIDE_NEIGHBOURS_AT_LEAST:
        return set()
    height = float(np.median([box.h for box in inks]))
    return {k for k, box in enumerate(inks) if box.w >= WIDE_AMONG_NEIGHBOURS * height}


def _narrowed(grey: np.ndarray, share: float) -> np.ndarray:
    """The still with its width cut to `share` (at least 2 px), its height kept."""
    height, width = grey.shape[:2]
    return cv2.resize(grey, (max(2, round(width * share)), height), interpolation=cv2.INTER_AREA)


def _box_scaled(box: tuple[int, int, int, int], small_shape: tuple[int, ...], shape: tuple[int, ...]) -> Box:
    """(x, y, w, h) on a shrunk copy -> the Box it covers on the frame (outward, clamped)."""
    x, y, w, h = box
    sy, sx = shape[0] / small_shape[0], shape[1] / small_shape[1]
    left, top = int(np.floor(x * sx)), int(np.floor(y * sy))
    right, bottom = min(shape[1], int(np.ceil((x + w) * sx))), min(shape[0], int(np.ceil((y + h) * sy)))
    return Box(left, top, right - left, bottom - top)


def _turn_matrix(shape: tuple[int, ...], degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The affine map that turns a frame of `shape` by `degrees` (counter-clockwise) onto a canvas that holds all of it."""
    height, width = shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(np.ceil(height * sin + width * cos)), int(np.ceil(height * cos + width * sin))
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    return matrix, (new_w, new_h)


def _turned_part(frame: np.ndarray, degrees: float, around) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of the frame around the boxes `around`, turned by `degrees`, and its offset in the turned canvas.

    Only the part where digits were seen (with a margin of a few digit heights) is turned: the canvas'
    empty corners would otherwise hold the frame's edges, which read as strokes.
    """
    if frame.dtype != np.uint8:
        frame = to_grayscale(frame)  # warpAffine takes few dtypes; detection reads grey anyway
    matrix, (width, height) = _turn_matrix(frame.shape, degrees)
    boxes = np.asarray(around, np.float64).reshape(-1, 4)
    corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:], boxes[:, :2] + boxes[:, 2:] * [1, 0],
                              boxes[:, :2] + boxes[:, 2:] * [0, 1]])
    turned = corners @ matrix[:, :2].T + matrix[:, 2]
    margin = 3 * float(np.median(boxes[:, 3])) if len(boxes) else 0.0
    left, top = np.maximum(0, np.floor(turned.min(axis=0) - margin)).astype(int)
    right, bottom = np.minimum((width, height), np.ceil(turned.max(axis=0) + margin)).astype(int)
    if len(boxes) == 0 or right - left < MIN_FRAME_SIZE or bottom - top < MIN_FRAME_SIZE:
        left, top, right, bottom = 0, 0, width, height
    matrix[:, 2] -= (left, top)
    part = cv2.warpAffine(frame, matrix, (int(right - left), int(bottom - top)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return part, (int(left), int(top))


def _box_back(box: Box, shape: tuple[int, ...], degrees: float, offset: tuple[int, int] = (0, 0)) -> Box:
    """A box found on the turned part at `offset` -> the box around the same place in the frame's own pixels."""
    matrix, _ = _turn_matrix(shape, degrees)
    inverse = cv2.invertAffineTransform(matrix)
    x, y = box.x + offset[0], box.y + offset[1]
    corners = np.array([[x, y], [x + box.w, y], [x, y + box.h], [x + box.w, y + box.h]], np.float64)
    back = corners @ inverse[:, :2].T + inverse[:, 2]
    left, top = np.floor(back.min(axis=0)).astype(int)
    right, bottom = np.ceil(back.max(axis=0)).astype(int)
    left, top = max(0, left), max(0, top)
    return Box(int(left), int(top), int(min(shape[1], right) - left), int(min(shape[0], bottom) - top))


def read_still(path: Path | str, pipeline: DigitPipeline, index: int = 0, debug_dir: Path | None = None
               ) -> FrameResult:
    """One image file, read as `digits predict` and `digits run --source IMAGE` both read it; with
    `debug_dir`, its overlay and JSON (refused candidates included) are saved there.

    ImageError (one line, naming the file) when it cannot be decoded.
    """
    started = time.perf_counter()
    still = read_image(Path(path))
    decode_ms = (time.perf_counter() - started) * 1000
    result, overlay = read_decoded_still(still, str(path), pipeline, index, decode_ms, overlay=debug_dir is not None,
                                         debug=True)
    if debug_dir is not None:
        save_debug(debug_dir, result, overlay)
    return result


def read_decoded_still(still: Still, name: str, pipeline: DigitPipeline, index: int = 0, decode_ms: float = 0.0,
                       overlay: bool = False, debug: bool = False) -> tuple[FrameResult, np.ndarray | None]:
    """The rest of `read_still` for a still already decoded by `images.decode_still` (a file, or the bytes of
    an upload to `digits serve`): (its reading in the file's pixels, its overlay on the decoded pixels, drawn
    on `still.image`, when `overlay`)."""
    result = pipeline.process(still.image, index, float(index), decode_ms, still=True, path=name)
    shown = draw_overlay(still.image, result, 0.0, pipeline.min_confidence, debug) if overlay else None
    return result.in_file_pixels(still.scale), shown


def process_frame(frame: np.ndarray, classifier: Classifier, readout: StableReadout | None = None,
                  min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> FrameResult:
    """One-off form of `DigitPipeline.process` for callers without a loop (a fresh vote unless `readout` given).

    Loops (the app, the benchmark) should build one `DigitPipeline` and call `process` on each frame.
    """
    pipeline = DigitPipeline(classifier, min_confidence)
    if readout is not None:
        pipeline.readout = readout
    return pipeline.process(frame)


def draw_overlay(frame: np.ndarray, result: FrameResult, fps: float, min_confidence: float,
                 debug: bool = False) -> np.ndarray:
    """Draw boxes, digits with confidence, the stable reading, FPS and the model's 28x28 inputs on `frame`;
    with `debug`, every refused candidate in grey with the reason."""
    if frame.ndim == 2 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        frame = cv2.cvtColor(to_grayscale(frame), cv2.COLOR_GRAY2BGR)
    # Text and lines scale with the frame, so a 12-megapixel photo's overlay is as legible as a webcam's.
    unit = max(1.0, min(frame.shape[:2]) / 480)
    thick = max(1, round(2 * unit))
    if debug:
        for refused in result.rejected:
            box = refused.box
            cv2.rectangle(frame, (box.x, box.y), (box.x + box.w, box.y + box.h), (150, 150, 150), max(1, thick // 2))
            cv2.putText(frame, refused.reason, (box.x, box.y + box.h + round(12 * unit)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * unit, (120, 120, 120), max(1, thick // 2))
    for reading in result.digits:
        box = reading.box
        sure = reading.confidence >= min_confidence
        colour = (0, 200, 0) if sure else (0, 0, 230)
        cv2.rectangle(frame, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, thick)
        label = f"{reading.digit} {reading.confidence:.0%}" if reading.is_digit else f"no digit {reading.not_digit:.0%}"
        cv2.putText(frame, label, (box.x, max(12, box.y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * unit, colour, thick)
    # The inputs the model saw, twice their size, along the top: a misread is usually visible here.
    thumb = 2 * MNIST_SIZE
    for i, digit_input in enumerate(result.inputs[: max(0, frame.shape[1] // (thumb + 4))]):
        if frame.shape[0] < thumb + 4:
            break
        big = cv2.resize(digit_input, (thumb, thumb), interpolation=cv2.INTER_NEAREST)
        frame[4:4 + thumb, 4 + i * (thumb + 4):4 + i * (thumb + 4) + thumb] = big[:, :, None]
    height = frame.shape[0]
    shown = (result.stable_text or "-").split("\n")
    step = round(50 * unit)
    for k, text in enumerate(shown):
        y = height - 12 - (len(shown) - 1 - k) * step
        cv2.putText(frame, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 1.6 * unit, (0, 0, 0), 3 * thick)
        cv2.putText(frame, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 1.6 * unit, (255, 255, 255), thick)
    cv2.putText(frame, f"{fps:.0f} FPS", (frame.shape[1] - round(110 * unit), height - 14), cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * unit, (255, 255, 0), thick)
    return frame


def display_problem() -> str | None:
    """Why no OpenCV window can open here (no display, or OpenCV built without a GUI); None if one can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set)"
    gui = cv2.getBuildInformation().split("GUI:", 1)[-1].split("\n", 1)[0].strip()
    if gui.upper() in ("NONE", "NO"):
        return "this OpenCV has no GUI support (opencv-python-headless?); install opencv-python"
    return None


@dataclass(frozen=True)
class RunOptions:
    source: str = "0"
    model: Path | None = None
    threads: int | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    vote_window: int = DEFAULT_WINDOW
    max_frames: int | None = None  # None: until the source ends or the user quits
    headless: bool = False
    output_format: str = "text"  # "text": print the stable number when it changes; "jsonl": a line per frame
    camera: CameraOptions = CameraOptions()
    snapshot_dir: Path = Path(".")
    debug: bool = False  # the refused candidates and their reasons, in the window and the JSON
    debug_dir: Path | None = None  # where each frame's debug overlay and JSON are saved
    live_detector: DetectorConfig = LIVE
    still_detector: DetectorConfig = STILL
    allow_modified_model: bool = False  # run a model whose sha256 is not the manifest's


def one_line(text: str) -> str:
    """A reading of several lines on one terminal line: "12 34 / 567"."""
    return text.replace("\n", " / ") or "(no digit)"


def _emit(result: FrameResult, output_format: str, last_stable: str, debug: bool) -> None:
    if output_format in ("jsonl", "json"):  # "json": the name `digits predict` used for the same lines
        print(json.dumps(result.to_json(debug)), flush=True)
    elif result.path is not None:
        print(f"{result.path}: {one_line(result.text)}", flush=True)
    elif result.stable_text != last_stable:
        print(one_line(result.stable_text), flush=True)


def read_timed(source) -> tuple[np.ndarray, float, float] | None:
    """(frame, the source's time_ms, capture_ms: how long the read took), or None when the source has ended."""
    started = time.perf_counter()
    got = source.read()
    if got is None:
        return None
    frame, time_ms = got
    return frame, time_ms, (time.perf_counter() - started) * 1000


class FrameSink(Protocol):
    """Somewhere each frame's reading goes besides stdout and the window (the browser view, an MQTT broker).

    `publish` runs on the frame loop's thread after every frame, so it must hand work off, not wait on a
    network: a slow viewer or a broker that went away must not slow the recognizer.
    """
    wants_overlay: bool  # the overlay is drawn for a sink only when it shows frames

    def publish(self, frame: np.ndarray, result: FrameResult, overlay: np.ndarray | None, fps: float) -> None: ...

    def close(self) -> None: ...


def run(options: RunOptions, sinks: Sequence[FrameSink] = ()) -> int:
    """Open the model and the source, then read frames until the source ends, max_frames, or q/Esc; every
    frame's result also goes to each of `sinks`."""
    classifier = load_classifier(options.model or default_model_path(), threads=options.threads,
                                 verify=not options.allow_modified_model)
    show = not options.headless
    draw = show or options.debug_dir is not None or any(sink.wants_overlay for sink in sinks)
    index, last_stable, fps, paused = 0, "", 0.0, False
    with open_source(options.source, options.camera) as source:
        independent = getattr(source, "independent_frames", False)  # still images: nothing to vote over
        pipeline = DigitPipeline(classifier, options.min_confidence, 1 if independent else options.vote_window,
                                 options.live_detector, options.still_detector)
        try:
            if show:
                cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_AUTOSIZE)
            shown = None
            notify("READY=1")  # under systemd (Type=notify): started; heartbeats follow per frame
            while options.max_frames is None or index < options.max_frames:
                if not paused:
                    started = time.perf_counter()
                    got = read_timed(source)
                    if got is None:
                        break
                    frame, time_ms, capture_ms = got
                    heartbeat()
                    still_path = str(source.current) if independent else None
                    result = pipeline.process(frame, index, time_ms, capture_ms, still=independent, path=still_path)
                    # Boxes are printed in the file's pixels; the window draws on the decoded frame.
                    file_result = result.in_file_pixels(source.current_scale) if independent else result
                    _emit(file_result, options.output_format, last_stable, options.debug)
                    last_stable = result.stable_text
                    index += 1
                    elapsed = time.perf_counter() - started
                    fps = 0.9 * fps + 0.1 / max(elapsed, 1e-6) if fps else 1 / max(elapsed, 1e-6)
                    if draw:
                        shown = draw_overlay(frame, result, fps, options.min_confidence, options.debug)
                    if options.debug_dir is not None:
                        save_debug(options.debug_dir, file_result, shown)
                    for sink in sinks:
                        sink.publish(frame, file_result, shown if draw else None, fps)
                if not show:
                    continue
                cv2.imshow(WINDOW_NAME, shown)
                key = cv2.waitKey(1 if not paused else 30) & 0xFF
                if key in KEY_QUIT:
                    break
                if key == KEY_PAUSE:
                    paused = not paused
                elif key == KEY_SNAPSHOT and shown is not None:
                    print(save_snapshot(options.snapshot_dir / f"digits_snapshot_{index:05d}.png", shown),
                          file=sys.stderr)
        finally:
            if show:
                cv2.destroyAllWindows()
        return 1 if getattr(source, "failures", 0) else 0


def save_snapshot(path: Path, image: np.ndarray) -> str:
    """Write the window's picture (complete or not at all); the one line saying what happened."""
    try:
        if not write_png_atomic(path, image):
            return "snapshot not saved: the frame cannot be encoded as PNG"
    except OSError as error:
        return f"snapshot not saved to {path}: {error.strerror or error}; pick another --snapshot-dir"
    return f"snapshot saved to {path}"


def save_debug(folder: Path, result: FrameResult, overlay: np.ndarray) -> None:
    """The frame's overlay (with every refused candidate and its reason) and its JSON, for headless use."""
    name = Path(result.path).stem if result.path else f"frame_{result.frame:06d}"
    write_png_atomic(folder / f"{name}.png", overlay)
    write_json_atomic(folder / f"{name}.json", result.to_json(debug=True))


def number_in(kind: type, low: float, high: float = float("inf"), above_low: bool = False):
    """An argparse type: text -> `kind` (int or float) within [low, high] (or above low), else a message."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if value != value or (value <= low if above_low else value < low) or value > high:
            limits = f"more than {low:g}" if above_low else f"at least {low:g}" if high == float("inf") \
                else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"must be {limits}, got {value:g}")
        return value

    return parse


_positive_int = number_in(int, 1)
_positive_seconds = number_in(float, 0, above_low=True)
thread_count = number_in(int, 1, MAX_THREADS)  # --threads: the runtimes crash on absurd counts
_probability = number_in(float, 0.0, 1.0)


def add_reading_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that reads digits in frames or photos (run, predict)."""
    parser.add_argument("--min-confidence", dest="min_confidence", type=_probability,
                        default=DEFAULT_MIN_CONFIDENCE, help="below this probability a region counts as 'no digit'")
    parser.add_argument("--detector", action="append", default=[], metavar="KEY=VALUE",
                        help="set one detector threshold (repeatable), e.g. min_digit_share=0.04; "
                             "the fields of edge_app.detect.DetectorConfig, applied to live frames and stills "
                             "(default: the built-in LIVE and STILL settings)")
    parser.add_argument("--detector-config", dest="detector_config", type=Path, default=None,
                        help='a JSON file of detector thresholds: {"live": {KEY: VALUE}, "still": {KEY: VALUE}} '
                             "(default: none)")
    parser.add_argument("--allow-modified-model", dest="allow_modified_model",
                        action="store_true", help="run a model whose sha256 differs from the one its manifest "
                                                  "records (refused by default: it changed after export)")
    parser.add_argument("--debug", action="store_true",
                        help="say why each candidate was not taken for a digit: in the window and in the JSON "
                             "(\"rejected\"); off by default")
    parser.add_argument("--debug-dir", dest="debug_dir", type=Path, default=None,
                        help="write each frame's overlay with the refused candidates (PNG) and its JSON here, "
                             "for headless use; implies --debug (default: none)")


def output_folder_problem(folder: Path | None, flag: str) -> str | None:
    """A one-line reason why an output folder option cannot be used (created when missing), or None."""
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{flag} {folder}: cannot be used as a folder ({error.strerror or error}); give a folder to write to"
    return None


def detector_configs(args: argparse.Namespace) -> tuple[DetectorConfig, DetectorConfig]:
    """(live, still) detector settings from --detector-config and --detector; ValueError with a one-line reason."""
    live, still = {}, {}
    if args.detector_config is not None:
        try:
            loaded = json.loads(Path(args.detector_config).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"--detector-config {args.detector_config}: cannot be read as JSON ({error})") from None
        if not isinstance(loaded, dict) or not set(loaded) <= {"live", "still"} or \
                not all(isinstance(v, dict) for v in loaded.values()):
            raise ValueError(f'--detector-config {args.detector_config}: expected {{"live": {{...}}, "still": {{...}}}}')
        live, still = dict(loaded.get("live", {})), dict(loaded.get("still", {}))
    for setting in args.detector:
        name, sep, value = setting.partition("=")
        if not sep:
            raise ValueError(f"--detector {setting!r}: expected KEY=VALUE, e.g. min_digit_share=0.04")
        live[name.strip()] = still[name.strip()] = value.strip()
    return config_with(LIVE, live), config_with(STILL, still)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", type=str, default="0",
                        help="camera index, video file, image file, folder or glob of images, stream URL, or 'picamera'")
    parser.add_argument("--model", type=Path, default=None,
                        help="a .tflite or .onnx model (default: $DIGITS_MODEL, else models/cnn_int8.tflite)")
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="CPU threads for the model (default: runtime's choice)")
    parser.add_argument("--vote-window", type=_positive_int, default=DEFAULT_WINDOW,
                        help="frames in the vote that steadies the shown number")
    parser.add_argument("--max-frames", dest="max_frames", type=_positive_int, default=None,
                        help="stop after this many frames (default: until the source ends or q)")
    parser.add_argument("--width", type=_positive_int, default=None, help="requested camera width in pixels")
    parser.add_argument("--height", type=_positive_int, default=None, help="requested camera height in pixels")
    parser.add_argument("--give-up-after", dest="give_up_after", type=_positive_seconds,
                        default=None, help="seconds a camera or stream may stay away before digits run gives up "
                                           "with exit status 2 (default: never, it keeps re-opening it)")
    parser.add_argument("--headless", action="store_true", help="no window (e.g. a Raspberry Pi over SSH)")
    parser.add_argument("--format", dest="output_format", choices=("text", "jsonl", "json"), default="text",
                        help="stdout: 'text' prints the number when it changes, 'jsonl' one JSON object per frame")
    parser.add_argument("--snapshot-dir", type=Path, default=Path("."), help="where the s key saves snapshots")
    add_reading_arguments(parser)
    add_mqtt_arguments(parser)


def run_options(args: argparse.Namespace) -> RunOptions:
    """`digits run`'s options (shared by `digits serve`) -> RunOptions; ValueError with a one-line reason."""
    live, still = detector_configs(args)
    if problem := output_folder_problem(args.debug_dir, "--debug-dir"):
        raise ValueError(problem)
    return RunOptions(source=args.source, model=args.model, threads=args.threads,
                      min_confidence=args.min_confidence, vote_window=args.vote_window,
                      max_frames=args.max_frames, headless=args.headless, output_format=args.output_format,
                      camera=CameraOptions(args.width, args.height, args.give_up_after),
                      snapshot_dir=args.snapshot_dir,
                      debug=args.debug or args.debug_dir is not None, debug_dir=args.debug_dir,
                      live_detector=live, still_detector=still, allow_modified_model=args.allow_modified_model)


def publish_sinks(args: argparse.Namespace) -> list[FrameSink]:
    """The sinks that send readings off the device, from the options (`digits run` and `digits serve`);
    ValueError with a one-line reason. Each has `close()`, called when the loop ends."""
    return [*mqtt_sinks(args)]


def _stop_on_sigterm(signum, frame) -> None:
    # `systemctl stop` (and `kill`) send SIGTERM, which would end Python without running `finally`: the
    # camera would not be released and readings still queued for a broker would be lost. End as a
    # finished source does instead.
    raise SystemExit(0)


def main(args: argparse.Namespace) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if not args.headless and (problem := display_problem()):
        print(f"digits run: cannot open a window: {problem}; use --headless (with --format jsonl for results)",
              file=sys.stderr)
        return 2
    try:
        options = run_options(args)
        sinks = publish_sinks(args)
    except ValueError as error:
        print(f"digits run: {error}", file=sys.stderr)
        return 2
    try:
        return run(options, sinks)
    except (ModelError, SourceError) as error:
        print(f"digits run: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `digits run ... | head`: the reader left, which is not an error
        return 0
    finally:
        for sink in sinks:
            sink.close()
