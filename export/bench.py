"""`digits bench`: every model format side by side in one run: latency, throughput, size, memory, accuracy.

In the spirit of TFLite's benchmark_model and onnxruntime_perf_test, but over every exported format at
once, with the Keras model as the baseline the speed-ups are measured against, the app's pipeline end
to end, and the cold start of a process. Each (model, runtime, threads) row is measured in its own
worker process (export.profiler explains why); this process only plans, pins, collects and reports,
and never imports TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edge_app.classifier import MAX_THREADS
from edge_app.mnist import find_mnist_dir, mnist_available
from edge_app.models import models_dir
from export.formats import FORMATS
from export.pipeline_bench import PipelineResult
from export.profiler import KERAS_VARIANTS, JobSpec, ModelResult, result_from_json

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_SUFFIXES = (".tflite", ".onnx", ".keras")
DEFAULT_STEM = "cnn"  # the shipped model whose exports are benchmarked by default
WORKER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Preset:
    """The numbers that --quick changes; explicit flags win over either preset."""
    runs: int
    warmup: int
    max_seconds: float  # per timed loop
    threads: str
    e2e_frames: int
    cold_runs: int


FULL = Preset(runs=1000, warmup=50, max_seconds=3.0, threads="1,2,4", e2e_frames=240, cold_runs=3)
QUICK = Preset(runs=100, warmup=10, max_seconds=0.5, threads="1", e2e_frames=48, cold_runs=1)


@dataclass(frozen=True)
class BenchOptions:
    models: tuple[Path, ...]  # .tflite / .onnx / .keras files, in table order
    baseline: Path | None  # .keras model called through model.predict and directly; None: no baselines
    threads: tuple[int, ...]
    runs: int  # timed single-image calls per row, at most
    warmup: int
    max_seconds: float  # time budget per timed loop, so slow baselines stop early
    batches: tuple[int, ...]  # batch sizes for throughput
    data: Path | None  # MNIST folder; None: no accuracy and no end-to-end run
    pin: bool  # pin each row's worker to as many cores as it has threads
    e2e_frames: int  # frames of the rendered clip for the end-to-end run; 0 skips it
    cold_runs: int  # cold starts per runtime (the median is reported); 0 skips them
    photos: Path | None = None  # a folder of real photos to time `read_still` on, in the end-to-end run


@dataclass(frozen=True)
class ColdStart:
    label: str  # "edge" or "tensorflow"
    model: str
    runtime: str  # what the process imports to predict
    seconds: float | None  # median over runs: process start -> first prediction
    samples_s: tuple[float, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class BenchReport:
    rows: tuple[ModelResult, ...]
    pipeline: PipelineResult | None
    cold_starts: tuple[ColdStart, ...]
    notes: tuple[str, ...]  # what was skipped and why, oversubscribed cores, ...
    machine: dict
    options: BenchOptions
    command: str


class OptionError(ValueError):
    """A bad flag or input file; the message names it."""


# --- planning -------------------------------------------------------------------------------------------

def shipped_models(folder: Path | None = None, stem: str = DEFAULT_STEM) -> tuple[Path, ...]:
    """The exported files of `stem`, one per format, in the registry's order."""
    folder = folder or models_dir()
    return tuple(folder / fmt.filename(stem) for fmt in FORMATS.values())


def module_installed(name: str) -> bool:
    """Whether `name` can be imported, without importing it (importing TensorFlow takes seconds)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # a module set to None in sys.modules: blocked, as good as absent
        return False


def tensorflow_installed() -> bool:
    return module_installed("tensorflow") and module_installed("keras")


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def cpus_for(threads: int, pin: bool) -> list[int]:
    """The first `threads` cores this process may use (all of them if fewer); [] = no pinning."""
    cores = allowed_cpus()
    return cores[:threads] if pin and cores else []


def _worker_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up chatter would bury the worker's own errors
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # any OpenMP pool in the process gets the row's thread count
    return env


def _pin(cpus: list[int]):
    """A preexec_fn that pins the child before Python starts, so every thread pool it creates sees the pin."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _exit_reason(returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with status {returncode}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"worker {how}" + (f": {lines[-1][:300]}" if lines else "")


def run_worker(job: dict, threads: int | None, cpus: list[int], timeout_s: float = WORKER_TIMEOUT_S) -> dict:
    """Run one `python -m export.profiler` job; its JSON result, or {"error": ...} if the process failed."""
    command = [sys.executable, "-m", "export.profiler", json.dumps(job)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=_worker_env(threads),
                              preexec_fn=_pin(cpus), cwd=PROJECT_ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"error": _exit_reason(done.returncode, done.stderr)}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": _exit_reason(done.returncode, done.stderr or "no result on stdout")}


def _runtime_name(path: Path) -> str:
    """What runs an edge model, as the format registry names it (e.g. "LiteRT (ai-edge-litert)")."""
    from export.profiler import format_of

    fmt = FORMATS.get(format_of(path))
    return fmt.runtime if fmt else path.suffix.lstrip(".")


def _failed_row(path: Path, runtime: str, threads: int, error: str) -> ModelResult:
    from export.profiler import format_of

    size = path.stat().st_size if path.is_file() else 0
    return ModelResult(model=path.name, format=format_of(path), runtime=runtime, threads=threads, cpus="",
                       size_bytes=size, error=error)


def measure_row(path: Path, variant: str, threads: int, options: BenchOptions, with_accuracy: bool) -> ModelResult:
    spec = JobSpec(path=str(path.resolve()), threads=threads, runs=options.runs, warmup=options.warmup,
                   max_seconds=options.max_seconds, batches=options.batches,
                   data=str(options.data) if with_accuracy and options.data else None, variant=variant)
    result = run_worker({"job": "model", **asdict(spec)}, threads, cpus_for(threads, options.pin))
    if set(result) == {"error"}:
        runtime = KERAS_VARIANTS[variant] if path.suffix == ".keras" else path.suffix.lstrip(".")
        return _failed_row(path, runtime, threads, result["error"])
    return result_from_json(result)


EDGE_COLD_START = """
import time
import numpy as np
from edge_app.classifier import load_classifier
classifier = load_classifier({path!r})
classifier.probabilities(np.zeros((1, 28, 28), np.uint8))
print(time.time())
"""
# As the tutorials this project grew from do it: import TensorFlow, load the model, model.predict.
TENSORFLOW_COLD_START = """
import time
import numpy as np
import tensorflow as tf
model = tf.keras.models.load_model({path!r}, compile=False)
model.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0)
print(time.time())
"""


def measure_cold_start(label: str, path: Path, runtime: str, code: str, runs: int, cpus: list[int]) -> ColdStart:
    """Seconds from spawning a fresh Python to its first prediction (the child prints the wall clock then)."""
    samples = []
    for _ in range(runs):
        started = time.time()  # the wall clock, because it is the one clock two processes share everywhere
        try:
            done = subprocess.run([sys.executable, "-c", code.format(path=str(path.resolve()))], capture_output=True,
                                  text=True, timeout=WORKER_TIMEOUT_S, env=_worker_env(None), preexec_fn=_pin(cpus),
                                  cwd=PROJECT_ROOT)
        except subprocess.TimeoutExpired:
            return ColdStart(label, path.name, runtime, None, error=f"no prediction after {WORKER_TIMEOUT_S:.0f} s")
        try:
            samples.append(float(done.stdout.strip().splitlines()[-1]) - started)
        except (ValueError, IndexError):
            return ColdStart(label, path.name, runtime, None, error=_exit_reason(done.returncode, done.stderr))
    return ColdStart(label, path.name, runtime, statistics.median(samples), tuple(samples))


def measure_end_to_end(model: Path, options: BenchOptions) -> PipelineResult:
    threads = options.threads[0]
    job = {"job": "pipeline", "model": str(model.resolve()), "threads": threads, "frames": options.e2e_frames,
           "data": str(options.data), "photos": str(options.photos) if options.photos else None}
    result = run_worker(job, threads, cpus_for(threads, options.pin))
    if set(result) == {"error"}:
        return PipelineResult(model.name, threads, 0, 0, 0, error=result["error"])
    for name in ("stage_p50_ms", "stage_mean_ms", "digit_frame_p50_ms"):
        result[name] = tuple(tuple(pair) for pair in result[name])
    return PipelineResult(**result)


def machine_info() -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    packages = {}
    for name in ("ai-edge-litert", "onnxruntime", "numpy", "opencv-python", "tensorflow", "keras"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    # The load when the run started: other processes on the same cores are what widens p90/p99 most.
    load = [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "cores_allowed": allowed_cpus(), "load_average": load,
            "platform": platform.platform(), "python": platform.python_version(), "packages": packages}


class Progress:
    """`[ 3/14] what is running` on stderr: a redrawn line on a terminal, one line per step otherwise."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.redraw = self.stream.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        width = 20
        filled = width * (self.done - 1) // max(self.total, 1)
        text = f"bench [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label}"
        if self.redraw:
            self.stream.write("\r" + text[:120].ljust(120))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.redraw:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()


def run_benchmark(options: BenchOptions, command: str = "digits bench", progress_stream=None) -> BenchReport:
    notes = []
    cores = allowed_cpus()
    for threads in options.threads:
        if cores and threads > len(cores):
            notes.append(f"--threads {threads}: more threads than the {len(cores)} core(s) this process may use; "
                         "those rows share cores")
    keras_models = [path for path in options.models if path.suffix == ".keras"]
    if options.baseline is not None and options.baseline.resolve() not in {p.resolve() for p in keras_models}:
        keras_models.append(options.baseline)
    if keras_models and not tensorflow_installed():
        notes.append("TensorFlow is not installed: no Keras rows (pip install '.[train]' to add the baselines)")
        keras_models = []
    edge_models = [path for path in options.models if path.suffix != ".keras"]

    # (path, variant, threads, with_accuracy): accuracy does not depend on threads, so it is measured once.
    jobs = [(path, "direct", threads, index == 0)
            for path in edge_models for index, threads in enumerate(options.threads)]
    jobs += [(path, variant, threads, index == 0 and variant == "direct") for path in keras_models
             for variant in KERAS_VARIANTS for index, threads in enumerate(options.threads)]
    e2e_model = edge_models[0] if edge_models and options.e2e_frames and options.data else None
    if not options.data:
        notes.append("no MNIST folder (--data or $DIGITS_MNIST_DIR): no accuracy and no end-to-end run")
    cold = []
    if options.cold_runs:
        cold = [("edge", path, _runtime_name(path), EDGE_COLD_START) for path in edge_models]
        cold += [("tensorflow", path, "TensorFlow + Keras", TENSORFLOW_COLD_START) for path in keras_models]

    machine = machine_info()
    progress = Progress(len(jobs) + bool(e2e_model) + len(cold), progress_stream)
    rows = []
    try:
        for path, variant, threads, with_accuracy in jobs:
            through = f" ({KERAS_VARIANTS[variant]})" if path.suffix == ".keras" else ""
            progress.step(f"{path.name}{through} threads={threads}")
            rows.append(measure_row(path, variant, threads, options, with_accuracy))
        pipeline = None
        if e2e_model is not None:
            progress.step(f"end to end: {options.e2e_frames} frames of a 640x480 clip with {e2e_model.name}")
            pipeline = measure_end_to_end(e2e_model, options)
        cold_starts = []
        cold_cpus = cpus_for(options.threads[0], options.pin)
        for label, path, runtime, code in cold:
            progress.step(f"cold start x{options.cold_runs}: {path.name} ({runtime})")
            cold_starts.append(measure_cold_start(label, path, runtime, code, options.cold_runs, cold_cpus))
    finally:
        progress.close()
    return BenchReport(tuple(rows), pipeline, tuple(cold_starts), tuple(notes), machine, options, command)


# --- command line ---------------------------------------------------------------------------------------

def parse_positive_list(text: str, flag: str) -> tuple[int, ...]:
    """ "1,2,4" -> (1, 2, 4); OptionError naming the flag otherwise."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(value < 1 for value in values):
        raise OptionError(f"{flag} {text!r}: give positive whole numbers separated by commas, e.g. 1,2,4")
    return tuple(dict.fromkeys(values))  # repeated values would measure the same row twice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def preset_help(text: str, name: str) -> str:
        return f"{text} (default: {getattr(FULL, name)}; with --quick: {getattr(QUICK, name)})"

    # default=SUPPRESS where the help already names the default, so it is not followed by "(default: None)"
    parser.add_argument("models", nargs="*", type=Path, metavar="MODEL", default=argparse.SUPPRESS,
                        help="model files (.tflite, .onnx, .keras); default: the shipped "
                             f"{', '.join(fmt.filename(DEFAULT_STEM) for fmt in FORMATS.values())}")
    parser.add_argument("--threads", type=str, default=argparse.SUPPRESS,
                        help=preset_help("comma-separated thread counts, a row each", "threads"))
    parser.add_argument("--runs", type=int, default=argparse.SUPPRESS,
                        help=preset_help("timed single-image inferences per row", "runs"))
    parser.add_argument("--warmup", type=int, default=argparse.SUPPRESS,
                        help=preset_help("untimed inferences before timing", "warmup"))
    parser.add_argument("--max-seconds", type=float, default=argparse.SUPPRESS,
                        help=preset_help("time budget per timed loop: slow models stop early (>= 10 runs)",
                                         "max_seconds"))
    parser.add_argument("--batch", type=str, default="1,32", help="comma-separated batch sizes for throughput")
    parser.add_argument("--data", type=Path, default=argparse.SUPPRESS,
                        help="MNIST IDX folder for accuracy and the end-to-end clip (default: $DIGITS_MNIST_DIR)")
    parser.add_argument("--baseline", type=Path, default=argparse.SUPPRESS,
                        help="the .keras model for the baselines "
                             f"(default: {models_dir() / (DEFAULT_STEM + '.keras')})")
    parser.add_argument("--no-baselines", action="store_true", help="skip the Keras rows (and TensorFlow altogether)")
    parser.add_argument("--photos", type=Path, default=None,
                        help="a folder of photos to time still reading on (seconds per photo, decode included), "
                             "beside the rendered 12-megapixel page of the end-to-end run")
    parser.add_argument("--e2e-frames", type=int, default=argparse.SUPPRESS,
                        help=preset_help("frames of the rendered 640x480 clip for the end-to-end run; 0 skips it",
                                         "e2e_frames"))
    parser.add_argument("--cold-runs", type=int, default=argparse.SUPPRESS,
                        help=preset_help("cold starts per model (median reported); 0 skips them", "cold_runs"))
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin each row to as many cores as it has threads")
    parser.add_argument("--quick", action="store_true", help="small numbers for a run of a few seconds per row")
    parser.add_argument("--json", type=Path, default=None, help="write every result (and the raw latencies) here")
    parser.add_argument("--csv", type=Path, default=None, help="write one line per row here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results table as Markdown here")
    parser.add_argument("--plot", type=Path, default=None,
                        help="draw the latency distributions into this image (needs matplotlib)")


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Validate the flags and files; OptionError with a one-line message naming the culprit."""
    preset = QUICK if args.quick else FULL
    chosen = {name: getattr(args, name, getattr(preset, name)) for name in Preset.__dataclass_fields__}
    threads = parse_positive_list(str(chosen["threads"]), "--threads")
    if max(threads) > MAX_THREADS:
        raise OptionError(f"--threads {chosen['threads']}: at most {MAX_THREADS} threads")
    batches = parse_positive_list(args.batch, "--batch")
    for flag, minimum in (("runs", 1), ("warmup", 0), ("e2e_frames", 0), ("cold_runs", 0)):
        if chosen[flag] < minimum:
            raise OptionError(f"--{flag} {chosen[flag]}: must be at least {minimum}")
    if not chosen["max_seconds"] > 0:
        raise OptionError(f"--max-seconds {chosen['max_seconds']}: must be more than 0")

    given_models = getattr(args, "models", [])
    for path in given_models:
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise OptionError(f"{path}: not a model file this bench can run; give {', '.join(MODEL_SUFFIXES)} files")
        if not path.is_file():
            raise OptionError(f"model file {path} not found")
    models = tuple(given_models) or shipped_models()

    baseline, given_baseline = None, getattr(args, "baseline", None)
    if not args.no_baselines:
        baseline = given_baseline or models_dir() / f"{DEFAULT_STEM}.keras"
        if baseline.suffix != ".keras":
            raise OptionError(f"--baseline {baseline}: give a .keras model")
        if not baseline.is_file():
            if given_baseline is not None:
                raise OptionError(f"--baseline {baseline}: file not found")
            baseline = None  # reported as a note by the caller

    given_data = getattr(args, "data", None)
    data = find_mnist_dir(given_data)
    if data is not None and not mnist_available(data):
        if given_data is not None:
            raise OptionError(f"--data {data}: the four MNIST IDX files are not there")
        data = None
    if args.plot is not None and not module_installed("matplotlib"):
        raise OptionError(f"--plot {args.plot}: matplotlib is not installed; pip install matplotlib")
    if args.photos is not None and not args.photos.is_dir():
        raise OptionError(f"--photos {args.photos}: not a folder; give a folder of .jpg/.png photos")
    return BenchOptions(models=models, baseline=baseline, threads=threads, runs=chosen["runs"],
                        warmup=chosen["warmup"], max_seconds=chosen["max_seconds"], batches=batches,
                        data=data.resolve() if data else None,
                        pin=not args.no_pin, e2e_frames=chosen["e2e_frames"], cold_runs=chosen["cold_runs"],
                        photos=args.photos.resolve() if args.photos else None)


def main(args: argparse.Namespace) -> int:
    from export import bench_report

    try:
        options = options_from_args(args)
    except OptionError as error:
        print(f"digits bench: {error}", file=sys.stderr)
        return 2
    report = run_benchmark(options, getattr(args, "command_line", "digits bench"))
    if not args.no_baselines and options.baseline is None:
        report = replace(report, notes=report.notes + (
            f"no Keras baseline: {models_dir() / (DEFAULT_STEM + '.keras')} not found (pass --baseline PATH)",))
    print(bench_report.format_report(report))
    try:
        for path, write in ((args.json, bench_report.write_json), (args.csv, bench_report.write_csv),
                            (args.markdown, bench_report.write_markdown), (args.plot, bench_report.write_plot)):
            if path is not None:
                write(report, path)
                print(f"wrote {path}", file=sys.stderr)
    except OSError as error:
        print(f"digits bench: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    failed = [row for row in report.rows if row.error]
    failed += [cold for cold in report.cold_starts if cold.error]
    if report.pipeline is not None and report.pipeline.error:
        failed.append(report.pipeline)
    return 1 if failed else 0
