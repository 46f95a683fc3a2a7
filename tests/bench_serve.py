"""Benchmark of `digits serve` against the goals of its issue (a script, not a test: machines are shared).

    python tests/bench_serve.py [--seconds 4] [--json out.json] [--install-size]

Measured, in one run, with `digits serve` in its own process as a user starts it:
- cold start: process start to the first answer (GET /api/state), median of 5;
- live view: 5 headless Chromium pages on a camera-like source (a local MJPEG stream playing the frames of
  a rendered 640x480 clip at 25 FPS): frames per second each page drew, and the delay from the moment the
  app read each frame (the X-Timestamp of its part) to the moment the page drew it, median over all;
- the recognizer's frame rate (frames the loop read per second) on the same stream sent as fast as it is
  taken, with no viewer and with viewers, in alternating windows: 1 and 5 plain HTTP readers of
  /stream.mjpg (the server's own cost) and 5 Chromium pages (the browsers' cost on this machine too);
- the draw pad: the 10 digits of tests/data/handdrawn drawn with mouse events, against `digits predict`;
- with --install-size: what `pip install '.[serve]'` adds to a fresh edge install (a venv built in /tmp).
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import MNIST_DIR, ROOT, run_digits  # noqa: E402
from mjpeg_server import MjpegStream  # noqa: E402
from test_serve import CHROMIUM, CHROMIUM_ARGS, HANDDRAWN, MODEL, Served, _draw, card_frame  # noqa: E402

VIEWERS = 5


class ClipStream(MjpegStream):
    """A local MJPEG stream that plays a clip's frames in a loop: at `fps` (a camera), or with fps=None as fast
    as the reader takes them (the recognizer's own rate)."""

    def __init__(self, jpegs: list[bytes], fps: float | None):
        self._jpegs, self._fps, self._reads, self._current = jpegs, fps, 0, jpegs[0]
        super().__init__(jpeg=jpegs[0], interval_s=1 / fps if fps else 0.0)

    @property
    def jpeg(self) -> bytes:
        # The handler reads `jpeg` twice per part (its length, then its bytes): the second read gets the same
        # frame. One reader at a time (the app).
        self._reads += 1
        if self._reads % 2:
            index = self._reads // 2 if self._fps is None else int(time.monotonic() * self._fps)
            self._current = self._jpegs[index % len(self._jpegs)]
        return self._current

    @jpeg.setter
    def jpeg(self, value: bytes) -> None:
        pass


def clip_jpegs(frames: int = 250) -> list[bytes]:
    """The frames of a rendered 640x480 clip (edge_app.synthetic on MNIST digits; cards of handdrawn digits
    where the MNIST files are absent), as the camera's JPEGs."""
    if MNIST_DIR is not None:
        from edge_app.mnist import load_split
        from edge_app.synthetic import ClipOptions, render_frames

        options = ClipOptions(segments=max(2, frames // 24))
        rendered = [frame for frame, _ in render_frames(load_split("test", MNIST_DIR), seed=5, options=options)]
    else:
        rendered = [card_frame("47", int(10 * (k % 20 - 10) / 10)) for k in range(frames)]
    return [cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for frame in rendered[:frames]]


def cold_start(source: str, runs: int = 5) -> list[float]:
    """Seconds from starting `digits serve` to its first answer."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        served = Served("--source", source)
        while True:
            try:
                if served.request("GET", "/api/state", timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.005)
        times.append(time.perf_counter() - started)
        served.stop()
    return times


class HttpViewer(threading.Thread):
    """A plain reader of /stream.mjpg that counts the parts (as VLC or another program would watch)."""

    def __init__(self, served: Served):
        super().__init__(daemon=True)
        self.served, self.parts, self.stop = served, 0, threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection(self.served.host, int(self.served.port), timeout=10)
        connection.request("GET", "/stream.mjpg")
        response = connection.getresponse()
        while not self.stop.is_set():
            line = response.fp.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                response.fp.readline()  # X-Frame
                response.fp.readline()  # X-Timestamp
                response.fp.readline()  # blank
                response.fp.read(length)
                self.parts += 1
        connection.close()


def frames_read(served: Served) -> int:
    return served.state()["frames"]


def loop_rate(served: Served, seconds: float) -> float:
    """Frames the server's loop read per second over the next `seconds`."""
    start_frames, start = frames_read(served), time.perf_counter()
    time.sleep(seconds)
    return (frames_read(served) - start_frames) / (time.perf_counter() - start)


def open_pages(browser, url: str, count: int):
    contexts = [browser.new_context() for _ in range(count)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.goto(url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(page.evaluate("window.digitsLive.frames") > 2 for page in pages):
        time.sleep(0.1)
    return contexts, pages


def live_view(browser, jpegs: list[bytes], seconds: float) -> dict:
    stream = ClipStream(jpegs, fps=25.0)
    served = Served("--source", stream.url)
    try:
        contexts, pages = open_pages(browser, served.url, VIEWERS)
        time.sleep(1.0)  # settle
        marks = [page.evaluate("window.digitsLive.frames") for page in pages]
        started, read_mark = time.perf_counter(), frames_read(served)
        time.sleep(seconds)
        elapsed = time.perf_counter() - started
        source_fps = (frames_read(served) - read_mark) / elapsed
        per_page, delays = [], []
        for page, mark in zip(pages, marks):
            frames = page.evaluate("window.digitsLive.frames")
            per_page.append((frames - mark) / elapsed)
            delays += page.evaluate(f"window.digitsLive.delays.slice(-{frames - mark})")
        for context in contexts:
            context.close()
        processing = []
        connection = http.client.HTTPConnection(served.host, int(served.port), timeout=10)
        connection.request("GET", "/events")
        response = connection.getresponse()
        named = False  # the data line of a named event (`event: status`), not a frame's reading
        while len(processing) < 100:
            line = response.fp.readline()
            if line.startswith(b"data: ") and not named:
                latency = json.loads(line[6:])["latency_ms"]
                processing.append(latency["detect"] + latency["classify"])
            named = line.startswith(b"event:")
        connection.close()
    finally:
        served.stop()
        stream.close()
    return {"source_fps": round(source_fps, 1), "fps_per_viewer": [round(f, 1) for f in per_page],
            "delay_ms_median": round(statistics.median(delays), 1),
            "delay_ms_p90": round(sorted(delays)[int(0.9 * len(delays))], 1), "delays": len(delays),
            "processing_ms_median": round(statistics.median(processing), 2)}


def recognizer_rate(browser, jpegs: list[bytes], seconds: float) -> dict:
    stream = ClipStream(jpegs, fps=None)
    served = Served("--source", stream.url)
    rates = {"none": [], "http_1": [], "http": [], "browsers": []}
    try:
        time.sleep(2.0)  # the stream connected, the model warm
        for _ in range(3):  # alternating windows: the machine's other load moves all of them alike
            rates["none"].append(loop_rate(served, seconds))
            for count, key in ((1, "http_1"), (VIEWERS, "http")):
                viewers = [HttpViewer(served) for _ in range(count)]
                for viewer in viewers:
                    viewer.start()
                time.sleep(1.0)
                rates[key].append(loop_rate(served, seconds))
                for viewer in viewers:
                    viewer.stop.set()
            rates["none"].append(loop_rate(served, seconds))
            contexts, _ = open_pages(browser, served.url, VIEWERS)
            time.sleep(1.0)
            rates["browsers"].append(loop_rate(served, seconds))
            for context in contexts:
                context.close()
            time.sleep(1.0)
    finally:
        served.stop()
        stream.close()
    none = statistics.median(rates["none"])
    return {"fps": {k: [round(r, 1) for r in v] for k, v in rates.items()},
            "http_1_viewer_ratio": round(statistics.median(rates["http_1"]) / none, 3),
            "http_viewers_ratio": round(statistics.median(rates["http"]) / none, 3),
            "browser_viewers_ratio": round(statistics.median(rates["browsers"]) / none, 3)}


def draw_pad(browser, source: str) -> dict:
    predicted = run_digits("predict", str(HANDDRAWN), "--model", str(MODEL), "--format", "jsonl")
    by_file = {Path(row["path"]).stem: row["digit"] for row in map(json.loads, predicted.stdout.splitlines())}
    served = Served("--source", source)
    try:
        context = browser.new_context(viewport={"width": 1200, "height": 1000})
        page = context.new_page()
        page.goto(served.url)
        drawn = {str(digit): _draw(page, digit)["digit"] for digit in range(10)}
        context.close()
    finally:
        served.stop()
    return {"predict": by_file, "pad": drawn, "same": sum(by_file[k] == drawn[k] for k in drawn)}


def install_size() -> dict:
    """KB that `pip install '.[serve]'` adds to a fresh `pip install .` (pip's own cache keeps it quick)."""
    with tempfile.TemporaryDirectory() as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        site = next((venv / "lib").glob("python*/site-packages"))

        def kilobytes() -> int:
            return int(subprocess.run(["du", "-sk", str(site)], capture_output=True, text=True).stdout.split()[0])

        subprocess.run(pip + [str(ROOT)], check=True, capture_output=True)
        edge = kilobytes()
        subprocess.run(pip + [f"{ROOT}[serve]"], check=True, capture_output=True)
        return {"edge_kb": edge, "with_serve_kb": kilobytes(), "added_mb": round((kilobytes() - edge) / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measuring window")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    parser.add_argument("--install-size", action="store_true", help="also build a venv to measure the extra's size")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results = {}
    jpegs = clip_jpegs()
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
        for jpeg in jpegs[:50]:
            writer.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
        writer.release()
        results["cold_start_s"] = [round(t, 3) for t in cold_start(str(clip))]
        print(f"cold start to first answer: median {statistics.median(results['cold_start_s']):.2f} s "
              f"{results['cold_start_s']}", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            results["live_view"] = live_view(browser, jpegs, 2 * args.seconds)
            print(f"live view, {VIEWERS} pages: {results['live_view']}", flush=True)
            results["recognizer"] = recognizer_rate(browser, jpegs, args.seconds)
            print(f"recognizer: {results['recognizer']}", flush=True)
            results["draw_pad"] = draw_pad(browser, str(clip))
            print(f"draw pad: {results['draw_pad']['same']}/10 as predict reads them {results['draw_pad']}", flush=True)
            browser.close()
    if args.install_size:
        results["install"] = install_size()
        print(f"install: {results['install']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
