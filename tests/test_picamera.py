"""`edge_app.picamera` with a fake `picamera2` module: no Pi, no camera, no libcamera needed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from edge_app.picamera import PicameraError, PicameraSource

MODELS = Path(__file__).resolve().parent.parent / "models"


class FakePicamera2:
    """Mimics the calls PicameraSource makes; 'RGB888' frames are B, G, R in memory as on a real Pi."""

    instances: list["FakePicamera2"] = []

    def __init__(self, camera_num=0):
        self.camera_num = camera_num
        self.config = None
        self.started = self.closed = False
        FakePicamera2.instances.append(self)

    def create_preview_configuration(self, main=None, **_):
        return {"main": dict(main or {})}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, stream="main"):
        assert self.started and not self.closed, "captured from a camera that is not running"
        width, height = self.config["main"]["size"]
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, :, 2] = 255  # a pure red scene: R is the third byte of 'RGB888'
        return frame

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


class BrokenPicamera2(FakePicamera2):
    def start(self):
        raise RuntimeError("Failed to acquire camera: Device or resource busy")


@pytest.fixture
def fake_picamera2(monkeypatch):
    FakePicamera2.instances = []
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


def test_frames_are_opencv_bgr_of_the_requested_size(fake_picamera2):
    import cv2

    with PicameraSource(width=320, height=240) as source:
        frame = source.read()
    camera = FakePicamera2.instances[0]
    assert camera.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
    # OpenCV reads the red scene as red: the frame needs no channel swap before the shared pipeline.
    hue, saturation, _ = cv2.cvtColor(frame[:1, :1], cv2.COLOR_BGR2HSV)[0, 0]
    assert hue == 0 and saturation == 255


def test_leaving_the_block_stops_and_releases_the_camera_even_on_error(fake_picamera2):
    with pytest.raises(KeyError):
        with PicameraSource() as source:
            source.read()
            raise KeyError("the loop failed")
    camera = FakePicamera2.instances[0]
    assert camera.closed and not camera.started
    assert source.read() is None
    source.close()  # a second close is harmless


def test_camera_that_fails_to_start_gives_one_actionable_line_and_is_released(fake_picamera2):
    fake_picamera2.Picamera2 = BrokenPicamera2
    with pytest.raises(PicameraError, match="cannot open CSI camera 0.*resource busy") as caught:
        PicameraSource()
    assert "\n" not in str(caught.value)
    assert FakePicamera2.instances[0].closed


def test_missing_picamera2_names_the_apt_package_and_the_venv_flag(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail as if absent
    with pytest.raises(PicameraError) as caught:
        PicameraSource()
    message = str(caught.value)
    assert "sudo apt install python3-picamera2" in message and "--system-site-packages" in message
    assert "\n" not in message


def test_numpy_abi_clash_is_told_apart_from_a_missing_package(monkeypatch):
    class ImportRaisesValueError(types.ModuleType):
        def __getattr__(self, name):
            raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")

    monkeypatch.setitem(sys.modules, "picamera2", ImportRaisesValueError("picamera2"))
    with pytest.raises(PicameraError, match=r"numpy<2"):
        PicameraSource()


def test_importing_the_module_does_not_import_picamera2():
    # Only creating a source imports picamera2, so `digits run --source webcam` never needs it.
    code = "import sys, edge_app.picamera; print('picamera2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_rejects_a_nonsense_size(fake_picamera2):
    with pytest.raises(ValueError, match="0x480"):
        PicameraSource(width=0, height=480)


FAKE_PICAMERA2_PACKAGE = '''
import numpy as np


class Picamera2:
    """A CSI camera that always sees a dark 7 on white paper, delivered as 'RGB888' (B, G, R bytes)."""

    def __init__(self, camera_num=0):
        self.size = None

    def create_preview_configuration(self, main=None, **_):
        return {"main": dict(main or {})}

    def configure(self, config):
        self.size = config["main"]["size"]

    def start(self):
        pass

    def capture_array(self, stream="main"):
        import cv2
        width, height = self.size
        frame = np.full((height, width, 3), 235, np.uint8)
        cx, cy, s = width // 2, height // 2, height // 4
        cv2.line(frame, (cx - s // 2, cy - s), (cx + s // 2, cy - s), (20, 20, 20), max(3, s // 6))
        cv2.line(frame, (cx + s // 2, cy - s), (cx - s // 6, cy + s), (20, 20, 20), max(3, s // 6))
        return frame

    def stop(self):
        pass

    def close(self):
        pass
'''


def _digits_run(tmp_path, *args, with_fake=True):
    env = dict(os.environ)
    if with_fake:
        (tmp_path / "picamera2").mkdir()
        (tmp_path / "picamera2" / "__init__.py").write_text(FAKE_PICAMERA2_PACKAGE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "edge_app", "run", "--source", "picamera", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(not (MODELS / "cnn_int8.tflite").is_file(), reason="models/cnn_int8.tflite not exported yet")
def test_digits_run_reads_a_digit_from_the_csi_camera(tmp_path):
    result = _digits_run(tmp_path, "--headless", "--format", "jsonl", "--max_frames", "3",
                         "--width", "320", "--height", "240")
    assert result.returncode == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) == 3
    assert [reading["digit"] for reading in frames[-1]["digits"]] == [7]


def test_digits_run_without_picamera2_is_one_line_naming_the_fix(tmp_path):
    code = ("import sys; sys.modules['picamera2'] = None; from edge_app.cli import main; "
            "sys.exit(main(['run', '--source', 'picamera', '--headless', '--max_frames', '1']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "sudo apt install python3-picamera2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


FLAKY_PICAMERA2_PACKAGE = FAKE_PICAMERA2_PACKAGE.replace('''    def capture_array(self, stream="main"):
        import cv2''', '''    opened = 0  # cameras opened in this process

    def capture_array(self, stream="main"):
        import cv2
        import time
        self.captures = getattr(self, "captures", 0) + 1
        if Picamera2.opened == 1 and self.captures == 5:
            if FAILURE == "hang":
                time.sleep(3600)  # a wedged libcamera pipeline: the call never returns
            raise RuntimeError("Camera frontend has timed out!")''').replace('''    def start(self):
        pass''', '''    def start(self):
        Picamera2.opened += 1''')


@pytest.mark.skipif(not (MODELS / "cnn_int8.tflite").is_file(), reason="models/cnn_int8.tflite not exported yet")
@pytest.mark.parametrize("failure", ["error", "hang"])
def test_a_csi_camera_that_fails_or_hangs_is_reopened(tmp_path, failure):
    """The 5th capture raises (libcamera's frontend timeout) or never returns: the camera is closed and
    opened again, frames keep coming, and stderr says what happened, without a traceback."""
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(f"FAILURE = {failure!r}\n" + FLAKY_PICAMERA2_PACKAGE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "edge_app", "run", "--source", "picamera", "--headless",
                             "--format", "jsonl", "--max-frames", "10", "--width", "320", "--height", "240"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) == 10 and [d["digit"] for d in frames[-1]["digits"]] == [7]
    expected = "no frame within 2 s" if failure == "hang" else "Camera frontend has timed out"
    assert expected in result.stderr and "is back after" in result.stderr


SLOW_PICAMERA2_PACKAGE = FAKE_PICAMERA2_PACKAGE.replace('''    def capture_array(self, stream="main"):
        import cv2''', '''    capturing = False

    def capture_array(self, stream="main"):
        import cv2
        import time
        self.capturing = True
        time.sleep(0.2)  # a capture is in flight most of the time
        self.capturing = False''').replace('''    def close(self):
        pass''', '''    def close(self):
        if self.capturing:
            import os
            os.write(2, b"FAKE: camera closed during a capture\\n")''')


@pytest.mark.skipif(not (MODELS / "cnn_int8.tflite").is_file(), reason="models/cnn_int8.tflite not exported yet")
@pytest.mark.parametrize("signal_name, expected_code", [("SIGTERM", 0), ("SIGINT", 130)])
def test_stopping_mid_capture_closes_the_camera_after_the_capture(tmp_path, signal_name, expected_code):
    """Stopped while a capture runs on the watchdog worker, the camera is closed once that capture is done, not
    under it, and the exit is clean."""
    import signal

    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(SLOW_PICAMERA2_PACKAGE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    for delay in (0.05, 0.15):
        process = subprocess.Popen([sys.executable, "-m", "edge_app", "run", "--source", "picamera", "--headless",
                                    "--format", "jsonl", "--width", "320", "--height", "240"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert process.stdout.readline(), "no frame from the camera"
        time.sleep(delay)
        process.send_signal(getattr(signal, signal_name))
        _, errors = process.communicate(timeout=20)
        assert process.returncode == expected_code and "FAKE" not in errors and "Traceback" not in errors, \
            f"{signal_name} at {delay} s: exit {process.returncode}\n{errors}"
