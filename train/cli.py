"""`digits train`: parse options and call train.train.train."""
from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # train.model.ARCHITECTURES, spelt out: importing it imports Keras, and `digits --help` must not
    parser.add_argument("--arch", choices=["cnn", "teacher", "mlp"], default="cnn",
                        help="architecture (teacher: a wider cnn, only to teach the cnn with --teacher)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="peak learning rate (cosine schedule)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-split", type=float, default=0.1,
                        help="share of the training set held out to pick the best epoch")
    parser.add_argument("--subset", type=int, default=None, help="train on only the first N images (quick runs)")
    parser.add_argument("--no-augment", action="store_true", help="train on plain MNIST")
    parser.add_argument("--no-reject-class", action="store_true",
                        help="train only the ten digits, without the 11th class 'not a digit'")
    parser.add_argument("--negative-share", type=float, default=0.35,
                        help="'not a digit' examples per MNIST training image")
    parser.add_argument("--scene-share", type=float, default=0.25,
                        help="of the 'not a digit' examples, the share the detector cuts out of rendered scenes "
                             "(slowest to make: about 10 a second)")
    parser.add_argument("--style-share", type=float, default=0.08,
                        help="extra digits in styles MNIST rarely shows (flagged 1, crossed 7...) per MNIST image")
    parser.add_argument("--init-from", default=None,
                        help="a .keras model of the same architecture to start from (a 10-class one gains the 11th class)")
    parser.add_argument("--teacher", action="append", default=[], metavar="MODEL.keras",
                        help="distil from this trained model (repeat for an ensemble: their mean probabilities "
                             "are blended into every training target; default: none)")
    parser.add_argument("--teacher-weight", type=float, default=0.5,
                        help="the teachers' share of each training target (default 0.5)")
    parser.add_argument("--heldout-count", type=int, default=2000,
                        help="rendered crops per held-out set in the training report (camera, pens, not a digit)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="keep the raw softmax (no temperature fitted on the validation split)")
    parser.add_argument("--reject-budget", type=float, default=None,
                        help="after calibration, raise the 'not a digit' answer as far as this share of validation "
                             "digits rejected allows (for example 0.002); default: leave it as trained")
    parser.add_argument("--average-epochs", type=int, default=0,
                        help="average the weights of the last N epochs (SWA); kept when its validation log loss "
                             "is lower than the best epoch's")
    parser.add_argument("--low-res-share", type=float, default=0.0,
                        help="share of training examples made coarse, as if only 6-16 px across and scaled back up "
                             "(low-resolution scans, small digits on a page); the trade-off is in README, Training")
    parser.add_argument("--fill-box-share", type=float, default=0.0,
                        help="share of training examples stretched to fill a square box, as old scanned digit "
                             "sets were (UCI optdigits, Semeion)")
    parser.add_argument("--max-aspect", type=float, default=1.0,
                        help="widen or narrow training examples by up to this factor (1: never)")
    parser.add_argument("--data", default=None,
                        help="folder with the MNIST IDX files (default: $DIGITS_MNIST_DIR, else download)")
    parser.add_argument("--output", "-o", default="models/cnn.keras", help="where to save the .keras model")


def main(args: argparse.Namespace) -> int:
    if args.init_from and not os.path.isfile(args.init_from):
        print(f"digits train: --init-from {args.init_from}: no such model file", file=sys.stderr)
        return 2
    if not (0 <= args.negative_share <= 5 and 0 <= args.style_share <= 5):
        print("digits train: --negative-share and --style-share must be between 0 and 5", file=sys.stderr)
        return 2
    if args.reject_budget is not None and not 0 <= args.reject_budget < 0.1:
        print("digits train: --reject-budget must be a share between 0 and 0.1 (e.g. 0.002)", file=sys.stderr)
        return 2
    if args.reject_budget is not None and args.no_reject_class:
        print("digits train: --reject-budget needs the 'not a digit' class (drop --no-reject-class)", file=sys.stderr)
        return 2
    if not 0 <= args.scene_share <= 1:
        print("digits train: --scene-share must be between 0 and 1", file=sys.stderr)
        return 2
    if not (0 <= args.low_res_share <= 1 and 0 <= args.fill_box_share <= 1 and 1 <= args.max_aspect <= 3):
        print("digits train: --low-res-share and --fill-box-share must be between 0 and 1 and --max-aspect "
              "between 1 and 3", file=sys.stderr)
        return 2
    if not 0 <= args.teacher_weight <= 1:
        print("digits train: --teacher-weight must be between 0 and 1", file=sys.stderr)
        return 2
    for teacher in args.teacher:
        if not os.path.isfile(teacher):
            print(f"digits train: --teacher {teacher}: no such file (a .keras model made by digits train)",
                  file=sys.stderr)
            return 2
    if args.heldout_count < 10:
        print("digits train: --heldout-count must be at least 10", file=sys.stderr)
        return 2
    if not 0 <= args.average_epochs <= args.epochs:
        print(f"digits train: --average-epochs must be between 0 and --epochs ({args.epochs})", file=sys.stderr)
        return 2
    if args.epochs < 1 or args.batch_size < 1 or not 0 < args.validation_split < 1:
        print("digits train: --epochs and --batch-size must be >= 1 and --validation-split in (0, 1)",
              file=sys.stderr)
        return 2
    if not args.output.endswith(".keras"):
        print(f"digits train: --output {args.output} must end in .keras", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    from edge_app.mnist import MnistNotFound
    from train.train import TrainConfig, describe, train

    config = TrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, seed=args.seed,
                         validation_split=args.validation_split, subset=args.subset,
                         augment=not args.no_augment, data_dir=args.data, output=args.output,
                         reject_class=not args.no_reject_class, negative_share=args.negative_share,
                         scene_share=args.scene_share,
                         style_share=args.style_share, init_from=args.init_from, calibrate=not args.no_calibrate,
                         heldout_count=args.heldout_count, average_epochs=args.average_epochs,
                         low_res_share=args.low_res_share, max_aspect=args.max_aspect,
                         fill_box_share=args.fill_box_share, reject_budget=args.reject_budget,
                         teachers=tuple(args.teacher), teacher_weight=args.teacher_weight,
                         command_line=getattr(args, "command_line", "digits train"))
    try:
        result = train(config)
    except (MnistNotFound, ValueError) as error:
        print(f"digits train: {error}", file=sys.stderr)
        return 2
    print(describe(result))
    return 0
