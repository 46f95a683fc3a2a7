"""A Raspberry Pi CSI camera (Camera Module 1/2/3, HQ) as a frame source, through Picamera2.

On Raspberry Pi OS Bookworm the CSI cameras are driven by libcamera, which OpenCV's VideoCapture
cannot open, so `--source picamera` comes here. Picamera2 is not on PyPI in a usable form (it needs
the libcamera bindings built for the running OS): it comes from apt, `sudo apt install
python3-picamera2`, and the project's venv must be created with `--system-site-packages` to see it.
This module imports `picamera2` only when a `PicameraSource` is created, so every other source
works on machines without it.

Frames come out as OpenCV's: (height, width, 3) uint8 BGR, C-contiguous, so detection,
preprocessing and drawing are shared with the webcam and video sources. We ask Picamera2 for its
'RGB888' format because libcamera names formats after DRM fourcc codes, which list the channels of a
little-endian 32-bit word from the most significant byte down: 'RGB888' therefore lies in memory
as B, G, R, which is exactly OpenCV's order and needs no conversion. ('BGR888' would be R, G, B.)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

PICAMERA_FORMAT = "RGB888"  # B, G, R bytes in memory (see the module docstring): OpenCV's BGR
MISSING_PICAMERA2 = (
    "Picamera2 is not available to this Python: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and create the venv with `python3 -m venv --system-site-packages` so it can see apt's packages"
)
# apt's picamera2 imports simplejpeg, compiled for Debian's NumPy 1.x; a NumPy 2 that pip put in the venv
# shadows it and the import fails with "numpy.dtype size changed" (or "compiled using NumPy 1.x").
NUMPY_HINT = "apt's modules need NumPy 1.x, so reinstall in the venv with `pip install . 'numpy<2'`"


class PicameraError(RuntimeError):
    """The CSI camera cannot be used: Picamera2 missing, no camera connected, or the camera is busy."""


@dataclass(frozen=True)
class PicameraOptions:
    width: int = 640  # pixels; the ISP scales the sensor image to this size
    height: int = 480
    camera_index: int = 0  # which CSI camera on boards with two (Pi 5, Compute Modules)


def _import_picamera2_class():
    try:
        return importlib.import_module("picamera2").Picamera2
    except ImportError as error:
        # "libcamera": picamera2 from pip, in a venv that cannot see apt's libcamera bindings.
        if error.name in ("picamera2", "libcamera"):
            raise PicameraError(MISSING_PICAMERA2) from None
        raise PicameraError(f"Picamera2 is installed but failed to import ({error}): {NUMPY_HINT}") from None
    except ValueError as error:  # "numpy.dtype size changed, may indicate binary incompatibility"
        raise PicameraError(f"Picamera2 is installed but failed to import ({error}): {NUMPY_HINT}") from None


class PicameraSource:
    """Frames from a CSI camera: `read()` -> (height, width, 3) uint8 BGR, as `cv2.VideoCapture.read()` gives.

    Use it as a context manager (or call `close()`) so the camera is stopped and released even when
    the loop fails; a camera left open stays busy for every other process until this one exits.
    """

    def __init__(self, width: int = 640, height: int = 480, camera_index: int = 0):
        if width <= 0 or height <= 0:
            raise ValueError(f"camera size must be positive, got {width}x{height}")
        self.options = PicameraOptions(width, height, camera_index)
        picamera2_class = _import_picamera2_class()
        self._camera = None
        try:
            self._camera = picamera2_class(camera_index)
            # A preview configuration keeps few buffers and favours latency over still quality: right
            # for a live loop that always wants the newest frame.
            config = self._camera.create_preview_configuration(
                main={"size": (width, height), "format": PICAMERA_FORMAT})
            self._camera.configure(config)
            self._camera.start()
        except Exception as error:  # Picamera2 raises IndexError/RuntimeError when no camera or it is busy
            self.close()
            raise PicameraError(f"cannot open CSI camera {camera_index} with Picamera2 ({error}): check the "
                                "ribbon cable, `rpicam-hello --list-cameras`, and that no other program "
                                "uses the camera") from None

    @property
    def name(self) -> str:
        return f"picamera:{self.options.camera_index}"

    def read(self) -> np.ndarray | None:
        """The next frame, (height, width, 3) uint8 BGR; None once the camera is closed."""
        if self._camera is None:
            return None
        frame = self._camera.capture_array("main")
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = frame[:, :, :3]  # XRGB8888 from cameras that cannot give 24-bit: drop the padding byte
        # Later stages may draw on the frame; a contiguous array of our own keeps them off camera buffers.
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        """Stop and release the camera; safe to call more than once."""
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()

    def __enter__(self) -> PicameraSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
