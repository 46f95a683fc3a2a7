"""Score bold close-ups, tiny crops, box-normalised scans and other writers' scans: how README's "Bold strokes,
close-ups and tight crops" figures were measured.

    python tests/score_stills.py                      # the shipped int8 model, 100 digits per cell
    python tests/score_stills.py --model models/cnn_int8.onnx --count 300

Every image goes through `DigitPipeline.process` as `digits predict` (a still) or `digits run` (a live frame)
reads it. A reading is right when its text is the digit's label. Needs the MNIST test set.
`--scans` adds what README quotes for box-normalised scans and files through `digits predict` (a few minutes):
every MNIST test digit as a 16x16 box-normalised scan per class, 1s with a long flag, `boxed_scans`, MNIST test
as 28x28 files, held-out non-digits as files, and other writers' digits (optdigits) as box-normalised scans.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge_app.classifier import load_classifier  # noqa: E402
from edge_app.mnist import load_split  # noqa: E402
from edge_app.run import DigitPipeline  # noqa: E402
from train import heldout, styles  # noqa: E402
from train.heldout import boxed_scan, other_writers_scans  # noqa: E402

from rendering import render_close_up  # noqa: E402

SHARES = (0.3, 0.6, 0.9, 1.0)  # the digit's 28x28 box, share of the photo's side
BOLDNESS = (1.0, 2.0, 3.0)  # stroke width, times MNIST's
LIVE_SHARES = (0.5, 0.7, 0.9)  # of the frame's height


def share_right(pipeline: DigitPipeline, images, labels, still: bool = True) -> float:
    right = 0
    for image, label in zip(images, labels):
        frame = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        right += pipeline.process(frame, still=still).text == str(label)
    return right / len(labels)


def score_scans(pipeline: DigitPipeline, test) -> None:
    """Box-normalised scans and 28x28 files through `digits predict`: the writers goal's proxies (README)."""
    print("every MNIST test digit as a 16x16 box-normalised scan, right (no margin / 2 px margin):")
    rng = np.random.default_rng(11)
    ones, sevens = test.images[test.labels == 1], test.images[test.labels == 7]
    styled = {"1s with a long flag, no base": (1, [styles.one_with_flag(d, rng, base=False, flag_length=(0.3, 0.6))
                                                   for d in ones]),
              "1s with a long flag and a base": (1, [styles.one_with_flag(d, rng, base=True, flag_length=(0.3, 0.6))
                                                     for d in ones]),
              "7s with a bar": (7, [styles.seven_with_bar(d, rng) for d in sevens])}
    sets = {f"{label}s": (label, list(test.images[test.labels == label])) for label in range(10)}
    sets.update({name: (label, [d for d in made if d is not None]) for name, (label, made) in styled.items()})
    for name, (label, digits) in sets.items():
        cells = [share_right(pipeline, [boxed_scan(d, margin) for d in digits], [label] * len(digits))
                 for margin in (0, 2)]
        print(f"  {name} ({len(digits)}): " + " / ".join(f"{100 * c:.1f}%" for c in cells))
    chosen = np.random.default_rng(heldout.HELDOUT_SEED).choice(len(test.labels), 2000, replace=False)
    scans = [boxed_scan(test.images[i]) for i in chosen]
    read = [pipeline.process(cv2.cvtColor(scan, cv2.COLOR_GRAY2BGR), still=True).text for scan in scans]
    right = np.array([text == str(test.labels[i]) for text, i in zip(read, chosen)])
    ones_right = right[test.labels[chosen] == 1].mean()
    print(f"boxed_scans (2,000, 2 px margin) as files: {100 * right.mean():.2f}% right, 1s {100 * ones_right:.1f}%")
    files = share_right(pipeline, 255 - test.images, test.labels)
    print(f"MNIST test as 28x28 files (dark on white): {100 * files:.2f}% right")
    others = heldout.not_digit_crops(test, 2000).images
    taken = sum(bool(pipeline.process(cv2.cvtColor(255 - image, cv2.COLOR_GRAY2BGR), still=True).text)
                for image in others)
    print(f"held-out non-digits as 28x28 files taken for a digit: {taken} of {len(others)}")
    found = [heldout.other_writers_box_normalised(margin) for margin in (0, 2)]
    if found[0] is None:
        return
    print("other writers' digits as box-normalised 16x16 scans (optdigits), right per class (no margin / 2 px margin):")
    cells = []
    for scans, labels in found:
        right = np.array([pipeline.process(cv2.cvtColor(scan, cv2.COLOR_GRAY2BGR), still=True).text == str(label)
                          for scan, label in zip(scans, labels)])
        cells.append((right.mean(), [right[labels == label].mean() for label in range(10)]))
    print(f"  all ({len(labels)}): " + " / ".join(f"{100 * total:.2f}%" for total, _ in cells))
    print("  " + ", ".join(f"{label}s {100 * cells[0][1][label]:.0f}/{100 * cells[1][1][label]:.0f}%"
                           for label in range(10)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "cnn_int8.tflite"))
    parser.add_argument("--count", type=int, default=100, help="digits per cell (MNIST test, a fixed sample)")
    parser.add_argument("--data", default=None, help="MNIST folder (default: $DIGITS_MNIST_DIR)")
    parser.add_argument("--scans", action="store_true", help="also box-normalised scans and files through predict")
    args = parser.parse_args(argv)
    test = load_split("test", args.data)
    chosen = np.random.default_rng(0).choice(len(test.labels), args.count, replace=False)
    digits, labels = test.images[chosen], test.labels[chosen]
    pipeline = DigitPipeline(load_classifier(args.model, threads=1))

    print(f"close-up photos (800x800), right of {args.count}:")
    print("| digit's box, share of the photo | " + " | ".join(f"strokes x{b:g}" for b in BOLDNESS) + " |")
    for share in SHARES:
        cells = [share_right(pipeline, [render_close_up(d, share, b, seed=i) for i, d in enumerate(digits)], labels)
                 for b in BOLDNESS]
        print(f"| {share:.0%} | " + " | ".join(f"{100 * c:.0f}%" for c in cells) + " |")
    print("live frames (a card filling a 640x480 frame, one frame each), strokes x3:")
    for share in LIVE_SHARES:
        frames = [render_close_up(d, share, 3.0, size=640, seed=i, card=True) for i, d in enumerate(digits)]
        print(f"  {share:.0%} of the frame height: {100 * share_right(pipeline, frames, labels, still=False):.0f}%")
    print("small crops and scans, right:")
    variants = {
        "MNIST 28x28, white on black": lambda d: d,
        "MNIST 28x28, dark on white": lambda d: 255 - d,
        "16x16 scan, no margin, dark on white": lambda d: boxed_scan(d, margin=0),
        "16x16 scan, no margin, white on black": lambda d: 255 - boxed_scan(d, margin=0),
        "16x16 scan x8, 2 px margin": lambda d: cv2.resize(boxed_scan(d), None, fx=8, fy=8,
                                                            interpolation=cv2.INTER_NEAREST),
        "16x16 scan x8, no margin": lambda d: cv2.resize(boxed_scan(d, margin=0), None, fx=8, fy=8,
                                                          interpolation=cv2.INTER_NEAREST),
        "16x16 scan x8 smooth, 2 px margin": lambda d: cv2.resize(boxed_scan(d), None, fx=8, fy=8,
                                                                   interpolation=cv2.INTER_LINEAR),
    }
    for name, make in variants.items():
        print(f"  {name}: {100 * share_right(pipeline, [make(d) for d in digits], labels):.1f}%")
    if (found := other_writers_scans()) is not None:
        scans, writers = found
        print(f"other writers' 8x8 scans (optdigits, {len(writers)}), x8 with a 2 px margin, right:")
        for name, upscaling in (("blocky", cv2.INTER_NEAREST), ("smooth", cv2.INTER_LINEAR), ("sharp", cv2.INTER_CUBIC)):
            pages = [cv2.resize(scan, None, fx=8, fy=8, interpolation=upscaling) for scan in scans]
            print(f"  {name}: {100 * share_right(pipeline, pages, writers):.1f}%")
    if args.scans:
        score_scans(pipeline, test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
