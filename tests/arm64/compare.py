"""Compare the outputs of the same commands on x86 and on arm64; exit 1 on any mismatch.

    python compare.py X86_DIR ARM64_DIR

Each folder holds the same *.jsonl files (one JSON object per line), named after what made them:
  probe.jsonl            probe.py: per image, the 28x28 input's hash and all ten probabilities per model
  predict-MODEL.jsonl    `digits predict --format json`
  run-MODEL.jsonl        `digits run --headless --format jsonl` on the lossless clip: compared in full
  readout-MODEL.jsonl    the same on the MJPG clip, whose frames decode differently per architecture:
                         compared on what a user reads (see compare_readout)
Strings, integers and booleans (digits, texts, boxes, runtimes, hashes) must be equal; probabilities
must agree within the model's tolerance below; fields that measure time are skipped, since emulation
is slow by design and wall-clock numbers say nothing about correctness.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Tolerances on probabilities, per kind of model (measured: x86 vs QEMU cortex-a72, 40 digit images).
# float32: NEON and AVX kernels sum in different orders; measured up to 1.8e-7.
FLOAT_TOLERANCE = 1e-5
# int8 TFLite: one step of the output scale (1/256). Measured: 39 of 40 images bit-identical, one
# differing by one step; XNNPACK's int8 kernels for NEON and for AVX round the requantization apart.
INT8_TFLITE_TOLERANCE = 1 / 256 + 1e-7
# int8 ONNX (QDQ): ONNX Runtime's x86 and ARM int8 kernels differ much more, and by how much depends
# on the export: measured up to 3 steps (3/255) with one export and 13 steps (0.051) with the next.
# The digits must still be equal; this bounds how far a confidence may move.
INT8_ONNX_TOLERANCE = 20 / 255
# `digits predict/run` round probabilities to 4 decimals: a 1e-7 difference can flip the last digit.
ROUNDING = 1e-4
TIMING_KEY = re.compile(r"(^|_)(ms|s|fps|time|latency|elapsed|seconds|timestamp|wall|duration)($|_)")
# top3's second and third places hold probabilities of a few hundredths that one int8 step can reorder
# (before ties were broken by digit, NumPy's SIMD argsort also ordered them differently on AVX and NEON:
# 17 of 40 predictions). The probe compares all ten probabilities instead, which is the stronger check.
SKIPPED_KEYS = {"top3"}
MIN_FRAME_AGREEMENT = 0.9  # share of MJPG frames whose text must agree (measured: 45 to 48 of 48)


def tolerance_for(name: str, rounded: bool) -> float:
    if "int8" in name:
        base = INT8_ONNX_TOLERANCE if ".onnx" in name else INT8_TFLITE_TOLERANCE
    else:
        base = FLOAT_TOLERANCE
    return base + (ROUNDING if rounded else 0.0)


@dataclass
class FileReport:
    name: str
    lines: int = 0
    floats: int = 0
    differing_floats: int = 0
    max_float_diff: float = 0.0
    note: str = ""  # what else the comparison found, for the summary line
    mismatches: list[str] = field(default_factory=list)


def _compare(x86, arm64, where: str, tolerance: float, report: FileReport) -> None:
    if isinstance(x86, dict) and isinstance(arm64, dict):
        keys = [key for key in x86 if not TIMING_KEY.search(key) and key not in SKIPPED_KEYS]
        extra = sorted(set(arm64) - set(x86))
        if extra:
            report.mismatches.append(f"{where}: keys only on arm64: {extra}")
        for key in keys:
            if key not in arm64:
                report.mismatches.append(f"{where}.{key}: missing on arm64")
            else:
                _compare(x86[key], arm64[key], f"{where}.{key}", tolerance, report)
    elif isinstance(x86, list) and isinstance(arm64, list):
        if len(x86) != len(arm64):
            report.mismatches.append(f"{where}: {len(x86)} items on x86, {len(arm64)} on arm64")
        for index, (a, b) in enumerate(zip(x86, arm64)):
            _compare(a, b, f"{where}[{index}]", tolerance, report)
    elif isinstance(x86, float) and isinstance(arm64, (float, int)) and not isinstance(arm64, bool):
        diff = abs(x86 - arm64)
        report.floats += 1
        report.differing_floats += diff > 0
        report.max_float_diff = max(report.max_float_diff, diff)
        if diff > tolerance:
            report.mismatches.append(f"{where}: x86 {x86!r} vs arm64 {arm64!r} (|diff| {diff:.3g} > {tolerance:.3g})")
    elif x86 != arm64 or type(x86) is not type(arm64):
        report.mismatches.append(f"{where}: x86 {x86!r} vs arm64 {arm64!r}")


def _numbers_shown(records: list[dict]) -> list[str]:
    """The voted numbers in the order a user sees them appear: "4", then "6" (repeats and blanks dropped)."""
    shown: list[str] = []
    for record in records:
        text = record.get("stable_text") or ""
        if text and (not shown or shown[-1] != text):
            shown.append(text)
    return shown


def compare_readout(x86_lines: list[str], arm64_lines: list[str], report: FileReport) -> None:
    """What a user of `digits run` reads, on a lossy clip: the same numbers in the same order.

    MJPG frames decode to different pixels on arm64 and x86, which moves a confidence by a few
    hundredths (measured: 0.52 on x86, 0.48 on arm64 for one frame), so a frame at the threshold can
    show its number a frame earlier or later. Frame by frame, the text must agree on at least
    MIN_FRAME_AGREEMENT of the frames.
    """
    x86, arm64 = [json.loads(line) for line in x86_lines], [json.loads(line) for line in arm64_lines]
    if _numbers_shown(x86) != _numbers_shown(arm64):
        report.mismatches.append(f"numbers shown: x86 {_numbers_shown(x86)} vs arm64 {_numbers_shown(arm64)}")
    agreeing = sum(a.get("text") == b.get("text") for a, b in zip(x86, arm64))
    report.note = f"numbers shown {_numbers_shown(x86)}, {agreeing}/{len(x86)} frames read alike"
    if agreeing < MIN_FRAME_AGREEMENT * len(x86):
        report.mismatches.append(f"only {agreeing} of {len(x86)} frames read alike (< {MIN_FRAME_AGREEMENT:.0%})")


def _decode_probe(record: dict) -> dict:
    """probe.py writes float32 probabilities as hex strings (bit-exact); turn them back into floats."""
    for value in record.values():
        if isinstance(value, dict) and "probabilities" in value:
            value["probabilities"] = [float.fromhex(p) for p in value["probabilities"]]
            value["digit"] = max(range(10), key=value["probabilities"].__getitem__)
    return record


def compare_probe(x86_path: Path, arm64_path: Path) -> list[FileReport]:
    """probe.jsonl, one report per model (and one for the preprocessed inputs)."""
    x86_records = [_decode_probe(json.loads(line)) for line in x86_path.read_text().splitlines()]
    arm64_records = ([_decode_probe(json.loads(line)) for line in arm64_path.read_text().splitlines()]
                     if arm64_path.is_file() else [])
    inputs = FileReport(f"{x86_path.name}: 28x28 inputs", lines=len(x86_records))
    if len(x86_records) != len(arm64_records) or not x86_records:
        inputs.mismatches.append(f"{len(x86_records)} images on x86, {len(arm64_records)} on arm64")
    models = [key for key in (x86_records[0] if x86_records else {}) if isinstance(x86_records[0][key], dict)]
    reports = {model: FileReport(f"{x86_path.name}: {Path(model).name}", lines=len(x86_records)) for model in models}
    for number, (x86, arm64) in enumerate(zip(x86_records, arm64_records), start=1):
        for key in ("path", "input_sha256"):
            _compare(x86[key], arm64.get(key), f"line {number}.{key}", 0.0, inputs)
        for model, report in reports.items():
            _compare(x86[model], arm64.get(model), f"line {number}", tolerance_for(model, rounded=False), report)
    return [inputs, *reports.values()]


def compare_file(x86_path: Path, arm64_path: Path) -> list[FileReport]:
    name = x86_path.name
    if name.startswith("probe"):
        return compare_probe(x86_path, arm64_path)
    report = FileReport(name)
    x86_lines = x86_path.read_text().splitlines()
    arm64_lines = arm64_path.read_text().splitlines() if arm64_path.is_file() else []
    report.lines = len(x86_lines)
    if not x86_lines:
        report.mismatches.append("no output on x86: nothing to compare")
    if len(x86_lines) != len(arm64_lines):
        report.mismatches.append(f"{len(x86_lines)} lines on x86, {len(arm64_lines)} on arm64")
    if name.startswith(("run", "readout")) and not any(json.loads(line).get("digits") for line in x86_lines):
        # Two runs that both see nothing agree perfectly and prove nothing.
        report.mismatches.append("x86 found no digit in the clip: the comparison would be vacuous")
    if name.startswith("readout"):
        compare_readout(x86_lines, arm64_lines, report)
        return [report]
    for number, (a, b) in enumerate(zip(x86_lines, arm64_lines), start=1):
        _compare(json.loads(a), json.loads(b), f"line {number}", tolerance_for(name, rounded=True), report)
    return [report]


def main(argv: list[str]) -> int:
    x86_dir, arm64_dir = Path(argv[0]), Path(argv[1])
    reports = [report for path in sorted(x86_dir.glob("*.jsonl")) for report in compare_file(path, arm64_dir / path.name)]
    if not reports:
        print(f"compare: no *.jsonl outputs in {x86_dir}", file=sys.stderr)
        return 1
    for report in reports:
        verdict = "same" if not report.mismatches else f"{len(report.mismatches)} MISMATCHES"
        identical = report.floats - report.differing_floats
        floats = f"{report.floats:4d} probabilities, {identical} identical" if report.floats else "no probabilities"
        if report.differing_floats:
            floats += f", max |diff| {report.max_float_diff:.2g}"
        if report.note:
            floats = report.note
        print(f"  {report.name:38s} {report.lines:3d} lines, {floats}: {verdict}")
        for mismatch in report.mismatches[:5]:
            print(f"      {mismatch}")
    return 1 if any(report.mismatches for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
