"""`digits run`: scored end to end on a rendered clip, light imports, clean errors, no crash on odd frames."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edge_app.readout import StableReadout, held_up_lines, lines_text, read_lines, writing_angle

from conftest import MODELS, ROOT, needs_mnist, run_digits

MODEL = MODELS / "cnn_int8.tflite"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL} not exported yet")
CLIP_SEEDS = (1, 2)
# The goals: the stable readout right on >= 97% of settled digit frames and no digit on >= 99% of
# empty frames, met on average over many clips (README: 21 tuning clips 97.7% / 99.9%, held-out ones
# above 97% / 99%). One clip holds 20 cards, so one misread card costs 5 points: seeds 1 and 2 measured
# 95.0% / 100% each with the 10-class model and 92.5% / 100% together with the 11-class one (which is
# level with it over 19 clips: 97.22% against 97.28%). These floors guard against regressions on a
# two-clip sample, not the goal itself.
MIN_DIGIT_ACCURACY = 0.92
MIN_EMPTY_ACCURACY = 0.99


@pytest.mark.slow
@needs_mnist
@needs_model
def test_rendered_clips_are_read(tmp_path, mnist_test):
    """Two clips, 1,920 frames: cards held in clutter, uneven light, blur, JPEG, hands, empty stretches."""
    from edge_app.synthetic import ClipOptions, render_clip, score_readout

    truth, rows = [], []
    for seed in CLIP_SEEDS:
        clip = tmp_path / f"clip_{seed}.avi"
        clip_truth = render_clip(clip, mnist_test, seed=seed, options=ClipOptions(segments=40, segment_frames=24))
        result = run_digits("run", "--source", str(clip), "--headless", "--format", "jsonl", "--model", str(MODEL))
        assert result.returncode == 0, result.stderr
        clip_rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(clip_rows) == len(clip_truth)
        truth += clip_truth
        rows += clip_rows
    assert set(rows[0]) == {"frame", "time_ms", "text", "stable_text", "lines", "digits", "latency_ms"}
    assert set(rows[0]["latency_ms"]) == {"capture", "detect", "classify", "total"}
    clip_score = score_readout(truth, [row["stable_text"] for row in rows])
    digit_accuracy, empty_accuracy = clip_score.digit_accuracy, clip_score.empty_accuracy
    print(f"stable readout right on {digit_accuracy:.2%} of digit frames, empty on {empty_accuracy:.2%} of empty frames")
    assert digit_accuracy >= MIN_DIGIT_ACCURACY, f"stable readout right on {digit_accuracy:.1%} of digit frames"
    assert empty_accuracy >= MIN_EMPTY_ACCURACY, f"no digit on only {empty_accuracy:.1%} of empty frames"


@needs_mnist
@needs_model
def test_max_frames_stops_early(tmp_path, mnist_test):
    from edge_app.synthetic import ClipOptions, render_clip

    clip = tmp_path / "short.avi"
    render_clip(clip, mnist_test, seed=2, options=ClipOptions(segments=2, segment_frames=6))
    result = run_digits("run", "--source", str(clip), "--headless", "--format", "jsonl", "--max-frames", "5",
                        "--model", str(MODEL))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["frame"] for line in result.stdout.splitlines()] == [0, 1, 2, 3, 4]


def test_run_never_imports_tensorflow():
    code = ("import sys, edge_app.run, edge_app.draw, edge_app.sources, edge_app.synthetic; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("source", ["/no/such/clip.avi", "99", "/no/such/folder/*.png"])
def test_bad_source_is_one_line_error(source):
    result = run_digits("run", "--source", source, "--headless", "--model", str(MODEL))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("source" in lines[0] or "camera" in lines[0])


def test_missing_model_is_one_line_error(tmp_path):
    result = run_digits("run", "--source", "0", "--headless", "--model", str(tmp_path / "none.tflite"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@needs_model
@pytest.mark.parametrize("frame", [
    np.zeros((0, 0, 3), np.uint8), np.zeros((480, 640, 3), np.uint8), np.full((480, 640), 255, np.uint8),
    np.zeros((2, 2, 3), np.uint8), np.zeros((480, 640, 4), np.uint16), np.ones((100, 100, 7), np.float64),
], ids=["empty", "black", "white_gray", "tiny", "bgra16", "seven_channels"])
def test_process_frame_survives_bad_frames(frame):
    from edge_app.classifier import load_classifier
    from edge_app.run import process_frame

    result = process_frame(frame, load_classifier(MODEL))
    assert result.text == "" and result.digits == []
    assert result.latency_ms["total"] >= 0


def test_score_skips_settling_frames_and_splits_digit_from_empty():
    from edge_app.synthetic import score_readout

    truth = [""] * 8 + ["42"] * 8
    shown = [""] * 8 + ["", "", "4", "42", "42", "42", "42", "9"]  # the vote catches up, then one miss
    score = score_readout(truth, shown, settle=3)
    assert (score.empty_frames, score.empty_right) == (5, 5)
    assert (score.digit_frames, score.digit_right) == (5, 4)
    assert score.digit_accuracy == 0.8 and score.empty_accuracy == 1.0


def test_vote_ignores_a_single_odd_frame():
    readout = StableReadout(window=5)
    shown = [readout.update(text) for text in ["4", "4", "4", "9", "4", "", "4"]]
    assert shown[2:] == ["4"] * 5


def test_lines_read_left_to_right_top_to_bottom_and_gate_confidence():
    boxes = [(100, 100, 40, 60), (150, 102, 40, 60), (40, 98, 30, 58), (300, 300, 40, 60)]
    lines = read_lines([2, 4, 1, 7], [0.6, 0.95, 0.99, 0.99], boxes, 0.7)
    assert lines_text(lines) == "14\n7"  # the far blob is a line of its own, below
    assert [line.members for line in lines] == [(2, 1), (3,)]  # the 0.6 "2" is below the gate
    assert read_lines([4], [0.5], [boxes[0]], 0.7) == []
    assert read_lines([], [], [], 0.7) == []


def test_numbers_split_only_where_the_writer_left_a_wider_gap():
    """"10 11 12": close pairs with wide gaps between them; an evenly, widely spaced row is one number."""
    pairs = [(x, 100, 20, 40) for x in (0, 28, 110, 138, 220, 248)]
    assert lines_text(read_lines([1, 0, 1, 1, 1, 2], [0.9] * 6, pairs, 0.5)) == "10 11 12"
    spaced = [(x, 100, 20, 40) for x in range(0, 500, 80)]
    assert lines_text(read_lines([5] * len(spaced), [0.9] * len(spaced), spaced, 0.5)) == "5" * len(spaced)


def test_live_frames_drop_clutter_beside_the_held_number():
    """A small confident blob above "98", and two lone digits (a broken 5's halves): what a held card shows."""
    boxes = [(300, 170, 60, 110), (400, 172, 60, 108), (210, 120, 40, 50)]
    lines = read_lines([9, 8, 9], [0.98, 0.96, 0.8], boxes, 0.5)
    assert lines_text(lines) == "9\n98"
    assert lines_text(held_up_lines(lines, [0.98, 0.96, 0.8], boxes)) == "98"
    halves = [(350, 305, 70, 40), (367, 272, 71, 36)]
    lines = read_lines([2, 5], [0.6, 0.77], halves, 0.5)
    assert lines_text(held_up_lines(lines, [0.6, 0.77], halves)) == "5"


def test_two_lines_turned_on_the_page_are_followed():
    """Digits on two lines running at 30 degrees: the angle is found and each line keeps its own digits."""
    theta = np.radians(30)
    boxes, digits = [], []
    for row in range(2):
        for k in range(4):
            u, v = 60.0 * k, 120.0 * row
            x, y = u * np.cos(theta) - v * np.sin(theta) + 300, u * np.sin(theta) + v * np.cos(theta) + 50
            boxes.append((int(x - 15), int(y - 20), 30, 40))
            digits.append(row * 4 + k)
    angle = writing_angle(boxes)
    assert abs(angle - 30) < 5
    assert lines_text(read_lines(digits, [0.9] * 8, boxes, 0.5, angle)) == "0123\n4567"


@needs_mnist
@needs_model
def test_a_mark_the_model_calls_no_digit_does_not_turn_a_level_number(mnist_test):
    """A star drawn under the 3 of a level "39" (a fingertip at a card's edge, live) makes the regions look
    like writing that runs downwards. The turned frame once won because it read anything ("0"); now a turn
    must read surer than the frame as it is, and the lines follow the digits read (by every region's
    direction, "39" read "9")."""
    import cv2

    from edge_app.classifier import load_classifier
    from edge_app.run import DigitPipeline

    from rendering import render_on_paper

    frame = np.full((480, 640, 3), 232, np.uint8)
    for digit, centre_x in ((3, 260), (9, 400)):
        image = mnist_test.images[np.flatnonzero(mnist_test.labels == digit)[0]]
        frame = np.minimum(frame, render_on_paper(image, (480, 640), 120, (200, centre_x), paper=232, ink=30))
    for degrees in (0, 60, 120):
        dx, dy = 24 * np.cos(np.radians(degrees)), 24 * np.sin(np.radians(degrees))
        cv2.line(frame, (int(262 - dx), int(282 - dy)), (int(262 + dx), int(282 + dy)), (30, 30, 30), 6, cv2.LINE_AA)
    result = DigitPipeline(load_classifier(MODEL)).process(frame)
    assert any(not reading.is_digit for reading in result.digits), "the star should be found and called no digit"
    assert (result.text, result.angle) == ("39", 0.0)


@needs_model
def test_folder_of_close_up_digits_is_read_image_by_image():
    """Still images are separate scenes: each is read on its own (no vote), even a digit filling the frame."""
    folder = ROOT / "tests" / "data" / "handdrawn"
    result = run_digits("run", "--source", str(folder), "--headless")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [f"{folder / f'{digit}.png'}: {digit}" for digit in range(10)]


@needs_model
def test_run_reads_the_image_types_predict_reads(tmp_path):
    """A GIF or PBM in a folder, or as the source, is read by `digits run` as by `digits predict` (run's list of
    image suffixes lacked .gif and .pbm: the folder was "no image files found")."""
    import cv2

    from edge_app.images import IMAGE_SUFFIXES

    seven = cv2.imread(str(ROOT / "tests" / "data" / "handdrawn" / "7.png"))
    assert cv2.imwrite(str(tmp_path / "a.gif"), seven)
    assert cv2.imwrite(str(tmp_path / "b.pbm"), np.where(cv2.cvtColor(seven, cv2.COLOR_BGR2GRAY) > 127, 255, 0)
                       .astype(np.uint8))
    folder = run_digits("run", "--source", str(tmp_path), "--headless")
    assert folder.returncode == 0, folder.stderr
    assert folder.stdout.strip().splitlines() == [f"{tmp_path / 'a.gif'}: 7", f"{tmp_path / 'b.pbm'}: 7"]
    predicted = run_digits("predict", "--format", "jsonl", str(tmp_path / "a.gif"), str(tmp_path / "b.pbm"))
    assert predicted.returncode == 0, predicted.stderr
    assert [json.loads(line)["text"] for line in predicted.stdout.splitlines()] == ["7", "7"], predicted.stdout
    single = run_digits("run", "--source", str(tmp_path / "a.gif"), "--headless")
    assert single.returncode == 0 and single.stdout.strip() == f"{tmp_path / 'a.gif'}: 7", single.stderr
    assert {".gif", ".pbm"} <= IMAGE_SUFFIXES  # one list for run and predict


def test_sigterm_ends_run_cleanly(tmp_path):
    """`systemctl stop` sends SIGTERM: run ends as when its source ends (exit 0, `finally` blocks run, so
    the camera is released and sinks such as --mqtt flush), with what was printed kept."""
    import shutil
    import signal
    import time

    handdrawn = ROOT / "tests" / "data" / "handdrawn"
    for k in range(400):
        shutil.copy(handdrawn / f"{k % 10}.png", tmp_path / f"{k:04d}.png")
    process = subprocess.Popen([sys.executable, "-m", "edge_app", "run", "--source", str(tmp_path), "--headless",
                                "--format", "jsonl"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    rest, errors = process.communicate(timeout=60)
    lines = [first] + rest.splitlines()
    assert process.returncode == 0 and "Traceback" not in errors, errors
    assert 0 < len(lines) < 400 and all(json.loads(line)["path"] for line in lines)
