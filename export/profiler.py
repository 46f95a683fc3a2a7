"""Measure one model in one process: load time, first inference, latency percentiles, throughput, peak RSS.

`digits bench` runs this module as a worker, one fresh Python process per (model, runtime, threads):

- peak RSS (`ru_maxrss`) then belongs to that model and runtime alone, not to whatever ran before it;
- thread pools and CPU pinning are set before the runtime starts, and cannot leak into the next row;
- a model file that crashes its runtime (a segfault in native code) costs one error row, not the run;
- TensorFlow, needed only for the Keras baselines, never enters the process that times an edge model.

Protocol: `python -m export.profiler '{"job": "model", <JobSpec fields>}'` prints one JSON line, a
`ModelResult` (`"job": "pipeline"` measures `digits run`'s pipeline instead, see export.pipeline_bench).
The latency is the runtime's own inference call on an input prepared once, as TFLite's benchmark_model
and onnxruntime_perf_test time it (`Interpreter.invoke`, `InferenceSession.run`, `model(x)` or
`model.predict(x)`); `api_p50_ms` adds what the app also pays per call through `Classifier`: int8
quantization of the input, copying the output out and dequantizing it.
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

MIN_TIMED_RUNS = 10  # a time budget never cuts a measurement below this many calls
# suffix -> modules imported before the model is loaded, so that load_s is the model, not the import
RUNTIME_MODULES = {".tflite": ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"),
                   ".onnx": ("onnxruntime",), ".keras": ("tensorflow", "keras")}
KERAS_VARIANTS = {"direct": "keras", "predict": "keras.predict"}  # how a .keras model is called -> runtime name


@dataclass(frozen=True)
class JobSpec:
    """What one worker process measures."""
    path: str
    threads: int
    runs: int  # timed single-image calls, at most
    warmup: int  # untimed calls before timing, at most
    max_seconds: float  # time budget per timed loop (slow baselines stop early, never below MIN_TIMED_RUNS)
    batches: tuple[int, ...]  # batch sizes for throughput
    data: str | None = None  # MNIST folder for accuracy; None skips it
    variant: str = "direct"  # .keras only: "direct" (model(x)) or "predict" (model.predict(x))


@dataclass(frozen=True)
class LatencyStats:
    runs: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


@dataclass(frozen=True)
class ModelResult:
    """One row of the benchmark: one model file, through one runtime, at one thread count."""
    model: str  # file name
    format: str  # export format name from export.formats.FORMATS, or "keras"
    runtime: str  # the package that ran it: ai_edge_litert, onnxruntime, keras, keras.predict
    threads: int
    cpus: str  # the cores the worker was pinned to, e.g. "0" or "0-1"; "" = not pinned
    size_bytes: int
    import_s: float | None = None  # importing the runtime package
    load_s: float | None = None  # model file -> ready classifier
    first_ms: float | None = None  # the first inference after loading (plans, allocates, JITs)
    latency: LatencyStats | None = None  # batch of 1, after warm-up, the runtime's call only
    api_p50_ms: float | None = None  # one uint8 digit through Classifier.probabilities (quantize + run + dequantize)
    throughput: tuple[tuple[int, float], ...] = ()  # (batch size, images per second)
    base_rss_mb: float | None = None  # peak RSS of the worker before importing the runtime (Python + numpy)
    peak_rss_mb: float | None = None  # peak RSS of the worker after timing (accuracy pass excluded), MiB
    accuracy: float | None = None  # MNIST test accuracy in [0, 1]; None when not measured
    error: str | None = None  # one line; set when the model could not be measured
    samples_ms: tuple[float, ...] = field(default=(), repr=False)  # the timed single-image calls

    @property
    def label(self) -> str:
        return f"{self.model} {self.runtime} t{self.threads}"


def summarize(samples_ns: np.ndarray) -> LatencyStats:
    ms = np.asarray(samples_ns, np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencyStats(len(ms), float(ms.mean()), float(ms.std()), float(ms.min()), float(p50), float(p90),
                        float(p99))


def time_calls(call: Callable[[], object], runs: int, warmup: int, max_seconds: float) -> np.ndarray:
    """Nanoseconds per call of `call`, after `warmup` untimed calls; both loops stop at the time budget."""
    deadline = time.perf_counter() + max_seconds
    for _ in range(warmup):
        call()
        if time.perf_counter() > deadline:
            break
    samples = np.zeros(runs, np.int64)
    deadline = time.perf_counter_ns() + int(max_seconds * 1e9)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a 50 us call would be a 1 ms outlier that is not the model's
    try:
        for index in range(runs):
            start = time.perf_counter_ns()
            call()
            end = time.perf_counter_ns()
            samples[index] = end - start
            if end > deadline and index + 1 >= MIN_TIMED_RUNS:
                return samples[:index + 1]
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def format_of(path: Path) -> str:
    """The registry's name for a model file (from the manifest beside it, else its file name), or its suffix."""
    from edge_app.models import read_manifest
    from export.formats import FORMATS

    if path.suffix == ".keras":
        return "keras"
    try:
        listed = read_manifest(path.parent).get("artifacts", {}).get(path.name, {}).get("format")
    except (OSError, ValueError):
        listed = None
    if listed:
        return listed
    for fmt in FORMATS.values():
        if path.name.endswith(f"_{fmt.dtype}{fmt.suffix}"):
            return fmt.name
    return path.suffix.lstrip(".")


def _import_runtime(suffix: str, threads: int) -> None:
    for module_name in RUNTIME_MODULES.get(suffix, ()):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if module_name == "tensorflow":
            # Must happen before TensorFlow runs its first op; one inter-op thread as in the edge runtimes.
            module.config.threading.set_intra_op_parallelism_threads(threads)
            module.config.threading.set_inter_op_parallelism_threads(1)


def _load(path: Path, threads: int, variant: str):
    if path.suffix == ".keras":
        from train.keras_classifier import KerasClassifier

        return KerasClassifier(path, use_predict=(variant == "predict"))
    from edge_app.classifier import load_classifier

    return load_classifier(path, threads=threads)


def _tflite_invoke(classifier, batch: np.ndarray) -> Callable[[], object]:
    # `_forward` has sized the interpreter and set the quantized input; benchmark_model times Invoke alone.
    return classifier.interpreter.invoke


def _onnx_run(classifier, batch: np.ndarray) -> Callable[[], object]:
    feed = {classifier.input_name: batch}
    return lambda: classifier.session.run(None, feed)


def runtime_call(classifier, batch: np.ndarray) -> Callable[[], object] | None:
    """The runtime's inference call on `batch` ((n, 28, 28, 1) float32), with the input set up once.

    None for a backend whose `_forward` is already nothing but the call (Keras: `model(x)` or
    `model.predict(x)`).
    """
    from edge_app.classifier import OnnxClassifier, TFLiteClassifier

    by_backend = {TFLiteClassifier: _tflite_invoke, OnnxClassifier: _onnx_run}
    make_call = by_backend.get(type(classifier))
    if make_call is None:
        return None
    classifier._forward(batch)  # sizes the input, and sets it where the runtime keeps it apart from the call
    return make_call(classifier, batch)


def _forward_call(classifier, batch: np.ndarray) -> Callable[[], object]:
    return lambda: classifier._forward(batch)


def _cpus_text() -> str:
    """The cores this process may run on, e.g. "0" or "0-1" ("" where the OS cannot tell)."""
    if not hasattr(os, "sched_getaffinity"):
        return ""
    cpus = sorted(os.sched_getaffinity(0))
    if list(cpus) == list(range(cpus[0], cpus[-1] + 1)) and len(cpus) > 1:
        return f"{cpus[0]}-{cpus[-1]}"
    return ",".join(str(cpu) for cpu in cpus)


def measure(spec: JobSpec) -> ModelResult:
    """Everything about one model in this process; errors become a row with `error` set."""
    from edge_app.classifier import ModelError

    path = Path(spec.path)
    runtime = KERAS_VARIANTS[spec.variant] if path.suffix == ".keras" else path.suffix.lstrip(".")
    base = dict(model=path.name, format=format_of(path), threads=spec.threads, cpus=_cpus_text(),
                size_bytes=path.stat().st_size if path.is_file() else 0, base_rss_mb=peak_rss_mb())
    try:
        started = time.perf_counter()
        _import_runtime(path.suffix, spec.threads)
        import_s = time.perf_counter() - started

        started = time.perf_counter()
        classifier = _load(path, spec.threads, spec.variant)
        load_s = time.perf_counter() - started
        runtime = classifier.runtime

        rng = np.random.default_rng(0)
        one = rng.random((1, 28, 28, 1), dtype=np.float32)  # (1, 28, 28, 1) float32 in [0, 1]
        started = time.perf_counter_ns()
        classifier._forward(one)
        first_ms = (time.perf_counter_ns() - started) / 1e6

        call = runtime_call(classifier, one)
        samples = time_calls(call or _forward_call(classifier, one), spec.runs, spec.warmup, spec.max_seconds)
        # What the app pays per call: Classifier.probabilities on a uint8 digit (quantize, run, dequantize).
        digit = np.round(one[..., 0] * 255).astype(np.uint8)  # (1, 28, 28) uint8
        api_samples = samples if call is None else time_calls(
            lambda: classifier.probabilities(digit), spec.runs, spec.warmup, spec.max_seconds)
        throughput = []
        for size in spec.batches:
            batch = rng.random((size, 28, 28, 1), dtype=np.float32)
            # As many calls as the single-image loop, within the same time budget: a short loop of big
            # batches is one unlucky scheduler slice away from a wrong median on a shared machine.
            per_batch = time_calls(runtime_call(classifier, batch) or _forward_call(classifier, batch),
                                   spec.runs, spec.warmup, spec.max_seconds)
            throughput.append((size, size / (float(np.median(per_batch)) / 1e9)))
        peak_mb = peak_rss_mb()  # before the accuracy pass, whose 10,000 MNIST images are not the model's
        accuracy = _accuracy(classifier, spec.data) if spec.data else None
    except ModelError as error:
        return ModelResult(runtime=runtime, error=str(error), peak_rss_mb=peak_rss_mb(), **base)
    except Exception as error:  # any runtime's own exception type: the row says what it was
        message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
        return ModelResult(runtime=runtime, error=message, peak_rss_mb=peak_rss_mb(), **base)
    return ModelResult(runtime=runtime, import_s=import_s, load_s=load_s, first_ms=first_ms,
                       latency=summarize(samples), api_p50_ms=float(np.median(api_samples)) / 1e6,
                       throughput=tuple(throughput), peak_rss_mb=peak_mb, accuracy=accuracy,
                       samples_ms=tuple(float(ns) / 1e6 for ns in samples), **base)


def _accuracy(classifier, data: str) -> float:
    from edge_app.evaluate import evaluate
    from edge_app.mnist import load_split

    return evaluate(classifier, load_split("test", data)).accuracy


def result_from_json(obj: dict) -> ModelResult:
    fields = dict(obj)
    if fields.get("latency"):
        fields["latency"] = LatencyStats(**fields["latency"])
    fields["throughput"] = tuple(tuple(pair) for pair in fields.get("throughput", ()))
    fields["samples_ms"] = tuple(fields.get("samples_ms", ()))
    return ModelResult(**fields)


def result_to_json(result: ModelResult) -> dict:
    return asdict(result)


def _model_job(fields: dict) -> dict:
    return result_to_json(measure(JobSpec(**{**fields, "batches": tuple(fields["batches"])})))


def _pipeline_job(fields: dict) -> dict:
    from export.pipeline_bench import pipeline_job

    return asdict(pipeline_job(**fields))


JOBS = {"model": _model_job, "pipeline": _pipeline_job}  # the "job" field of the worker's JSON -> what runs


def main(argv: list[str]) -> int:
    fields = json.loads(argv[0])
    result = JOBS[fields.pop("job")](fields)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
