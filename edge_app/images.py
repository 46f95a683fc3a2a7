"""Read a still image for recognition: the one decode every still path uses (`digits predict`, `digits run`
on image files, folders and globs).

A phone photo is 12-16 megapixels, far more than its digits need, and a full decode alone costs more
than reading it. So the size is read from the file's header first, and a JPEG is decoded reduced
(libjpeg scales by 1/2, 1/4 or 1/8 inside its DCT, much cheaper than a full decode and a resize) to
the largest size whose shorter side stays at least `min_side` px. EXIF orientation is applied (an
upside-down phone photo reads upright), transparent pixels are composited over white paper, and a
header claiming more pixels than `max_pixels` is refused before any decode.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_app.preprocess import over_white, to_uint8
from edge_app.stderr import native_stderr_silenced

# The image files every still path takes from a folder or glob (`digits predict`, `digits run`, `digits serve`'s
# source): the formats OpenCV's imdecode reads that people keep photos and scans in.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
                            ".pbm", ".pnm"})
STILL_MIN_SIDE = 720  # px: the shorter side a photo is decoded to at least (digits from 2% of it: >= 14 px)
# A header claiming more is refused before decoding: a 48-megapixel phone photo passes, a decompression
# bomb (a 469 KB PNG of 20000x20000) does not. The same limit is OpenCV's own (edge_app/__init__.py) for
# the formats whose header is not read here (BMP, TIFF, WebP).
MAX_PIXELS = 50_000_000
_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass(frozen=True, eq=False)
class Still:
    image: np.ndarray  # (h, w) or (h, w, 3) uint8, upright
    scale: float  # the file's pixels per decoded pixel (1, 2, 4 or 8): boxes are reported in the file's pixels


class ImageError(ValueError):
    """An image file that cannot be read; the message names the file and what is wrong, in one line."""


def header_size(data: bytes) -> tuple[int, int, bool] | None:
    """(width, height, has alpha) from a PNG or JPEG header, without decoding; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height, data[25] in (4, 6)  # grey + alpha, RGBA
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            position += 1  # fill bytes and entropy-coded data between markers
            continue
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            position += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        # Start-of-frame markers carry the size (C4, C8 and CC are other tables).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height, False
        position += 2 + length
    return None


def reduction_for(width: int, height: int, min_side: int) -> int:
    """The largest JPEG reduction (1, 2, 4 or 8) that keeps the shorter side at least `min_side` px."""
    factor = 1
    while factor < 8 and min(width, height) / (2 * factor) >= min_side:
        factor *= 2
    return factor


def decode_still(data: bytes, name: str, min_side: int = STILL_MIN_SIDE, max_pixels: int = MAX_PIXELS) -> Still:
    """Image file bytes -> upright pixels at the size the digits need, and the reduction; ImageError otherwise."""
    if not data:
        raise ImageError(f"{name}: file is empty")
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{name}: {size[0]}x{size[1]} pixels is over the limit of {max_pixels:,}; "
                         "shrink the image first")
    buffer = np.frombuffer(data, np.uint8)
    reduction = 1
    if size is not None and size[2]:
        flags = cv2.IMREAD_UNCHANGED  # keep the alpha channel to composite it (PNGs carry no EXIF turn)
    elif size is not None and data[:2] == b"\xff\xd8":
        reduction = reduction_for(size[0], size[1], min_side)
        flags = _REDUCED_COLOR[reduction]
    else:
        flags = cv2.IMREAD_COLOR
    try:
        with native_stderr_silenced():  # libpng's and libjpeg's complaints about a damaged file
            image = cv2.imdecode(buffer, flags)
    except cv2.error:  # OpenCV raises on a header claiming more than its pixel limit
        raise ImageError(f"{name}: its header claims more than {max_pixels:,} pixels, or it is damaged; "
                         "shrink or re-save the image") from None
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not an image OpenCV can read (PNG, JPEG, BMP, TIFF, WebP, PNM ...)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"{name}: {image.shape[1]}x{image.shape[0]} pixels is over the limit of {max_pixels:,}; "
                         "shrink the image first")
    if reduction > 1:
        # libjpeg rounds reduced sizes up; the true ratio (EXIF may have turned the image) is the longer sides'.
        reduction = max(size[0], size[1]) / max(image.shape[:2])
    if image.ndim == 3 and image.shape[2] == 4:
        image = over_white(to_uint8(image))  # the same compositing as every other image (preprocess)
    return Still(image, float(reduction))


def read_still(path: Path, min_side: int = STILL_MIN_SIDE) -> Still:
    """An image file -> pixels ready for detection (see `decode_still`); ImageError naming the file otherwise."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot be read ({error.strerror})") from None
    return decode_still(data, str(path), min_side)
