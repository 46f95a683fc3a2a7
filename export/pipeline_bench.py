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
    # Still photos through `read_still` (decode included): a rendered 12-megapixel JPEG page, and the
    # photos of --photos when given. Seconds per photo.
    still_12mp_p50_s: float | None = None
    photos: int = 0
    photo_p50_s: float | None = None
    photo_mean_s: float | None = None
    unreadable_photos: int = 0  # files of --photos that could not be read (left out of the timings)
    error: str | None = None


STILL_RUNS = 5  # reads of the rendered 12-megapixel page (the median is reported)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def render_page_photo(path: Path, digits, seed: int = 0) -> None:
    """A 4032x3024 phone-like JPEG of a sheet with four lines of ten MNIST digits (about 4% of its height each)."""
    import cv2

    rng = np.random.default_rng(seed)
    height, width = 3024, 4032
    light = np.linspace(0.85, 1.0, width, dtype=np.float32)[None, :]
    page = (np.full((height, width), 228, np.float32) * light)
    size = 130
    for line in range(4):
        for k in range(10):
            digit = cv2.resize(digits[int(rng.integers(len(digits)))], (size, size), interpolation=cv2.INTER_CUBIC)
            ink = np.clip((digit.astype(np.float32) / 255 - 0.5) * 3 + 0.5, 0, 1)
            top, left = 700 + line * 420, 600 + k * 280
            window = page[top:top + size, left:left + size]
            page[top:top + size, left:left + size] = window * (1 - ink) + 35 * ink
    page += rng.normal(0, 3, page.shape)
    cv2.imwrite(str(path), cv2.cvtColor(np.clip(page, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])


def measure_stills(pipeline, page: Path, photos: Path | None) -> dict:
    """Seconds per still through `read_still`, decode included: the rendered page, then every photo in `photos`
    (a file that cannot be read is left out and counted)."""
    from edge_app.images import ImageError
    from edge_app.run import read_still

    def seconds(path: Path) -> float:
        started = time.perf_counter()
        read_still(path, pipeline)
        return time.perf_counter() - started

    seconds(page)  # warm-up: first allocations
    result = {"still_12mp_p50_s": float(np.median([seconds(page) for _ in range(STILL_RUNS)]))}
    if photos is not None:
        files = sorted(p for p in Path(photos).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        timings = []
        for path in files:
            try:
                timings.append(seconds(path))
            except ImageError:
                result["unreadable_photos"] = result.get("unreadable_photos", 0) + 1
        if timings:
            result.update(photos=len(timings), photo_p50_s=float(np.median(timings)),
                          photo_mean_s=float(np.mean(timings)))
    return result


def measure_pipeline(model: Path, threads: int, frames: int, data: str, seed: int = 0,
                     photos: str | None = None) -> PipelineResult:
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
        page = Path(scratch) / "page_12mp.jpg"
        render_page_photo(page, load_split("test", data).images, seed)
        stills = measure_stills(pipeline, page, Path(photos) if photos else None)
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
        read_share=matches / count, **stills)


def pipeline_job(model: str, threads: int, frames: int, data: str, seed: int = 0,
                 photos: str | None = None) -> PipelineResult:
    """`measure_pipeline` for the worker process: any failure becomes a result with `error` set."""
    from edge_app.classifier import ModelError

    try:
        return measure_pipeline(Path(model), threads, frames, data, seed, photos)
    except (ModelError, OSError, ValueError) as error:
        return PipelineResult(Path(model).name, threads, 0, 0, 0, error=str(error).splitlines()[0][:300])
