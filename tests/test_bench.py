"""`digits bench`: rows with sane numbers, files written, failures as rows, no TensorFlow on the edge path."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from export.profiler import summarize, time_calls

from conftest import MNIST_DIR, MODELS, ROOT, needs_mnist, run_digits

INT8_TFLITE = MODELS / "cnn_int8.tflite"
FLOAT_ONNX = MODELS / "cnn_float32.onnx"
# No Keras, no end-to-end clip, no cold starts: only the rows of the models named.
EDGE_ONLY = ("--no_baselines", "--e2e_frames", "0", "--cold_runs", "0", "--threads", "1", "--warmup", "2")


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_digits("bench", *args, timeout=timeout)


def test_summarize_percentiles_of_known_samples():
    stats = summarize(np.arange(1, 101) * 1_000_000)  # 1..100 ms in ns
    assert stats.runs == 100 and stats.min_ms == 1.0 and stats.mean_ms == pytest.approx(50.5)
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)


def test_time_calls_stops_at_the_time_budget_but_not_below_ten_runs():
    calls = []
    samples = time_calls(lambda: calls.append(1), runs=10**7, warmup=3, max_seconds=0.05)
    assert 10 <= len(samples) < 10**7 and (samples > 0).all()
    slow = time_calls(lambda: __import__("time").sleep(0.01), runs=50, warmup=0, max_seconds=0.001)
    assert len(slow) == 10 and np.median(slow) >= 10_000_000  # 10 ms in ns


def test_int8_rows_json_and_csv(tmp_path):
    out_json, out_csv, out_md = tmp_path / "bench.json", tmp_path / "bench.csv", tmp_path / "bench.md"
    result = bench(str(INT8_TFLITE), "--runs", "20", "--batch", "1,8", *EDGE_ONLY,
                   "--json", str(out_json), "--csv", str(out_csv), "--markdown", str(out_md))
    assert result.returncode == 0, result.stderr
    assert "cnn_int8.tflite" in result.stdout and "p50 ms" in result.stdout
    assert "1/1" in result.stderr  # progress

    report = json.loads(out_json.read_text())
    [row] = report["rows"]
    assert row["model"] == "cnn_int8.tflite" and row["format"] == "tflite_int8"
    assert row["runtime"] == "ai_edge_litert" and row["threads"] == 1 and row["error"] is None
    assert row["size_bytes"] == INT8_TFLITE.stat().st_size
    latency = row["latency"]
    assert latency["runs"] == 20 == len(row["samples_ms"])
    assert 0 < latency["min_ms"] <= latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] < 1000
    assert row["load_s"] > 0 and row["first_ms"] > 0 and row["api_p50_ms"] > 0
    assert [batch for batch, _ in row["throughput"]] == [1, 8] and all(ips > 0 for _, ips in row["throughput"])
    assert row["peak_rss_mb"] > row["base_rss_mb"] > 0
    if MNIST_DIR is not None:
        assert row["accuracy"] > 0.98
    assert report["machine"]["packages"]["ai-edge-litert"]

    with open(out_csv, newline="") as handle:
        [csv_row] = list(csv.DictReader(handle))
    assert float(csv_row["p50_ms"]) == pytest.approx(latency["p50_ms"])
    assert float(csv_row["images_per_s_batch8"]) > 0
    assert out_md.read_text().startswith("| model |")
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary file behind


def test_corrupt_model_becomes_an_error_row(tmp_path):
    corrupt = tmp_path / "broken_int8.tflite"
    corrupt.write_bytes(b"not a flatbuffer" * 64)
    out_json = tmp_path / "bench.json"
    out_md = tmp_path / "bench.md"
    result = bench(str(corrupt), str(FLOAT_ONNX), "--runs", "10", *EDGE_ONLY, "--json", str(out_json),
                   "--markdown", str(out_md))
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    broken, good = json.loads(out_json.read_text())["rows"]
    assert broken["model"] == "broken_int8.tflite" and "broken_int8.tflite" in broken["error"]
    assert broken["latency"] is None
    assert good["error"] is None and good["latency"]["p50_ms"] > 0
    assert "ERROR" in result.stdout
    table = [line for line in out_md.read_text().splitlines() if line.startswith("|")]
    assert len(table) == 4 and "ERROR" in table[2] and len({line.count("|") for line in table}) == 1


def test_edge_models_never_import_tensorflow(tmp_path):
    # The parent and a worker in one process: neither may touch TensorFlow when only edge models are given.
    code = textwrap.dedent(f"""
        import json, sys
        from edge_app.cli import main
        from export import profiler
        main(["bench", {str(INT8_TFLITE)!r}, "--runs", "5", "--no_baselines", "--e2e_frames", "0",
              "--cold_runs", "0", "--threads", "1", "--warmup", "1"])
        profiler.main([json.dumps({{"job": "model", "path": {str(FLOAT_ONNX)!r}, "threads": 1, "runs": 5,
                                    "warmup": 1, "max_seconds": 1, "batches": [1]}})])
        print("LOADED", sorted(name for name in ("tensorflow", "keras") if name in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_without_tensorflow_the_keras_rows_are_absent_with_a_note(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None  # as on an edge install
        from edge_app.cli import main
        sys.exit(main(["bench", {str(INT8_TFLITE)!r}, "--runs", "5", "--e2e_frames", "0", "--cold_runs", "0",
                       "--threads", "1", "--warmup", "1", "--json", {str(tmp_path / "bench.json")!r}]))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [row["runtime"] for row in report["rows"]] == ["ai_edge_litert"]
    assert any("TensorFlow is not installed" in note for note in report["notes"])
    assert "note: TensorFlow is not installed" in result.stdout


@pytest.mark.parametrize("args, named", [
    (("--threads", "0"), "--threads"),
    (("--threads", "1,two"), "--threads"),
    (("--batch", ""), "--batch"),
    (("--runs", "0"), "--runs"),
    (("--max_seconds", "0"), "--max-seconds"),  # the old spelling is accepted, the message names the new one
    (("weights.h5",), "weights.h5"),
    (("missing_int8.tflite",), "missing_int8.tflite"),
    (("--data", "/nonexistent/mnist"), "--data"),
    (("--baseline", "/nonexistent/cnn.keras"), "--baseline"),
])
def test_bad_options_are_one_line_errors(args, named):
    result = bench(*args)
    assert result.returncode == 2
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_plot_without_matplotlib_says_how_to_install(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None
        from edge_app.cli import main
        sys.exit(main(["bench", "--plot", {str(tmp_path / "out.png")!r}]))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "pip install matplotlib" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_plot_draws_the_latencies(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "latency.png"
    result = bench(str(INT8_TFLITE), "--runs", "20", *EDGE_ONLY, "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_keras_baselines_give_the_speedup(tmp_path):
    pytest.importorskip("tensorflow")
    out_json = tmp_path / "bench.json"
    result = bench(str(INT8_TFLITE), "--quick", "--e2e_frames", "0", "--cold_runs", "0", "--json", str(out_json),
                   timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {row["runtime"]: row for row in json.loads(out_json.read_text())["rows"]}
    assert set(rows) == {"ai_edge_litert", "keras", "keras.predict"}
    assert rows["keras.predict"]["speedup_vs_keras_predict"] == pytest.approx(1.0)
    # Whatever the machine, the int8 model on its own runtime beats Keras' predict on one image.
    assert rows["ai_edge_litert"]["speedup_vs_keras_predict"] > 1
    assert "x faster than keras.predict" in result.stdout


@needs_mnist
@pytest.mark.slow
def test_end_to_end_and_cold_start(tmp_path):
    out_json = tmp_path / "bench.json"
    result = bench(str(INT8_TFLITE), "--quick", "--no_baselines", "--e2e_frames", "24", "--json", str(out_json),
                   timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out_json.read_text())
    pipeline = report["end_to_end"]
    assert pipeline["error"] is None and pipeline["frames"] == 24
    assert (pipeline["width"], pipeline["height"]) == (640, 480)
    assert pipeline["fps_without_decode"] >= pipeline["fps_with_decode"] > 0
    assert [stage for stage, _ in pipeline["stage_p50_ms"]] == ["capture", "detect", "classify", "overlay", "path", "total"]
    # The clip holds digit cards, so some frames reach the model, and classifying takes time there.
    assert dict(pipeline["digit_frame_p50_ms"])["classify"] > 0 and 0 < pipeline["read_share"] <= 1
    [cold] = report["cold_starts"]
    assert cold["error"] is None and 0 < cold["seconds"] < 60


def test_the_terminal_table_fits_a_100_column_ssh_terminal(tmp_path):
    """Every line of the table is at most 100 characters (the full table stays in --markdown/--json)."""
    result = run_digits("bench", "--quick", "--no_baselines", "--e2e_frames", "0", "--cold_runs", "0",
                        "--markdown", str(tmp_path / "table.md"))
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("\n\n")[0].splitlines()
    assert len(table) >= 2 and max(len(line) for line in table) <= 100, table
    assert "p90 ms" in (tmp_path / "table.md").read_text()  # the markdown table keeps p90


def test_every_model_failing_is_still_a_report_with_json(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model" * 10)
    result = run_digits("bench", str(broken), "--quick", "--no_baselines", "--json", str(tmp_path / "out.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = json.loads((tmp_path / "out.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["error"]
