"""Publish readings to an MQTT broker (`digits run --mqtt URL`, `digits serve --mqtt URL`): many devices,
one place that collects their readings, nothing lost while the broker is away.

Topics, under PREFIX/DEVICE (the URL's path, default "digits"; DEVICE: --mqtt-device-id, default the host name):

- `reading`: the stable reading each time it changes (each photo's, for image files), JSON with `seq`;
  QoS 1, retained, so a subscriber that comes later sees the current reading at once;
- `frame`: with --mqtt-frames, every frame's JSON as `--format jsonl` prints it; QoS 0, never queued
  (a live view: a frame that cannot go now is worth nothing later);
- `status`: "online" while connected; "offline" as the last will (the broker sends it when the process
  dies or its network does) and on a clean exit; QoS 1, retained;
- with --mqtt-home-assistant, a retained discovery config under `homeassistant/sensor/...`.

Shape: the frame loop calls `MqttSink.publish`, which only appends to a deque (a few microseconds, never
the network). One worker thread owns the paho client and does the rest: connects and reconnects with
backoff, keeps the readings not yet handed to the broker in a bounded queue (the oldest dropped, and
counted, when it is full), and hands them over in order, at most WINDOW unacknowledged at a time. Every
paho call and callback runs on that one thread, so the readings paho sends again after a reconnect
(those unacknowledged when the connection dropped) always leave before newer ones: order is kept without
locks. QoS 1 may deliver a reading twice (its acknowledgement lost with the connection); `seq` counts one
process's readings from 1 (`session` names the process), so a subscriber drops a repeat (a `seq` not above
the last it saw of that session) and sees a reading dropped from a full queue as a gap.

Startup, decided so: a URL that cannot name a broker, a CA file that cannot be read, credentials the
broker refuses and a certificate it cannot prove are settings to fix: one-line error, exit status 2. A
broker that cannot be reached (connection refused, name not resolved, no answer) is a network that may
come back (a Pi boots before its Wi-Fi): said once on stderr, and digits goes on reading, queueing and
retrying, as it does for a camera.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edge_app.sources import REMIND_EVERY_S

DEFAULT_PREFIX = "digits"
DEFAULT_QUEUE = 10_000  # readings kept while the broker is away: about 2 MB; hours of a meter changing each second
PORTS = {"mqtt": 1883, "mqtts": 8883}
USER_ENV, PASSWORD_ENV = "DIGITS_MQTT_USER", "DIGITS_MQTT_PASSWORD"
WINDOW = 20  # readings handed to the broker and not yet acknowledged, at most (paho's own default)
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # waits between connection attempts; the last repeats
LOOP_S = 0.05  # the worker's wait on the network: a new reading leaves within this
STARTUP_WAIT_S = 3.0  # how long startup waits for the broker's first answer (a refusal is a one-line error)
CONNECT_TIMEOUT_S = 5.0  # TCP connect and TLS handshake
CONNACK_TIMEOUT_S = 10.0  # connected but no MQTT answer: not a broker, or a stuck one
KEEPALIVE_S = 15  # a connection silent for 1.5 times this (a cable pulled) counts as gone
CLOSE_WAIT_S = 5.0  # at exit, how long the queued readings may take to reach the broker
QOS_READING, QOS_FRAME = 1, 0
FRAME_BACKLOG = 30  # frames waiting for a slow socket, at most (a second of video); older ones are skipped
# CONNACK refusals that no retry will fix: the settings must change (MQTT 5 reason codes, as paho gives them).
_CREDENTIALS = f"check ${USER_ENV} and ${PASSWORD_ENV} (or --mqtt-user, --mqtt-password)"
SETTINGS_REFUSALS = {133: "the broker refused the client id (--mqtt-device-id)",
                     134: f"the broker refused the user name or password; {_CREDENTIALS}",
                     135: f"the broker refused this user (not authorized); {_CREDENTIALS}"}


@dataclass(frozen=True)
class MqttOptions:
    url: str  # the broker as shown in messages: scheme://host:port/prefix, never a password
    host: str
    port: int
    tls: bool  # mqtts://
    prefix: str  # topic levels before the device id: "digits", "home/meters"
    device_id: str  # one topic level
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # CA certificates for mqtts://; None: the system's
    frames: bool = False  # also every frame's JSON on PREFIX/DEVICE/frame
    home_assistant: bool = False  # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"
    queue_size: int = DEFAULT_QUEUE

    @property
    def broker(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def topic(self, leaf: str) -> str:
        return f"{self.prefix}/{self.device_id}/{leaf}"


@dataclass(frozen=True)
class Reading:
    """A stable reading that changed, as the frame loop hands it over (encoded later, on the worker)."""
    seq: int  # from 1, per process
    text: str  # the stable reading: lines joined by newlines, numbers by spaces; "" when nothing is read
    frame: int
    time_ms: float  # the frame's time (video position, or since a live source opened)
    timestamp: float  # seconds since the epoch when it was read (not when it was sent: queued ones go later)
    path: str | None = None  # the image file, for photos


def _masked(url: str) -> str:
    """The URL with any password in it replaced by ***."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)


def _topic_problem(text: str, what: str, one_level: bool = False) -> str | None:
    if not text or "+" in text or "#" in text or "\0" in text:
        return f"{what} {text!r} cannot be a topic: no '+', '#' or empty name"
    if "//" in f"/{text}/":
        return f"{what} {text!r} has an empty topic level"
    if one_level and "/" in text:
        return f"{what} {text!r} must be one topic level: no '/'"
    return None


def default_device_id() -> str:
    """This host's name, as one topic level (the characters MQTT topics reserve replaced by '-')."""
    return re.sub(r"[/+#\s]", "-", socket.gethostname().split(".")[0]) or "digits"


def mqtt_options(url: str, device_id: str | None = None, username: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, frames: bool = False, home_assistant: bool = False,
                 discovery_prefix: str = "homeassistant", queue_size: int = DEFAULT_QUEUE,
                 environ=os.environ) -> MqttOptions:
    """--mqtt URL and its options -> MqttOptions; ValueError with a one-line reason naming the option.

    The user and password come from the options, else the URL, else $DIGITS_MQTT_USER / $DIGITS_MQTT_PASSWORD.
    """
    shown = _masked(url)
    expected = f"--mqtt {shown}: expected mqtt://HOST[:PORT][/PREFIX] or mqtts://HOST[:PORT][/PREFIX]"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in PORTS:
        raise ValueError(expected + (f", not {scheme}://" if scheme else ""))
    try:
        port = PORTS[scheme] if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:  # ":0" too: no broker listens there, and taking it for the default would hide a typo
        raise ValueError(f"--mqtt {shown}: the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError(expected + " (no host)")
    if parts.query or parts.fragment or "#" in url:
        raise ValueError(expected + " ('?' and '#' have no meaning here)")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    device_id = default_device_id() if device_id is None else device_id
    for problem in (_topic_problem(prefix, f"--mqtt {shown}: the prefix"),
                    _topic_problem(device_id, "--mqtt-device-id", one_level=True),
                    _topic_problem(discovery_prefix, "--mqtt-discovery-prefix")):
        if problem:
            raise ValueError(problem)
    # A URL carries a user or password with '@', ':' or '/' in it percent-encoded (p%40ss): the broker wants them decoded.
    username = username or unquote(parts.username or "") or environ.get(USER_ENV) or None
    password = password or unquote(parts.password or "") or environ.get(PASSWORD_ENV) or None
    if password and not username:
        raise ValueError(f"--mqtt {shown}: a password needs a user name: set ${USER_ENV} (or --mqtt-user)")
    if ca_file is not None:
        if scheme != "mqtts":
            raise ValueError(f"--mqtt-ca-file {ca_file}: only for mqtts:// URLs (TLS); --mqtt is {shown}")
        try:
            ssl.create_default_context(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
            raise ValueError(f"--mqtt-ca-file {ca_file}: cannot be read as PEM CA certificates ({reason}); "
                             "give the CA certificate that signed the broker's") from None
    host = parts.hostname
    canonical = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/{prefix}"
    return MqttOptions(canonical, host, port, scheme == "mqtts", prefix, device_id, username, password, ca_file,
                       frames, home_assistant, discovery_prefix, queue_size)


def reading_payload(reading: Reading, options: MqttOptions, session: str) -> bytes:
    body = {"seq": reading.seq, "session": session, "device": options.device_id, "text": reading.text,
            "numbers": reading.text.split(), "frame": reading.frame, "time_ms": round(reading.time_ms, 1),
            "timestamp": round(reading.timestamp, 3)}
    if reading.path is not None:
        body["path"] = reading.path
    return json.dumps(body).encode()


def discovery_topic(options: MqttOptions) -> str:
    return f"{options.discovery_prefix}/sensor/{_home_assistant_id(options.device_id)}/reading/config"


def _home_assistant_id(device_id: str) -> str:
    return "digits_" + re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


def discovery_config(options: MqttOptions) -> dict:
    """Home Assistant's MQTT discovery: one sensor whose state is the reading, available while online."""
    from edge_app.cli import version

    node = _home_assistant_id(options.device_id)
    return {"name": "Reading", "unique_id": f"{node}_reading", "icon": "mdi:numeric",
            "state_topic": options.topic("reading"), "value_template": "{{ value_json.text }}",
            "json_attributes_topic": options.topic("reading"),
            "availability_topic": options.topic("status"), "payload_available": "online",
            "payload_not_available": "offline",
            "device": {"identifiers": [node], "name": f"digits {options.device_id}", "manufacturer": "digits",
                       "model": "digits-edge", "sw_version": version()}}


def _readings(count: int, adjective: str = "") -> str:
    """ "1 reading", "3 queued readings" """
    return f"{count} {adjective + ' ' if adjective else ''}reading{'' if count == 1 else 's'}"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _describe(error: OSError) -> str:
    """Why a connection attempt failed, in a few words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({error.verify_message}); give the CA that signed it with --mqtt-ca-file"
    if isinstance(error, ssl.SSLError):
        return f"the TLS handshake failed ({error.reason or error}); is it a TLS port (mqtts://)?"
    if isinstance(error, socket.gaierror):
        return f"host name not found ({error.strerror})"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    return (error.strerror or str(error) or type(error).__name__).lower()


class MqttSink:
    """A FrameSink (edge_app.run) that publishes the readings to an MQTT broker; see the module docstring."""

    wants_overlay = False

    def __init__(self, options: MqttOptions, session: str | None = None):
        import paho.mqtt.client as paho  # the 'mqtt' extra: a ModuleNotFoundError here names it (cli.py)

        self.options = options
        self.session = session or secrets.token_hex(4)
        self._paho = paho
        self.connected = False  # read by the frame loop, written by the worker
        # Frame loop -> worker. A deque's append and popleft are atomic; maxlen keeps the newest.
        self._handoff: collections.deque[Reading] = collections.deque(maxlen=options.queue_size)
        self._frames: collections.deque = collections.deque(maxlen=FRAME_BACKLOG)  # FrameResults, with --mqtt-frames
        self._last_text: str | None = None
        self._seq = 0
        # Worker only:
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()  # (seq, payload), oldest first
        self._unacked: dict[int, int] = {}  # paho message id -> seq, for readings handed over and not acknowledged
        self._taken = 0  # the last seq taken from the handoff (a jump: readings the full handoff dropped)
        self._dropped = 0  # readings dropped from a full queue during this outage
        self._state = "idle"  # idle (waiting to try) -> connecting (CONNACK awaited) -> connected
        self._attempts = 0  # failed attempts since the last connection
        self._next_attempt = 0.0
        self._attempt_started = 0.0
        self._away_since: float | None = None  # monotonic time the broker went (or startup, until first connected)
        self._reminded = 0.0
        self._ever_connected = False
        self._refusal: tuple[int, str] | None = None  # the CONNACK reason (code, name) of a refused connection
        self._frame_info = None  # the last frame's MQTTMessageInfo: new frames go once it is written out
        self._first = threading.Event()  # the first attempt's outcome is known
        self._first_problem: str | None = None  # ... and, when a setting is wrong, why
        self._startup_lock = threading.Lock()
        self._startup_over = False  # start() has stopped waiting for the first outcome
        self._stop = threading.Event()
        self._abandoned = False
        self._close_deadline = 0.0
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._serve, name="mqtt", daemon=True)

    def _make_client(self):
        paho = self._paho
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"digits-{self.options.device_id}-{self.session}",
                             clean_session=True, protocol=paho.MQTTv311)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_inflight_messages_set(WINDOW + 4)  # the readings' window, plus status and discovery
        client.max_queued_messages_set(0)  # the bound is ours (drop the oldest), not paho's (refuse the newest)
        if self.options.username:
            client.username_pw_set(self.options.username, self.options.password)
        if self.options.tls:
            client.tls_set(ca_certs=str(self.options.ca_file) if self.options.ca_file else None)
        client.will_set(self.options.topic("status"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        return client

    # --- the frame loop's side: never waits ---------------------------------------------------------------

    def publish(self, frame, result, overlay, fps: float) -> None:
        if self.options.frames and self.connected:
            self._frames.append(result)
        if result.path is None and result.stable_text == self._last_text:
            return
        self._last_text = result.stable_text
        self._seq += 1
        self._handoff.append(Reading(self._seq, result.stable_text, result.frame, result.time_ms, time.time(),
                                     result.path))

    def start(self, wait_s: float = STARTUP_WAIT_S) -> None:
        """Start the worker and wait up to `wait_s` for the broker's first answer; ValueError when it refuses
        the settings (credentials, certificate). A broker that cannot be reached is not an error."""
        self._thread.start()
        self._first.wait(wait_s)
        with self._startup_lock:
            self._startup_over = True  # from now on a refusal is said on stderr, and retried
            problem = self._first_problem
        if problem:
            self._abandoned = True
            self._stop.set()
            self._thread.join(CONNECT_TIMEOUT_S)
            raise ValueError(f"--mqtt {self.options.url}: {problem}")

    def close(self) -> None:
        """Send what is queued (up to CLOSE_WAIT_S), say "offline", disconnect; say what could not be sent."""
        if not self._thread.is_alive():
            return
        self._close_deadline = time.monotonic() + CLOSE_WAIT_S
        self._stop.set()
        self._thread.join(CLOSE_WAIT_S + CONNECT_TIMEOUT_S + 1)

    # --- the worker: owns the client ----------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._finished():
                self._take_handoff()
                if self._state == "idle":
                    self._try_connect()
                    continue
                if self._client.loop(timeout=LOOP_S) != self._paho.MQTT_ERR_SUCCESS:
                    self._lost()
                    continue
                if self._state == "connecting" and time.monotonic() - self._attempt_started > CONNACK_TIMEOUT_S:
                    self._client.disconnect()
                    self._client.loop(timeout=0)
                    self._lost("connected, but no MQTT answer: is it a broker's port?")
                    continue
                if self._state == "connected":
                    self._send()
            self._goodbye()
        except Exception as error:  # a bug: say it, but never take the recognizer down with it
            _say(f"MQTT publishing to {self.options.url} stopped: {type(error).__name__}: {error} (a bug, please report it)")
            self.connected = False

    def _finished(self) -> bool:
        if not self._stop.is_set():
            return False
        if self._abandoned:
            return True
        self._take_handoff()
        nothing_left = not self._pending and not self._unacked
        return (nothing_left and self._state != "connecting") or time.monotonic() > self._close_deadline

    def _take_handoff(self) -> None:
        while self._handoff:
            reading = self._handoff.popleft()
            if reading.seq > self._taken + 1:  # the handoff was full (the worker stuck in a connect)
                self._drop(reading.seq - self._taken - 1)
            self._taken = reading.seq
            if len(self._pending) >= self.options.queue_size:
                self._pending.popleft()
                self._drop(1)
            self._pending.append((reading.seq, reading_payload(reading, self.options, self.session)))

    def _drop(self, count: int) -> None:
        if not self._dropped:
            _say(f"MQTT queue full ({self.options.queue_size} readings, --mqtt-queue): dropping the oldest "
                 f"until {self.options.broker} is back")
        self._dropped += count

    def _try_connect(self) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            time.sleep(min(LOOP_S, self._next_attempt - now))
            return
        self._attempt_started = now
        self._refusal = None
        try:
            self._client.connect(self.options.host, self.options.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as error:
            problem = _describe(error) if isinstance(error, OSError) else str(error)
            if self.options.tls and isinstance(error, ConnectionResetError):
                problem += " in the TLS handshake: is it a TLS port? mqtt:// is for plain ones"
            self._failed(problem, settings=isinstance(error, ssl.SSLCertVerificationError))
            return
        self._state = "connecting"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusal = (reason_code.value, str(reason_code))  # paho's loop() then fails: _lost() says why
            return
        self._state, self.connected = "connected", True
        self._frame_info = None
        self._frames.clear()
        client.publish(self.options.topic("status"), "online", qos=1, retain=True)
        if self.options.home_assistant:
            client.publish(discovery_topic(self.options), json.dumps(discovery_config(self.options)), qos=1,
                           retain=True)
        if self._away_since is not None:
            back = f"is back after {time.monotonic() - self._away_since:.1f} s" if self._ever_connected else "reached"
            dropped = f"; the oldest {self._dropped} were dropped (queue full)" if self._dropped else ""
            _say(f"MQTT broker {self.options.broker} {back}; sending "
                 f"{_readings(len(self._pending) + len(self._unacked), 'queued')}{dropped}")
        self._ever_connected = True
        self._away_since, self._attempts, self._dropped = None, 0, 0
        with self._startup_lock:
            self._first.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._unacked.pop(mid, None)

    def _lost(self, problem: str | None = None) -> None:
        """The connection (or the attempt) ended: back to waiting, and say so."""
        code, reason = self._refusal or (None, "")
        self._refusal = None
        if problem is None and code is not None:
            problem = SETTINGS_REFUSALS.get(code, f"the broker refused the connection ({reason})")
        elif problem is None and self._state == "connecting" and not self.options.tls:
            problem = "closed before the broker answered: is it a TLS port? mqtts:// is for those"
        was_connected = self._state == "connected"
        self._failed(problem or "connection lost", settings=code in SETTINGS_REFUSALS, was_connected=was_connected)

    def _failed(self, problem: str, settings: bool = False, was_connected: bool = False) -> None:
        """An attempt failed or the connection dropped: wait (backoff) before the next, and say so once per outage.

        `settings`: the broker refused them (credentials, certificate), so only a change of settings helps.
        """
        self._state, self.connected = "idle", False
        self._attempts += 1
        now = time.monotonic()
        wait = BACKOFF_S[-1] if settings else BACKOFF_S[min(self._attempts - 1, len(BACKOFF_S) - 1)]
        self._next_attempt = now + wait
        with self._startup_lock:
            self._first.set()
            if settings and not self._startup_over:
                self._first_problem = problem  # start() makes it the one-line error
                return
        if self._stop.is_set() and self._away_since is not None:
            return  # closing in an outage already said: the exit's line counts what is left
        if self._away_since is None or was_connected:
            self._away_since = self._reminded = now
            if settings:
                _say(f"MQTT broker {self.options.broker}: {problem}; readings are queued, retrying every {wait:g} s")
            else:
                what = "went away" if self._ever_connected else "cannot be reached"
                _say(f"MQTT broker {self.options.broker} {what} ({problem}); reading goes on, readings are queued "
                     "and sent when it is back")
        elif now - self._reminded >= REMIND_EVERY_S:
            self._reminded = now
            _say(f"MQTT broker {self.options.broker} still away after {now - self._away_since:.0f} s ({problem}); "
                 f"{_readings(len(self._pending) + len(self._unacked))} queued; still trying")

    def _send(self) -> None:
        """Hand queued readings to paho in order while fewer than WINDOW await their acknowledgement."""
        topic = self.options.topic("reading")
        while self._pending and len(self._unacked) < WINDOW:
            seq, payload = self._pending.popleft()
            # Kept by paho once handed over, even if the connection drops now: it sends it again on reconnect.
            info = self._client.publish(topic, payload, qos=QOS_READING, retain=True)
            self._unacked[info.mid] = seq
        # Frames go while the socket keeps up (the last one handed over is written out); when it does not,
        # the backlog keeps the newest FRAME_BACKLOG.
        if self._frame_info is None or self._frame_info.rc or self._frame_info.is_published():
            while self._frames:
                result = self._frames.popleft()
                self._frame_info = self._client.publish(self.options.topic("frame"), json.dumps(result.to_json()),
                                                        qos=QOS_FRAME)

    def _goodbye(self) -> None:
        if self._abandoned:
            return
        if self._state == "connected":
            self._send()  # the last frames
            self._client.publish(self.options.topic("status"), "offline", qos=1, retain=True)
            self._client.disconnect()
            for _ in range(20):  # the packets out, then the socket closed
                if self._client.loop(timeout=LOOP_S) != self._paho.MQTT_ERR_SUCCESS or self._client.socket() is None:
                    break
        self.connected = False
        left = len(self._pending) + len(self._unacked)
        if left:
            # A plain connection to a TLS port gets no answer until the broker gives up on the handshake, which a
            # busy broker may not do before we exit: say the likely cause here too.
            silent = self._state == "connecting" and self._attempts == 0 and not self.options.tls  # first try, no answer
            hint = "; the broker never answered: is it a TLS port? mqtts:// is for those" if silent else ""
            _say(f"MQTT broker {self.options.broker}: {_readings(left)} not delivered before exit "
                 f"(waited {CLOSE_WAIT_S:g} s{hint})")


def add_mqtt_arguments(parser: argparse.ArgumentParser) -> None:
    """`digits run`'s (and `digits serve`'s) options for publishing to MQTT."""
    from edge_app.run import number_in

    group = parser.add_argument_group("publishing to an MQTT broker (needs the 'mqtt' extra)")
    group.add_argument("--mqtt", metavar="URL", default=None,
                       help="publish readings to this broker: mqtt://HOST[:PORT][/PREFIX] (port 1883) or mqtts:// "
                            f"(TLS, 8883); topics PREFIX/DEVICE/reading, /status, /frame (default: off; PREFIX "
                            f"{DEFAULT_PREFIX})")
    group.add_argument("--mqtt-device-id", dest="mqtt_device_id", default=None, metavar="ID",
                       help="this device's topic level (default: the host name)")
    group.add_argument("--mqtt-user", dest="mqtt_user", default=None, metavar="USER",
                       help=f"user name for the broker (default: ${USER_ENV})")
    group.add_argument("--mqtt-password", dest="mqtt_password", default=None, metavar="PASSWORD",
                       help=f"password (default: ${PASSWORD_ENV}; prefer the variable, options show in ps)")
    group.add_argument("--mqtt-ca-file", dest="mqtt_ca_file", type=Path, default=None, metavar="PEM",
                       help="CA certificate(s) that signed an mqtts:// broker's certificate (default: the system's)")
    group.add_argument("--mqtt-frames", dest="mqtt_frames", action="store_true",
                       help="also publish every frame's JSON on PREFIX/DEVICE/frame (QoS 0, not queued)")
    group.add_argument("--mqtt-home-assistant", dest="mqtt_home_assistant", action="store_true",
                       help="announce the device to Home Assistant (MQTT discovery): a sensor with the reading")
    group.add_argument("--mqtt-discovery-prefix", dest="mqtt_discovery_prefix", default="homeassistant",
                       metavar="PREFIX", help="Home Assistant's discovery prefix")
    group.add_argument("--mqtt-queue", dest="mqtt_queue", type=number_in(int, 1), default=DEFAULT_QUEUE,
                       metavar="N", help="readings kept while the broker is away; when full the oldest are dropped")


def mqtt_sinks(args: argparse.Namespace) -> list[MqttSink]:
    """[MqttSink] connected (or trying) when --mqtt is given, else []; ValueError with a one-line reason."""
    if getattr(args, "mqtt", None) is None:
        return []
    options = mqtt_options(args.mqtt, args.mqtt_device_id, args.mqtt_user, args.mqtt_password, args.mqtt_ca_file,
                           args.mqtt_frames, args.mqtt_home_assistant, args.mqtt_discovery_prefix, args.mqtt_queue)
    sink = MqttSink(options)
    sink.start()
    return [sink]
