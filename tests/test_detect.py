"""Detection: digits on a paper card are found left to right, clutter and bad frames are not digits."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_app.detect import LIVE, STILL, Box, find_digit_regions, find_digits

from conftest import needs_mnist


def _card_scene(digits: list[np.ndarray], size=(480, 640), seed=0, ink_bgr=(30, 30, 30)) -> np.ndarray:
    """A grey-green wall with uneven light and a white card carrying the MNIST digits as dark strokes."""
    rng = np.random.default_rng(seed)
    height, width = size
    ramp = np.linspace(0.7, 1.1, width, dtype=np.float32)[None, :, None]
    frame = np.full((height, width, 3), (90, 120, 100), np.float32) * ramp
    cell = height // 4
    card_w = cell * len(digits) + cell
    top, left = height // 3, width // 4
    frame[top:top + 2 * cell, left:left + card_w] = 225 * ramp[:, left:left + card_w]
    for i, digit in enumerate(digits):
        ink = cv2.resize(digit, (cell, cell), interpolation=cv2.INTER_CUBIC).astype(np.float32)[:, :, None] / 255
        y, x = top + cell // 2, left + cell // 2 + i * cell
        frame[y:y + cell, x:x + cell] = frame[y:y + cell, x:x + cell] * (1 - ink) + np.float32(ink_bgr) * ink
    frame += rng.normal(0, 3, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


@needs_mnist
def test_two_digit_card_gives_two_boxes_left_to_right(mnist_test):
    frame = _card_scene([mnist_test.images[0], mnist_test.images[1]])
    boxes = find_digit_regions(frame)
    assert len(boxes) == 2
    assert boxes[0].x < boxes[1].x
    for box in boxes:
        assert isinstance(box, Box)
        assert box.x >= 0 and box.y >= 0 and box.x + box.w <= 640 and box.y + box.h <= 480


@needs_mnist
def test_boxes_scale_with_the_frame(mnist_test):
    """Filters are relative: the same scene at a quarter of the size still yields its digit."""
    frame = _card_scene([mnist_test.images[3]])
    small = cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA)
    huge = cv2.resize(frame, (2560, 1920), interpolation=cv2.INTER_LINEAR)
    assert len(find_digit_regions(small)) == 1
    big_boxes = find_digit_regions(huge)
    assert len(big_boxes) == 1 and big_boxes[0].w > 200  # boxes come back in the frame's own pixels


@needs_mnist
def test_crop_holds_one_digit_only(mnist_test):
    """A neighbouring digit inside the crop's margin is painted over, so the crop shows one digit."""
    frame = _card_scene([mnist_test.images[0], mnist_test.images[1]])
    regions = find_digits(frame)
    for region in regions:
        crop = region.crop
        assert crop.shape == (region.box.h, region.box.w)
        edge = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
        assert edge.min() > 120  # only paper along the crop's border


@needs_mnist
def test_card_under_a_warm_lamp_is_read(mnist_test):
    """A tungsten-like cast (blue x0.65, green x0.85) makes the paper orange; white balance makes it paper again."""
    frame = _card_scene([mnist_test.images[0], mnist_test.images[1]])
    warm = np.clip(frame * np.float32([0.65, 0.85, 1.0]), 0, 255).astype(np.uint8)
    assert len(find_digit_regions(warm)) == 2


@needs_mnist
def test_shadow_across_the_digit_is_not_uneven_paper(mnist_test):
    """A soft shadow edge through the digit: the paper tests run on light-normalised levels."""
    frame = _card_scene([mnist_test.images[3]]).astype(np.float32)
    shade = np.ones(frame.shape[:2], np.float32)
    shade[:, 280:] = 0.3  # the digit spans x 220-340
    frame *= cv2.GaussianBlur(shade, (0, 0), 10)[:, :, None]
    assert len(find_digit_regions(frame.astype(np.uint8))) == 1


@needs_mnist
def test_fingers_under_a_digit_are_not_part_of_it(mnist_test):
    """Skin-coloured fingers reaching over the card just below a digit: the digit's box stops above them."""
    frame = _card_scene([mnist_test.images[3]])
    cell = 480 // 4
    digit_bottom = 480 // 3 + cell // 2 + cell
    finger_top = digit_bottom + 6
    for k in range(3):
        x = 640 // 4 + cell // 2 + 30 + k * 22
        cv2.line(frame, (x, finger_top), (x, 480), (110, 140, 200), 14)
    boxes = find_digit_regions(frame)
    assert len(boxes) == 1
    assert boxes[0].y + boxes[0].h <= finger_top + 4


@needs_mnist
def test_fingertips_under_a_digit_stay_apart_when_any_pen_colour_is_taken(mnist_test):
    """With `any_pen_colour` (the live default) skin-coloured blobs are no longer dropped before merging;
    fingertips just below a black digit (here short, inside the frame) must still not join it: one pen wrote a
    digit. Without it they are dropped first."""
    from dataclasses import replace

    frame = _card_scene([mnist_test.images[3]])
    cell = 480 // 4
    finger_top = 480 // 3 + cell // 2 + cell + 6
    for k in range(2):
        x = 640 // 4 + cell // 2 + 45 + k * 20
        cv2.line(frame, (x, finger_top), (x, finger_top + 24), (110, 140, 200), 12)
    for config in (replace(LIVE, any_pen_colour=False), LIVE):
        boxes = find_digit_regions(frame, config)
        assert len(boxes) == 1
        assert boxes[0].y + boxes[0].h <= finger_top + 4, config.any_pen_colour


@needs_mnist
@pytest.mark.parametrize("ink_bgr", [(60, 150, 40), (40, 40, 190)], ids=["green", "red"])
def test_fingertips_under_a_coloured_digit_stay_apart(mnist_test, ink_bgr):
    """A green or red pen's digit and the skin of the fingertips below it are both colourful; they differ in
    hue (a red pen's by about 20 degrees), and one pen has one colour, so they are not merged."""

    frame = _card_scene([mnist_test.images[3]], ink_bgr=ink_bgr)
    cell = 480 // 4
    finger_top = 480 // 3 + cell // 2 + cell + 6
    for k in range(2):
        x = 640 // 4 + cell // 2 + 45 + k * 20
        cv2.line(frame, (x, finger_top), (x, finger_top + 24), (110, 140, 200), 12)
    boxes = find_digit_regions(frame)
    assert len(boxes) == 1 and boxes[0].y + boxes[0].h <= finger_top + 4


@pytest.mark.parametrize("wall_bgr", [(150, 110, 170), (120, 150, 140)], ids=["mauve_wall", "green_grey_wall"])
@pytest.mark.parametrize("on_card", [True, False], ids=["on_the_card", "on_the_wall"])
def test_a_red_stroke_is_read_on_white_paper_only(wall_bgr, on_card):
    """A red stroke (a 1, or a stick in the room) is read on the white card; on the tinted wall beside it, it
    is a stick. (A frame that is all wall is taken for coloured paper: the white balance makes its brightest
    pixels grey.)"""

    rng = np.random.default_rng(2)
    frame = np.full((480, 640, 3), wall_bgr, np.float32)
    frame[100:380, 60:300] = 225
    x = 180 if on_card else 470
    cv2.line(frame, (x - 10, 170), (x + 10, 310), (40, 40, 190), 9, cv2.LINE_AA)
    frame = np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)
    assert len(find_digit_regions(frame)) == int(on_card)


def _room_of_pale_things(wall_bgr, card_bgr=None) -> np.ndarray:
    """A tinted wall with pale things of five colours on it, a dark stroke in the middle (a stick, or a 1 on
    the card when there is one)."""
    rng = np.random.default_rng(3)
    frame = np.full((480, 640, 3), wall_bgr, np.float32)
    for (x, y), colour in zip(((60, 60), (520, 80), (80, 380), (540, 400), (300, 40)),
                              ((200, 235, 200), (215, 190, 240), (235, 225, 170), (170, 230, 235), (240, 200, 220))):
        cv2.ellipse(frame, (x, y), (55, 35), 0, 0, 360, colour, -1)
    if card_bgr is not None:
        frame[120:360, 200:440] = card_bgr
    cv2.line(frame, (300, 190), (318, 300), (60, 45, 40), 7, cv2.LINE_AA)
    return np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("card_bgr", [None, (150, 235, 245), (215, 200, 245)], ids=["no_card", "yellow", "pink"])
def test_coloured_paper_is_one_colour_not_a_room_of_them(card_bgr):
    """The brightest pixels' colour is the paper's only when enough of them are of one colour: a yellow or
    pink card is paper and its 1 is read; a mauve wall whose brightest things are pale shapes of five colours
    is not, so a dark stick on it is no 1 (it was, balanced grey with them)."""

    frame = _room_of_pale_things((150, 120, 150), card_bgr)
    assert len(find_digit_regions(frame)) == int(card_bgr is not None)


def test_colourful_strokes_join_only_strokes_of_their_hue():
    from edge_app.detect import _merge_broken_strokes

    stacked = np.array([[100, 100, 40, 60], [105, 165, 35, 30]])  # a digit and the piece under it
    colourful = np.array([True, True])
    assert len(_merge_broken_strokes(stacked, 20, colourful, np.deg2rad([120, 125]))) == 1  # one green pen
    assert len(_merge_broken_strokes(stacked, 20, colourful, np.deg2rad([120, 20]))) == 2  # green over skin
    assert len(_merge_broken_strokes(stacked, 20, colourful, np.deg2rad([355, 5]))) == 1  # red wraps round
    assert len(_merge_broken_strokes(stacked, 20, np.array([False, False]), np.deg2rad([120, 20]))) == 1  # pen ink


@needs_mnist
@pytest.mark.parametrize("rule_bgr", [(235, 205, 170), (180, 180, 180)], ids=["light_blue", "grey"])
def test_digits_on_ruled_notebook_paper_are_found(mnist_test, rule_bgr):
    """Pale ruled lines cross the digits; they must not join the two digits into one blob."""
    frame = np.full((480, 640, 3), (90, 120, 100), np.uint8)
    frame[120:380, 140:500] = (232, 236, 238)
    for y in range(130, 380, 28):
        cv2.line(frame, (140, y), (499, y), rule_bgr, 2)
    for i, digit in enumerate((mnist_test.images[0], mnist_test.images[1])):
        ink = cv2.resize(digit, (110, 110), interpolation=cv2.INTER_CUBIC).astype(np.float32)[:, :, None] / 255
        y, x = 190, 200 + i * 120
        frame[y:y + 110, x:x + 110] = (frame[y:y + 110, x:x + 110] * (1 - ink) + 30 * ink).astype(np.uint8)
    boxes = find_digit_regions(frame)
    assert len(boxes) == 2 and boxes[0].x < boxes[1].x


def test_clutter_without_a_card_is_not_a_digit():
    rng = np.random.default_rng(1)
    frame = np.full((480, 640, 3), (150, 110, 170), np.uint8)  # a coloured wall
    for _ in range(12):
        centre = (int(rng.integers(50, 590)), int(rng.integers(50, 430)))
        cv2.ellipse(frame, centre, (int(rng.integers(10, 40)), int(rng.integers(10, 40))), 0, 0, 360,
                    rng.uniform(0, 120, 3).tolist(), -1)
    assert find_digit_regions(frame) == []


@pytest.mark.parametrize("config", [LIVE, STILL], ids=["live", "still"])
def test_dark_filled_shapes_on_paper_are_not_digits(config):
    """Bold strokes' dark insides are filled back into the ink mask, so a dark filled shape (a disc, a block)
    is a filled blob that the shape tests refuse, not an outline that looks like a 0."""
    frame = np.full((600, 800), 225, np.uint8)
    cv2.circle(frame, (150, 150), 70, 40, -1)
    cv2.rectangle(frame, (560, 350), (720, 520), 35, -1)
    cv2.ellipse(frame, (300, 420), (120, 60), 0, 0, 360, 50, -1)
    assert find_digits(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), config) == []


def test_blank_card_has_no_digits():
    frame = np.full((480, 640, 3), 80, np.uint8)
    frame[100:380, 150:500] = 230
    assert find_digit_regions(frame) == []


@pytest.mark.parametrize("frame", [
    np.zeros((0, 0, 3), np.uint8),
    np.zeros((480, 640, 3), np.uint8),
    np.full((480, 640, 3), 255, np.uint8),
    np.zeros((3, 3, 3), np.uint8),
    np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8),
    np.random.default_rng(0).integers(0, 256, (480, 640, 5), dtype=np.uint8),
    np.random.default_rng(0).random((120, 160)).astype(np.float32),
    np.zeros((480, 640, 3, 2), np.uint8),
], ids=["empty", "black", "white", "tiny", "huge_noise", "five_channels", "float_gray", "4d"])
def test_odd_frames_do_not_crash(frame):
    assert isinstance(find_digit_regions(frame), list)
