"""Train a digit classifier on MNIST and save it with its test report.

Keras 3 with whatever backend is installed (TensorFlow here, JAX on a GPU machine): the saved
`.keras` file is backend-independent and exports the same way.
"""
from __future__ import annotations

import copy
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from edge_app import mnist
from edge_app.files import atomic_path, write_json_atomic
from edge_app.preprocess import to_model_batch
from train.augment import AugmentConfig, augment_batch
from train.model import build_model


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "cnn"
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3  # peak of a cosine schedule with a short warm-up
    seed: int = 0
    validation_split: float = 0.1  # held out from the training set to pick the best epoch
    subset: int | None = None  # train on only this many images, for quick runs and tests
    augment: bool = True
    label_smoothing: float = 0.05
    data_dir: str | None = None  # MNIST IDX folder; None: $DIGITS_MNIST_DIR, else the Keras download
    output: str = "models/cnn.keras"
    command_line: str = "digits train"  # how this run was started, for the report


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    report_path: Path
    test_accuracy: float
    best_epoch: int  # 1-based
    seconds: float


class AugmentedBatches(keras.utils.PyDataset):
    """Batches of freshly augmented training digits, reshuffled every epoch."""

    def __init__(self, images, labels, batch_size: int, seed: int, augment: AugmentConfig | None):
        super().__init__()
        self.images, self.labels, self.batch_size, self.augment = images, labels, batch_size, augment
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))

    def __len__(self):
        return int(np.ceil(len(self.images) / self.batch_size))

    def __getitem__(self, index):
        picked = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        digits = self.images[picked]
        if self.augment is not None:
            digits = augment_batch(digits, self.rng, self.augment)
        # One-hot targets, because label smoothing needs them.
        return to_model_batch(digits), np.eye(10, dtype=np.float32)[self.labels[picked]]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.images))


class KeepBestWeights(keras.callbacks.Callback):
    """Remember the weights of the epoch with the best validation accuracy and restore them at the end."""

    def __init__(self):
        super().__init__()
        self.best_accuracy, self.best_epoch, self.best_weights = -1.0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy", -1.0)
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch + 1
            self.best_weights = copy.deepcopy(self.model.get_weights())

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def load_mnist(data_dir: str | None):
    """(train, test) as MnistSplit; a local IDX copy when one is given, else Keras' download."""
    if mnist.find_mnist_dir(data_dir) is not None:
        return mnist.load_split("train", data_dir), mnist.load_split("test", data_dir)
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    return mnist.MnistSplit(x_train, y_train), mnist.MnistSplit(x_test, y_test)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    """(classes, classes) counts; row = true digit, column = predicted digit."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def accuracy_report(labels: np.ndarray, predicted: np.ndarray) -> dict:
    matrix = confusion_matrix(labels, predicted)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {
        "accuracy": float((labels == predicted).mean()),
        "per_class_accuracy": {str(d): round(float(a), 5) for d, a in enumerate(per_class)},
        "confusion_matrix": matrix.tolist(),
    }


def split_validation(images, labels, fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(len(images) * fraction))
    val, fit = order[:n_val], order[n_val:]
    return (images[fit], labels[fit]), (images[val], labels[val])


def train(config: TrainConfig) -> TrainResult:
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    train_split, test_split = load_mnist(config.data_dir)
    images, labels = train_split.images, train_split.labels
    if config.subset:
        images, labels = images[:config.subset], labels[:config.subset]
    (fit_x, fit_y), (val_x, val_y) = split_validation(images, labels, config.validation_split, config.seed)

    batches = AugmentedBatches(fit_x, fit_y, config.batch_size, config.seed,
                               AugmentConfig() if config.augment else None)
    steps = len(batches) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - steps // 20), warmup_target=config.learning_rate,
        warmup_steps=steps // 20)
    model = build_model(config.arch)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])
    keep_best = KeepBestWeights()
    model.fit(batches, epochs=config.epochs,
              validation_data=(to_model_batch(val_x), keras.utils.to_categorical(val_y, 10)),
              callbacks=[keep_best], verbose=1 if sys.stdout.isatty() else 2)

    probabilities = model.predict(to_model_batch(test_split.images), batch_size=1024, verbose=0)
    report = accuracy_report(test_split.labels, probabilities.argmax(axis=1))
    seconds = time.perf_counter() - started

    model_path = Path(config.output)
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    report_path = model_path.with_suffix(".train.json")
    write_json_atomic(report_path, {
        "model": model_path.name,
        "architecture": config.arch,
        "parameters": int(model.count_params()),
        "config": asdict(config),
        "best_epoch": keep_best.best_epoch,
        "best_val_accuracy": round(float(keep_best.best_accuracy), 5),
        "test": report,
        "train_images": int(len(fit_x)),
        "seconds": round(seconds, 1),
        "command": config.command_line,
        "versions": {"python": platform.python_version(), "keras": keras.__version__,
                     "backend": keras.backend.backend(), "numpy": np.__version__},
    })
    return TrainResult(model_path, report_path, report["accuracy"], keep_best.best_epoch, seconds)


def describe(result: TrainResult) -> str:
    """Final lines for the terminal: where the model is, its accuracy, and its weakest digits."""
    per_class = json.loads(result.report_path.read_text())["test"]["per_class_accuracy"]
    weakest = sorted(per_class.items(), key=lambda item: item[1])[:3]
    return (f"saved {result.model_path} (best epoch {result.best_epoch}, MNIST test accuracy "
            f"{100 * result.test_accuracy:.2f}%, {result.seconds:.0f} s); report {result.report_path}\n"
            "weakest digits: " + ", ".join(f"{digit} {100 * accuracy:.2f}%" for digit, accuracy in weakest))

