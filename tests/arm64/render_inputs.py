"""Render the inputs of the arm64 check once, on the host, so both architectures read the same bytes.

    python tests/arm64/render_inputs.py OUT_DIR [--digits 40] [--clip_frames 48]

Writes OUT_DIR/digits/NNN_L.png (an MNIST test digit L written in dark ink on white paper), and
OUT_DIR/clip.avi (MJPG) and OUT_DIR/clip_lossless.mkv (FFV1): one short clip of held digit cards
from edge_app.synthetic, lossy and lossless. MNIST comes from
$DIGITS_MNIST_DIR; without it the digits are drawn in OpenCV's Hershey fonts instead, so the check
still runs (what it compares is x86 against arm64, not accuracy).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge_app.mnist import MnistNotFound, MnistSplit, load_split

PAPER, INK = 245, 25  # grey levels of white paper and dark ink
DIGIT_HEIGHT = 140  # px: the 28-px MNIST field scaled up, as a phone photo of a written digit


def mnist_test_digits() -> MnistSplit:
    """MNIST's test split, or 10 digits per class drawn in Hershey fonts when MNIST is not here."""
    try:
        return load_split("test")
    except MnistNotFound:
        images, labels = [], []
        for font in (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX):
            for label in range(10):
                field = np.zeros((28, 28), np.uint8)  # white ink on black, like MNIST
                cv2.putText(field, str(label), (6, 23), font, 0.8, 255, 2, cv2.LINE_AA)
                images.append(field)
                labels.append(label)
        return MnistSplit(images=np.stack(images), labels=np.array(labels, np.uint8))


def on_paper(mnist_digit: np.ndarray, seed: int) -> np.ndarray:
    """(28, 28) white-on-black digit -> (h, w, 3) uint8 BGR page with the digit in dark ink, placed off-centre."""
    rng = np.random.default_rng(seed)
    ink = cv2.resize(mnist_digit, (DIGIT_HEIGHT, DIGIT_HEIGHT), interpolation=cv2.INTER_CUBIC)
    page = np.full((220, 200), PAPER, np.float32)
    top, left = (int(v) for v in rng.integers(10, 60, 2))
    coverage = ink.astype(np.float32) / 255.0
    page[top:top + DIGIT_HEIGHT, left:left + DIGIT_HEIGHT] += (INK - PAPER) * coverage
    page += rng.normal(0, 3, page.shape)  # paper grain, so thresholds see a realistic photo
    return cv2.cvtColor(np.clip(page, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def render_digit_files(out_dir: Path, mnist: MnistSplit, count: int) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    # Spread the picks over the split so every class appears, with a fixed order for reproducibility.
    picks = np.linspace(0, len(mnist.labels) - 1, count).astype(int)
    paths = []
    for number, index in enumerate(picks):
        path = out_dir / f"{number:03d}_{int(mnist.labels[index])}.png"
        cv2.imwrite(str(path), on_paper(mnist.images[index], seed=number))
        paths.append(path)
    return paths


def render_test_clips(out_dir: Path, mnist: MnistSplit, frames: int) -> list[Path]:
    """The same short clip of held digit cards (from edge_app.synthetic), twice.

    clip.avi is MJPG, as the project's renderer and most webcams write it. MJPG is lossy and its
    decoders are not bit-exact across architectures (FFmpeg's IDCT differs between AVX and NEON:
    measured, every frame of this clip decodes to different pixels on arm64), which moves a detected
    box by a pixel or two. clip_lossless.mkv (FFV1) holds the very same frames and decodes to the
    same bytes everywhere, so on it the whole pipeline can be compared exactly.
    """
    from edge_app.synthetic import ClipOptions, render_clip, render_frames

    segment_frames = 8
    options = ClipOptions(segments=max(2, -(-frames // segment_frames)), segment_frames=segment_frames)
    mjpg = out_dir / "clip.avi"
    render_clip(mjpg, mnist, seed=5, options=options)
    lossless = out_dir / "clip_lossless.mkv"
    writer = cv2.VideoWriter(str(lossless), cv2.VideoWriter_fourcc(*"FFV1"), options.fps,
                             (options.width, options.height))
    if not writer.isOpened():
        raise OSError(f"cannot write {lossless}: this OpenCV has no FFV1 encoder")
    try:
        for frame, _ in render_frames(mnist, seed=5, options=options):
            writer.write(frame)
    finally:
        writer.release()
    return [mjpg, lossless]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--digits", type=int, default=40, help="digit images to write")
    parser.add_argument("--clip_frames", type=int, default=48, help="frames in the test clip (0: no clip)")
    args = parser.parse_args()
    mnist = mnist_test_digits()
    paths = render_digit_files(args.out_dir / "digits", mnist, args.digits)
    print(f"wrote {len(paths)} digit images to {args.out_dir / 'digits'}")
    if args.clip_frames:
        for clip in render_test_clips(args.out_dir, mnist, args.clip_frames):
            print(f"wrote {clip}")


if __name__ == "__main__":
    main()
