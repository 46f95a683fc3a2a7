"""A fleet on one broker: N simulated devices publish readings to one local Mosquitto for a while, the broker is
killed (SIGKILL) and restarted now and then, and one subscriber accounts for every reading.

Each device is its own process with its own `edge_app.mqtt.MqttSink` (the code `digits run --mqtt` uses, with
--mqtt-frames), fed FrameResults at `--fps` whose stable reading changes every 0.2-2 s; no camera and no
model, so 20 of them fit on a small machine. Each writes the (seq, text) it published; the subscriber (a
persistent session, QoS 1) keeps each reading once by seq, and the report says, per device, what was
published, what arrived, what was lost, repeated (and dropped by seq) or out of order.

    python tests/fleet_mqtt.py                                   # 20 devices, 10 minutes, a restart every 2 minutes
    python tests/fleet_mqtt.py --devices 5 --seconds 20 --restart-every 6
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mosquitto_broker import MISSING, MOSQUITTO, Mosquitto  # noqa: E402

PREFIX = "fleet"


def device(url: str, device_id: str, seconds: float, fps: float, out: Path, seed: int) -> None:
    """One simulated device: readings that change now and then, every frame to the sink, for `seconds`."""
    from edge_app.mqtt import MqttSink, mqtt_options
    from edge_app.run import FrameResult

    rng = random.Random(seed)
    sink = MqttSink(mqtt_options(f"{url}/{PREFIX}", device_id=device_id, frames=True, environ={}))
    sink.start()
    published, text, index = [], "", 0
    started = time.monotonic()
    change_at = started + rng.uniform(0.2, 2.0)
    empty = np.zeros((0, 28, 28), np.uint8)
    try:
        while time.monotonic() - started < seconds:
            now = time.monotonic()
            if now >= change_at:
                text = "" if rng.random() < 0.2 else str(rng.randrange(1000))
                change_at = now + rng.uniform(0.2, 2.0)
            result = FrameResult(index, (now - started) * 1000, text, text, [], empty, {"total": 3.0})
            sink.publish(None, result, None, fps)
            if not published or text != published[-1][1]:  # the sink's rule: the first frame's reading, then changes
                published.append((len(published) + 1, text))
            index += 1
            time.sleep(max(0.0, started + index / fps - time.monotonic()))
    finally:
        sink.close()
        out.write_text(json.dumps({"device": device_id, "session": sink.session, "published": published,
                                   "frames": index}))


def run_fleet(devices: int, seconds: float, restart_every: float, fps: float, folder: Path) -> dict:
    import paho.mqtt.client as paho

    broker = Mosquitto(folder / "broker").start()
    received: list[tuple[str, bytes]] = []
    frames = {"count": 0}
    subscriber = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fleet-subscriber", clean_session=False)
    subscriber.reconnect_delay_set(0.1, 1)

    def on_message(_client, _userdata, message) -> None:
        if message.topic.endswith("/frame"):
            frames["count"] += 1
        else:
            received.append((message.topic, message.payload))

    subscriber.on_connect = lambda client, *_: client.subscribe([(f"{PREFIX}/+/reading", 1), (f"{PREFIX}/+/frame", 0)])
    subscriber.on_message = on_message
    subscriber.connect_async("127.0.0.1", broker.port)
    subscriber.loop_start()
    time.sleep(1.0)
    children = []
    for k in range(devices):
        log = open(folder / f"device-{k:02d}.stderr", "w")
        children.append((subprocess.Popen(
            [sys.executable, __file__, "--device", f"device-{k:02d}", "--url", broker.url, "--seconds", str(seconds),
             "--fps", str(fps), "--out", str(folder / f"device-{k:02d}.json"), "--seed", str(k)],
            stderr=log, cwd=Path(__file__).resolve().parent.parent), log))
    started = time.monotonic()
    restarts = 0
    while any(child.poll() is None for child, _ in children):
        time.sleep(0.2)
        elapsed = time.monotonic() - started
        if restart_every and elapsed < seconds - 2 and elapsed >= restart_every * (restarts + 1):
            broker.restart(down_s=1.0)
            restarts += 1
    deadline = time.monotonic() + 15
    logs = [json.loads((folder / f"device-{k:02d}.json").read_text()) for k in range(devices)]
    expected = sum(len(log["published"]) for log in logs)
    while time.monotonic() < deadline and len(received) < expected:
        time.sleep(0.2)
    time.sleep(1.0)  # any late repeats
    subscriber.loop_stop()
    subscriber.disconnect()
    broker.stop()
    for _, log in children:
        log.close()

    report = {"devices": devices, "seconds": seconds, "fps": fps, "broker_restarts": restarts,
              "frames_published": sum(log["frames"] for log in logs), "frames_received": frames["count"],
              "per_device": []}
    bodies: dict[str, list[dict]] = {}
    for topic, payload in received:
        bodies.setdefault(topic.split("/")[1], []).append(json.loads(payload))
    for log in logs:
        kept, last, repeats, out_of_order = [], 0, 0, 0
        for body in bodies.get(log["device"], []):
            if body["session"] != log["session"]:
                continue
            if body["seq"] <= last:
                repeats += 1  # a QoS 1 redelivery (or a retained copy on re-subscribe), dropped by seq
                continue
            out_of_order += body["seq"] != last + 1
            last = body["seq"]
            kept.append((body["seq"], body["text"]))
        published = [tuple(item) for item in log["published"]]
        lost = len(set(published) - set(kept))
        report["per_device"].append({"device": log["device"], "published": len(published), "received": len(kept),
                                     "lost": lost, "repeats_dropped": repeats, "gaps": out_of_order,
                                     "exact": kept == published})
        stderr = (folder / f"{log['device']}.stderr").read_text().splitlines()
        report["per_device"][-1]["stderr_lines"] = len(stderr)
    totals = report["per_device"]
    report.update(readings_published=sum(d["published"] for d in totals), readings_received=sum(d["received"] for d in totals),
                  lost=sum(d["lost"] for d in totals), repeats_dropped=sum(d["repeats_dropped"] for d in totals),
                  all_exact=all(d["exact"] for d in totals))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--restart-every", type=float, default=120.0, help="seconds between broker restarts (0: none)")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second per device (each to the sink)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--device", help=argparse.SUPPRESS)  # a child: one simulated device
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device:
        device(args.url, args.device, args.seconds, args.fps, args.out, args.seed)
        return 0
    if MOSQUITTO is None:
        print(MISSING, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="digits-fleet-") as scratch:
        report = run_fleet(args.devices, args.seconds, args.restart_every, args.fps, Path(scratch))
    summary = {key: value for key, value in report.items() if key != "per_device"}
    print(json.dumps(summary))
    for row in report["per_device"]:
        if not row["exact"]:
            print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["all_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
