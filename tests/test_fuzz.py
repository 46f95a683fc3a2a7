"""A thousand broken and hostile image files through `digits predict` and `digits run`: no traceback, no
crash, and every undamaged image among them still answered."""
from __future__ import annotations

import json
import shutil
import struct

import cv2
import numpy as np

from conftest import ROOT, run_digits

HANDDRAWN = ROOT / "tests" / "data" / "handdrawn"
MUTANTS = 1000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _mutants(seed_files: list[bytes], count: int, rng: np.random.Generator) -> list[bytes]:
    """Byte flips, truncations, junk, zeroed runs, duplicated chunks and size fields set to huge values."""
    out = []
    for k in range(count):
        data = bytearray(seed_files[k % len(seed_files)])
        kind = k % 6
        if kind == 0:
            for position in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
                data[position] = int(rng.integers(0, 256))
        elif kind == 1:
            data = data[:int(rng.integers(0, len(data)))]
        elif kind == 2:
            data = bytearray(rng.integers(0, 256, int(rng.integers(0, 4000)), dtype=np.uint8).tobytes())
        elif kind == 3:
            start = int(rng.integers(0, len(data)))
            data[start:start + int(rng.integers(1, 500))] = b"\0" * len(data[start:start + 500])
        elif kind == 4:
            start = int(rng.integers(0, len(data)))
            data = data[:start] + data[start:start + 300] + data[start:]
        elif data[:8] == PNG_SIGNATURE:
            data[16:24] = struct.pack(">II", int(rng.integers(1, 2**31)), int(rng.integers(1, 2**31)))
        else:  # a JPEG: every start-of-frame size field set to something huge
            for position in range(len(data) - 9):
                if data[position] == 0xFF and data[position + 1] in (0xC0, 0xC2):
                    data[position + 5:position + 9] = struct.pack(">HH", 65500, 65500)
        out.append(bytes(data))
    return out


def test_fuzzed_images_never_crash_predict_or_run(tmp_path):
    rng = np.random.default_rng(0)
    seeds = [path.read_bytes() for path in sorted(HANDDRAWN.glob("*.png"))]
    # JPEG seeds too: libpng refuses most damaged PNGs at their checksums, libjpeg decodes damage into pixels.
    seeds += [cv2.imencode(".jpg", cv2.imread(str(path)))[1].tobytes() for path in sorted(HANDDRAWN.glob("*.png"))]
    page = np.full((600, 800, 3), 230, np.uint8)
    cv2.putText(page, "4072", (150, 380), cv2.FONT_HERSHEY_SIMPLEX, 6, (30, 30, 30), 14)
    seeds.append(cv2.imencode(".jpg", page)[1].tobytes())
    folder = tmp_path / "mixed"
    folder.mkdir()
    for k, data in enumerate(_mutants(seeds, MUTANTS, rng)):
        suffix = "png" if data[:4] == PNG_SIGNATURE[:4] else "jpg"
        (folder / f"fuzz_{k:03d}.{suffix}").write_bytes(data)
    for path in sorted(HANDDRAWN.glob("*.png")):
        shutil.copy(path, folder / f"good_{path.name}")

    predicted = run_digits("predict", str(folder), "--format", "jsonl", timeout=600)
    assert predicted.returncode in (0, 1) and "Traceback" not in predicted.stderr, predicted.stderr[-3000:]
    answers = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line) for line in predicted.stdout.splitlines()}
    for path in sorted(HANDDRAWN.glob("*.png")):
        assert answers[f"good_{path.name}"]["digit"] == int(path.stem)
    assert all(line.startswith("digits predict: ") for line in predicted.stderr.splitlines())

    ran = run_digits("run", "--source", str(folder), "--headless", "--format", "jsonl", timeout=600)
    assert ran.returncode in (0, 1) and "Traceback" not in ran.stderr, ran.stderr[-3000:]
    read = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line) for line in ran.stdout.splitlines()}
    for path in sorted(HANDDRAWN.glob("*.png")):
        assert read[f"good_{path.name}"]["text"] == path.stem
