"""Live sources that go away: `digits run` on a local MJPEG stream that is cut, frozen and brought back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import MODELS, ROOT
from mjpeg_server import MjpegStream

MODEL = MODELS / "cnn_int8.tflite"


class RunningApp:
    """`digits run --headless --format jsonl` in its own process, its stdout lines timestamped as they arrive."""

    def __init__(self, source: str, *extra: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_app", "run", "--source", source, "--headless", "--format", "jsonl",
             "--model", str(MODEL), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        self.frames: list[tuple[float, dict]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.frames.append((time.monotonic(), json.loads(line)))

    def first_frame_after(self, moment: float, timeout: float) -> float | None:
        """Seconds from `moment` to the first frame that arrived after it, or None within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [stamp for stamp, _ in list(self.frames) if stamp > moment]
            if later:
                return later[0] - moment
            time.sleep(0.05)
        return None

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, errors = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, errors = self.process.communicate()
        return self.process.returncode, errors


@pytest.fixture
def stream():
    served = MjpegStream()
    yield served
    served.close()


def _outage(stream: MjpegStream, seconds: float) -> None:
    app = RunningApp(stream.url)
    try:
        assert app.first_frame_after(time.monotonic() - 1, timeout=20) is not None, "no frame from the stream"
        time.sleep(1.0)
        assert app.frames[-1][1]["text"] == "7"
        stream.cut()
        time.sleep(seconds)
        assert app.process.poll() is None, "digits run ended while the stream was away"
        stream.restore()
        back = time.monotonic()
        delay = app.first_frame_after(back, timeout=10)
        assert delay is not None, f"no frame within 10 s of the stream coming back after a {seconds} s cut"
        assert delay <= 2.0, f"frames again {delay:.2f} s after the stream came back"
        print(f"{seconds} s cut: frames again {delay:.2f} s after the stream came back")
    finally:
        code, errors = app.stop()
    assert "Traceback" not in errors
    assert "stopped delivering frames" in errors and "is back after" in errors


def test_a_stream_cut_for_a_second_comes_back(stream):
    _outage(stream, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [10.0, 60.0])
def test_a_stream_cut_for_long_comes_back(stream, seconds):
    _outage(stream, seconds)


def test_a_frozen_stream_is_noticed_and_reopened(stream):
    """Connected but sending nothing: noticed within the read timeout, not after OpenCV's default 30 s."""
    app = RunningApp(stream.url)
    try:
        assert app.first_frame_after(time.monotonic() - 1, timeout=20) is not None
        stream.frozen = True
        time.sleep(4.0)  # the read times out after 2 s, then the app keeps re-opening
        assert app.process.poll() is None
        stream.frozen = False
        thawed = time.monotonic()
        delay = app.first_frame_after(thawed, timeout=10)
        assert delay is not None and delay <= 3.5, f"frames again {delay} s after the stream thawed"
    finally:
        code, errors = app.stop()
    assert "stopped delivering frames" in errors and "Traceback" not in errors


def test_give_up_after_ends_with_a_one_line_error(stream):
    app = RunningApp(stream.url, "--give_up_after", "2")
    assert app.first_frame_after(time.monotonic() - 1, timeout=20) is not None
    stream.cut()
    cut = time.monotonic()
    code = app.process.wait(timeout=20)
    took = time.monotonic() - cut
    _, errors = app.stop()
    assert code == 2 and 2 <= took <= 8, (code, took)
    assert errors.strip().splitlines()[-1].startswith("digits run: ") and "giving up" in errors
    assert "Traceback" not in errors


def test_an_http_video_file_is_not_replayed(stream):
    """A URL ending in a video suffix is a file: when it ends, digits run ends (a stream would be re-opened)."""
    from edge_app.sources import open_source

    source = open_source(stream.url.replace("stream.mjpg", "clip.mp4"))
    try:
        assert source.live is False
    finally:
        source.close()
    live = open_source(stream.url)
    try:
        assert live.live is True
    finally:
        live.close()


def test_systemd_hears_ready_and_heartbeats(stream, tmp_path):
    """Under systemd (Type=notify, WatchdogSec=): READY=1 once the source is open, then WATCHDOG=1 while frames flow."""
    import socket

    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}  # a heartbeat every 0.2 s
    result = subprocess.run([sys.executable, "-m", "edge_app", "run", "--source", stream.url, "--headless",
                             "--max_frames", "40", "--model", str(MODEL)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    messages = []
    listener.settimeout(0.5)
    try:
        while True:
            messages.append(listener.recv(256).decode())
    except (socket.timeout, BlockingIOError):
        pass
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    assert messages[0] == "READY=1" and messages.count("WATCHDOG=1") >= 3, messages


def _rss_kib(pid: int) -> int:
    return int(next(line.split()[1] for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS")))


@pytest.mark.slow
def test_ten_thousand_frames_without_growing():
    """`digits run --headless` on a fast stream for 10,000 frames: RSS flat (<= 2 MB growth after warm-up),
    peak <= 120 MB."""
    fast = MjpegStream(interval_s=0.002)
    app = RunningApp(fast.url, "--max-frames", "10000")
    try:
        samples = {}
        deadline = time.monotonic() + 600
        while app.process.poll() is None and time.monotonic() < deadline:
            count = len(app.frames)
            for mark in (1000, 9000):
                if count >= mark and mark not in samples:
                    samples[mark] = _rss_kib(app.process.pid)
            if count >= 9000 and 9000 in samples:
                peak = int(next(line.split()[1] for line in open(f"/proc/{app.process.pid}/status")
                                if line.startswith("VmHWM")))
                break
            time.sleep(0.05)
        app.process.wait(timeout=120)
    finally:
        code, errors = app.stop()
        fast.close()
    assert code == 0 and len(app.frames) == 10000, errors[-2000:]
    growth_mb = (samples[9000] - samples[1000]) / 1024
    print(f"RSS {samples[1000] / 1024:.1f} MB at frame 1000, {samples[9000] / 1024:.1f} MB at 9000; peak {peak / 1024:.1f} MB")
    assert growth_mb <= 2.0 and peak / 1024 <= 120


def test_ctrl_c_acts_at_once_even_on_a_frozen_stream(stream):
    """OpenCV's read of a frozen stream blocks for its 2 s timeout; the app waits for it on another thread, so
    Ctrl-C stops the app at once. The process itself exits when that read has ended (within its timeout): a
    thread killed inside OpenCV would abort it."""
    import signal

    from edge_app.sources import RELEASE_LIMIT_S, STREAM_READ_LIMIT_S

    app = RunningApp(stream.url)
    assert app.first_frame_after(time.monotonic() - 1, timeout=20) is not None
    stream.frozen = True
    time.sleep(0.5)  # the app is now inside a read that will not return for 2 s
    interrupted = time.monotonic()
    app.process.send_signal(signal.SIGINT)
    said = app.process.stderr.readline()  # nothing else is said before: the stream has not timed out yet
    answered = time.monotonic() - interrupted
    frames = len(app.frames)
    code = app.process.wait(timeout=10)
    exited = time.monotonic() - interrupted
    _, errors = app.stop()
    assert said == "digits run: interrupted\n" and answered <= 1.0, (said, answered, errors[-500:])
    assert len(app.frames) == frames, "frames after Ctrl-C"
    assert code == 130 and exited <= STREAM_READ_LIMIT_S + RELEASE_LIMIT_S and errors.strip() == "", \
        (code, exited, errors[-500:])


def test_only_http_urls_can_be_video_files(monkeypatch):
    from edge_app import sources

    monkeypatch.setattr(sources.CaptureSource, "_open", lambda self: object())
    assert sources.open_source("rtsp://192.168.1.10:554/live.mp4").live is True
    assert sources.open_source("http://host/video.mp4").live is False


@pytest.mark.parametrize("signal_name, expected_code", [("SIGTERM", 0), ("SIGINT", 130)])
def test_stopping_a_run_on_a_stream_never_aborts(stream, signal_name, expected_code):
    """Stopped at any moment (`systemctl stop`, Ctrl-C), `digits run` on a stream exits cleanly: the exit waits
    for the stream worker's read in flight, which used to be killed inside OpenCV ("FATAL: exception not
    rethrown", SIGABRT, or a segfault in most runs)."""
    import signal

    for delay in (0.0, 0.1, 0.2, 0.3, 0.45):  # a read is in flight at almost any moment: 25 frames a second
        app = RunningApp(stream.url)
        assert app.first_frame_after(time.monotonic() - 1, timeout=20) is not None, "no frame from the stream"
        time.sleep(delay)
        app.process.send_signal(getattr(signal, signal_name))
        code = app.process.wait(timeout=10)
        _, errors = app.stop()
        assert code == expected_code and "FATAL" not in errors and "Traceback" not in errors, \
            f"{signal_name} {delay} s after the first frame: exit {code}\n{errors[-500:]}"
        if signal_name == "SIGINT":
            assert errors.strip().splitlines()[-1:] == ["digits run: interrupted"], errors[-500:]
