"""How `digits bench` shows its results: a terminal table, Markdown, JSON, CSV and a latency plot.

Every view is built from the same `BenchReport`, and the table's cells come from one function, so the
terminal and the README's Markdown never disagree.
"""
from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path

from edge_app.files import atomic_path, write_json_atomic
from export.profiler import ModelResult

PREDICT_RUNTIME = "keras.predict"
GOAL_MEDIAN_MS = 0.1  # int8 TFLite, one thread, batch of 1
GOAL_SPEEDUP = 300.0  # int8 TFLite over Keras model.predict, same run, same thread count


def speedup_vs_predict(row: ModelResult, rows: tuple[ModelResult, ...]) -> float | None:
    """keras.predict median / this row's median, at the same thread count (None without both)."""
    if row.latency is None:
        return None
    for other in rows:
        if other.runtime == PREDICT_RUNTIME and other.threads == row.threads and other.latency is not None:
            return other.latency.p50_ms / row.latency.p50_ms
    return None


def _throughput(row: ModelResult, batch: int) -> float | None:
    return dict(row.throughput).get(batch)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_cells(report) -> tuple[list[str], list[list[str]]]:
    """Headers and one list of cells per row, the same for the terminal and for Markdown."""
    batches = report.options.batches
    headers = ["model", "runtime", "thr", "KB", "load ms", "1st ms", "p50 ms", "p90 ms", "p99 ms", "mean±std ms",
               "min ms", "api p50", *[f"img/s b{b}" for b in batches], "RSS MB", "acc %", "x predict"]
    body = []
    for row in report.rows:
        lead = [row.model, row.runtime, str(row.threads), f"{row.size_bytes / 1024:.0f}"]
        if row.error:
            body.append(lead + [f"ERROR: {row.error}"] + [""] * (len(headers) - len(lead) - 1))
            continue
        stats = row.latency
        speedup = speedup_vs_predict(row, report.rows)
        body.append(lead + [
            _fmt(row.load_s * 1000, ".1f"), _fmt(row.first_ms, ".2f"), f"{stats.p50_ms:.3f}", f"{stats.p90_ms:.3f}",
            f"{stats.p99_ms:.3f}", f"{stats.mean_ms:.3f}±{stats.std_ms:.3f}", f"{stats.min_ms:.3f}",
            _fmt(row.api_p50_ms, ".3f"), *[_fmt(_throughput(row, b), ",.0f") for b in batches],
            _fmt(row.peak_rss_mb, ".0f"), _fmt(None if row.accuracy is None else 100 * row.accuracy, ".2f"),
            _fmt(speedup, ",.0f" if speedup and speedup >= 10 else ".1f")])
    return headers, body


def goals(report) -> list[str]:
    """The issue's targets, checked against this run: int8 TFLite median and its speed-up over model.predict."""
    int8 = next((row for row in report.rows if row.format == "tflite_int8" and row.threads == 1 and row.latency), None)
    if int8 is None:
        return ["goals: not measured (needs tflite_int8 at --threads 1)"]
    p50 = int8.latency.p50_ms
    lines = [f"goal: {int8.model} median {p50:.3f} ms on 1 thread (<= {GOAL_MEDIAN_MS} ms): "
             f"{'met' if p50 <= GOAL_MEDIAN_MS else 'NOT met'}"]
    speedup = speedup_vs_predict(int8, report.rows)
    if speedup is None:
        lines.append("goal: speed-up over keras.predict: not measured (needs the Keras baseline at --threads 1)")
    else:
        lines.append(f"goal: {int8.model} is {speedup:,.0f}x faster than keras.predict on 1 thread "
                     f"(>= {GOAL_SPEEDUP:.0f}x): {'met' if speedup >= GOAL_SPEEDUP else 'NOT met'}")
    return lines


def _aligned(headers: list[str], body: list[list[str]]) -> str:
    measured = [cells for cells in body if not cells[4].startswith("ERROR")]
    widths = [max([len(headers[i])] + [len(cells[i]) for cells in measured]) for i in range(len(headers))]
    lines = ["  ".join(h.rjust(w) if i >= 2 else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    for cells in body:
        if cells[4].startswith("ERROR"):
            lead = "  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells[:4], widths)))
            lines.append(f"{lead}  {cells[4]}")
        else:
            lines.append("  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    return "\n".join(lines)


def _pipeline_lines(pipeline) -> list[str]:
    if pipeline is None:
        return []
    if pipeline.error:
        return [f"end to end ({pipeline.model}): ERROR: {pipeline.error}"]
    means = ", ".join(f"{stage} {ms:.2f}" for stage, ms in pipeline.stage_mean_ms)
    digit_medians = ", ".join(f"{stage} {ms:.2f}" for stage, ms in pipeline.digit_frame_p50_ms) or "no digit found"
    return [f"end to end: {pipeline.frames} frames {pipeline.width}x{pipeline.height}, {pipeline.model}, "
            f"{pipeline.threads} thread(s): {pipeline.fps_without_decode:.1f} FPS without decoding, "
            f"{pipeline.fps_with_decode:.1f} FPS with decoding; mean ms per frame: {means}; "
            f"median ms on frames with a digit: {digit_medians}; "
            f"voted number right on {100 * pipeline.read_share:.0f}% of frames", *_still_lines(pipeline)]


def _still_lines(pipeline) -> list[str]:
    lines = []
    if pipeline.still_12mp_p50_s is not None:
        lines.append(f"still photo: a rendered 4032x3024 JPEG page (40 digits), decode included: median "
                     f"{pipeline.still_12mp_p50_s:.3f} s (goal <= 0.3 s)")
    if pipeline.photos:
        lines.append(f"photos (--photos): {pipeline.photos} files, median {pipeline.photo_p50_s:.3f} s, "
                     f"mean {pipeline.photo_mean_s:.3f} s per photo (goal: mean <= 0.5 s)"
                     + (f"; {pipeline.unreadable_photos} unreadable, left out" if pipeline.unreadable_photos else ""))
    return lines


def _cold_lines(cold_starts) -> list[str]:
    lines = []
    for cold in cold_starts:
        if cold.error:
            lines.append(f"cold start {cold.model} ({cold.runtime}): ERROR: {cold.error}")
        else:
            lines.append(f"cold start {cold.model} ({cold.runtime}): {cold.seconds:.2f} s from process start to "
                         f"first prediction (median of {len(cold.samples_s)})")
    return lines


def format_report(report) -> str:
    """The terminal report: the table narrowed to fit a 100-column SSH terminal (the columns a reader picks a
    format by; load time, first call, mean, min and api p50 are in --json, --csv and --markdown)."""
    headers, body = _narrowed(*table_cells(report), TERMINAL_DROPPED)
    headers = [TERMINAL_HEADERS.get(header, header) for header in headers]
    machine = report.machine
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    parts = [_aligned(headers, body), "",
             "latency: batch of 1, the runtime's call on a prepared input (TFLite invoke, ORT run, Keras call); "
             "b1 /s, b32 /s: images per second at batch 1 and 32; x pred: times faster than keras.predict; RSS: peak "
             "of the row's own process; p90, load and first-call times and api p50 are in --json/--csv/--markdown",
             *_pipeline_lines(report.pipeline), *_cold_lines(report.cold_starts), *goals(report),
             *(f"note: {note}" for note in report.notes),
             f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores, load average "
             f"{machine.get('load_average')} at start; {machine['platform']}; Python {machine['python']}; {packages}"]
    return "\n".join(parts)


# The README's narrower table: the columns a reader picks a format by (the rest stay in JSON/CSV).
MARKDOWN_DROPPED = ("load ms", "1st ms", "mean±std ms", "min ms", "api p50")
# The terminal's: narrower still, to fit a 100-column SSH terminal.
TERMINAL_DROPPED = MARKDOWN_DROPPED + ("p90 ms",)
TERMINAL_HEADERS = {"img/s b1": "b1 /s", "img/s b32": "b32 /s", "x predict": "x pred"}


def _narrowed(headers: list[str], body: list[list[str]], dropped: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """The table without the `dropped` columns; an error row keeps its message in the first measured cell."""
    kept = [index for index, header in enumerate(headers) if header not in dropped]
    rows = []
    for cells in body:
        if cells[4].startswith("ERROR"):
            rows.append(cells[:4] + [cells[4]] + [""] * (len(kept) - 5))
        else:
            rows.append([cells[index] for index in kept])
    return [headers[index] for index in kept], rows


def markdown_table(report) -> str:
    headers, body = table_cells(report)
    kept = [index for index, header in enumerate(headers) if header not in MARKDOWN_DROPPED]
    alignment = ["---" if index < 2 else "---:" for index in range(len(kept))]  # text left, numbers right
    lines = ["| " + " | ".join(headers[index] for index in kept) + " |", "|" + "|".join(alignment) + "|"]
    for cells in body:
        if cells[4].startswith("ERROR"):  # the error sits in the first measured column, whatever is kept
            row = cells[:4] + [cells[4]] + [""] * (len(kept) - 5)
        else:
            row = [cells[index] for index in kept]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    extra = [*_pipeline_lines(report.pipeline), *_cold_lines(report.cold_starts), *goals(report)]
    machine = report.machine
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    return "\n".join([*lines, "", *(f"- {line}" for line in extra), "",
                      f"Measured with `{report.command}` on {machine['cpu']} "
                      f"({machine['logical_cores']} logical cores, "
                      f"load average {machine.get('load_average')} at start, {machine['platform']}), "
                      f"Python {machine['python']}, {packages}."]) + "\n"


def report_to_json(report) -> dict:
    rows = []
    for row in report.rows:
        fields = asdict(row)
        fields["speedup_vs_keras_predict"] = speedup_vs_predict(row, report.rows)
        rows.append(fields)
    options = {name: (str(value) if isinstance(value, Path) else value)
               for name, value in asdict(report.options).items()}
    options["models"] = [str(path) for path in report.options.models]
    return {"command": report.command, "machine": report.machine, "options": options, "rows": rows,
            "end_to_end": asdict(report.pipeline) if report.pipeline else None,
            "cold_starts": [asdict(cold) for cold in report.cold_starts], "goals": goals(report),
            "notes": list(report.notes)}


def write_json(report, path: Path) -> None:
    write_json_atomic(path, report_to_json(report))


CSV_FIELDS = ["model", "format", "runtime", "threads", "cpus", "size_bytes", "import_s", "load_s", "first_ms", "runs",
              "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "api_p50_ms", "base_rss_mb", "peak_rss_mb",
              "accuracy", "speedup_vs_keras_predict", "error"]


def write_csv(report, path: Path) -> None:
    throughput_fields = [f"images_per_s_batch{b}" for b in report.options.batches]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS[:-3] + throughput_fields + CSV_FIELDS[-3:])
        writer.writeheader()
        for row in report.rows:
            fields = {name: value for name, value in asdict(row).items() if name in CSV_FIELDS}
            fields.update(asdict(row.latency) if row.latency else {})
            fields["speedup_vs_keras_predict"] = speedup_vs_predict(row, report.rows)
            fields.update({f"images_per_s_batch{b}": ips for b, ips in row.throughput})
            writer.writerow(fields)


def write_markdown(report, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(markdown_table(report))


def write_plot(report, path: Path) -> None:
    """Box plots of the single-image latencies per row, on a log axis (Keras is 100-1000x the edge rows)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    measured = [row for row in report.rows if row.samples_ms]
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(measured) + 1.5))
    try:
        axes.boxplot([row.samples_ms for row in measured], vert=False, showfliers=True, whis=(1, 99),
                     flierprops={"markersize": 2})
        axes.set_yticks(range(1, len(measured) + 1), [row.label for row in measured])
        axes.set_xscale("log")
        axes.set_xlabel("ms per image (batch of 1); whiskers p1-p99")
        axes.invert_yaxis()
        axes.grid(axis="x", which="both", alpha=0.3)
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp)
    finally:
        plt.close(figure)
