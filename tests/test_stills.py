"""Still photos: pages of several lines, turned pages, coloured paper and pens, small digits on a whole
sheet, EXIF orientation, one reading for `predict` and `run`, and floors on the real photos."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import MODELS, ROOT, needs_mnist, run_digits
from rendering import render_close_up, render_page

MODEL = MODELS / "cnn_int8.tflite"
REAL = Path(os.environ.get("DIGITS_REAL_DIR") or ROOT.parent / "shared" / "data" / "real")
needs_real = pytest.mark.skipif(not (REAL / "truth.json").is_file(),
                                reason=f"real photos not found in {REAL}: set DIGITS_REAL_DIR")


@pytest.fixture(scope="module")
def pipeline():
    from edge_app.classifier import load_classifier
    from edge_app.run import DigitPipeline

    return DigitPipeline(load_classifier(MODEL, threads=1))


def _digits(mnist, labels: str) -> list[np.ndarray]:
    """MNIST test digits for the given labels: the first clear example of each (the same every run)."""
    first = {d: int(np.flatnonzero(mnist.labels == d)[1]) for d in range(10)}
    return [mnist.images[first[int(c)]] for c in labels]


def _read(pipeline, frame: np.ndarray) -> str:
    return pipeline.process(frame, still=True).text


@needs_mnist
def test_a_page_of_several_lines_is_read_in_order(pipeline, mnist_test):
    lines = ["31415", "27182", "16180"]
    page = render_page([_digits(mnist_test, line) for line in lines])
    assert _read(pipeline, page) == "\n".join(lines)


@needs_mnist
@pytest.mark.parametrize("angle", [-80, -10, 10, 50, 80])
def test_a_hard_shadow_across_a_page_is_not_ink(pipeline, mnist_test, angle):
    """A hand or a phone held over the page casts a shadow at half the light with an edge a few pixels soft. The
    shadowed side of the edge is darker than its neighbourhood, so the grey copy's threshold takes a band along the
    edge for ink, joined to the digits it crosses; near such an edge of the light the ink is thresholded on the
    light-normalised copy. These five pages read wrong before; of 102 such pages (17 angles, three edges from sharp
    to 0.5% of the page soft, two positions), 88 read exactly before, 100 now."""
    lines = ["31415", "27182"]
    page = render_page([_digits(mnist_test, line) for line in lines]).astype(np.float32)
    rows, cols = page.shape[:2]
    y, x = np.mgrid[0:rows, 0:cols]
    across = ((x - 0.3 * cols) * np.sin(np.deg2rad(angle)) - (y - 0.3 * rows) * np.cos(np.deg2rad(angle))) / cols
    light = 1 - 0.5 / (1 + np.exp(np.clip(across / 0.005, -50, 50)))
    shadowed = np.clip(page * light[..., None], 0, 255).astype(np.uint8)
    assert _read(pipeline, shadowed) == "\n".join(lines)


@needs_mnist
@pytest.mark.parametrize("turn", [35, -35, 90, -90])
def test_a_turned_page_is_read_upright(pipeline, mnist_test, turn):
    lines = ["4072", "3956"]
    page = render_page([_digits(mnist_test, line) for line in lines], size=(2000, 2000), turn=turn)
    result = pipeline.process(page, still=True)
    assert result.text == "\n".join(lines)
    assert abs(abs(result.angle) - abs(turn)) < 10 or abs(abs(result.angle) - (180 - abs(turn))) < 10


@needs_mnist
@pytest.mark.parametrize("paper,ink", [
    ((120, 235, 245), (40, 35, 30)),  # a yellow sticky note, black pen
    ((215, 200, 245), (150, 60, 40)),  # pink paper, blue pen
    ((110, 150, 185), (90, 40, 30)),  # brown kraft paper, dark blue pen
    ((230, 232, 235), (50, 50, 200)),  # white paper, red pen
    ((230, 232, 235), (60, 140, 40)),  # white paper, green pen
    ((200, 200, 200), (140, 140, 140)),  # pencil on grey paper: 60 levels apart
    ((95, 95, 100), (55, 55, 60)),  # dim light: paper at 95, ink only 40 levels darker
], ids=["yellow_note", "pink_paper", "kraft", "red_pen", "green_pen", "pencil", "dim"])
def test_paper_and_ink_colours(pipeline, mnist_test, paper, ink):
    page = render_page([_digits(mnist_test, "5830")], paper=paper, ink=ink)
    assert _read(pipeline, page) == "5830"


def _under_a_lamp(page: np.ndarray, dimmest: float) -> np.ndarray:
    """`page` lit from its top right corner, the light falling to `dimmest` of it at the far corner."""
    rows, cols = page.shape[:2]
    y, x = np.mgrid[0:rows, 0:cols]
    light = 1 - (1 - dimmest) * np.hypot(y / rows, (cols - x) / cols) / np.sqrt(2)
    return np.clip(page * light[..., None], 0, 255).astype(np.uint8)


@needs_mnist
@pytest.mark.parametrize("lit,paper,ink,background", [
    (True, (228, 230, 232), (40, 35, 30), (60, 70, 80)),  # a page under a lamp: half of the photo is dark
    (False, (45, 55, 45), (225, 225, 220), (30, 30, 30)),  # chalk on a board: its few strokes are the light
    (False, (45, 55, 45), (225, 225, 220), (200, 200, 200)),  # a board on a light wall
], ids=["page_under_a_lamp", "board", "board_on_a_light_wall"])
def test_a_dark_still_is_read_in_the_polarity_that_finds_digits(pipeline, mnist_test, lit, paper, ink, background):
    """Stills whose median is dark may be dark ink on dim paper or light writing on a dark ground."""
    lines = ["31426", "27180"]
    page = render_page([_digits(mnist_test, line) for line in lines], paper=paper, ink=ink, background=background)
    assert _read(pipeline, _under_a_lamp(page, 0.15) if lit else page) == "\n".join(lines)


def _ruled(page: np.ndarray, step: int, colour, vertical: bool) -> np.ndarray:
    """Notebook rules (and the columns of squared paper) drawn under the ink of a rendered page."""
    lined = page.copy()
    for y in range(160, 1350, step):
        cv2.line(lined, (200, y), (1800, y), colour, 2)
    for x in range(200, 1800, step) if vertical else ():
        cv2.line(lined, (x, 160), (x, 1350), colour, 2)
    return np.minimum(lined, page)


@needs_mnist
@pytest.mark.parametrize("step,colour,vertical,turn", [
    (60, (235, 200, 160), True, 0),  # light-blue squared paper
    (70, (230, 190, 150), False, 0),  # light-blue rules
    (70, (200, 180, 150), False, 8),  # rules on a page held 8 degrees askew
    (60, (235, 200, 160), True, 8),  # squared paper askew
], ids=["squared", "ruled", "ruled_askew", "squared_askew"])
def test_notebook_paper(pipeline, mnist_test, step, colour, vertical, turn):
    """Rules cross the digits; a rule that is not level is no long horizontal run, yet must not join them."""
    lines = ["31415", "27182", "16180"]
    page = _ruled(render_page([_digits(mnist_test, line) for line in lines]), step, colour, vertical)
    if turn:
        page = cv2.warpAffine(page, cv2.getRotationMatrix2D((1000, 750), turn, 1.0), (2000, 1500),
                              borderMode=cv2.BORDER_REPLICATE)
    assert _read(pipeline, page) == "\n".join(lines)


def _overlapping(left: np.ndarray, right: np.ndarray, shift: int) -> np.ndarray:
    """Two 28x28 digits as one strip, the right one `shift` px to the right of the left one (20: their ink boxes
    meet; less: they overlap in x, and their strokes may run into each other)."""
    pair = np.zeros((28, 28 + shift), np.uint8)
    pair[:, :28] = left
    pair[:, shift:] = np.maximum(pair[:, shift:], right)
    return pair


def _on_a_page(strip: np.ndarray, scale: int, page: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """A strip of MNIST digits (white on black) as dark ink on a `page` (height, width), `scale` times MNIST's
    size, its top-left corner `at` (y, x)."""
    ink = cv2.resize(strip, (strip.shape[1] * scale, 28 * scale), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    paper = np.full(page, 230, np.float32)
    y, x = at
    paper[y:y + ink.shape[0], x:x + ink.shape[1]] -= 200 * np.clip((ink - 0.5) * 3 + 0.5, 0, 1)
    return cv2.cvtColor(np.clip(paper, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _written_close(left: np.ndarray, right: np.ndarray, shift: int) -> np.ndarray:
    """Two digits `_overlapping`, dark on a page, 8 times MNIST's size."""
    return _on_a_page(_overlapping(left, right, shift), 8, (700, 900), (240, 260))


@needs_mnist
def test_two_digits_written_touching_are_cut_apart(pipeline, mnist_test):
    """A 5 whose stroke runs into the 8 beside it: one blob, read as "8" or "not a digit" unless cut in two.
    (The 11-class models before the fine-tune for other writers' scans rejected the cut 5; this one keeps it.)"""
    assert _read(pipeline, _written_close(*_digits(mnist_test, "58"), shift=14)) == "58"


@needs_mnist
def test_digits_written_overlapping_are_cut_apart_along_their_own_strokes(pipeline, mnist_test):
    """Every pair of digits, the right one's ink box reaching 8 px (40%) into the left one's: one region, which
    no straight cut separates when one digit's stroke runs under the other or a flag reaches over it. The seam
    through the least ink and the cut between separate pieces of ink read 68 of the 100 pairs; the straight cut
    alone read 52."""
    pairs = [f"{a}{b}" for a in range(10) for b in range(10)]
    right = sum(_read(pipeline, _written_close(*_digits(mnist_test, pair), shift=12)) == pair for pair in pairs)
    assert right >= 64


def _in_a_line(mnist, pair: np.ndarray) -> np.ndarray:
    """`pair` (28 px tall) written between "36" and "0", 14 px apart, dark on a page, 6 times MNIST's size."""
    neighbour = {d: mnist.images[int(np.flatnonzero(mnist.labels == d)[2])] for d in (3, 6, 0)}
    gap = np.zeros((28, 14), np.uint8)
    strip = np.hstack([neighbour[3], gap, neighbour[6], gap, pair, gap, neighbour[0]])
    return _on_a_page(strip, 6, (500, strip.shape[1] * 6 + 200), (160, 100))


@needs_mnist
def test_two_touching_digits_read_surely_as_one_are_cut_among_neighbours(pipeline, mnist_test):
    """A 4 or an 8 reaching into the 5 beside it reads as one 8 (at 0.85 and 0.93, above SPLIT_BELOW_CONFIDENCE,
    so never tried cut before): alone nothing tells it from one wide digit, but in a line it is far wider than
    its neighbours are tall, so it is cut too. All 100 pairs overlapping by
    40% between "36" and "0": 70 lines read right before this rule, 72 now, none read worse."""
    def pair(labels: str) -> np.ndarray:
        return _overlapping(*_digits(mnist_test, labels), shift=12)

    for labels in ("45", "85"):
        assert _read(pipeline, _in_a_line(mnist_test, pair(labels))).replace(" ", "") == f"36{labels}0"
    pairs = [f"{a}{b}" for a in range(10) for b in range(10)]
    right = sum(_read(pipeline, _in_a_line(mnist_test, pair(p))).replace(" ", "") == f"36{p}0" for p in pairs)
    assert right >= 70


@needs_mnist
def test_a_bold_digit_filling_a_close_up_is_read_solid(pipeline, mnist_test):
    """Strokes wider than half the adaptive threshold's window come out as outlines; their dark insides are
    filled back in, so the model sees a solid stroke, while the paper inside a 0's or a 6's loop stays paper."""
    for label, loops in (("0", 1), ("6", 1), ("1", 0), ("7", 0)):
        result = pipeline.process(render_close_up(_digits(mnist_test, label)[0], 0.9, boldness=3.0), still=True)
        assert result.text == label, label
        # A hollow stroke would add a hole along every stroke: count the holes in what the model was shown.
        contours, hierarchy = cv2.findContours((result.inputs[0] > 128).astype(np.uint8), cv2.RETR_CCOMP,
                                               cv2.CHAIN_APPROX_SIMPLE)
        holes = sum(1 for c, h in zip(contours, hierarchy[0]) if h[3] >= 0 and cv2.contourArea(c) >= 4)
        assert holes == loops, label


@needs_mnist
def test_a_tiny_still_is_read_whole_in_either_polarity(pipeline, mnist_test):
    """An MNIST-sized crop (here 16x16 box-normalised scans, white on black and black on white, the ink touching
    every side) is one digit, read whole and boxed on its ink: the photo detector's few-pixel window would cut
    it up or take its black ground for ink."""
    from train.heldout import boxed_scan

    right = 0
    for digit, label in zip(mnist_test.images[:60], mnist_test.labels[:60]):
        scan = boxed_scan(digit, margin=0)
        for still in (scan, 255 - scan):
            result = pipeline.process(cv2.cvtColor(still, cv2.COLOR_GRAY2BGR), still=True)
            [box] = [d.box for d in result.digits]
            assert box.x + box.w <= 16 and box.y + box.h <= 16 and max(box.w, box.h) >= 12, box
            right += result.text == str(label)
    assert right >= 0.9 * 120


@needs_mnist
def test_a_tiny_still_takes_not_a_digit_to_be_rarer(pipeline, mnist_test):
    """A still of 64 px or less is a crop someone made of one character: "not a digit" gets the prior of one such
    crop in 20, not the training examples' one in 4. With the previous release's model, 16x16 box-normalised
    scans with their margin (20 px) read 363 of 400 with the training prior and 368 with the crop's (32 -> 26
    answered "no digit"); of 300 held-out non-digits as 28x28 files it took none for a digit, the shipped model 4
    (39 and 47 of the 2,000 of `heldout.not_digit_crops`)."""
    from edge_app.predict import _single
    from train.heldout import boxed_scan
    from train.negatives import not_digit_examples

    right = 0
    for digit, label in zip(mnist_test.images[:400], mnist_test.labels[:400]):
        reading = _single(pipeline.process(cv2.cvtColor(boxed_scan(digit), cv2.COLOR_GRAY2BGR), still=True))
        right += reading.is_digit and reading.digit == label
    assert right >= 366
    answered = 0
    for image in not_digit_examples(mnist_test, 300, seed=11)[0]:
        result = pipeline.process(cv2.cvtColor(255 - image, cv2.COLOR_GRAY2BGR), still=True)
        reading = _single(result) if result.digits else None
        answered += reading is not None and reading.is_digit
    assert answered <= 6


@needs_mnist
def test_a_digit_cropped_without_margin_is_read_whole(pipeline, mnist_test):
    """A box-normalised scan scaled up 8 times with no margin: its ink runs from edge to edge, so no paper ring
    is left for the paper tests. When detection finds nothing there but refused something, the still is read
    whole (40 digits: 18 found and 15 read before this rule; 31 and 27 when one refused region had to span the
    still from edge to edge, 35 and 31 when together they had to; 40 and 32 now)."""
    from train.heldout import boxed_scan

    found = right = 0
    for digit, label in zip(mnist_test.images[:40], mnist_test.labels[:40]):
        scan = cv2.resize(boxed_scan(digit, margin=0), None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
        result = pipeline.process(cv2.cvtColor(scan, cv2.COLOR_GRAY2BGR), still=True)
        found += bool(result.digits)
        right += result.text == str(label)
    assert found >= 38 and right >= 30


@needs_mnist
def test_a_box_normalised_scan_the_model_refuses_is_read_narrowed(pipeline, mnist_test):
    """A box-normalising scan stretches a 1 into a slanted block the model refuses; read again with its width cut
    to 0.45, it reads 1. The first 100 MNIST test 1s as 16x16 box-normalised scans without margin: 47 read
    before this rule, 87 now; scaled up 8 times, 38 and 80. The cost: of 300 held-out non-digits box-normalised
    the same way, 11 were answered as digits before and 22 now (a narrowed block reads 1)."""
    from edge_app.predict import _single
    from train.heldout import boxed_scan
    from train.negatives import not_digit_examples

    def answer(still):
        result = pipeline.process(cv2.cvtColor(still, cv2.COLOR_GRAY2BGR), still=True)
        reading = _single(result) if result.digits else None
        return reading.digit if reading is not None and reading.is_digit else None

    ones = [mnist_test.images[i] for i in np.flatnonzero(mnist_test.labels == 1)[:100]]
    assert sum(answer(boxed_scan(one, margin=0)) == 1 for one in ones) >= 80
    blown_up = [cv2.resize(boxed_scan(one, margin=0), None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST) for one in ones]
    assert sum(answer(scan) == 1 for scan in blown_up) >= 72
    not_digits = not_digit_examples(mnist_test, 300, seed=11)[0]
    assert sum(answer(boxed_scan(image)) is not None for image in not_digits) <= 30


@needs_mnist
def test_a_flagged_one_stretched_to_a_square_is_read_narrowed(pipeline, mnist_test):
    """A 1 with a long flag and no base, box-normalised, reads as a sure 7; narrowed it reads as a sure 1, which is
    kept, also over what detection found in a scan scaled up. 100 MNIST test 1s given such a flag, as 16x16 scans
    without margin: 39 read before this rule, 85 after (the seed-5 model; the shipped seed-11 model 88); with a 2 px
    margin scaled up 8 times, 47 before, 70 after (seed 11: 75). The first 100 MNIST test 7s read 100 either way,
    both ways (seed 11: 97 and 99)."""
    from train.heldout import boxed_scan
    from train.styles import one_with_flag

    def read(digit: np.ndarray, margin: int = 0, scale: int = 1) -> str:
        scan = cv2.resize(boxed_scan(digit, margin), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        return pipeline.process(cv2.cvtColor(scan, cv2.COLOR_GRAY2BGR), still=True).text

    rng = np.random.default_rng(0)
    ones = [one_with_flag(mnist_test.images[i], rng, base=False, flag_length=(0.3, 0.6))
            for i in np.flatnonzero(mnist_test.labels == 1)[:100]]
    ones = [one for one in ones if one is not None]
    assert sum(read(one) == "1" for one in ones) >= 75
    assert sum(read(one, margin=2, scale=8) == "1" for one in ones) >= 60
    sevens = [mnist_test.images[i] for i in np.flatnonzero(mnist_test.labels == 7)[:100]]
    assert sum(read(seven) == "7" for seven in sevens) >= 95
    assert sum(read(seven, margin=2, scale=8) == "7" for seven in sevens) >= 95


def test_other_writers_bold_twos_box_normalised_are_not_read_as_ones(pipeline):
    """Other writers' 2s as box-normalised 16x16 scans (optdigits through `boxed_scan`, as Semeion's were made):
    narrowed, a bold 2 is a bar that reads as a sure 1, so a narrowed 1 may only replace a sure 7 (a flagged 1
    stretched square), not a sure 2. All 177: 101 read when any sure narrowed 1 was kept, 166 now."""
    found = pytest.importorskip("train.heldout").other_writers_box_normalised()
    if found is None:
        pytest.skip("scikit-learn (the train extra) carries the optdigits scans")
    twos = [scan for scan, label in zip(*found) if label == 2]
    assert sum(_read(pipeline, cv2.cvtColor(scan, cv2.COLOR_GRAY2BGR)) == "2" for scan in twos) >= 150


def test_other_writers_fours_and_nines_box_normalised_are_read_at_a_digits_aspect(pipeline):
    """Stretched to a square, other writers' open 4s read as 6 and their 9s as 3; read at a handwritten digit's
    aspect as well (the surer reading kept), more of them read. Their 4s and 9s as box-normalised 16x16 scans with
    a 2 px margin (362): 290 read without that reading, 306 with it."""
    found = pytest.importorskip("train.heldout").other_writers_box_normalised(margin=2)
    if found is None:
        pytest.skip("scikit-learn (the train extra) carries the optdigits scans")
    chosen = [(scan, label) for scan, label in zip(*found) if label in (4, 9)]
    assert sum(_read(pipeline, cv2.cvtColor(scan, cv2.COLOR_GRAY2BGR)) == str(label) for scan, label in chosen) >= 300


@pytest.mark.parametrize("upscaling, count, floor", [(cv2.INTER_LINEAR, 90, 70), (cv2.INTER_NEAREST, 1797, 1480)],
                         ids=["smooth", "blocky"])
def test_other_writers_scans_scaled_up_are_read(pipeline, upscaling, count, floor):
    """Other writers' 8x8 scans (optdigits) with a margin, scaled up 8 times as an image viewer does. Smoothly, the
    grey halo of each stroke fails the paper tests, or detection keeps only a piece of the digit; blocky, the
    digit may come apart in two. Such a still is read whole when detection refuses everything, or when the model
    is surer of it whole than of the one region found, or than of both of two. Smooth, the first 90: 38 read
    before these rules, 77 now; blocky, all 1,797: 1,267 before, 1,451 with the one-region rule alone, 1,497 now."""
    found = pytest.importorskip("train.heldout").other_writers_scans()
    if found is None:
        pytest.skip("scikit-learn (the train extra) carries the optdigits scans")
    scans, labels = found
    right = sum(_read(pipeline, cv2.cvtColor(cv2.resize(scan, None, fx=8, fy=8, interpolation=upscaling),
                                             cv2.COLOR_GRAY2BGR)) == str(label)
                for scan, label in zip(scans[:count], labels[:count]))
    assert right >= floor


@needs_mnist
def test_small_digits_on_a_whole_sheet(pipeline, mnist_test):
    """Digits 2.4% of the shorter side of a 12-megapixel photo (72 px of ink), decoded reduced from a JPEG file."""
    from edge_app.images import decode_still

    page = render_page([_digits(mnist_test, "902817"), _digits(mnist_test, "364")], size=(3024, 4032),
                       digit_height=100)
    ok, encoded = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 92])
    still = decode_still(encoded.tobytes(), "page.jpg")
    assert still.scale == 4 and max(still.image.shape[:2]) == 1008  # decoded reduced: the digits need no more
    assert _read(pipeline, still.image) == "902817\n364"


@needs_mnist
def test_a_shadow_at_the_photo_edge_is_not_ink(pipeline, mnist_test):
    """A phone's shadow darkening the photo's edges: one digit stays one digit, with nothing read in the shadow."""
    photo = render_page([_digits(mnist_test, "7")], size=(900, 700), digit_height=300, background=(228, 230, 232))
    shade = np.ones(photo.shape[:2], np.float32)
    shade[:, :120] = 0.35
    shade[780:, :] = 0.4
    photo = (photo * cv2.GaussianBlur(shade, (0, 0), 25)[:, :, None]).astype(np.uint8)
    result = pipeline.process(photo, still=True)
    assert result.text == "7" and len(result.digits) == 1


@needs_mnist
def test_a_blank_sheet_and_a_background_read_nothing(pipeline):
    sheet = render_page([])
    rng = np.random.default_rng(3)
    wood = cv2.GaussianBlur(rng.integers(40, 120, (1500, 2000, 3)).astype(np.uint8), (0, 0), 6)
    assert _read(pipeline, sheet) == ""
    assert _read(pipeline, wood) == ""


@needs_mnist
def test_exif_orientation_is_applied(pipeline, mnist_test, tmp_path):
    """An upside-down phone photo with an EXIF 'rotate 180' flag reads like the upright one."""
    pil = pytest.importorskip("PIL.Image")
    page = render_page([_digits(mnist_test, "7216")], size=(900, 1200), digit_height=150)
    upside_down = cv2.rotate(page, cv2.ROTATE_180)
    exif = pil.Exif()
    exif[0x0112] = 3  # orientation: rotate 180
    path = tmp_path / "phone.jpg"
    pil.fromarray(cv2.cvtColor(upside_down, cv2.COLOR_BGR2RGB)).save(path, exif=exif.tobytes(), quality=92)
    from edge_app.run import read_still

    assert read_still(path, pipeline).text == "7216"


@needs_mnist
def test_predict_and_run_give_the_same_reading_of_a_still(mnist_test, tmp_path):
    page = render_page([_digits(mnist_test, "1234"), _digits(mnist_test, "567")])
    single = render_page([_digits(mnist_test, "8")], size=(600, 600), digit_height=300)
    cv2.imwrite(str(tmp_path / "page.png"), page)
    cv2.imwrite(str(tmp_path / "single.jpg"), single)
    predicted = run_digits("predict", str(tmp_path), "--format", "json", "--model", str(MODEL))
    ran = run_digits("run", "--source", str(tmp_path), "--headless", "--format", "jsonl", "--model", str(MODEL))
    assert predicted.returncode == 0 and ran.returncode == 0, predicted.stderr + ran.stderr
    by_path = {row["path"]: row for row in map(json.loads, ran.stdout.splitlines())}
    for row in map(json.loads, predicted.stdout.splitlines()):
        assert row["text"] == by_path[row["path"]]["text"]
        assert row["lines"] == by_path[row["path"]]["lines"]
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in map(json.loads, predicted.stdout.splitlines())}
    assert rows["page.png"]["text"] == "1234\n567" and "digit" not in rows["page.png"]
    assert rows["single.jpg"]["digit"] == 8 and len(rows["single.jpg"]["top3"]) == 3
    text = run_digits("predict", str(tmp_path / "page.png"), "--model", str(MODEL))
    assert text.stdout.strip().endswith("page.png: 1234 / 567")


def test_debug_lists_refused_candidates_with_reasons(tmp_path):
    """--debug_dir writes the overlay and a JSON whose refused candidates carry a known reason."""
    from edge_app.detect import REASONS

    frame = np.full((400, 600, 3), 230, np.uint8)
    cv2.rectangle(frame, (50, 50), (550, 60), (30, 30, 30), -1)  # a long bar: too wide for a digit
    cv2.circle(frame, (300, 250), 4, (30, 30, 30), -1)  # a speck
    cv2.imwrite(str(tmp_path / "bar.png"), frame)
    result = run_digits("run", "--source", str(tmp_path / "bar.png"), "--headless", "--format", "jsonl",
                        "--debug_dir", str(tmp_path / "debug"), "--model", str(MODEL))
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "debug" / "bar.json").read_text())
    assert (tmp_path / "debug" / "bar.png").is_file()
    assert saved["text"] == "" and saved["rejected"]
    assert all(item["reason"] in REASONS for item in saved["rejected"])
    assert any(item["reason"] == "too wide or thin" for item in saved["rejected"])


@pytest.mark.parametrize("setting,message", [
    ("no_such=1", "unknown detector setting 'no_such'"),
    ("min_digit_share=abc", "is not a valid float"),
    ("min_digit_share", "expected KEY=VALUE"),
])
def test_bad_detector_settings_are_one_line_errors(setting, message, tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((50, 50), 255, np.uint8))
    result = run_digits("predict", str(image), "--detector", setting, "--model", str(MODEL))
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_detector_settings_change_what_is_found(tmp_path):
    """A user tuning to their camera: the same digit refused once min_digit_share is raised above its size."""
    canvas = np.full((600, 600), 235, np.uint8)
    cv2.putText(canvas, "7", (280, 330), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 20, 6)
    path = tmp_path / "seven.png"
    cv2.imwrite(str(path), canvas)
    assert run_digits("predict", str(path), "--model", str(MODEL)).returncode == 0
    config = tmp_path / "detector.json"
    config.write_text(json.dumps({"still": {"min_digit_share": 0.5}}))
    refused = run_digits("predict", str(path), "--detector_config", str(config), "--model", str(MODEL))
    assert refused.returncode == 1 and "no digit found" in refused.stderr


@needs_real
def test_real_photos_meet_their_floors():
    """The development set of real photos (../shared/data/real): floors just under what was measured."""
    sys.path.insert(0, str(ROOT / "tests"))
    from edge_app.classifier import load_classifier
    from edge_app.run import DigitPipeline

    from score_real import score_photo, summary_rows

    pipeline = DigitPipeline(load_classifier(MODEL, threads=1))
    entries = json.loads((REAL / "truth.json").read_text())
    rows = {row["kind"]: row for row in summary_rows([score_photo(entry, REAL, pipeline) for entry in entries])}
    assert rows["single"]["exact"] >= 25, rows["single"]  # measured 26 of 27 (27 with the 10-class model)
    assert rows["line"]["exact"] >= 15, rows["line"]  # measured 16 of 16
    assert rows["page"]["digits_right"] >= 0.89 * rows["page"]["digits"], rows["page"]  # measured 93.5%


@needs_real
def test_real_photos_in_dim_light_are_not_read_inverted():
    """The real photos darkened (gamma 1.8): a dim page's median is as dark as a chalk board's."""
    sys.path.insert(0, str(ROOT / "tests"))
    from edge_app.classifier import load_classifier
    from edge_app.run import DigitPipeline

    from score_real import PERTURBATIONS, score_photo, summary_rows

    pipeline = DigitPipeline(load_classifier(MODEL, threads=1))
    entries = json.loads((REAL / "truth.json").read_text())
    [everything] = [row for row in summary_rows([score_photo(entry, REAL, pipeline, PERTURBATIONS["darker"])
                                                 for entry in entries]) if row["kind"] == "all"]
    # measured 456 of 480 with the shipped model (as taken: 458), 457 with the previous one; read inverted, 222
    assert everything["digits_right"] >= 0.9 * everything["digits"], everything


@needs_mnist
def test_odd_dtypes_and_tight_settings_survive_a_turned_page(mnist_test):
    """A turned page as int32 pixels, and detector settings whose minimum the turned view would lift above
    the maximum: read, never a traceback."""
    from edge_app.classifier import load_classifier
    from edge_app.detect import STILL, config_with
    from edge_app.run import DigitPipeline

    page = render_page([_digits(mnist_test, "72104")], size=(1500, 1500), turn=35)
    tight = DigitPipeline(load_classifier(MODEL), still_detector=config_with(
        STILL, {"min_digit_share": "0.05", "max_digit_share": "0.08"}))
    assert isinstance(tight.process(page, still=True).text, str)
    plain = DigitPipeline(load_classifier(MODEL))
    assert plain.process(page.astype(np.int32), still=True).text == "72104"


@pytest.mark.parametrize("manifest", ["[]", '"x"', '{"artifacts": []}', '{"artifacts": {"cnn_int8.tflite": null}}'])
def test_a_manifest_of_the_wrong_shape_is_no_traceback(tmp_path, manifest):
    import shutil

    shutil.copy(MODEL, tmp_path / MODEL.name)
    (tmp_path / "manifest.json").write_text(manifest)
    image = str(ROOT / "tests" / "data" / "handdrawn" / "7.png")
    predicted = run_digits("predict", image, "--model", str(tmp_path / MODEL.name))
    assert predicted.returncode == 0 and "Traceback" not in predicted.stderr
    doctor = run_digits("doctor", "--models", str(tmp_path), "--cameras", "0")
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr


@pytest.mark.parametrize("setting", ["block_share=inf", "paper_share=1000", "working_size=100000", "ring_share=nan"])
def test_absurd_detector_settings_are_refused(setting):
    result = run_digits("predict", str(ROOT / "tests" / "data" / "handdrawn" / "7.png"), "--detector", setting)
    assert result.returncode == 2 and "Traceback" not in result.stderr and setting.split("=")[0] in result.stderr


@pytest.mark.parametrize("flag", ["--save-inputs", "--debug-dir"])
def test_output_folders_that_cannot_be_made_are_one_line(tmp_path, flag):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = run_digits("predict", str(ROOT / "tests" / "data" / "handdrawn" / "7.png"), flag, str(blocker / "sub"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and flag in result.stderr


@pytest.mark.parametrize("shape", [(1, 5000), (2, 3000, 3), (5000, 1), (4032, 3024, 3), (100, 80)])
def test_a_still_is_shrunk_for_the_whole_read_whatever_its_shape(shape):
    """The whole-still read shrinks the still to 256 px first; a strip of one pixel must shrink too, not fail."""
    from edge_app.run import WHOLE_READ_SIZE, _small_grey

    small = _small_grey(np.zeros(shape, np.uint8), WHOLE_READ_SIZE)
    assert small.ndim == 2 and small.dtype == np.uint8
    assert max(small.shape) == min(max(shape[:2]), WHOLE_READ_SIZE) and min(small.shape) >= 1


@needs_mnist
@pytest.mark.parametrize("dtype, channels", [(bool, 3), (np.int64, 1), (np.uint32, 3), (np.int32, 3), (np.float16, 3),
                                             (np.uint8, 5)])
def test_a_large_still_of_any_dtype_is_read(pipeline, mnist_test, dtype, channels):
    """A still larger than the whole read's 256 px, of a dtype or channel count OpenCV cannot resize, is read
    like any other (the whole read makes it grey first)."""
    page = cv2.cvtColor(render_page([_digits(mnist_test, "7")], size=(700, 900), digit_height=300), cv2.COLOR_BGR2GRAY)
    frame = np.repeat(page[:, :, None], channels, axis=2).squeeze() if channels > 1 else page
    frame = (frame > 128) if dtype is bool else frame.astype(dtype)
    assert _read(pipeline, frame) == "7"
