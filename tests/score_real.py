"""Score `digits run` on real photos: how README's real-photo table was measured.

    python tests/score_real.py                                  # $DIGITS_REAL_DIR or ../shared/data/real, the int8 model
    python tests/score_real.py --folder DIR --list               # another labelled folder, one line per photo
    python tests/score_real.py --perturb darker                  # every photo darkened first (see PERTURBATIONS)

The folder holds photos and a `truth.json` (a list of {"file", "lines", "kind"}; see
../shared/data/real/README.md). Every photo is read exactly as `digits run --source PHOTO` reads it
(`edge_app.run.read_still`: guarded decode at the size the digits need, EXIF orientation, detection,
lines). Per kind it prints photos read exactly (every line, numbers split where the writer left a
gap), lines read exactly, digits right in reading order (1 - edit distance / digits, spaces and line
breaks ignored) and the median and mean seconds per photo, decode included, on one core.
`--perturb` changes every decoded photo the way another camera, light or hand would before it is read:
how fragile each cause (scale, tilt, light, blur, noise) is, which a handful of photos cannot show.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge_app.classifier import load_classifier  # noqa: E402
from edge_app.images import read_still as decode_still  # noqa: E402
from edge_app.run import DigitPipeline, read_decoded_still  # noqa: E402

DEFAULT_FOLDER = Path(os.environ.get("DIGITS_REAL_DIR") or ROOT.parent / "shared" / "data" / "real")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions each cost 1."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class PhotoScore:
    file: str
    kind: str
    truth: list[str]
    read: list[str]
    seconds: float

    @property
    def digits(self) -> int:
        return len("".join(self.truth).replace(" ", ""))

    @property
    def digit_errors(self) -> int:
        flat = lambda lines: "".join(lines).replace(" ", "")  # noqa: E731
        return min(self.digits, edit_distance(flat(self.truth), flat(self.read)))

    @property
    def exact(self) -> bool:
        return [" ".join(t.split()) for t in self.truth] == [" ".join(r.split()) for r in self.read]

    @property
    def lines_right(self) -> int:
        read = {" ".join(r.split()) for r in self.read}
        return sum(" ".join(t.split()) in read for t in self.truth)


def _scaled(factor: float):
    return lambda image: cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def _turned(degrees: float):
    def turn(image):
        rows, cols = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), degrees, 1.0)
        return cv2.warpAffine(image, matrix, (cols, rows), borderMode=cv2.BORDER_REPLICATE)
    return turn


def _gamma(power: float):
    table = np.clip(255 * (np.arange(256) / 255.0) ** power, 0, 255).astype(np.uint8)
    return lambda image: cv2.LUT(image, table)


def _jpeg(quality: int):
    return lambda image: cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _blurred(image):
    return cv2.GaussianBlur(image, (0, 0), 1.5 * max(image.shape[:2]) / 1000)  # 1.5 px on a 1000-px photo


def _noisy(image):
    noise = np.random.default_rng(0).normal(0, 12, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _slanted(image):
    """Seen from below and to the left: the page's top edge 16% shorter than its bottom one."""
    rows, cols = image.shape[:2]
    corners = np.float32([[0, 0], [cols, 0], [cols, rows], [0, rows]])
    seen = np.float32([[0.08 * cols, 0], [0.92 * cols, 0.03 * rows], [cols, rows], [0, 0.97 * rows]])
    return cv2.warpPerspective(image, cv2.getPerspectiveTransform(corners, seen), (cols, rows),
                               borderMode=cv2.BORDER_REPLICATE)


def _shadowed(image):
    """A hard shadow (a lamp, a hand or a phone held over the page) over the lower left half, at half the light."""
    rows, cols = image.shape[:2]
    y, x = np.mgrid[0:rows, 0:cols]
    across = ((x - cols / 2) * 0.6 - (y - rows / 2) * 0.8) / max(rows, cols)
    light = 1 - 0.5 / (1 + np.exp(np.clip(across / 0.005, -50, 50)))  # a few pixels of penumbra
    light = light[..., None] if image.ndim == 3 else light
    return np.clip(image * light, 0, 255).astype(np.uint8)


def _moved(image):
    """Shaken sideways while the shutter was open: 9 px of horizontal motion per 1,000 px."""
    length = max(3, round(9 * max(image.shape[:2]) / 1000))
    return cv2.filter2D(image, -1, np.full((1, length), 1.0 / length, np.float32))


def _warm(image):
    if image.ndim == 2:
        return image  # a grey camera sees no colour cast
    return np.clip(image * np.float32([0.75, 0.95, 1.1]), 0, 255).astype(np.uint8)  # BGR: a tungsten lamp


# name -> what it does to a decoded BGR photo: another camera, light or hand than the photo's own
PERTURBATIONS = {"half": _scaled(0.5), "third": _scaled(0.35), "turned+6": _turned(6), "turned-6": _turned(-6),
                 "jpeg40": _jpeg(40), "darker": _gamma(1.8), "brighter": _gamma(0.55), "blurred": _blurred,
                 "noisy": _noisy, "slanted": _slanted, "warm": _warm, "shadowed": _shadowed, "moved": _moved}


def score_photo(entry: dict, folder: Path, pipeline: DigitPipeline, perturb=None) -> PhotoScore:
    started = time.perf_counter()
    still = decode_still(folder / entry["file"])
    if perturb is not None:
        still = replace(still, image=perturb(still.image))
    result, _ = read_decoded_still(still, entry["file"], pipeline)
    seconds = time.perf_counter() - started
    return PhotoScore(entry["file"], entry["kind"], entry["lines"], [line.text for line in result.lines], seconds)


def summary_rows(scores: list[PhotoScore]) -> list[dict]:
    rows = []
    for kind in ("single", "line", "page", "all"):
        part = [s for s in scores if kind in (s.kind, "all")]
        if not part:
            continue
        digits = sum(s.digits for s in part)
        seconds = [s.seconds for s in part]
        rows.append({"kind": kind, "photos": len(part), "exact": sum(s.exact for s in part),
                     "lines": sum(len(s.truth) for s in part), "lines_right": sum(s.lines_right for s in part),
                     "digits": digits, "digits_right": digits - sum(s.digit_errors for s in part),
                     "median_s": float(np.median(seconds)), "mean_s": float(np.mean(seconds))})
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| kind | photos | read exactly | lines exact | digits right (reading order) | s/photo median | mean |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['photos']} | {r['exact']}/{r['photos']} ({r['exact'] / r['photos']:.0%}) "
                     f"| {r['lines_right']}/{r['lines']} | {r['digits_right']}/{r['digits']} "
                     f"({r['digits_right'] / max(r['digits'], 1):.1%}) | {r['median_s']:.3f} | {r['mean_s']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="photos with a truth.json")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cnn_int8.tflite")
    parser.add_argument("--list", action="store_true", help="one line per photo: truth, reading, seconds")
    parser.add_argument("--json", type=Path, default=None, help="write every photo's score here")
    parser.add_argument("--perturb", choices=sorted(PERTURBATIONS), default=None,
                        help="change every decoded photo this way before reading it (seconds then include it)")
    args = parser.parse_args()
    truth_file = args.folder / "truth.json"
    if not truth_file.is_file():
        print(f"score_real: {truth_file}: not found; pass --folder with photos and a truth.json", file=sys.stderr)
        return 2
    if not args.model.is_file():
        print(f"score_real: --model {args.model}: no such file", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cv2.setNumThreads(1)  # seconds per photo on one core, as the goal counts them
    pipeline = DigitPipeline(load_classifier(args.model, threads=1))
    perturb = PERTURBATIONS[args.perturb] if args.perturb else None
    scores = [score_photo(entry, args.folder, pipeline, perturb) for entry in json.loads(truth_file.read_text())]
    if args.list:
        for s in scores:
            mark = "ok " if s.exact else f"{s.digit_errors:>3d}"
            print(f"{mark} {s.file:16s} {s.seconds:6.3f}s  truth {' / '.join(s.truth)!r}  read {' / '.join(s.read)!r}")
    print(markdown_table(summary_rows(scores)))
    if args.json:
        args.json.write_text(json.dumps([{**s.__dict__, "exact": s.exact, "digit_errors": s.digit_errors}
                                         for s in scores], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
