"""`digits train`: parse options and call train.train.train."""
from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=["cnn", "mlp"], default="cnn", help="architecture")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="peak learning rate (cosine schedule)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-split", type=float, default=0.1,
                        help="share of the training set held out to pick the best epoch")
    parser.add_argument("--subset", type=int, default=None, help="train on only the first N images (quick runs)")
    parser.add_argument("--no-augment", action="store_true", help="train on plain MNIST")
    parser.add_argument("--data", default=None,
                        help="folder with the MNIST IDX files (default: $DIGITS_MNIST_DIR, else download)")
    parser.add_argument("--output", "-o", default="models/cnn.keras", help="where to save the .keras model")


def main(args: argparse.Namespace) -> int:
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
                         command_line=getattr(args, "command_line", "digits train"))
    try:
        result = train(config)
    except (MnistNotFound, ValueError) as error:
        print(f"digits train: {error}", file=sys.stderr)
        return 2
    print(describe(result))
    return 0
