"""Where frames come from: a camera index, a video file, an image file, a folder or glob of images, a
stream URL, or a Raspberry Pi CSI camera through Picamera2 (`picamera`).

Every source is a context manager with `read() -> (frame (h, w, 3) uint8 BGR, time_ms) | None`;
None means the source has ended (a video or image list ran out). Frames are never mirrored: digits
are not symmetric, and a mirrored 2 is not a 2. A live camera or stream that stops delivering frames
(unplugged, cut, or frozen: streams time out after STREAM_TIMEOUT_MS) is re-opened every second for as
long as it takes, and the app says so on stderr instead of dying; `--give-up-after S` ends it instead.
"""
from __future__ import annotations

import atexit
import glob
import queue
import stat
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge_app.images import IMAGE_SUFFIXES, ImageError, read_still
from edge_app.service import heartbeat
from edge_app.stderr import native_stderr_silenced

STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# Waits between attempts to re-open a camera or stream that went silent; the last repeats for as long as it
# takes (a live source is never given up unless --give-up-after says so), so frames are back within a
# second of the source returning.
REOPEN_BACKOFF_S = (0.2, 0.5, 1.0)
REMIND_EVERY_S = 30.0  # while a source stays away, say so again this often
MAX_FAILED_READS = 5  # consecutive empty reads before a camera counts as gone
PICAMERA_CAPTURE_TIMEOUT_S = 2.0  # a CSI capture that takes longer is taken as a wedged camera
STREAM_TIMEOUT_MS = 2000  # a stream that connects or sends nothing for this long counts as gone (a frozen stream)
# A stream read is given up on this long after FFmpeg's own timeout should have ended it (seconds).
STREAM_READ_LIMIT_S = STREAM_TIMEOUT_MS / 1000 + 1.0
RELEASE_LIMIT_S = 1.0  # seconds a capture or camera may take to let go of its device or connection
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class SourceError(RuntimeError):
    """A source that cannot be opened; the message names it and says what to do."""


@dataclass(frozen=True)
class CameraOptions:
    width: int | None = None  # requested capture size in pixels; None keeps the camera's default
    height: int | None = None
    give_up_after: float | None = None  # seconds a live source may stay away before the app gives up; None: never


def _clock_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


# Told (name, the line said on stderr) when a live source stops delivering frames and (name, None) when it is
# back, on the frame loop's thread: `digits serve` shows "reconnecting" on its page. Empty for other commands.
SOURCE_LISTENERS: list = []


def _tell_listeners(name: str, message: str | None) -> None:
    for listener in list(SOURCE_LISTENERS):
        listener(name, message)


def reopen_until_back(name: str, problem: str, open_once, give_up_after: float | None):
    """Call `open_once()` (None while the source is away) until it gives a source, and return that.

    Every second after a short backoff, for as long as it takes; said on stderr when the source goes
    (with `problem`), every REMIND_EVERY_S while it stays away, and when it is back. SourceError when it
    stays away longer than `give_up_after` seconds (--give-up-after). Waiting on purpose is being alive,
    so each attempt is a heartbeat for systemd's watchdog.
    """
    lost = reminded = time.perf_counter()
    message = f"{name} stopped delivering frames{problem}; re-opening until it is back"
    print(message, file=sys.stderr, flush=True)
    _tell_listeners(name, message)
    attempt = 0
    while True:
        time.sleep(REOPEN_BACKOFF_S[min(attempt, len(REOPEN_BACKOFF_S) - 1)])
        heartbeat()
        attempt += 1
        source = open_once()
        away = time.perf_counter() - lost
        if source is not None:
            print(f"{name} is back after {away:.1f} s", file=sys.stderr, flush=True)
            _tell_listeners(name, None)
            return source
        if give_up_after is not None and away >= give_up_after:
            raise SourceError(f"{name} has been away for {away:.0f} s (--give-up-after {give_up_after:g}): giving up")
        if time.perf_counter() - reminded >= REMIND_EVERY_S:
            reminded = time.perf_counter()
            print(f"{name} still away after {away:.0f} s; still trying", file=sys.stderr, flush=True)


class CaptureSource:
    """A cv2.VideoCapture: camera index, video file or stream URL."""

    def __init__(self, target: int | str, live: bool, options: CameraOptions = CameraOptions()):
        self.target, self.live, self.options = target, live, options
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self._start = time.perf_counter()
        self._failed_reads = 0
        # A stream's reads run on a worker thread that the app waits for, so Ctrl-C acts at once even while
        # a frozen stream holds a read for its 2 s timeout (OpenCV's read cannot be interrupted).
        stream = isinstance(target, str) and target.lower().startswith(STREAM_PREFIXES)
        self._reader = _Worker() if stream else None
        # OpenCV's own log lines ("Stream timeout triggered") stay off stderr for as long as a stream is open.
        self._log = getattr(cv2.utils, "logging", cv2)
        self._log_level = self._log.getLogLevel()
        if stream:
            self._log.setLogLevel(0)
        self._capture = self._open()
        if self._capture is None:
            raise SourceError(self._open_error())

    def _read_quietly(self):
        with native_stderr_silenced():  # FFmpeg's complaints about a cut stream
            return self._capture.read()

    def _open_error(self) -> str:
        if isinstance(self.target, int):
            return (f"cannot open camera {self.target}: it is missing or busy; check the cable, close other "
                    "programs using it, or pick another with --source N (or a video file)")
        if self.live:
            return f"cannot open stream {self.target}: check the URL and that the stream is running"
        return f"cannot read video {self.target}: the file is not a video OpenCV can decode"

    def _open(self):
        # OpenCV logs a warning per backend it tries for a missing camera, FFmpeg one per failed connection;
        # our one-line messages say it better. OpenCV 5 keeps the log level in cv2.utils.logging, the 4.x
        # wheels (a Pi's numpy<2 route) in cv2; 0 is silent.
        log = getattr(cv2.utils, "logging", cv2)
        previous = log.getLogLevel()
        log.setLogLevel(0)
        try:
            with native_stderr_silenced():
                if isinstance(self.target, str) and self.target.lower().startswith(STREAM_PREFIXES):
                    # Timeouts, so that a stream that stops sending is noticed instead of blocking for 30 s.
                    capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG,
                                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
                else:
                    capture = cv2.VideoCapture(self.target)
        finally:
            log.setLogLevel(previous)
        if not capture.isOpened():
            capture.release()
            return None
        if isinstance(self.target, int):
            if self.options.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.options.width)
            if self.options.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.options.height)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of stale ones
        return capture

    def read(self) -> tuple[np.ndarray, float] | None:
        while True:
            if self._capture is None:
                ok, frame = False, None
            elif self._reader is not None:
                try:
                    # Not silenced with a file-descriptor swap: that would hide the main thread's messages too.
                    ok, frame = self._reader.call(self._capture.read, STREAM_READ_LIMIT_S)
                except TimeoutError:  # FFmpeg's own timeout did not fire: leave that capture to its thread
                    self._release()
                    self._reader.stop()
                    self._reader = _Worker()
                    ok, frame = False, None
            else:
                ok, frame = self._read_quietly()
            if ok and frame is not None and frame.size:
                self._failed_reads = 0
                if self.live:
                    return frame, _clock_ms(self._start)
                return frame, float(self._capture.get(cv2.CAP_PROP_POS_MSEC))
            if not self.live:
                return None  # a video file has ended
            self._failed_reads += 1
            if self._failed_reads >= MAX_FAILED_READS:
                self._reopen()

    def _reopen(self) -> None:
        self._release()
        self._capture = reopen_until_back(self.name, "", self._open, self.options.give_up_after)
        self._failed_reads = 0

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is None:
            return
        if self._reader is None:
            capture.release()
        else:
            # Queued behind a read that may still be in flight (Ctrl-C during a frozen stream): releasing the
            # capture under that read would pull its buffers away.
            self._reader.submit(capture.release, RELEASE_LIMIT_S)

    def close(self) -> None:
        """Let go of the capture without waiting for a stream's read in flight; the process' exit waits for it
        (see `_finish_native_calls`)."""
        self._release()
        if self._reader is not None:
            # After the read in flight too, or its "Stream timeout triggered" would reach stderr.
            self._reader.submit(partial(self._log.setLogLevel, self._log_level), RELEASE_LIMIT_S)
            self._reader.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ImageListSource:
    """Still images, one frame each, in name order; unreadable files are reported and skipped."""

    # Each image is its own scene: no vote across images, and every image's reading is printed.
    independent_frames = True

    def __init__(self, paths: list[Path], name: str):
        if not paths:
            raise SourceError(f"--source {name}: no image files found ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.paths, self.name = paths, name
        self._next = 0
        self.current: Path | None = None  # the image last read
        self.current_scale = 1.0  # its file pixels per decoded pixel (a JPEG is decoded reduced)
        self.failures = 0  # images that could not be read

    def read(self) -> tuple[np.ndarray, float] | None:
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            try:
                still = read_still(path)
            except ImageError as error:
                self.failures += 1
                print(f"{error}; skipped", file=sys.stderr)
                continue
            self.current, self.current_scale = path, still.scale
            return still.image, float(self._next - 1)  # time_ms: the image's index, images have no clock
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Worker:
    """One daemon thread that runs calls for the caller, who gives up waiting after a timeout and can be
    interrupted (Ctrl-C) while waiting. A daemon thread, so that a capture stuck forever in native code
    cannot keep the process from exiting; but the exit waits (`_finish_native_calls`) for a call that is
    still within its time limit: Python kills a daemon thread that comes back from native code while the
    interpreter shuts down, and inside OpenCV's C++ that aborts the process ("FATAL: exception not
    rethrown") or crashes it."""

    def __init__(self):
        self._requests: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0  # calls handed over and not yet returned
        self._deadline = 0.0  # time.monotonic() by which they should all have returned
        self._thread = threading.Thread(target=self._serve, daemon=True, name="capture")
        _WORKERS.add(self)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while (request := self._requests.get()) is not None:
                function, answer = request
                try:
                    outcome = (True, function())
                except BaseException as error:  # handed to the caller, which decides
                    outcome = (False, error)
                with self._lock:
                    self._pending -= 1
                if answer is not None:
                    answer.put(outcome)
                del function, request, outcome  # a capture's last reference goes here, not on another thread
        finally:
            _WORKERS.discard(self)

    def _hand_over(self, function, answer, limit: float) -> None:
        # Calls run one after another: a call queued behind others has its limit after theirs.
        with self._lock:
            now = time.monotonic()
            self._deadline = (max(self._deadline, now) if self._pending else now) + limit
            self._pending += 1
        self._requests.put((function, answer))

    def call(self, function, timeout: float):
        """function() on the worker thread; TimeoutError when it has not returned after `timeout` seconds."""
        answer: queue.Queue = queue.Queue(maxsize=1)
        self._hand_over(function, answer, timeout)
        try:
            ok, value = answer.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if not ok:
            raise value
        return value

    def submit(self, function, limit: float) -> None:
        """function() on the worker thread after the calls before it, without waiting; errors are dropped."""
        self._hand_over(function, None, limit)

    def stop(self) -> None:
        """End the thread once the calls handed over so far are done."""
        self._requests.put(None)

    def finish(self) -> None:
        """Wait until the thread has ended, or until its calls are past their limits (a capture stuck for good)."""
        while self._thread.is_alive() and (left := self._deadline - time.monotonic()) > 0:
            try:
                self._thread.join(left)
            except (KeyboardInterrupt, SystemExit):  # a second Ctrl-C or SIGTERM: the wait is short anyway
                pass


_WORKERS: set[_Worker] = set()  # workers whose thread is running


@atexit.register
def _finish_native_calls() -> None:
    """At exit, before Python stops daemon threads, let every worker finish its call in flight (a stream read
    ends within its FFmpeg timeout) and release what it was handed, so no thread is killed inside native code."""
    for worker in list(_WORKERS):
        worker.stop()
    for worker in list(_WORKERS):
        worker.finish()


class PicameraFrames:
    """Adapts `edge_app.picamera.PicameraSource` (imported only here) to the (frame, time_ms) protocol.

    A capture that fails (the camera dropped off the bus, libcamera errors) or does not return within
    PICAMERA_CAPTURE_TIMEOUT_S (a wedged pipeline) closes the camera and re-opens it, as OpenCV sources
    are re-opened: every second, for as long as it takes, unless --give_up_after says otherwise.
    """

    def __init__(self, options: CameraOptions):
        from edge_app.picamera import PicameraError, PicameraSource

        self._error, self._make = PicameraError, PicameraSource
        self.options = options
        try:
            self._camera = self._open()
        except PicameraError as error:
            raise SourceError(f"--source picamera: {error}") from None
        self.name = self._camera.name
        self._start = time.perf_counter()
        self._worker = _Worker()

    def _open(self):
        return self._make(self.options.width or 640, self.options.height or 480)

    def read(self) -> tuple[np.ndarray, float] | None:
        while True:
            problem = None
            if self._camera is not None:
                try:
                    frame = self._worker.call(self._camera.read, PICAMERA_CAPTURE_TIMEOUT_S)
                except TimeoutError:
                    problem = f"no frame within {PICAMERA_CAPTURE_TIMEOUT_S:g} s"
                    # The stuck capture keeps its (daemon) thread, which ends if it ever returns; the next
                    # camera gets a new one.
                    self._worker.stop()
                    self._worker = _Worker()
                except Exception as error:  # libcamera/Picamera2 raise RuntimeError and friends
                    problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                else:
                    if frame is not None:
                        return frame, _clock_ms(self._start)
                    problem = "the camera was closed"
            self._reopen(problem or "not open")

    def _reopen(self, problem: str) -> None:
        # Closed here, not on the worker: a capture that hangs holds the worker, and closing the camera is
        # what may free it.
        camera, self._camera = self._camera, None
        _close_quietly(camera)
        self._camera = reopen_until_back(self.name, f" ({problem})", self._try_open, self.options.give_up_after)

    def _try_open(self):
        try:
            return self._open()
        except self._error:
            return None

    def close(self) -> None:
        """Close the camera after the capture in flight (Ctrl-C or SIGTERM mid-capture), not under it; the
        process' exit waits for both (see `_finish_native_calls`)."""
        camera, self._camera = self._camera, None
        if camera is not None:
            self._worker.submit(partial(_close_quietly, camera), RELEASE_LIMIT_S)
        self._worker.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _close_quietly(camera) -> None:
    if camera is None:
        return
    try:
        camera.close()
    except Exception:  # a camera that failed may fail to stop too; it is being let go of anyway
        pass


def open_source(source: str, options: CameraOptions = CameraOptions()):
    """`--source` text -> an opened frame source; SourceError with a one-line reason when it cannot be."""
    if source == "picamera":
        return PicameraFrames(options)
    if source.isdigit():
        return CaptureSource(int(source), live=True, options=options)
    if source.lower().startswith(STREAM_PREFIXES):
        # A video file served over HTTP ends like any video file; a stream (RTSP, UDP, an HTTP camera) is
        # live and is re-opened.
        is_file = source.lower().startswith(("http://", "https://")) and \
            urlsplit(source).path.lower().endswith(VIDEO_SUFFIXES)
        return CaptureSource(source, live=not is_file, options=options)
    path = Path(source).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return ImageListSource(images, f"folder {path}")
    if glob.has_magic(source):
        matches = sorted(Path(p) for p in glob.glob(source, recursive=True))
        images = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        return ImageListSource(images, f"pattern {source}")
    if not path.exists():
        raise SourceError(f"--source {source}: no such file, folder or camera; pass a camera index (0), "
                          "a video or image file, a folder, a glob, a stream URL or 'picamera'")
    mode = path.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):  # a camera device (/dev/video0) is a character device
        raise SourceError(f"--source {source}: not a regular file or camera device (a FIFO or socket would "
                          "block forever); pass a file, a folder, a camera index or a stream URL")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageListSource([path], f"image {path}")
    return CaptureSource(str(path), live=False, options=options)
