"""Score `digits run`'s pipeline on rendered clips: how README's "How well it reads" table was measured.

    python tests/score_clips.py 70-79                         # ten clips, two worker processes
    python tests/score_clips.py 1-9 30-35 40-45 --cast 0.65,0.85,1.0   # the same under a warm lamp
    python tests/score_clips.py 70-75 --pen red --paper yellow
    python tests/score_clips.py 70-79 --detector any_pen_colour=0  # pen ink only (black, grey, blue)

Each seed's 960-frame clip (20 cards, 20 empty stretches) is rendered once into --clips and reused.
Every frame goes through `DigitPipeline.process` exactly as `digits run --source clip.avi` does it (the
video read back with OpenCV); --cast scales B, G, R first, as a camera with an off white balance would;
--pen and --paper draw every card in that ink and paper; --detector changes the live detector's settings.
Prints each clip's score and the missed cards, then the mean over clips. Needs the MNIST test set.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge_app.classifier import load_classifier  # noqa: E402
from edge_app.detect import LIVE, config_with  # noqa: E402
from edge_app.mnist import MnistNotFound, load_split  # noqa: E402
from edge_app.run import DigitPipeline  # noqa: E402
from edge_app.synthetic import SETTLE_FRAMES, ClipOptions, render_clip, score_readout, truth_path  # noqa: E402

CLIP_OPTIONS = ClipOptions(segments=40, segment_frames=24)
PENS = {"red": (40.0, 40.0, 190.0), "green": (60.0, 150.0, 40.0), "violet": (150.0, 40.0, 110.0)}  # BGR
PAPERS = {"yellow": (150.0, 235.0, 245.0), "pink": (215.0, 200.0, 245.0), "blue": (240.0, 215.0, 195.0),
          "kraft": (110.0, 150.0, 185.0)}


def seed_range(spec: str) -> list[int]:
    """argparse type: "1-3" -> [1, 2, 3], "7" -> [7]."""
    first, _, last = spec.partition("-")
    try:
        return list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r} is not a seed or a range like 1-9") from None


def gains(spec: str) -> tuple[float, float, float]:
    """argparse type: "0.65,0.85,1.0" -> B, G, R gains."""
    try:
        values = tuple(float(v) for v in spec.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{spec!r} is not three non-negative B,G,R gains like 0.65,0.85,1.0")
    return values


def score_seed(seed: int, clips: Path, model: Path, data: str | None, cast: tuple[float, ...] | None,
               pen: str | None = None, paper: str | None = None, detector: tuple[str, ...] = ()) -> dict:
    cv2.setNumThreads(1)
    colours = "".join(f"_{name}" for name in (pen, paper) if name)
    clip = clips / f"clip_{seed}{colours}.avi"
    if not truth_path(clip).is_file():
        options = replace(CLIP_OPTIONS, pen_bgr=PENS.get(pen), paper_bgr=PAPERS.get(paper))
        render_clip(clip, load_split("test", data), seed, options)
    truth = json.loads(truth_path(clip).read_text())["truth"]
    settings = dict(setting.split("=", 1) for setting in detector)
    pipeline = DigitPipeline(load_classifier(model, threads=1), live_detector=config_with(LIVE, settings))
    capture = cv2.VideoCapture(str(clip))
    shown = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if cast:
            frame = np.clip(frame * np.float32(cast), 0, 255).astype(np.uint8)
        shown.append(pipeline.process(frame).stable_text)
    capture.release()
    score = score_readout(truth, shown)
    return {"seed": seed, "digit": score.digit_accuracy, "empty": score.empty_accuracy,
            "missed": _missed_cards(truth, shown)}


def _missed_cards(truth: list[str], shown: list[str]) -> list[str]:
    """'frame:truth->what was shown' for each stretch whose settled frames were not all read right."""
    starts = [i for i in range(len(truth)) if i == 0 or truth[i - 1] != truth[i]] + [len(truth)]
    missed = []
    for start, end in zip(starts, starts[1:]):
        wrong = [shown[i] or "-" for i in range(start + SETTLE_FRAMES, min(end, len(shown))) if shown[i] != truth[start]]
        if wrong:
            missed.append(f"{start}:{truth[start] or '-'}->{'/'.join(sorted(set(wrong)))} x{len(wrong)}")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seeds", nargs="+", type=seed_range, help="seeds or ranges: 1-9 30")
    parser.add_argument("--clips", type=Path, default=Path("/tmp/digits-clips"), help="where rendered clips are kept")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "cnn_int8.tflite")
    parser.add_argument("--data", help="MNIST IDX folder (default: $DIGITS_MNIST_DIR)")
    parser.add_argument("--cast", type=gains, help="B,G,R gains applied to every frame, e.g. 0.65,0.85,1.0")
    parser.add_argument("--pen", choices=sorted(PENS), help="every card's ink (default: black or dark blue)")
    parser.add_argument("--paper", choices=sorted(PAPERS), help="every card's paper (default: white-ish)")
    parser.add_argument("--detector", action="append", default=[], metavar="KEY=VALUE", help="a live detector setting")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.clips.mkdir(parents=True, exist_ok=True)
    seeds = [seed for seeds in args.seeds for seed in seeds]
    if not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    try:
        with ProcessPoolExecutor(args.workers) as pool:
            score = partial(score_seed, clips=args.clips, model=args.model, data=args.data, cast=args.cast,
                            pen=args.pen, paper=args.paper, detector=tuple(args.detector))
            results = list(pool.map(score, seeds))
    except MnistNotFound as error:
        print(f"score_clips: {error} (needed to render clips not yet in {args.clips})", file=sys.stderr)
        return 2
    for result in results:
        print(f"seed {result['seed']}: digit frames {result['digit']:.1%}, empty frames {result['empty']:.1%}"
              f"  {'; '.join(result['missed'])}")
    print(f"mean over {len(results)} clips: digit frames {np.mean([r['digit'] for r in results]):.2%}, "
          f"empty frames {np.mean([r['empty'] for r in results]):.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
