"""`digits serve` in a real browser: headless Chromium (the system's, /usr/bin/chromium) driven by Playwright.

The server runs as a user starts it, `digits serve` in its own process, on a rendered clip (a card showing
"47", drawn from tests/data/handdrawn). The browser tests skip, saying why, where Chromium or Playwright
is missing; CI installs Chromium with apt (.ci/run) and Playwright with the dev extra.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import MODELS, ROOT, run_digits
from make_handdrawn import STROKES, catmull_rom
from mjpeg_server import MjpegStream

MODEL = MODELS / "cnn_int8.tflite"
HANDDRAWN = ROOT / "tests" / "data" / "handdrawn"
CHROMIUM = os.environ.get("DIGITS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytest.importorskip("starlette", reason="digits serve needs the serve extra: pip install -e '.[serve]'")


def _browser_problem() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


needs_browser = pytest.mark.skipif(_browser_problem() is not None, reason=str(_browser_problem()))


def card_frame(digits: str = "47", shift: int = 0) -> np.ndarray:
    """A 640x480 frame: a paper card with the handdrawn digits on it, held in front of a green wall."""
    frame = np.full((480, 640, 3), (90, 120, 100), np.uint8)
    frame[90:390, 110 + shift:530 + shift] = (228, 232, 236)
    for k, digit in enumerate(digits):
        written = cv2.resize(cv2.imread(str(HANDDRAWN / f"{digit}.png")), (200, 200), interpolation=cv2.INTER_AREA)
        frame[140:340, 120 + shift + 200 * k:320 + shift + 200 * k] = written
    return frame


def render_card_clip(path: Path, seconds: float = 30.0, fps: float = 25.0, digits: str = "47") -> Path:
    """A 640x480 MJPG clip of the card drifting a little left and right, as a held card does."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for index in range(int(seconds * fps)):
        writer.write(card_frame(digits, int(10 * np.sin(index / 10))))
    writer.release()
    return path


class Served:
    """`digits serve ... --port 0` in its own process; `url` once it says where it listens."""

    def __init__(self, *args: str, env_extra: dict | None = None, timeout: float = 30):
        self.process = subprocess.Popen([sys.executable, "-m", "edge_app", "serve", "--model", str(MODEL), "--port", "0",
                                         *args], cwd=ROOT, env={**os.environ, **(env_extra or {})},
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.errors: list[str] = []
        self.output: list[str] = []
        threading.Thread(target=self._drain, args=(self.process.stderr, self.errors), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.process.stdout, self.output), daemon=True).start()
        deadline = time.monotonic() + timeout
        self.url = None
        while self.url is None and time.monotonic() < deadline and self.process.poll() is None:
            found = [re.search(r"http://[^/\s]+/", line) for line in list(self.errors)]
            self.url = next((m.group(0) for m in found if m), None)
            time.sleep(0.05)
        if self.url is None:
            self.stop()
            raise AssertionError(f"digits serve did not start: {''.join(self.errors)}")
        self.host, self.port = self.url[7:-1].rsplit(":", 1)

    @staticmethod
    def _drain(stream, lines) -> None:
        for line in stream:
            lines.append(line)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30) -> tuple[int, dict, dict]:
        """(status, JSON body, headers) of one request on a fresh connection."""
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            answer = json.loads(raw) if response.getheader("content-type", "").startswith("application/json") else {}
            return response.status, answer, dict(response.getheaders())
        finally:
            connection.close()

    def state(self) -> dict:
        return self.request("GET", "/api/state")[1]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"digits serve did not stop within 15 s of signal {sig}")
        time.sleep(0.1)
        return self.process.returncode, "".join(self.errors)


def wait_for(condition, timeout: float = 15.0, every: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return render_card_clip(tmp_path_factory.mktemp("serve") / "card47.avi", seconds=8.0)


@pytest.fixture(scope="module")
def camera():
    """A live source that never ends: an MJPEG stream of the "47" card at 25 FPS, as an IP camera serves it."""
    stream = MjpegStream(jpeg=cv2.imencode(".jpg", card_frame("47"))[1].tobytes())
    yield stream
    stream.close()


@pytest.fixture(scope="module")
def server(camera):
    served = Served("--source", camera.url, "--max-upload-mb", "0.5")
    yield served
    code, errors = served.stop()
    assert code == 0, f"SIGTERM: exit status {code}\n{errors}"
    assert "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def browser():
    problem = _browser_problem()
    if problem:
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()


def _frames(page) -> int:
    return page.evaluate("window.digitsLive.frames")


@needs_browser
def test_page_shows_the_frames_and_the_reading_of_a_rendered_clip(clip, browser):
    served = Served("--source", str(clip))
    try:
        context = browser.new_context(viewport={"width": 1200, "height": 1000})
        page = context.new_page()
        page.goto(served.url)
        wait_for(lambda: _frames(page) >= 10, what="10 frames in the live view")
        wait_for(lambda: page.inner_text("#reading").strip() == "47", what="the reading 47 on the page")
        assert page.inner_text("#status") == "live"
        assert "47" in page.inner_text("#history")
        last = page.evaluate("window.digitsReading.last")  # an object of `digits run --format jsonl`
        assert last["stable_text"] == "47" and [d["digit"] for d in last["digits"]] == [4, 7]
        assert {"frame", "time_ms", "text", "lines", "latency_ms"} <= set(last)
        # The canvas shows the frame: the paper card in its middle is light.
        centre = page.evaluate("Array.from(document.getElementById('live').getContext('2d')"
                               ".getImageData(320, 100, 1, 1).data)")
        assert min(centre[:3]) > 180, centre
        # The clip plays at its own speed (25 FPS, 8 s), then its last frame stays for pages opened later.
        wait_for(lambda: page.inner_text("#status") == "ended", timeout=20, what="the end of the clip")
        later = context.new_page()
        later.goto(served.url)
        wait_for(lambda: _frames(later) >= 1, what="the last frame on a page opened after the end")
        assert served.state()["frames"] == 200
        context.close()
    finally:
        code, errors = served.stop()
    assert code == 0 and "Traceback" not in errors, errors


@needs_browser
def test_two_pages_both_get_frames_and_a_page_that_leaves_frees_its_view(server, browser):
    contexts = [browser.new_context() for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    try:
        for opened in pages:
            opened.goto(server.url)
        wait_for(lambda: all(_frames(p) >= 5 for p in pages), what="frames on both pages")
        before = [_frames(p) for p in pages]
        time.sleep(2.0)
        gained = [_frames(p) - b for p, b in zip(pages, before)]
        assert min(gained) >= 20, f"frames in 2 s per page: {gained}"  # the camera sends 25 FPS
        assert server.state()["viewers"] == 2
    finally:
        for context in contexts:
            context.close()
    wait_for(lambda: server.state()["viewers"] == 0, timeout=5, what="the views to be freed")


def _pad_path(digit: int, size: int) -> list[list[tuple[float, float]]]:
    """The pen paths of tests/data/handdrawn (make_handdrawn.STROKES, smoothed and slanted as there) on the pad."""
    strokes = []
    for stroke in STROKES[digit]:
        path = catmull_rom(stroke)
        path[:, 0] += 0.12 * (50 - path[:, 1])
        strokes.append([(x * size * 0.8 / 100 + size * 0.1, y * size * 0.8 / 100 + size * 0.1) for x, y in path])
    return strokes


def _draw(page, digit: int) -> dict:
    """Draw `digit` on the pad with mouse events, stroke by stroke, and wait for the device's answer."""
    page.click("#pad-clear")
    box = page.locator("#pad").bounding_box()
    size = page.evaluate("document.getElementById('pad').width")
    scale = box["width"] / size
    for stroke in _pad_path(digit, size):
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.up()
    wait_for(lambda: page.evaluate("!window.digitsPad.busy && window.digitsPad.answered === window.digitsPad.version"),
             what="the pad's answer")
    return page.evaluate("window.digitsPad.last")


@needs_browser
def test_a_digit_drawn_with_the_mouse_is_read(server, page):
    page.goto(server.url)
    answer = _draw(page, 7)
    assert answer["digit"] == 7, answer
    assert len(answer["top3"]) == 3 and answer["top3"][0][0] == 7
    assert page.inner_text("#pad-digit") == "7"
    assert page.evaluate("document.getElementById('pad-input').naturalWidth") == 28  # the 28x28 input, shown
    page.click("#pad-clear")
    wait_for(lambda: page.evaluate("window.digitsPad.last.digit === null"), what="a blank pad after Clear")


@needs_browser
@pytest.mark.slow
def test_the_ten_handdrawn_digits_drawn_in_the_browser_read_as_predict_reads_them(server, page):
    predicted = run_digits("predict", str(HANDDRAWN), "--model", str(MODEL), "--format", "jsonl")
    assert predicted.returncode == 0, predicted.stderr
    by_file = {Path(row["path"]).stem: row["digit"] for row in map(json.loads, predicted.stdout.splitlines())}
    page.goto(server.url)
    drawn, page_heights = {}, set()
    for digit in range(10):
        drawn[str(digit)] = _draw(page, digit)["digit"]
        page_heights.add(page.evaluate("document.documentElement.scrollHeight"))
    print("predict:", by_file, "pad:", drawn)
    assert drawn == by_file
    # Readings piling up and the pad's answers changing never change the page's height: a page that grows or
    # shrinks under a finger drawing moves the pad (here 8 and 9 were drawn off the pad and read as no digit).
    assert len(page_heights) == 1, page_heights


@needs_browser
def test_a_photo_uploaded_in_the_page_is_read_with_its_overlay(server, page):
    page.goto(server.url)
    page.set_input_files("#upload-file", str(HANDDRAWN / "3.png"))
    answer = wait_for(lambda: page.evaluate("!window.digitsUpload.busy && window.digitsUpload.last"), what="the upload")
    assert answer["status"] == 200 and answer["digit"] == 3 and answer["text"] == "3", answer
    assert page.inner_text("#upload-answer") == "3"
    wait_for(lambda: page.evaluate("document.getElementById('upload-overlay').naturalWidth") > 0, what="the overlay")
    page.set_input_files("#upload-file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    wait_for(lambda: page.evaluate("!window.digitsUpload.busy && window.digitsUpload.last.status === 415"),
             what="the refusal of a text file")
    assert "not an image" in page.inner_text("#upload-detail")


def test_the_upload_endpoint_answers_what_predict_prints(server, tmp_path):
    page = tmp_path / "page.jpg"
    sheet = np.full((600, 900, 3), 232, np.uint8)
    for k, digit in enumerate("2590"):
        sheet[150:390, 60 + 200 * k:300 + 200 * k] = cv2.resize(cv2.imread(str(HANDDRAWN / f"{digit}.png")), (240, 240))
    cv2.imwrite(str(page), sheet)
    gif = tmp_path / "seven.gif"  # digits predict reads GIFs (images.IMAGE_SUFFIXES), so an upload must too
    assert cv2.imwrite(str(gif), cv2.imread(str(HANDDRAWN / "7.png")))
    for path in (HANDDRAWN / "8.png", page, gif):
        predicted = run_digits("predict", str(path), "--model", str(MODEL), "--format", "jsonl")
        expected = json.loads(predicted.stdout)
        status, answer, _ = server.request("POST", f"/api/read?name={path}", path.read_bytes(),
                                           {"Content-Type": "image/jpeg" if path.suffix == ".jpg" else "image/png"})
        assert status == 200, answer
        for row in (expected, answer):
            row.pop("latency_ms")
        assert answer == expected


def test_a_blank_upload_gets_the_line_predict_prints(server, tmp_path):
    blank = tmp_path / "blank.png"
    assert cv2.imwrite(str(blank), np.full((480, 640, 3), 235, np.uint8))
    predicted = run_digits("predict", str(blank), "--model", str(MODEL))
    prefix = f"digits predict: {blank}: "
    assert predicted.returncode == 1 and predicted.stderr.startswith(prefix), predicted.stderr
    status, answer, _ = server.request("POST", "/api/read?name=blank.png", blank.read_bytes(),
                                       {"Content-Type": "image/png"})
    assert status == 200 and answer["text"] == "" and answer["digits"] == [], answer
    assert answer["message"] == predicted.stderr.strip().removeprefix(prefix)


def _png(width: int, height: int, pixels: bytes | None = None) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(pixels if pixels is not None else b"\x00" * (width + 1) * min(height, 4))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def bad_uploads(rng: random.Random, good_png: bytes, good_jpeg: bytes, limit: int):
    """(name, body, Content-Type, the status it must get) for uploads that are no readable image."""
    sof = good_jpeg.index(b"\xff\xc0") if b"\xff\xc0" in good_jpeg else 20
    kinds = [
        ("empty", lambda: b"", "image/png", 400),
        ("truncated PNG", lambda: good_png[:rng.randrange(8, len(good_png) // 2)], "image/png", 400),
        ("JPEG cut in its headers", lambda: good_jpeg[:rng.randrange(4, sof)], "image/jpeg", 400),
        ("over the size limit", lambda: b"\xff\xd8\xff" + os.urandom(limit + rng.randrange(1, 1000)), "image/jpeg", 413),
        ("a header claiming 40000x40000 pixels", lambda: _png(40000, 40000), "image/png", 413),
        ("random bytes", lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))), "image/png", 415),
        ("HTML", lambda: b"<html><body>" + b"x" * rng.randrange(100) + b"</body></html>", "text/html", 415),
        ("a PDF", lambda: b"%PDF-1.4\n" + os.urandom(rng.randrange(10, 200)), "application/pdf", 415),
        ("a form", lambda: b"--x\r\nContent-Disposition: form-data; name=photo\r\n\r\n" + good_png + b"\r\n--x--",
         "multipart/form-data; boundary=x", 415),
        ("a PNG signature and junk", lambda: b"\x89PNG\r\n\x1a\n" + os.urandom(rng.randrange(0, 300)), "image/png", 400),
    ]
    while True:
        name, make, kind, status = rng.choice(kinds)
        yield name, make(), kind, status


def _fuzz(server: Served, count: int, seed: int) -> None:
    rng = random.Random(seed)
    good_png = (HANDDRAWN / "5.png").read_bytes()
    good_jpeg = cv2.imencode(".jpg", cv2.imread(str(HANDDRAWN / "5.png")))[1].tobytes()
    limit = 500_000  # the server fixture's --max-upload-mb 0.5
    connection = http.client.HTTPConnection(server.host, int(server.port), timeout=30)
    wrong, seen = [], {}
    try:
        for _, (name, body, kind, status) in zip(range(count), bad_uploads(rng, good_png, good_jpeg, limit)):
            try:
                connection.request("POST", "/api/read", body=body, headers={"Content-Type": kind})
                response = connection.getresponse()
                answer = json.loads(response.read())
            except (ConnectionError, http.client.HTTPException):  # a refused body may close the connection
                connection.close()
                connection = http.client.HTTPConnection(server.host, int(server.port), timeout=30)
                continue
            seen[name] = seen.get(name, 0) + 1
            if response.status != status or not answer.get("error") or "\n" in answer["error"]:
                wrong.append((name, response.status, answer))
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                connection = http.client.HTTPConnection(server.host, int(server.port), timeout=30)
    finally:
        connection.close()
    print({name: n for name, n in sorted(seen.items())})
    assert not wrong, wrong[:5]
    assert sum(seen.values()) >= count * 0.95 and len(seen) == 10, seen
    assert server.process.poll() is None
    status, answer, _ = server.request("POST", "/api/read", good_png, {"Content-Type": "image/png"})
    assert status == 200 and answer["digit"] == 5, "the server reads photos again after the bad ones"


def test_bad_uploads_get_a_4xx_with_a_message_and_the_server_goes_on(server):
    _fuzz(server, 150, seed=1)


@pytest.mark.slow
def test_a_thousand_bad_uploads(server):
    _fuzz(server, 1000, seed=2)


def test_bad_drawings_and_unknown_paths_are_4xx_json(server):
    for body in (b"", b"not json", b'{"strokes": 3}', b'{"strokes": [[[1, "a"]]]}', b'{"strokes": [[[1e999, 2]]]}',
                 json.dumps({"strokes": [[[1, 2]] * 30000]}).encode(), b"[" * 100000):
        status, answer, _ = server.request("POST", "/api/draw", body, {"Content-Type": "application/json"})
        assert status == 400 and answer["error"], (body[:40], status, answer)
    status, answer, _ = server.request("GET", "/nowhere")
    assert status == 404 and "nowhere" in answer["error"]
    assert server.request("GET", "/api/read")[0] == 405
    status, answer, _ = server.request("POST", "/api/draw", json.dumps({"strokes": [[[200, 60], [200, 340]]]}).encode())
    assert status == 200 and answer["digit"] == 1


def test_a_server_on_localhost_answers_only_to_localhost(server):
    status, answer, _ = server.request("GET", "/api/state", headers={"Host": "attacker.example:8000"})
    assert status == 403 and "--host 0.0.0.0" in answer["error"]
    assert server.request("GET", "/api/state", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_the_event_stream_gives_the_jsonl_objects_of_digits_run(server):
    connection = http.client.HTTPConnection(server.host, int(server.port), timeout=10)
    try:
        connection.request("GET", "/events")
        response = connection.getresponse()
        assert response.getheader("content-type").startswith("text/event-stream")
        objects, status = [], None
        while len(objects) < 5:
            line = response.fp.readline().decode()
            if line.startswith("event: status"):
                status = json.loads(response.fp.readline().decode()[6:])
            elif line.startswith("data: "):
                objects.append(json.loads(line[6:]))
    finally:
        connection.close()
    assert status is not None and status["state"] in ("live", "starting")
    frames = [row["frame"] for row in objects]
    assert frames == sorted(frames) and len(set(frames)) == 5
    assert all(row["stable_text"] == "47" for row in objects[-2:]), objects[-1]


def test_the_mjpeg_stream_opens_in_opencv(server):
    """The live view is a plain MJPEG stream: `digits run --source http://DEVICE:PORT/stream.mjpg` reads it too."""
    capture = cv2.VideoCapture(f"{server.url}stream.mjpg", cv2.CAP_FFMPEG)
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok and frame.shape == (480, 640, 3)


@needs_browser
def test_a_token_guards_every_request(camera, browser):
    served = Served("--source", camera.url, env_extra={"DIGITS_TOKEN": "open-sesame-42"})
    try:
        for path in ("/", "/api/state", "/stream.mjpg", "/events", "/app.js"):
            status, answer, _ = served.request("GET", path)
            assert status == 401 and "token" in answer["error"], path
        assert served.request("GET", "/api/state?token=wrong-token")[0] == 401
        assert served.request("GET", "/api/state", headers={"Authorization": "Bearer open-sesame-42"})[0] == 200
        context = browser.new_context()
        try:
            opened = context.new_page()
            opened.goto(f"{served.url}?token=open-sesame-42")  # the page's own requests carry it as a cookie
            wait_for(lambda: _frames(opened) >= 5, what="frames with the token")
            assert _draw(opened, 1)["digit"] == 1
        finally:
            context.close()
    finally:
        code, errors = served.stop(signal.SIGINT)
    assert code == 130 and "Traceback" not in errors, errors


@needs_browser
@pytest.mark.slow
def test_a_camera_that_goes_away_shows_reconnecting_and_comes_back(browser):
    stream = MjpegStream(jpeg=cv2.imencode(".jpg", card_frame("47"))[1].tobytes())
    served = Served("--source", stream.url)
    context = browser.new_context()
    try:
        opened = context.new_page()
        opened.goto(served.url)
        wait_for(lambda: _frames(opened) >= 5 and opened.inner_text("#reading").strip() == "47", what="the stream")
        stream.cut()
        wait_for(lambda: opened.inner_text("#status") == "reconnecting", timeout=15, what="'reconnecting'")
        assert opened.is_visible("#live-note") and "reconnecting" in opened.inner_text("#live-note")
        frames = _frames(opened)
        stream.restore()
        wait_for(lambda: opened.inner_text("#status") == "live", timeout=15, what="'live' again")
        wait_for(lambda: _frames(opened) >= frames + 5, what="frames again")
        assert not opened.is_visible("#live-note")
    finally:
        context.close()
        code, errors = served.stop()
        stream.close()
    assert code == 0 and "Traceback" not in errors, errors


def test_options_and_failures_are_one_line_errors(clip):
    for args, expected in ((["--source", "/no/such/clip.avi", "--port", "0"], "no such file"),
                           (["--source", str(clip), "--token", "short"], "--token"),
                           (["--source", str(clip), "--model", "/no/model.tflite"], "model")):
        result = run_digits("serve", *args, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # the URL line, then the reason
    taken = Served("--source", str(clip))
    try:
        result = run_digits("serve", "--source", str(clip), "--port", taken.port, timeout=60)
        assert result.returncode == 2 and "pick another --port" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        taken.stop()
    assert run_digits("serve", "--port", "70000").returncode == 2


def test_a_missing_serve_extra_names_it():
    code = ("import sys; sys.modules['starlette'] = None; from edge_app.cli import main; "
            "sys.exit(main(['serve', '--source', 'tests/data/handdrawn']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    assert "pip install 'digits-edge[serve]' (from a clone: pip install -e '.[serve]')" in result.stderr


def test_serve_never_imports_tensorflow():
    code = ("import sys, edge_app.serve, edge_app.web.app; "
            "assert not [m for m in sys.modules if m.startswith(('tensorflow', 'keras'))]")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0


def test_the_pad_draws_as_digits_draw_draws(monkeypatch):
    """The browser pad's strokes, drawn by the server, make the very canvas that `digits draw`'s own mouse
    callback makes from the same mouse path (its window faked: the callback is the real one)."""
    import edge_app.draw as desktop
    from edge_app.classifier import load_classifier
    from edge_app.serve import parse_strokes, render_strokes

    path = [[(100, 60), (300, 60), (200, 340)], [(50, 50)]]  # a 7, then a dot
    views, callback = [], {}

    def replay_then_quit(_ms: int) -> int:
        if len(views) > 1:
            return ord("q")
        for stroke in path:
            for k, (x, y) in enumerate(stroke):
                event = cv2.EVENT_LBUTTONDOWN if k == 0 else cv2.EVENT_MOUSEMOVE
                callback["on_mouse"](event, x, y, cv2.EVENT_FLAG_LBUTTON, None)
            callback["on_mouse"](cv2.EVENT_LBUTTONUP, *stroke[-1], 0, None)
        return -1

    monkeypatch.setattr(desktop.cv2, "namedWindow", lambda *_: None)
    monkeypatch.setattr(desktop.cv2, "setMouseCallback", lambda _name, on_mouse: callback.update(on_mouse=on_mouse))
    monkeypatch.setattr(desktop.cv2, "imshow", lambda _name, view: views.append(view.copy()))
    monkeypatch.setattr(desktop.cv2, "waitKey", replay_then_quit)
    monkeypatch.setattr(desktop.cv2, "getWindowProperty", lambda *_: 1.0)
    monkeypatch.setattr(desktop.cv2, "destroyAllWindows", lambda: None)
    assert desktop.draw(load_classifier(MODEL)) == 0
    drawn_on_desktop = views[-1][:, :desktop.CANVAS_SIZE, 0]
    served = render_strokes(parse_strokes({"strokes": [[list(p) for p in stroke] for stroke in path]}))
    assert np.array_equal(served, drawn_on_desktop) and (served < 128).sum() > 1000
    assert parse_strokes({"strokes": [[[-50, 1e6]]]}) == [[(-1, 400)]]  # off the canvas: kept at its edge


def test_image_types_are_told_by_their_first_bytes():
    from edge_app.serve import image_type

    assert image_type((HANDDRAWN / "1.png").read_bytes()) == "PNG"
    assert image_type(cv2.imencode(".jpg", card_frame("1"))[1].tobytes()) == "JPEG"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WebP"
    assert image_type(b"RIFF\x00\x00\x00\x00AVI LIST") is None
    assert image_type(b"GIF89a\x10\x00") == "GIF" and image_type(b"GIF88a") is None and image_type(b"") is None


def test_a_token_that_a_url_cookie_or_header_would_change_is_refused_in_one_line(monkeypatch):
    import argparse

    from edge_app.serve import serve_options

    def options(token):
        return serve_options(argparse.Namespace(token=token, host="127.0.0.1", port=0, max_upload_mb=1.0,
                                                stream_fps=30.0, pace=True))

    assert options("Ab3_-.~xyz").token == "Ab3_-.~xyz"
    # '€' cannot go in the page's cookie (a 500 with a traceback), '+' is a space in ?token=, ';' ends a cookie.
    for bad in ("€uro-token-1", "plus+sign1", "semi;colon1", "short"):
        with pytest.raises(ValueError, match="--token: use at least 8 characters"):
            options(bad)
    monkeypatch.setenv("DIGITS_TOKEN", "€uro-token-1")
    with pytest.raises(ValueError, match="--token"):
        options(None)
