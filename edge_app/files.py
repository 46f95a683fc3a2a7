"""Atomic writes: a model or report is either complete on disk or absent, never half-written."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final` (same suffix, same filesystem); rename it into place on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a shipped model should be readable like any file
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
    return Path(path)


def write_png_atomic(path: Path, image) -> bool:
    """An image as a PNG file, complete or absent (a kill never leaves a 0-byte PNG under its final name);
    False when the image cannot be encoded. OSError when the folder cannot be written."""
    import cv2  # only the callers that write pictures need OpenCV here

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return True
