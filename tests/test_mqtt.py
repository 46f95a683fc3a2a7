"""`digits run --mqtt`: readings published to a real Mosquitto started here, through broker restarts, refused
credentials, TLS, a broker that is not there yet, and the last will of a killed process."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_app.mqtt import MqttSink, mqtt_options
from edge_app.run import FrameResult

from conftest import MODELS, ROOT, run_digits
from fleet_mqtt import run_fleet
from mjpeg_server import MjpegStream
from mosquitto_broker import MISSING, MOSQUITTO, MOSQUITTO_PASSWD, Mosquitto, free_port

MODEL = MODELS / "cnn_int8.tflite"
HANDDRAWN = ROOT / "tests" / "data" / "handdrawn"
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason=MISSING)
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL} not exported yet")
paho = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt missing: pip install -e '.[dev]'")


# --- helpers ------------------------------------------------------------------------------------------------

class Subscriber:
    """A paho subscriber on `topic` recording (topic, payload, retained) as they arrive; `persistent` keeps its
    session on the broker (clean_session False, QoS 1), so what is published while it reconnects after a broker
    restart is kept for it."""

    def __init__(self, port: int, topic: str = "#", persistent: bool = False, user: str | None = None,
                 password: str | None = None):
        self.messages: list[tuple[str, str, bool]] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}",
                                  clean_session=not persistent)
        if user:
            self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload.decode(), m.retain))
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def payloads(self, topic: str) -> list[str]:
        return [payload for got, payload, _ in list(self.messages) if got == topic]

    def wait_for(self, topic: str, payload: str | None = None, timeout: float = 10.0) -> bool:
        """Whether `payload` (None: any payload) arrives on `topic` within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            arrived = self.payloads(topic)
            if arrived and (payload is None or payload in arrived):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def unique_readings(payloads: list[str]) -> tuple[list[dict], int]:
    """What a subscriber keeps: each reading once (QoS 1 may deliver one twice; a repeat has a `seq` not above
    the last seen of its session), and how many repeats it dropped. A repeat must be the same message."""
    kept, last, by_seq, repeats = [], {}, {}, 0
    for payload in payloads:
        body = json.loads(payload)
        key = (body["session"], body["seq"])
        if body["seq"] <= last.get(body["session"], 0):
            assert by_seq.get(key) == body, f"seq {body['seq']} came twice with different content"
            repeats += 1
            continue
        last[body["session"]] = body["seq"]
        by_seq[key] = body
        kept.append(body)
    return kept, repeats


def stable_changes(rows: list[dict]) -> list[str]:
    """The stable readings the sink publishes: the first frame's, then each change."""
    changes = []
    for row in rows:
        if not changes or row["stable_text"] != changes[-1]:
            changes.append(row["stable_text"])
    return changes


def card(digit: int | None) -> bytes:
    """A 320x240 JPEG of a handdrawn digit on a card held in front of a green wall (None: an empty wall)."""
    frame = np.full((240, 320, 3), (90, 120, 100), np.uint8)
    if digit is not None:
        frame[30:210, 70:250] = cv2.resize(cv2.imread(str(HANDDRAWN / f"{digit}.png")), (180, 180))
    return cv2.imencode(".jpg", frame)[1].tobytes()


class CardStream:
    """A live MJPEG stream at 25 fps whose card changes every `hold_s`: a paced source, so the broker can be
    restarted while `digits run` is in the middle of it."""

    def __init__(self, hold_s: float = 0.5):
        self.cards = [card(None if k % 4 == 3 else k % 10) for k in range(12)]
        self.stream = MjpegStream(jpeg=self.cards[0])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._turn, args=(hold_s,), daemon=True)
        self._thread.start()

    def _turn(self, hold_s: float) -> None:
        k = 0
        while not self._stop.wait(hold_s):
            k += 1
            self.stream.jpeg = self.cards[k % len(self.cards)]

    @property
    def url(self) -> str:
        return self.stream.url

    def close(self) -> None:
        self._stop.set()
        self.stream.close()


def start_digits(*args: str, env_extra: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge_app", "run", "--headless", "--model", str(MODEL), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env_extra or {})})


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip(MISSING)
    with Mosquitto(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def cards():
    stream = CardStream()
    yield stream
    stream.close()


# --- options and errors, no broker needed --------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("http://broker.local", "expected mqtt://HOST[:PORT][/PREFIX] or mqtts://HOST[:PORT][/PREFIX], not http://"),
    ("broker.local:1883", "expected mqtt://"),
    ("mqtt://", "(no host)"),
    ("mqtt://broker.local:99999/x", "the port must be a number from 1 to 65535"),
    ("mqtt://broker.local:port/x", "the port must be a number from 1 to 65535"),
    ("mqtt://broker.local:0/x", "the port must be a number from 1 to 65535"),  # not quietly 1883
    ("mqtt://broker.local/home/+/meters", "cannot be a topic"),
    ("mqtt://broker.local/home//meters", "empty topic level"),
    ("mqtt://broker.local/x?retain=1", "'?' and '#' have no meaning here"),
])
def test_bad_urls_are_refused_with_a_reason(url, expected):
    with pytest.raises(ValueError) as refused:
        mqtt_options(url, device_id="pi", environ={})
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_options_urls_and_environment():
    plain = mqtt_options("mqtt://broker.local", device_id="pi", environ={})
    assert (plain.url, plain.port, plain.tls, plain.prefix, plain.topic("reading")) == \
        ("mqtt://broker.local:1883/digits", 1883, False, "digits", "digits/pi/reading")
    tls = mqtt_options("mqtts://broker.local/home/meters", device_id="kitchen",
                       environ={"DIGITS_MQTT_USER": "meter", "DIGITS_MQTT_PASSWORD": "s3cret"})
    assert (tls.port, tls.tls, tls.topic("status"), tls.username, tls.password) == \
        (8883, True, "home/meters/kitchen/status", "meter", "s3cret")
    assert "s3cret" not in repr(tls) and "s3cret" not in tls.url
    given = mqtt_options("mqtt://url-user:url-pass@broker.local:1884", device_id="pi", username="option-user",
                         environ={"DIGITS_MQTT_USER": "env-user", "DIGITS_MQTT_PASSWORD": "env-pass"})
    assert (given.username, given.password, given.url) == ("option-user", "url-pass", "mqtt://broker.local:1884/digits")
    encoded = mqtt_options("mqtt://me%40home:p%40ss%3Aword@broker.local", device_id="pi", environ={})
    assert (encoded.username, encoded.password) == ("me@home", "p@ss:word")  # as the broker must be sent them
    with pytest.raises(ValueError, match="must be one topic level"):
        mqtt_options("mqtt://broker.local", device_id="a/b", environ={})
    with pytest.raises(ValueError, match="a password needs a user name"):
        mqtt_options("mqtt://broker.local", device_id="pi", environ={"DIGITS_MQTT_PASSWORD": "x"})
    with pytest.raises(ValueError, match="only for mqtts://"):
        mqtt_options("mqtt://broker.local", device_id="pi", ca_file=Path("ca.pem"), environ={})
    with pytest.raises(ValueError, match="cannot be read as PEM CA certificates"):
        mqtt_options("mqtts://broker.local", device_id="pi", ca_file=ROOT / "README.md", environ={})


def test_bad_url_on_the_command_line_is_one_line_exit_2():
    result = run_digits("run", "--headless", "--source", str(HANDDRAWN), "--mqtt", "http://user:pw@broker.local")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "--mqtt http://user:***@broker.local: expected mqtt://" in result.stderr


def test_without_the_extra_it_names_the_extra():
    code = ("import sys; sys.modules['paho'] = None; from edge_app.cli import main; "
            "sys.exit(main(['run', '--headless', '--source', 'tests/data/handdrawn', '--mqtt', 'mqtt://127.0.0.1']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "digits run: needs 'paho', which this install lacks: " \
        "pip install 'digits-edge[mqtt]' (from a clone: pip install -e '.[mqtt]')"


# --- against a real broker ---------------------------------------------------------------------------------

@needs_model
def test_readings_frames_status_and_home_assistant_arrive(broker):
    subscriber = Subscriber(broker.port)
    try:
        result = run_digits("run", "--headless", "--source", str(HANDDRAWN), "--format", "jsonl", "--model", str(MODEL),
                            "--mqtt", f"{broker.url}/test", "--mqtt-device-id", "desk-1", "--mqtt-frames",
                            "--mqtt-home-assistant")
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert subscriber.wait_for("test/desk-1/status", "offline")
    finally:
        subscriber.close()
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    readings, repeats = unique_readings(subscriber.payloads("test/desk-1/reading"))
    # One reading per photo, in order, numbered from 1, the same text as stdout.
    assert [r["seq"] for r in readings] == list(range(1, 11)) and repeats == 0
    assert [(r["path"], r["text"]) for r in readings] == [(row["path"], row["stable_text"]) for row in rows]
    assert [r["text"] for r in readings] == [str(d) for d in range(10)]
    # Every frame's JSON, the same object as --format jsonl.
    assert [json.loads(p) for p in subscriber.payloads("test/desk-1/frame")] == rows
    assert subscriber.payloads("test/desk-1/status") == ["online", "offline"]
    config = json.loads(subscriber.payloads("homeassistant/sensor/digits_desk-1/reading/config")[0])
    assert config["state_topic"] == "test/desk-1/reading" and config["value_template"] == "{{ value_json.text }}"
    assert config["availability_topic"] == "test/desk-1/status" and config["unique_id"] == "digits_desk-1_reading"
    # A subscriber that comes later sees the last reading and the status at once (retained).
    late = Subscriber(broker.port, "test/#")
    try:
        # The broker sends the retained messages one topic after another: wait for each, not just the first.
        assert late.wait_for("test/desk-1/status", "offline") and late.wait_for("test/desk-1/reading")
        assert json.loads(late.payloads("test/desk-1/reading")[-1])["text"] == "9"
    finally:
        late.close()


@needs_model
@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason=MISSING)
def test_wrong_credentials_are_one_line_exit_2_and_right_ones_publish(tmp_path):
    if MOSQUITTO is None:
        pytest.skip(MISSING)
    with Mosquitto(tmp_path / "broker", users={"meter": "right-password"}) as broker:
        args = ("run", "--headless", "--source", str(HANDDRAWN), "--model", str(MODEL), "--mqtt", broker.url,
                "--mqtt-device-id", "pi")
        for env in ({"DIGITS_MQTT_USER": "meter", "DIGITS_MQTT_PASSWORD": "wrong-password"}, {}):
            refused = run_digits(*args, env_extra=env)
            assert refused.returncode == 2, refused.stderr
            assert refused.stdout == "" and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
            assert "wrong-password" not in refused.stderr
            assert refused.stderr.startswith(f"digits run: --mqtt {broker.url}/digits: the broker refused")
        subscriber = Subscriber(broker.port, "digits/pi/reading", user="meter", password="right-password")
        try:
            accepted = run_digits(*args, env_extra={"DIGITS_MQTT_USER": "meter", "DIGITS_MQTT_PASSWORD": "right-password"})
            assert accepted.returncode == 0 and accepted.stderr == "", accepted.stderr
            deadline = time.monotonic() + 5
            while len(subscriber.payloads("digits/pi/reading")) < 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [r["text"] for r in unique_readings(subscriber.payloads("digits/pi/reading"))[0]] == \
                [str(d) for d in range(10)]
        finally:
            subscriber.close()


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate for 127.0.0.1 signed by it (openssl), as (ca, certificate, key)."""
    folder.mkdir()
    ca, ca_key, cert, key = folder / "ca.pem", folder / "ca.key", folder / "broker.pem", folder / "broker.key"
    quiet = {"check": True, "capture_output": True, "cwd": folder}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
                    "-days", "2", "-subj", "/CN=digits test CA"], **quiet)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", "broker.csr",
                    "-subj", "/CN=127.0.0.1"], **quiet)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "x509", "-req", "-in", "broker.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", cert, "-days", "2", "-extfile", "san.cnf"], **quiet)
    return ca, cert, key


@pytest.mark.slow
@needs_model
@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
                    reason="openssl is not installed (needed to make the test certificates)")
def test_mqtts_with_the_ca_file_publishes_and_without_it_is_one_line_exit_2(tmp_path):
    if MOSQUITTO is None:
        pytest.skip(MISSING)
    ca, cert, key = _make_certificates(tmp_path / "tls")
    with Mosquitto(tmp_path / "broker", tls=(ca, cert, key)) as broker:
        url = f"mqtts://127.0.0.1:{broker.port}/secure"
        args = ("run", "--headless", "--source", str(HANDDRAWN / "7.png"), "--model", str(MODEL), "--mqtt", url,
                "--mqtt-device-id", "pi")
        untrusted = run_digits(*args)
        assert untrusted.returncode == 2 and untrusted.stderr.count("\n") == 1, untrusted.stderr
        assert "its TLS certificate is not trusted" in untrusted.stderr and "--mqtt-ca-file" in untrusted.stderr
        trusted = run_digits(*args, "--mqtt-ca-file", str(ca))
        assert trusted.returncode == 0 and trusted.stderr == "", trusted.stderr
        log = (broker.folder / "mosquitto.log").read_text()
        assert "Received PUBLISH from digits-pi-" in log and "secure/pi/reading" in log
        # mqtt:// to the TLS port: not a setting the broker refused, so reading goes on, with a hint.
        plain = run_digits("run", "--headless", "--source", str(HANDDRAWN / "7.png"), "--model", str(MODEL),
                           "--mqtt", f"mqtt://127.0.0.1:{broker.port}")
        assert plain.returncode == 0 and plain.stdout.strip().endswith("7.png: 7")
        # Said when the broker closes the connection, or at exit if a busy broker has not closed it by then.
        assert "is it a TLS port? mqtts:// is for those" in plain.stderr.splitlines()[0], plain.stderr


@needs_model
@needs_mosquitto
def test_last_will_says_offline_when_the_process_is_killed(broker, cards):
    subscriber = Subscriber(broker.port, "digits/killed/status")
    app = start_digits("--source", cards.url, "--mqtt", broker.url, "--mqtt-device-id", "killed")
    try:
        assert subscriber.wait_for("digits/killed/status", "online", timeout=30), app.stderr.read() if app.poll() else ""
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        assert subscriber.wait_for("digits/killed/status", "offline", timeout=5)
        assert subscriber.payloads("digits/killed/status") == ["online", "offline"]
    finally:
        app.kill()
        app.communicate()
        subscriber.close()


def _frame_result(index: int, text: str) -> FrameResult:
    return FrameResult(index, index * 40.0, text, text, [], np.zeros((0, 28, 28), np.uint8), {})


@needs_mosquitto
def test_a_full_queue_drops_the_oldest_says_so_and_the_rest_arrive_in_order(tmp_path, capfd):
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, "digits/queued/reading", persistent=True)
    broker.stop()  # the subscriber's session is saved; the sink starts with the broker away
    sink = MqttSink(mqtt_options(broker.url, device_id="queued", queue_size=5, environ={}))
    sink.start()
    try:
        for index in range(12):
            sink.publish(None, _frame_result(index, str(index)), None, 25.0)
        time.sleep(0.3)
        broker.start()
        deadline = time.monotonic() + 10
        while len(subscriber.payloads("digits/queued/reading")) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sink.close()
        subscriber.close()
        broker.stop()
    readings, _ = unique_readings(subscriber.payloads("digits/queued/reading"))
    assert [(r["seq"], r["text"]) for r in readings] == [(seq, str(seq - 1)) for seq in range(8, 13)]
    said = capfd.readouterr().err.strip().splitlines()
    assert said[0] == f"MQTT broker 127.0.0.1:{broker.port} cannot be reached (connection refused); reading goes on, " \
                      "readings are queued and sent when it is back"
    assert said[1] == f"MQTT queue full (5 readings, --mqtt-queue): dropping the oldest until 127.0.0.1:{broker.port} is back"
    assert said[2] == f"MQTT broker 127.0.0.1:{broker.port} reached; sending 5 queued readings; the oldest 7 were " \
                      "dropped (queue full)"
    assert len(said) == 3


def _first_line(stream, timeout_s: float) -> str:
    """The first line a child process writes to the pipe `stream`, or what came of it in time. Read byte by byte
    from the descriptor, so nothing after the line is held in a buffer that `communicate` would not see."""
    deadline, data = time.monotonic() + timeout_s, b""
    while not data.endswith(b"\n") and (left := deadline - time.monotonic()) > 0:
        if not select.select([stream], [], [], left)[0]:
            break
        byte = os.read(stream.fileno(), 1)
        if not byte:
            break
        data += byte
    return data.decode()


def _run_through_restarts(tmp_path, cards, restarts: int, start_down: bool) -> tuple[list[str], list[dict], int, str]:
    """`digits run` on the paced stream for a while, the broker killed (SIGKILL) and restarted `restarts` times
    in the middle; (stable changes on stdout, readings the subscriber kept, repeats it dropped, stderr)."""
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, "digits/restarts/reading", persistent=True)
    if start_down:
        broker.stop()  # the subscriber's session saved
    frames = 100 + 75 * restarts  # 25 frames a second: 4 s, then 3 s per restart
    app = start_digits("--source", cards.url, "--format", "jsonl", "--max-frames", str(frames),
                       "--mqtt", broker.url, "--mqtt-device-id", "restarts")
    said_first = ""
    try:
        if start_down:
            # Start the broker once the app has tried it and said so: a fixed wait races a slow start (a busy
            # machine loads the model later than the broker comes up).
            said_first = _first_line(app.stderr, timeout_s=60)
            time.sleep(1.0)
            broker.start()
        else:
            time.sleep(2.5)
        for _ in range(restarts):
            time.sleep(1.5)
            broker.restart(down_s=0.5)
        out, err = app.communicate(timeout=120)
        err = said_first + err
        assert app.returncode == 0, err
        deadline = time.monotonic() + 10
        changes = stable_changes([json.loads(line) for line in out.splitlines()])
        while len(unique_readings(subscriber.payloads("digits/restarts/reading"))[0]) < len(changes) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        readings, repeats = unique_readings(subscriber.payloads("digits/restarts/reading"))
        return changes, readings, repeats, err
    finally:
        app.kill()
        subscriber.close()
        broker.stop()


@pytest.mark.slow
@needs_model
@needs_mosquitto
def test_broker_restarted_three_times_mid_clip_loses_and_repeats_no_reading(tmp_path, cards):
    changes, readings, repeats, err = _run_through_restarts(tmp_path, cards, restarts=3, start_down=False)
    print(f"{len(changes)} stable readings, {repeats} repeats dropped by seq; stderr:\n{err}")
    assert len(changes) >= 12  # the cards changed while the broker was restarted
    # Every stable reading exactly once, in order, numbered without a gap.
    assert [r["text"] for r in readings] == changes
    assert [r["seq"] for r in readings] == list(range(1, len(changes) + 1))
    said = err.strip().splitlines()
    assert sum("went away" in line for line in said) == 3 and sum("is back after" in line for line in said) == 3
    assert "not delivered" not in err


@pytest.mark.slow
@needs_model
@needs_mosquitto
def test_a_broker_away_at_startup_is_one_line_and_reading_goes_on(tmp_path, cards):
    changes, readings, repeats, err = _run_through_restarts(tmp_path, cards, restarts=0, start_down=True)
    said = err.strip().splitlines()
    assert said[0].startswith("MQTT broker 127.0.0.1:") and "cannot be reached (connection refused)" in said[0]
    assert "reached; sending" in said[1] and len(said) == 2
    assert [r["text"] for r in readings] == changes
    assert [r["seq"] for r in readings] == list(range(1, len(changes) + 1))


@pytest.mark.slow
@needs_model
def test_an_unreachable_host_is_one_line_and_the_photos_are_still_read():
    port = free_port()  # nothing listens there
    result = run_digits("run", "--headless", "--source", str(HANDDRAWN / "3.png"), "--model", str(MODEL),
                        "--mqtt", f"mqtt://127.0.0.1:{port}")
    assert result.returncode == 0
    assert result.stdout.strip().endswith("3.png: 3")
    said = result.stderr.strip().splitlines()
    assert said == [f"MQTT broker 127.0.0.1:{port} cannot be reached (connection refused); reading goes on, readings "
                    "are queued and sent when it is back",
                    f"MQTT broker 127.0.0.1:{port}: 1 reading not delivered before exit (waited 5 s)"]


def _run_against_a_port_that_holds(hold_s: float | None):
    """`digits run --mqtt` to a plain TCP port that takes the first connection and sends nothing: it closes that
    connection after `hold_s` seconds, or only after the app has exited (None). -> (the run's result, port)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held = []

    def hold():
        connection, _ = listener.accept()
        held.append(connection)
        if hold_s is not None:
            time.sleep(hold_s)
            connection.close()

    server = threading.Thread(target=hold, daemon=True)
    server.start()
    try:
        result = run_digits("run", "--headless", "--source", str(HANDDRAWN / "3.png"), "--model", str(MODEL),
                            "--mqtt", f"mqtt://127.0.0.1:{port}")
    finally:
        server.join(10)
        for connection in held:
            connection.close()
        listener.close()
    assert result.returncode == 0 and result.stdout.strip().endswith("3.png: 3")
    return result, port


@pytest.mark.slow
@needs_model
def test_a_server_that_never_answers_is_said_at_exit_with_the_likely_cause():
    """A port that takes the connection and neither answers nor closes it before the app exits (a busy TLS
    broker that has not given up on a plain client's handshake yet): the exit line gives the likely cause."""
    result, port = _run_against_a_port_that_holds(None)
    assert result.stderr.strip().splitlines()[-1] == (
        f"MQTT broker 127.0.0.1:{port}: 1 reading not delivered before exit (waited 5 s; the broker never "
        "answered: is it a TLS port? mqtts:// is for those)"), result.stderr


@pytest.mark.slow
@needs_model
def test_a_server_that_hangs_up_after_startup_is_still_said_at_exit():
    """A port that takes the connection and closes it only after startup stopped waiting (a TLS port slow to
    give up on a plain client): the reason is said even though the app is already closing."""
    result, port = _run_against_a_port_that_holds(4.0)  # past startup's 3 s wait, within the 5 s given at exit
    assert result.stderr.strip().splitlines() == [
        f"MQTT broker 127.0.0.1:{port} cannot be reached (closed before the broker answered: is it a TLS port? "
        "mqtts:// is for those); reading goes on, readings are queued and sent when it is back",
        f"MQTT broker 127.0.0.1:{port}: 1 reading not delivered before exit (waited 5 s)"]


@pytest.mark.slow
@needs_mosquitto
def test_five_devices_on_one_broker_through_two_restarts_every_reading_accounted_for(tmp_path):
    """The short form of tests/fleet_mqtt.py (20 devices for 10 minutes; README has its figures)."""
    report = run_fleet(devices=5, seconds=16, restart_every=6, fps=10, folder=tmp_path)
    print({key: value for key, value in report.items() if key != "per_device"})
    assert report["broker_restarts"] == 2
    assert report["readings_published"] >= 5 * 8 and report["lost"] == 0
    assert report["all_exact"], [row for row in report["per_device"] if not row["exact"]]


@needs_model
@needs_mosquitto
def test_sigterm_sends_what_is_queued_and_says_offline(broker, tmp_path):
    """`systemctl stop` (SIGTERM) ends `digits run --mqtt` as a finished source does: the sink is closed, so every
    stable reading printed reaches the broker and the status says "offline" from a clean exit (exit status 0).
    A video file, not a stream: a signal while a stream's worker thread is inside its read aborts the process."""
    clip = tmp_path / "cards.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    faces = [cv2.imdecode(np.frombuffer(card(k % 10), np.uint8), cv2.IMREAD_COLOR) for k in range(10)]
    for index in range(3000):  # a new card every 12 frames; more than the run reads before its SIGTERM
        writer.write(faces[index // 12 % 10])
    writer.release()
    subscriber = Subscriber(broker.port, "digits/stopped/#")
    app = start_digits("--source", str(clip), "--format", "jsonl", "--mqtt", broker.url, "--mqtt-device-id", "stopped")
    try:
        assert subscriber.wait_for("digits/stopped/status", "online", timeout=30), app.stderr.read() if app.poll() else ""
        deadline = time.monotonic() + 20
        while len(subscriber.payloads("digits/stopped/reading")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        app.send_signal(signal.SIGTERM)
        out, err = app.communicate(timeout=20)
    finally:
        app.kill()
    assert app.returncode == 0 and "Traceback" not in err, err
    changes = stable_changes([json.loads(line) for line in out.splitlines()])
    assert subscriber.wait_for("digits/stopped/status", "offline", timeout=5)
    readings, _ = unique_readings(subscriber.payloads("digits/stopped/reading"))
    subscriber.close()
    assert [r["text"] for r in readings] == changes and len(changes) >= 2
    assert subscriber.payloads("digits/stopped/status") == ["online", "offline"]
