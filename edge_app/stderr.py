"""Keep native libraries' chatter off a command's stderr, so it holds only the command's own one-line messages."""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """Hide what C and C++ code prints on file descriptor 2 while the block runs: a runtime's banner
    ("INFO: Created TensorFlow Lite XNNPACK delegate"), libpng's and libjpeg's warnings about a damaged
    file, OpenCV's own log lines. Python's exceptions are unaffected: they are raised, not printed."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
