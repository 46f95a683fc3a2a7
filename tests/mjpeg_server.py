"""A local MJPEG stream (multipart/x-mixed-replace over HTTP, as IP cameras and Picamera2's example serve it)
that tests can cut, bring back and freeze."""
from __future__ import annotations

import http.server
import socketserver
import threading
import time

import cv2
import numpy as np

FRAME_INTERVAL_S = 0.04  # 25 frames per second


def card_frame(text: str = "7") -> bytes:
    """A 320x240 JPEG of a white card with `text` written on it."""
    frame = np.full((240, 320, 3), (90, 120, 100), np.uint8)
    frame[50:200, 90:230] = 230
    cv2.putText(frame, text, (122, 170), cv2.FONT_HERSHEY_SIMPLEX, 3.5, (25, 25, 25), 9)
    return cv2.imencode(".jpg", frame)[1].tobytes()


class MjpegStream:
    """Serves one JPEG over and over on 127.0.0.1:`port`; `cut()` drops every viewer and stops listening,
    `restore()` listens again, `frozen` keeps connections open but sends nothing."""

    def __init__(self, port: int = 0, jpeg: bytes | None = None, interval_s: float = FRAME_INTERVAL_S):
        self.jpeg = jpeg or card_frame()
        self.interval_s = interval_s
        self.frozen = False
        self._cut = threading.Event()
        self._server = None
        self.port = port
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def restore(self) -> None:
        stream = self
        self._cut.clear()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not stream._cut.is_set():
                        if not stream.frozen:
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                             % len(stream.jpeg) + stream.jpeg + b"\r\n")
                        time.sleep(stream.interval_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def cut(self) -> None:
        self._cut.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.cut()
