"""The edge app end to end: frames per second and per-stage milliseconds of `digits run`'s pipeline.

A 640x480 clip of held digit cards is rendered once (`edge_app.synthetic.render_clip`, not timed),
then read back from the video file exactly as `digits run --source clip.avi` reads it, and every frame
goes through the app's own `DigitPipeline.process`. One pass gives both rates: with decoding
(capture + detect + classify + overlay, wall clock) and without it (detect + classify + overlay).
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# FrameResult.latency_ms (capture, detect, classify, total = their sum), plus what the window adds:
# overlay (boxes, labels, the 28x28 inputs), and path = detect + classify + overlay, the per-frame
# work the issue budgets (5 ms at 640x480 on one core) apart from the camera.
STAGES = ("capture", "detect", "classify", "overlay", "path", "total")
SEGMENT_FRAMES = 24  # frames per held card or empty stretch in the rendered clip


@dataclass(frozen=True)
class PipelineResult:
    model: str  # file name of the classifier used
    threads: int
    frames: int
    width: int
    height: int
    fps_with_decode: float | None = None  # frames / wall time of read + process
    fps_without_decode: float | None = None  # frames / time in the per-frame path (detect + classify + overlay)
    stage_p50_ms: tuple[tuple[str, float], ...] = ()  # (stage, median ms per frame), stages as in STAGES
    stage_mean_ms: tuple[tuple[str, float], ...] = ()  # what the FPS follow from
    # Medians over the frames where a digit region was found: classify is 0 ms on empty frames, and the
    # clip alternates held cards with empty stretches, so the median over all frames hides it.
    digit_frame_p50_ms: tuple[tuple[str, float], ...] = ()
    read_share: float | None = None  # frames whose voted number equals the truth, in [0, 1]
    error: str | None = None


def measure_pipeline(model: Path, threads: int, frames: int, data: str, seed: int = 0) -> PipelineResult:
    from edge_app.classifier import load_classifier
    from edge_app.mnist import load_split
    from edge_app.run import DigitPipeline, draw_overlay, read_timed
    from edge_app.sources import open_source
    from edge_app.synthetic import ClipOptions, render_clip

    # The clip opens with an empty stretch; short clips get shorter segments so a held card is in them too.
    segment_frames = max(1, min(SEGMENT_FRAMES, frames // 2))
    options = ClipOptions(segments=max(2, math.ceil(frames / segment_frames)), segment_frames=segment_frames)
    pipeline = DigitPipeline(load_classifier(model, threads=threads))
    stage_ms: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with_digits: list[bool] = []  # per frame: did the pipeline find a digit region
    matches = 0
    with tempfile.TemporaryDirectory(prefix="digits-bench-") as scratch:
        clip = Path(scratch) / "clip.avi"
        truths = render_clip(clip, load_split("test", data), seed, options)[:frames]
        started = time.perf_counter()
        with open_source(str(clip)) as source:
            for index, truth in enumerate(truths):
                got = read_timed(source)
                if got is None:
                    break
                frame, time_ms, capture_ms = got
                result = pipeline.process(frame, index, time_ms, capture_ms)
                overlay_start = time.perf_counter()
                draw_overlay(frame, result, 0.0, pipeline.min_confidence)
                latency = dict(result.latency_ms, overlay=(time.perf_counter() - overlay_start) * 1000)
                latency["path"] = latency["detect"] + latency["classify"] + latency["overlay"]
                for stage in STAGES:
                    stage_ms[stage].append(latency[stage])
                with_digits.append(bool(result.digits))
                matches += result.stable_text == truth
        wall_s = time.perf_counter() - started
    count = len(stage_ms["total"])
    if count == 0:
        return PipelineResult(model.name, threads, 0, options.width, options.height,
                              error=f"the rendered clip {clip.name} gave no frames back: "
                                    "OpenCV cannot decode MJPG here")
    process_s = sum(stage_ms["path"]) / 1000
    return PipelineResult(
        model.name, threads, count, options.width, options.height,
        fps_with_decode=count / wall_s, fps_without_decode=count / process_s,
        stage_p50_ms=tuple((stage, float(np.median(stage_ms[stage]))) for stage in STAGES),
        stage_mean_ms=tuple((stage, float(np.mean(stage_ms[stage]))) for stage in STAGES),
        digit_frame_p50_ms=tuple((stage, float(np.median(np.asarray(stage_ms[stage])[with_digits])))
                                 for stage in STAGES) if any(with_digits) else (),
        read_share=matches / count)


def pipeline_job(model: str, threads: int, frames: int, data: str, seed: int = 0) -> PipelineResult:
    """`measure_pipeline` for the worker process: any failure becomes a result with `error` set."""
    from edge_app.classifier import ModelError

    try:
        return measure_pipeline(Path(model), threads, frames, data, seed)
    except (ModelError, OSError, ValueError) as error:
        return PipelineResult(Path(model).name, threads, 0, 0, 0, error=str(error).splitlines()[0][:300])
