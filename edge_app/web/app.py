"""The web side of `digits serve`: a Starlette app on uvicorn (the `serve` extra), one asyncio thread.

Starlette and uvicorn because they are small (5.3 MB added to the edge venv with their four
dependencies, measured), well kept, pure Python (nothing to compile on a Pi), and asyncio: a viewer is a
task, not a thread, so five viewers and an event stream cost the recognizer nothing but the bytes they
copy. The frame loop and the broadcaster (`edge_app.serve`) run on threads of their own and hand
finished bytes to `Hub`, which wakes the viewers on the event loop.

Routes (every one behind the token when --token is set):
    GET  /              the page (static/index.html, app.js, style.css)
    GET  /stream.mjpg   the live view: multipart/x-mixed-replace JPEGs, each part with X-Frame and
                        X-Timestamp (Unix seconds when the frame was read); opens in <img>, VLC, OpenCV
    GET  /events        Server-Sent Events: `data:` one `digits run --format jsonl` object per frame,
                        `event: status` when the source goes away, comes back or ends
    GET  /api/state     status, current reading, history, frame count, viewers, the draw pad's size and pen
    POST /api/draw      {"strokes": [[[x, y], ...], ...]} -> the digit, confidence, top 3, the 28x28 input
    POST /api/read      an image file as the body -> the JSON of `digits predict --format jsonl`;
                        ?overlay=1 adds "overlay", a JPEG data URL of the photo with boxes and digits
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from importlib import resources
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edge_app.classifier import ModelError
from edge_app.draw import CANVAS_SIZE, PEN_WIDTH
from edge_app.run import RunOptions, run
from edge_app.serve import (
    LOOPBACK_HOSTS,
    EncodedFrame,
    LiveFeed,
    Readers,
    ServeOptions,
    StopServing,
    UploadError,
    is_timed_source,
    parse_strokes,
)
from edge_app.service import heartbeat
from edge_app.sources import SOURCE_LISTENERS, SourceError

HISTORY = 50  # readings kept for the page's history
EVENTS_QUEUED = 64  # readings waiting for a slow event-stream client; older ones are dropped for it
MAX_VIEWERS = 16  # live views and event streams open at once, each; more get 503
MAX_READS_WAITING = 4  # uploads and pad reads queued for the model; more get 503
MAX_PAD_BODY = 1_000_000  # bytes of draw-pad JSON
KEEPALIVE_S = 15.0  # an idle event stream gets a comment this often, so proxies and phones keep it open
COOKIE = "digits_token"
BOUNDARY = "frame"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
# The page loads only its own files; frames and the pad's input are blob: and data: URLs.
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy",
                     b"default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'")]


class Hub:
    """Where the broadcaster's bytes meet the browsers: the newest JPEG, each frame's JSON line, the source's
    status and the readings' history. Written from any thread; its waiters live on the event loop."""

    def __init__(self):
        self.viewers = 0  # live views open now (read by the frame loop's thread to skip encoding for nobody)
        self.streams = 0  # event streams open now
        self.latest: EncodedFrame | None = None
        self.version = 0  # bumped with every new frame
        self.state = {"state": "starting", "message": "opening the source", "since": time.time()}
        self.reading_text = ""
        self.history: deque = deque(maxlen=HISTORY)  # {"time": Unix s, "text": stable reading}, newest last
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._queues: set[asyncio.Queue] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._changed = loop, asyncio.Event()

    def _call(self, function, *args) -> None:
        """Run `function` on the event loop, from whichever thread this is."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    # Called from the broadcaster's and the frame loop's threads.
    def frame(self, frame: EncodedFrame) -> None:
        self._call(self._new_frame, frame)

    def reading(self, line: str, stable_text: str, stamp: float) -> None:
        self._call(self._new_reading, line, stable_text, stamp)

    def status(self, state: str, message: str) -> None:
        self._call(self._new_status, state, message)

    def close(self) -> None:
        self._call(self._close)

    # On the event loop.
    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _new_frame(self, frame: EncodedFrame) -> None:
        self.latest, self.version = frame, self.version + 1
        self._wake()

    def _new_reading(self, line: str, stable_text: str, stamp: float) -> None:
        if stable_text != self.reading_text:
            self.reading_text = stable_text
            if stable_text:
                self.history.append({"time": round(stamp, 3), "text": stable_text})
        self._fan_out(b"data: " + line.encode() + b"\n\n")

    def _new_status(self, state: str, message: str) -> None:
        self.state = {"state": state, "message": message, "since": time.time()}
        self._fan_out(b"event: status\ndata: " + json.dumps(self.state).encode() + b"\n\n")
        self._wake()

    def _close(self) -> None:
        self.closed = True
        self._fan_out(None)
        self._wake()

    def _fan_out(self, message: bytes | None) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # a client that reads slower than frames come loses the oldest
            queue.put_nowait(message)

    async def next_frame(self, seen: int) -> EncodedFrame | None:
        """The newest frame once there is one newer than version `seen` (None when the server stops)."""
        while self.version <= seen and not self.closed:
            await self._changed.wait()
        return None if self.closed else self.latest

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=EVENTS_QUEUED)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._queues.discard(queue)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"cache-control": "no-store"})


class Guard:
    """ASGI middleware: the Host check (a server bound to localhost answers only to localhost, so a web page
    cannot reach it by DNS rebinding), the token, and the security headers on every answer."""

    def __init__(self, app, serving: ServeOptions):
        self.app, self.serving = app, serving
        self.local_only = serving.host in LOOPBACK_HOSTS

    def _refusal(self, scope) -> JSONResponse | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.local_only:
            host = headers.get("host", "")
            name = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
            if name not in LOOPBACK_HOSTS:
                return _error(403, f"this server answers only on this device (Host {host!r}); "
                                   "start it with --host 0.0.0.0 to serve the LAN")
        token = self.serving.token
        if token is None:
            return None
        offered = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[-1]
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            offered = offered or authorization[7:].strip()
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                offered = offered or value
        if not hmac.compare_digest(offered.encode(), token.encode()):
            return _error(401, "a valid access token is needed: open the page as http://HOST:PORT/?token=TOKEN "
                               "(programs: ?token=TOKEN or the header 'Authorization: Bearer TOKEN')")
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            return await refusal(scope, receive, send_with_headers)
        return await self.app(scope, receive, send_with_headers)


def build_app(hub: Hub, feed: LiveFeed, readers: Readers, serving: ServeOptions, on_startup=None):
    """The Starlette app; `on_startup()` runs once the event loop is up (it starts the frame loop)."""
    static = {path: (resources.files("edge_app.web").joinpath("static", name).read_bytes(), kind)
              for path, (name, kind) in STATIC.items()}
    reads_waiting = [0]

    async def page(request: Request) -> Response:
        body, kind = static[request.url.path]
        response = Response(body, media_type=kind, headers={"cache-control": "no-cache"})
        token = request.query_params.get("token")
        if serving.token and token:  # the Guard checked it: the page's own requests carry it as a cookie
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    async def stream(request: Request) -> Response:
        if hub.viewers >= MAX_VIEWERS:
            return _error(503, f"{MAX_VIEWERS} live views are open already; close one")

        async def parts():
            hub.viewers += 1
            try:
                seen = -1 if hub.latest is not None else 0  # the last frame at once (a paused or ended source)
                while True:
                    frame = await hub.next_frame(seen)
                    if frame is None:
                        return
                    seen = hub.version
                    yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
                           f"X-Frame: {frame.index}\r\nX-Timestamp: {frame.stamp:.4f}\r\n\r\n").encode() \
                        + frame.jpeg + b"\r\n"
            finally:
                hub.viewers -= 1

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"cache-control": "no-store"})

    async def events(request: Request) -> Response:
        if hub.streams >= MAX_VIEWERS:
            return _error(503, f"{MAX_VIEWERS} event streams are open already; close one")

        async def messages():
            queue = hub.subscribe()
            hub.streams += 1
            try:
                yield b"retry: 1000\nevent: status\ndata: " + json.dumps(hub.state).encode() + b"\n\n"
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except asyncio.TimeoutError:
                        message = b": keep-alive\n\n"
                    if message is None:
                        return
                    yield message
            finally:
                hub.streams -= 1
                hub.unsubscribe(queue)

        return StreamingResponse(messages(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def state(request: Request) -> Response:
        return JSONResponse({**hub.state, "reading": hub.reading_text, "history": list(hub.history),
                             "frames": feed.frames, "viewers": hub.viewers, "debug": feed.debug,
                             "pad": {"size": CANVAS_SIZE, "pen": PEN_WIDTH}}, headers={"cache-control": "no-store"})

    async def body_of(request: Request, limit: int, what: str) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise UploadError(413, f"{what} of {int(declared):,} bytes is over the limit of {limit:,} "
                                   "(--max-upload-mb); shrink it first")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise UploadError(413, f"{what} is over the limit of {limit:,} bytes (--max-upload-mb); shrink it first")
            chunks.append(chunk)
        return b"".join(chunks)

    async def on_worker(function, *args):
        """`function(*args)` on a worker thread, queued for the model; 503 when too many wait already."""
        if reads_waiting[0] >= MAX_READS_WAITING:
            raise UploadError(503, "busy reading other images; try again in a moment")
        reads_waiting[0] += 1
        try:
            return await run_in_threadpool(function, *args)
        finally:
            reads_waiting[0] -= 1

    async def answered(work) -> Response:
        """The JSON answer of a read, or its one-line 4xx error; a bug is a 500 with its traceback on stderr."""
        try:
            return JSONResponse(await work, headers={"cache-control": "no-store"})
        except UploadError as error:
            return _error(error.status, str(error))
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception as error:  # a bug: said on stderr with its traceback, and the server goes on
            traceback.print_exc()
            return _error(500, f"internal error ({type(error).__name__}); see the server's log")

    async def draw(request: Request) -> Response:
        async def work():
            body = await body_of(request, MAX_PAD_BODY, "the drawing")
            try:
                strokes = parse_strokes(json.loads(body))
            except (ValueError, RecursionError):
                raise UploadError(400, 'the body must be JSON: {"strokes": [[[x, y], ...], ...]}') from None
            return (await on_worker(readers.pad, strokes)).to_json()

        return await answered(work())

    async def read(request: Request) -> Response:
        async def work():
            # The type is told by the file's first bytes (read_upload), whatever the Content-Type says (curl's
            # --data-binary says a form); only a real form is refused here, with what to send instead.
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind.startswith("multipart/"):
                raise UploadError(415, f"{kind}: send the image file itself as the body, not a form, "
                                       "e.g. curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' URL")
            data = await body_of(request, serving.max_upload_bytes, "the upload")
            name = request.query_params.get("name", "upload")[:100] or "upload"
            overlay = request.query_params.get("overlay", "") not in ("", "0", "false", "no")
            return await on_worker(readers.upload, data, name, overlay)

        return await answered(work())

    async def not_found(request: Request, error: HTTPException) -> Response:
        return _error(error.status_code, f"{request.method} {request.url.path}: {error.detail}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.bind(asyncio.get_running_loop())
        beat = asyncio.create_task(_heartbeat_when_idle(feed))
        if on_startup is not None:
            on_startup()
        yield
        beat.cancel()

    routes = [Route(path, page) for path in STATIC] + [
        Route("/stream.mjpg", stream), Route("/events", events), Route("/api/state", state),
        Route("/api/draw", draw, methods=["POST"]), Route("/api/read", read, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    return Guard(app, serving)


async def _heartbeat_when_idle(feed: LiveFeed) -> None:
    """systemd's watchdog hears from the frame loop with every frame; once a source has ended (a video), the
    server is what is alive, so it says so."""
    while True:
        await asyncio.sleep(5)
        if feed.ended:
            heartbeat()


class FrameLoop(threading.Thread):
    """`run.run` on a thread of its own: the same loop as `digits run`, with the live view as one more sink."""

    def __init__(self, options: RunOptions, sinks, feed: LiveFeed, hub: Hub, on_failure):
        super().__init__(daemon=True, name="frame-loop")  # a capture stuck in native code cannot block the exit
        self.options, self.sinks, self.feed, self.hub, self.on_failure = options, sinks, feed, hub, on_failure
        self.error: str | None = None

    def run(self) -> None:
        try:
            run(self.options, self.sinks)
        except StopServing:
            return
        except (ModelError, SourceError) as error:
            self.error = str(error)
        except Exception:  # a bug: its traceback, and the server stops as `digits run` would
            traceback.print_exc()
            self.error = "the frame loop failed (traceback above)"
        except KeyboardInterrupt:
            return
        if self.error is not None:
            self.hub.status("failed", self.error)
            self.on_failure()
            return
        self.feed.finish()
        self.hub.status("ended", "the source has ended; its last frame stays here, and the draw pad and uploads "
                                 "still work")


class _Server(uvicorn.Server):
    """uvicorn's server, told to end the endless responses (live views, event streams) on Ctrl-C or SIGTERM
    instead of waiting for the browsers to close them, and to exit with a status rather than re-raise."""

    def __init__(self, config: uvicorn.Config, on_exit):
        super().__init__(config)
        self.on_exit, self.signal = on_exit, None

    def handle_exit(self, sig: int, frame) -> None:
        self.signal = self.signal or sig
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C
        self.should_exit = True
        self.on_exit()


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts so a taken port is one line, not uvicorn's exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they
    # are TCP, and with it on, every small answer waits 40 ms for the browser's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart does not wait for TIME_WAIT
        sock.bind((host, port))
        sock.listen(128)
        return sock
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}; "
                         "pick another --port (or --host)") from None


def serve(options: RunOptions, serving: ServeOptions, readers: Readers, sinks) -> int:
    """Serve until Ctrl-C or SIGTERM (0; 130 for Ctrl-C), or until the source fails as `digits run` would (2)."""
    try:
        sock = listen(serving.host, serving.port)
    except ValueError as error:
        print(f"digits serve: {error}", file=sys.stderr)
        return 2
    hub = Hub()
    feed = LiveFeed(hub, options.debug, serving.stream_fps, is_timed_source(options.source) if serving.pace else None)
    server: _Server | None = None

    def stop() -> None:
        feed.stopping.set()
        hub.close()

    def failed() -> None:
        stop()
        server.should_exit = True

    loop = FrameLoop(options, [feed, *sinks], feed, hub, failed)
    config = uvicorn.Config(build_app(hub, feed, readers, serving, on_startup=loop.start), log_level="warning",
                            access_log=False, timeout_graceful_shutdown=2, lifespan="on")
    server = _Server(config, stop)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"digits serve: http://{shown}:{port}/ (source {options.source}; Ctrl-C stops)", file=sys.stderr, flush=True)
    if serving.host not in LOOPBACK_HOSTS and serving.token is None:
        print("digits serve: no --token: anyone on this network can see the camera", file=sys.stderr, flush=True)
    SOURCE_LISTENERS.append(feed.source_status)
    try:
        server.run(sockets=[sock])
    finally:
        SOURCE_LISTENERS.remove(feed.source_status)
        feed.close()
        if loop.is_alive():
            loop.join(timeout=3)  # a frozen stream's read ends within its 2 s timeout
        sock.close()
    if loop.error is not None:
        print(f"digits serve: {loop.error}", file=sys.stderr)
        return 2
    return 130 if server.signal == signal.SIGINT else 0
