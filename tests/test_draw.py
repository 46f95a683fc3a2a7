"""`digits draw`: the canvas is read through the shared preprocessing; no display gives a clean error."""
from __future__ import annotations

import cv2
import pytest

from edge_app.draw import new_canvas, read_canvas, render_view

from conftest import MODELS, run_digits

MODEL = MODELS / "cnn_int8.tflite"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL} not exported yet")


@pytest.fixture(scope="module")
def classifier():
    from edge_app.classifier import load_classifier

    return load_classifier(MODEL)


@needs_model
def test_blank_canvas_reads_nothing(classifier):
    assert read_canvas(new_canvas(), classifier) == (None, None)


@needs_model
def test_drawn_one_and_zero_are_read(classifier):
    one = new_canvas()
    cv2.line(one, (200, 60), (200, 340), 0, 18, cv2.LINE_AA)
    prediction, mnist = read_canvas(one, classifier)
    assert prediction.digit == 1 and mnist.shape == (28, 28)
    zero = new_canvas()
    cv2.ellipse(zero, (200, 200), (90, 140), 0, 0, 360, 0, 18, cv2.LINE_AA)
    assert read_canvas(zero, classifier)[0].digit == 0
    view = render_view(zero, *read_canvas(zero, classifier))
    assert view.shape[0] == zero.shape[0] and view.ndim == 3


def test_no_display_gives_one_line_error():
    result = run_digits("draw", env_extra={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "display" in result.stderr
