"""What publishing to MQTT adds to the frame path: `DigitPipeline.process` + `FrameSink.publish` per frame,
without a sink, with `MqttSink` (readings only) and with `--mqtt-frames` (every frame's JSON too), against
a local Mosquitto started here.

The frames (a rendered 640x480 clip of held cards, `edge_app.synthetic.render_frames`) are decoded into
memory once, so only the per-frame path is timed. The three modes take turns, a pass of the clip each,
for `--rounds` rounds, so a neighbour's load on a shared machine falls on all of them alike; the medians
are over every frame of every pass of a mode. The sink's worker thread (JSON, the socket) runs beside
the loop as it does in `digits run`, so what it costs the loop through the GIL is in the figures.

    python tests/bench_mqtt.py                  # needs MNIST (DIGITS_MNIST_DIR) and mosquitto
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mosquitto_broker import MISSING, MOSQUITTO, Mosquitto  # noqa: E402

MODES = ("no sink", "mqtt readings", "mqtt readings + frames")


def measure(frames: list[np.ndarray], model: Path, url: str, rounds: int) -> dict:
    from edge_app.classifier import load_classifier
    from edge_app.mqtt import MqttSink, mqtt_options
    from edge_app.run import DigitPipeline

    classifier = load_classifier(model)
    sinks = {"no sink": None,
             "mqtt readings": MqttSink(mqtt_options(url, device_id="bench-readings", environ={})),
             "mqtt readings + frames": MqttSink(mqtt_options(url, device_id="bench-frames", frames=True, environ={}))}
    for sink in sinks.values():
        if sink is not None:
            sink.start()
            assert sink.connected, f"not connected to {url}"
    pipelines = {mode: DigitPipeline(classifier) for mode in MODES}
    path_ms = {mode: [] for mode in MODES}
    publish_us = {mode: [] for mode in MODES}
    for frame in frames[:10]:  # warm-up: first allocations, the interpreter's first calls
        pipelines["no sink"].process(frame)
    try:
        for _ in range(rounds):
            for mode in MODES:
                pipeline, sink = pipelines[mode], sinks[mode]
                for index, frame in enumerate(frames):
                    started = time.perf_counter()
                    result = pipeline.process(frame, index, index * 40.0)
                    published = time.perf_counter()
                    if sink is not None:
                        sink.publish(frame, result, None, 25.0)
                    ended = time.perf_counter()
                    path_ms[mode].append((ended - started) * 1000)
                    publish_us[mode].append((ended - published) * 1e6)
                time.sleep(0.2)  # let the worker drain before the next mode's pass
    finally:
        for sink in sinks.values():
            if sink is not None:
                sink.close()
    baseline = float(np.median(path_ms["no sink"]))
    return {"frames_per_pass": len(frames), "rounds": rounds, "model": model.name,
            "rows": [{"mode": mode, "frames": len(path_ms[mode]), "path_p50_ms": float(np.median(path_ms[mode])),
                      "added_p50_ms": float(np.median(path_ms[mode])) - baseline,
                      "publish_call_p50_us": float(np.median(publish_us[mode])),
                      "publish_call_p99_us": float(np.percentile(publish_us[mode], 99))} for mode in MODES]}


def main(argv: list[str] | None = None) -> int:
    from edge_app.mnist import find_mnist_dir, load_split
    from edge_app.models import default_model_path
    from edge_app.synthetic import ClipOptions, render_frames

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--frames", type=int, default=240, help="frames per pass")
    parser.add_argument("--rounds", type=int, default=5, help="passes per mode, taking turns")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped int8 model")
    args = parser.parse_args(argv)
    if MOSQUITTO is None:
        print(MISSING, file=sys.stderr)
        return 2
    mnist = find_mnist_dir()
    if mnist is None:
        print("MNIST not found: set DIGITS_MNIST_DIR", file=sys.stderr)
        return 2
    segments = max(2, args.frames // 24)
    frames = [frame for frame, _ in render_frames(load_split("test", mnist), 0, ClipOptions(segments=segments))]
    frames = frames[:args.frames]
    with tempfile.TemporaryDirectory(prefix="digits-bench-mqtt-") as scratch, Mosquitto(Path(scratch)) as broker:
        report = measure(frames, args.model or default_model_path(), f"{broker.url}/bench", args.rounds)
    print(f"{report['frames_per_pass']} frames x {report['rounds']} rounds per mode, {report['model']}")
    print(f"{'mode':<24} {'path p50 ms':>12} {'added p50 ms':>13} {'publish() p50 us':>17} {'p99 us':>8}")
    for row in report["rows"]:
        print(f"{row['mode']:<24} {row['path_p50_ms']:>12.3f} {row['added_p50_ms']:>+13.3f} "
              f"{row['publish_call_p50_us']:>17.1f} {row['publish_call_p99_us']:>8.1f}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
