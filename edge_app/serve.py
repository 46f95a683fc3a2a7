"""`digits serve`: the recognizer in a browser, served from the device (a headless Raspberry Pi over SSH).

One capture-and-recognize loop, `run.run` (the loop of `digits run`, with the same sources and options),
runs on a background thread and hands every frame to `LiveFeed`, a `run.FrameSink`. A broadcaster thread
turns each frame's reading into the JSON object `digits run --format jsonl` prints, and encodes the
newest overlay to JPEG once (not once per viewer), only while someone watches and at most --stream-fps
times a second; the web server (`edge_app.web.app`: Starlette on uvicorn, one asyncio thread) only copies
those bytes to each viewer. A viewer slower than the camera skips to the newest frame, so nothing queues
up per viewer, and a viewer that leaves frees its task and nothing else. The draw pad and uploads are
read on worker threads with a classifier of their own, through the same code as `digits draw`
(`draw.read_canvas`, so `preprocess.to_mnist_input`) and `digits predict` (`images.decode_still`, the
hardened decode, then `run.read_decoded_still`).

This module holds no web code: the web stack is imported only when the server starts, so `--help`
works without the `serve` extra and a missing extra is one line naming it.
"""
from __future__ import annotations

import argparse
import base64
import glob
import json
import math
import os
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edge_app.classifier import Classifier, ModelError, load_classifier
from edge_app.draw import CANVAS_SIZE, draw_stroke, new_canvas, read_canvas
from edge_app.images import IMAGE_SUFFIXES, MAX_PIXELS, ImageError, decode_still
from edge_app.models import default_model_path
from edge_app.predict import NO_DIGIT_FOUND, FileResult, format_result
from edge_app.run import (
    DigitPipeline,
    FrameResult,
    RunOptions,
    number_in,
    publish_sinks,
    read_decoded_still,
    run_options,
)
from edge_app.run import add_arguments as add_run_arguments
from edge_app.sources import STREAM_PREFIXES, VIDEO_SUFFIXES, SourceError

DEFAULT_PORT = 8000
TOKEN_ENV = "DIGITS_TOKEN"  # the access token, for a systemd unit that should not show it in `ps`
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_.~-]{8,}")  # what secrets.token_urlsafe() gives, and '.' '~'
JPEG_QUALITY = 80  # a 640x480 overlay is about 40 KB: 25 FPS to five viewers is 5 MB/s, fine on a LAN
PENDING_READINGS = 256  # frames' readings waiting for the broadcaster; more means it fell behind and old ones go
STILL_SHOWN_S = 1.0  # a folder of photos is shown one photo a second
MAX_BEHIND_S = 0.5  # a video that falls this far behind its own clock (a slow device) is not rushed to catch up
PAD_POINTS = 20_000  # most points a draw-pad request may carry (a minute of drawing is about 3,000)
PAD_STROKES = 500
# Upload types, by their first bytes: the formats `digits predict` reads (images.IMAGE_SUFFIXES). Anything
# else is refused before OpenCV sees it, which also keeps its rarer decoders (EXR, HDR, JPEG 2000) away from
# the network.
IMAGE_SIGNATURES = {
    "PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",), "BMP": (b"BM",), "GIF": (b"GIF87a", b"GIF89a"),
    "TIFF": (b"II*\x00", b"MM\x00*"), "WebP": (b"RIFF",), "PNM": (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"),
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"  # 0.0.0.0 serves the LAN
    port: int = DEFAULT_PORT  # 0: any free port (said on stderr)
    token: str | None = None  # required on every request when set (?token=, a Bearer header, or the page's cookie)
    max_upload_bytes: int = 20_000_000  # a 48-megapixel phone JPEG is about 15 MB
    stream_fps: float = 30.0  # most frames a second sent to each viewer
    pace: bool = True  # play a video file at its own speed (and photos one a second), as a camera would deliver


class StopServing(Exception):
    """Raised in the frame loop (from `LiveFeed.publish`) to end it when the server stops."""


class UploadError(ValueError):
    """A request the server refuses: `status` is the HTTP status, the message says what to do, in one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, eq=False)
class EncodedFrame:
    index: int  # the frame's index in the loop
    stamp: float  # Unix seconds when the frame was read from the source: the browser measures its delay from it
    jpeg: bytes


def is_timed_source(source: str) -> str | None:
    """"video" for a video file, "stills" for image files (their frames come faster than real time, so
    the live view paces them), None for live sources (cameras, streams) that deliver in real time."""
    if source == "picamera" or source.isdigit():
        return None
    if source.lower().startswith(STREAM_PREFIXES):
        return "video" if source.lower().split("?")[0].endswith(VIDEO_SUFFIXES) else None
    path = Path(source).expanduser()
    if path.is_dir() or glob.has_magic(source) or path.suffix.lower() in IMAGE_SUFFIXES:
        return "stills"
    return "video" if path.is_file() else None


class LiveFeed:
    """The `run.FrameSink` of `digits serve`: takes each frame's result off the frame loop and leaves the
    JSON and the JPEG encoding to a broadcaster thread, so the loop does no more than a copy per shown frame.

    `hub` is where the finished bytes go (`edge_app.web.app.Hub`: `viewers`, `frame(EncodedFrame)`,
    `reading(json_line, stable_text, stamp)`, `status(state, message)`); any thread may call it.
    """
    wants_overlay = True

    def __init__(self, hub, debug: bool = False, stream_fps: float = 30.0, pacing: str | None = None):
        self.hub, self.debug = hub, debug
        self._interval = 1.0 / stream_fps
        self._pacing = pacing  # is_timed_source(...), or None: no pacing
        self._wake = threading.Condition()
        self._readings: deque = deque(maxlen=PENDING_READINGS)
        self._frame: tuple | None = None  # (overlay copy, index, stamp) waiting to be encoded
        self._next_slot = 0.0  # Unix s: the next frame at or after this is encoded for the viewers
        self._media_anchor = None
        self._last_overlay: tuple | None = None  # the newest overlay (not copied), encoded when the source ends
        self.frames = 0  # frames published; read by the page's state
        self.ended = False  # the source has ended (a video or a folder ran out)
        self.stopping = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._broadcast, daemon=True, name="broadcaster")
        self._thread.start()

    def publish(self, frame: np.ndarray, result: FrameResult, overlay: np.ndarray | None, fps: float) -> None:
        if self.stopping.is_set():
            raise StopServing
        # The moment the frame was read: now, less the time detection and classification took.
        stamp = time.time() - (result.latency_ms.get("detect", 0.0) + result.latency_ms.get("classify", 0.0)) / 1000
        if self._pacing is not None:
            stamp = self._pace(result)
        if self.frames == 0:
            self.hub.status("live", "reading frames")
        self.frames += 1
        with self._wake:
            self._readings.append((result, stamp))
            if overlay is not None:
                self._last_overlay = (overlay, result.frame, stamp)
                if self.hub.viewers and stamp >= self._next_slot:
                    # A copy: the source may reuse its buffer, and the loop goes on while this is encoded.
                    self._frame = (overlay.copy(), result.frame, stamp)
                    # At most stream_fps on average; a frame that comes a little early (camera jitter) is not
                    # dropped for it, since the slots keep up to one interval of credit.
                    self._next_slot = max(self._next_slot, stamp - self._interval) + self._interval
            self._wake.notify()

    def _pace(self, result: FrameResult) -> float:
        """Wait until the frame's own time (a video's position; photos one a second) comes round on the wall
        clock, as a camera would deliver it; that moment, in Unix seconds (the frame's stamp: the delay a viewer
        sees is measured from it)."""
        media_s = result.time_ms * STILL_SHOWN_S if self._pacing == "stills" else result.time_ms / 1000
        now = time.time()
        if self._media_anchor is None or now - (self._media_anchor + media_s) > MAX_BEHIND_S:
            self._media_anchor = now - media_s  # the first frame, or fallen behind: go on from here
        due = self._media_anchor + media_s
        if due > now:
            self.stopping.wait(due - now)  # the server's stop ends the wait at once
        return due

    def source_status(self, name: str, message: str | None) -> None:
        """`sources.SOURCE_LISTENERS` hook: a camera that went away and came back."""
        if message is None:
            self.hub.status("live", f"{name} is back")
        else:
            self.hub.status("reconnecting", message)

    def finish(self) -> None:
        """The source ended (a video or a folder ran out): its last frame stays on the page."""
        self.ended = True
        with self._wake:
            if self._last_overlay is not None:
                overlay, index, stamp = self._last_overlay
                self._frame = (overlay, index, stamp)  # the loop is over: nothing draws on it any more
            self._wake.notify()

    def _broadcast(self) -> None:
        while True:
            with self._wake:
                while not self._readings and self._frame is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                readings, self._readings = list(self._readings), deque(maxlen=PENDING_READINGS)
                frame, self._frame = self._frame, None
            for result, stamp in readings:
                self.hub.reading(json.dumps(result.to_json(self.debug)), result.stable_text, stamp)
            if frame is not None:
                overlay, index, stamp = frame
                ok, jpeg = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    self.hub.frame(EncodedFrame(index, stamp, jpeg.tobytes()))

    def close(self) -> None:
        self.stopping.set()
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=2)


@dataclass(frozen=True)
class PadReading:
    digit: int | None  # None: the canvas is blank
    confidence: float = 0.0
    top3: tuple[tuple[int, float], ...] = ()
    mnist: np.ndarray | None = None  # (28, 28) uint8, what the model saw
    not_digit: float = 0.0  # the model's probability that the drawing is no digit (0 for 10-class models)

    def to_json(self) -> dict:
        if self.digit is None:
            return {"digit": None, "text": ""}
        answer = {"digit": self.digit, "text": str(self.digit), "confidence": round(self.confidence, 4),
                  "not_digit": round(self.not_digit, 4), "top3": [[digit, round(p, 4)] for digit, p in self.top3],
                  "input": data_url(self.mnist)}
        if self.not_digit > self.confidence:  # as `digits predict` says it: no digit, with the scores
            answer.update({"digit": None, "text": "no digit"})
        return answer


def parse_strokes(body) -> list[list[tuple[int, int]]]:
    """The draw pad's JSON, {"strokes": [[[x, y], ...], ...]} in canvas pixels (CANVAS_SIZE square), ->
    strokes of whole pixels; UploadError(400) naming what is wrong."""
    strokes = body.get("strokes") if isinstance(body, dict) else None
    if not isinstance(strokes, list) or len(strokes) > PAD_STROKES:
        raise UploadError(400, f'expected {{"strokes": [[[x, y], ...], ...]}} with at most {PAD_STROKES} strokes')
    if sum(len(s) if isinstance(s, list) else 1 for s in strokes) > PAD_POINTS:
        raise UploadError(400, f"too many points (at most {PAD_POINTS}); clear the pad")
    parsed = []
    for stroke in strokes:
        if not isinstance(stroke, list):
            raise UploadError(400, "each stroke must be a list of [x, y] points")
        points = []
        for point in stroke:
            if not (isinstance(point, list) and len(point) == 2 and
                    all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point)):
                raise UploadError(400, f"each point must be [x, y], two finite numbers; got {str(point)[:40]}")
            # Points off the canvas (a finger sliding past its edge) are kept at its border.
            points.append(tuple(int(round(min(max(v, -1), CANVAS_SIZE))) for v in point))
        parsed.append(points)
    return parsed


def render_strokes(strokes: list[list[tuple[int, int]]]) -> np.ndarray:
    """The strokes drawn as `digits draw` draws the mouse's path: its canvas, its `draw_stroke` from point to
    point (a lone point is a dot)."""
    canvas = new_canvas()
    for points in strokes:
        for start, end in zip(points[:1] + points[:-1], points):
            draw_stroke(canvas, start, end)
    return canvas


def read_pad(strokes: list[list[tuple[int, int]]], classifier: Classifier) -> PadReading:
    prediction, mnist = read_canvas(render_strokes(strokes), classifier)
    if prediction is None:
        return PadReading(None)
    return PadReading(prediction.digit, prediction.confidence, prediction.top3, mnist, prediction.not_digit)


def image_type(data: bytes) -> str | None:
    """"PNG", "JPEG" ... from the file's first bytes; None when it is none of the formats `digits predict` reads."""
    for name, signatures in IMAGE_SIGNATURES.items():
        if data.startswith(signatures) and (name != "WebP" or data[8:12] == b"WEBP"):
            return name
    return None


def read_upload(data: bytes, name: str, pipeline: DigitPipeline, debug: bool = False, overlay: bool = False
                ) -> tuple[dict, np.ndarray | None]:
    """Uploaded image bytes, read as `digits predict` reads the same file -> (the JSON object it prints with
    --format jsonl, the overlay when asked); UploadError (4xx) for anything that is not a readable image."""
    if not data:
        raise UploadError(400, "the upload is empty: send an image file as the request body")
    kind = image_type(data)
    if kind is None:
        raise UploadError(415, f"not an image: send a {', '.join(IMAGE_SIGNATURES)} file as the request body "
                               "(not a form: curl --data-binary @photo.jpg)")
    started = time.perf_counter()
    try:
        still = decode_still(data, name)  # the hardened decode: header size check, reduced JPEG, EXIF turn
    except ImageError as error:
        status = 413 if "over the limit" in str(error) or "more than" in str(error) else 400
        raise UploadError(status, f"{error} ({kind} upload)") from None
    decode_ms = (time.perf_counter() - started) * 1000
    result, shown = read_decoded_still(still, name, pipeline, decode_ms=decode_ms, overlay=overlay, debug=debug)
    if not result.digits:
        answer = {"path": name, "text": "", "lines": [], "digits": [], "latency_ms": result.to_json()["latency_ms"],
                  "message": NO_DIGIT_FOUND}
        if debug:
            answer["rejected"] = result.to_json(debug=True)["rejected"]
        return answer, shown
    return json.loads(format_result(FileResult(name, result, None), "jsonl", debug)), shown


def data_url(image: np.ndarray, kind: str = "png") -> str:
    """The image as a data: URL the page shows without another request: "png" (the 28x28 input, exact) or
    "jpeg" (a photo's overlay, a tenth of the bytes)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if kind == "jpeg" else []
    encoded = cv2.imencode(f".{kind}", image, params)[1]
    return f"data:image/{kind};base64," + base64.b64encode(encoded.tobytes()).decode()


class Readers:
    """The draw pad's and the uploads' model, apart from the frame loop's (LiteRT interpreters are not
    thread-safe): one at a time, on the web server's worker threads."""

    def __init__(self, options: RunOptions):
        self.classifier = load_classifier(options.model or default_model_path(), threads=options.threads,
                                          verify=not options.allow_modified_model)
        self.pipeline = DigitPipeline(self.classifier, options.min_confidence,
                                      live_detector=options.live_detector, still_detector=options.still_detector)
        self.debug = options.debug
        self._lock = threading.Lock()

    def pad(self, strokes) -> PadReading:
        with self._lock:
            return read_pad(strokes, self.classifier)

    def upload(self, data: bytes, name: str, overlay: bool) -> dict:
        with self._lock:
            answer, shown = read_upload(data, name, self.pipeline, self.debug, overlay)
        if shown is not None:
            answer["overlay"] = data_url(_fit(shown, 1280), "jpeg")
        return answer


def _fit(image: np.ndarray, longest: int) -> np.ndarray:
    """The image shrunk so its longer side is at most `longest` px (a phone photo's overlay for a phone's screen)."""
    scale = longest / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)


_port = number_in(int, 0, 65535)
_upload_mb = number_in(float, 0, MAX_PIXELS / 1e6, above_low=True)
_stream_fps = number_in(float, 0, 120, above_low=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)  # the sources and options of `digits run` (and whatever is added to it)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on: 127.0.0.1 is this device only, 0.0.0.0 the whole LAN")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="TCP port (0: any free one)")
    parser.add_argument("--token", default=None,
                        help=f"access token every request must carry: open http://HOST:PORT/?token=TOKEN "
                             f"(default: ${TOKEN_ENV}, else none)")
    parser.add_argument("--max-upload-mb", dest="max_upload_mb", type=_upload_mb, default=20.0,
                        help="largest photo accepted, in megabytes")
    parser.add_argument("--stream-fps", dest="stream_fps", type=_stream_fps, default=30.0,
                        help="most frames a second sent to each viewer of the live view")
    parser.add_argument("--no-pace", dest="pace", action="store_false",
                        help="read a video file as fast as it decodes instead of at its own speed "
                             "(default: paced like a camera, photos one a second)")


def serve_options(args: argparse.Namespace) -> ServeOptions:
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    # Only characters that stay the same in a URL's ?token=, a cookie and a header: '+' reads as a space in a
    # query, ';' ends a cookie, and a cookie or header cannot carry '€' at all (the page's answer would fail).
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise ValueError("--token: use at least 8 characters from A-Z a-z 0-9 - _ . ~ "
                         "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe())')")
    return ServeOptions(host=args.host, port=args.port, token=token, max_upload_bytes=int(args.max_upload_mb * 1e6),
                        stream_fps=args.stream_fps, pace=args.pace)


def main(args: argparse.Namespace) -> int:
    try:
        options = replace(run_options(args), headless=True)  # the browser is the window
        serving = serve_options(args)
        readers = Readers(options)
        sinks = publish_sinks(args)  # last: it connects to a broker, so a bad option above is said first
    except (ValueError, ModelError) as error:
        print(f"digits serve: {error}", file=sys.stderr)
        return 2
    from edge_app.web.app import serve  # the `serve` extra: a missing one is named by the dispatcher

    try:
        return serve(options, serving, readers, sinks)
    except SourceError as error:
        print(f"digits serve: {error}", file=sys.stderr)
        return 2
    finally:
        for sink in sinks:
            sink.close()
