"""`digits draw`: draw a digit with the mouse and watch the model read it, with confidence and the top 3.

The canvas is white paper with black ink, like a card held to the camera, and goes through the same
`preprocess.to_mnist_input` as every other image. Keys: c clears, q or Esc quits.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from edge_app.classifier import Classifier, ModelError, Prediction, load_classifier
from edge_app.models import default_model_path
from edge_app.preprocess import to_mnist_input
from edge_app.run import display_problem

WINDOW_NAME = "digits draw"
CANVAS_SIZE = 400  # px, square
PEN_SHARE = 0.045  # pen width as a share of the canvas side: MNIST-like strokes when shrunk to 20 px
PEN_WIDTH = max(2, int(PEN_SHARE * CANVAS_SIZE))  # px on the canvas
KEY_QUIT, KEY_CLEAR = (ord("q"), 27), ord("c")


def new_canvas(size: int = CANVAS_SIZE) -> np.ndarray:
    return np.full((size, size), 255, np.uint8)  # white paper


def draw_stroke(canvas: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> None:
    """One segment of a pen stroke, from `start` to `end` (canvas pixels; the same point: a dot). The desktop
    pad's mouse and the browser's draw pad (`digits serve`) both draw with it, so they read alike."""
    cv2.line(canvas, start, end, 0, PEN_WIDTH, cv2.LINE_AA)


def read_canvas(canvas: np.ndarray, classifier: Classifier) -> tuple[Prediction | None, np.ndarray | None]:
    """(h, w) uint8 canvas -> (prediction, the 28x28 input the model saw); (None, None) when it is blank."""
    mnist = to_mnist_input(canvas)
    if mnist is None:
        return None, None
    return classifier.predict(mnist[None])[0], mnist


def render_view(canvas: np.ndarray, prediction: Prediction | None, mnist: np.ndarray | None) -> np.ndarray:
    """The window's picture: the canvas, the model's 28x28 input, the digit, its confidence and the top 3."""
    view = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    panel = np.full((canvas.shape[0], 220, 3), 40, np.uint8)
    if prediction is None:
        cv2.putText(panel, "draw a digit", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (200, 200, 200), 2)
    else:
        panel[10:122, 10:122] = cv2.resize(mnist, (112, 112), interpolation=cv2.INTER_NEAREST)[:, :, None]
        shown, colour = (f"{prediction.digit}", (0, 255, 0)) if prediction.is_digit else ("?", (0, 0, 255))
        cv2.putText(panel, shown, (140, 90), cv2.FONT_HERSHEY_SIMPLEX, 2.5, colour, 4)
        for rank, (digit, probability) in enumerate(prediction.top3):
            cv2.putText(panel, f"{digit}: {probability:6.1%}", (10, 170 + 32 * rank), cv2.FONT_HERSHEY_SIMPLEX,
                        0.8, (255, 255, 255), 2)
        if prediction.not_digit:
            cv2.putText(panel, f"no digit: {prediction.not_digit:4.0%}", (10, 170 + 32 * 3), cv2.FONT_HERSHEY_SIMPLEX,
                        0.7, (160, 160, 255), 2)
    cv2.putText(panel, "c clear  q quit", (10, canvas.shape[0] - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                (180, 180, 180), 1)
    return np.hstack([view, panel])


def describe(prediction: Prediction | None) -> str:
    """The terminal's line for a reading: "7 (94.9%)", "no-digit (88.0%)" or "(blank)"."""
    if prediction is None:
        return "(blank)"
    if not prediction.is_digit:
        return f"no-digit ({100 * prediction.not_digit:.1f}%)"
    return f"{prediction.digit} ({100 * prediction.confidence:.1f}%)"


def draw(classifier: Classifier) -> int:
    canvas = new_canvas()
    state = {"last": None, "dirty": True, "said": "(blank)"}

    def on_mouse(event, x, y, flags, _param):
        if event == cv2.EVENT_LBUTTONDOWN or (event == cv2.EVENT_MOUSEMOVE and flags & cv2.EVENT_FLAG_LBUTTON):
            draw_stroke(canvas, state["last"] or (x, y), (x, y))
            state["last"], state["dirty"] = (x, y), True
        elif event == cv2.EVENT_LBUTTONUP:
            state["last"] = None

    cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_AUTOSIZE)
    try:
        cv2.setMouseCallback(WINDOW_NAME, on_mouse)
        view = None
        while True:
            if state["dirty"]:  # classify only after the drawing changed
                prediction, mnist = read_canvas(canvas, classifier)
                view = render_view(canvas, prediction, mnist)
                state["dirty"] = False
                # The terminal gets a line whenever the reading changes (handy over a remote desktop, and testable).
                said = describe(prediction)
                if said.split()[0] != state["said"].split()[0]:
                    print(said, flush=True)
                state["said"] = said
            cv2.imshow(WINDOW_NAME, view)
            key = cv2.waitKey(15) & 0xFF
            if key in KEY_QUIT or cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) < 1:
                return 0
            if key == KEY_CLEAR:
                canvas[:] = 255
                state["dirty"] = True
    finally:
        cv2.destroyAllWindows()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="a .tflite or .onnx model (default: $DIGITS_MODEL, else models/cnn_int8.tflite)")


def main(args: argparse.Namespace) -> int:
    problem = display_problem()
    if problem:
        print(f"digits draw: cannot open a window: {problem}; run it on a machine with a screen", file=sys.stderr)
        return 2
    try:
        classifier = load_classifier(args.model or default_model_path())
    except ModelError as error:
        print(f"digits draw: {error}", file=sys.stderr)
        return 2
    try:
        return draw(classifier)
    except KeyboardInterrupt:
        return 130
