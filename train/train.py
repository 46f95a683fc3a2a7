"""Train a digit classifier on MNIST and save it with its test report.

The training set is MNIST's, plus writing styles MNIST rarely shows (`styles`) and, for the 11th
class, what detection cuts out that is no digit (`negatives`). After training, a temperature fitted
on the held-out validation split is folded into the last layer (`calibrate`), so the saved model's
probabilities are calibrated in every format it is exported to. The report measures the model on
every held-out set (`heldout`) and draws their confusion matrices.

Keras 3 with whatever backend is installed (TensorFlow here, JAX on a GPU machine): the saved
`.keras` file is backend-independent and exports the same way.
"""
from __future__ import annotations

import copy
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from edge_app import mnist
from edge_app.classifier import NOT_A_DIGIT_INDEX, class_names
from edge_app.files import atomic_path, write_json_atomic, write_png_atomic
from edge_app.preprocess import to_model_batch
from train import heldout
from train.augment import AugmentConfig, augment_batch
from train.calibrate import fit_reject_bias, fit_temperature, fold_reject_bias, fold_temperature
from train.model import build_model
from train.negatives import not_digit_examples
from train.styles import style_variants


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
    reject_class: bool = True  # an 11th class, "not a digit"
    negative_share: float = 0.35  # "not a digit" examples, as a share of the MNIST training images
    scene_share: float = 0.25  # of those, the share cut out of rendered scenes by the detector itself
    style_share: float = 0.08  # extra digits in styles MNIST rarely shows, as a share of them
    init_from: str | None = None  # a .keras model to start from (its layers' weights; a 10-class head grows a class)
    calibrate: bool = True  # fit a temperature on the validation split and fold it into the last layer
    reject_budget: float | None = None  # raise "not a digit" until this share of validation digits is rejected
    average_epochs: int = 0  # average the weights of the last N epochs (SWA); kept only if validation says so
    low_res_share: float = 0.0  # training examples made coarse, as if only 6-16 px across (`augment.low_resolution`)
    max_aspect: float = 1.0  # widen or narrow training examples by up to this factor
    fill_box_share: float = 0.0  # training examples stretched to fill a square box (`augment.fill_box`)
    heldout_count: int = 2000  # rendered crops per held-out set in the report
    teachers: tuple[str, ...] = ()  # .keras models whose mean probabilities are blended into the targets
    teacher_weight: float = 0.5  # the teachers' share of each target; the rest is the label
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
    confusion_path: Path | None = None


class AugmentedBatches(keras.utils.PyDataset):
    """Batches of freshly augmented training digits, reshuffled every epoch; with `teachers`, each target is
    blended with the teachers' mean probabilities for that very augmented image (knowledge distillation)."""

    def __init__(self, images, labels, batch_size: int, seed: int, augment: AugmentConfig | None, classes: int = 10,
                 teachers: tuple = (), teacher_weight: float = 0.5):
        super().__init__()
        self.images, self.labels, self.batch_size, self.augment = images, labels, batch_size, augment
        self.classes, self.teachers, self.teacher_weight = classes, teachers, teacher_weight
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))

    def __len__(self):
        return int(np.ceil(len(self.images) / self.batch_size))

    def __getitem__(self, index):
        picked = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        digits = self.images[picked]
        if self.augment is not None:
            digits = augment_batch(digits, self.rng, self.augment)
        batch = to_model_batch(digits)
        # One-hot targets, because label smoothing (and blending) needs them.
        targets = np.eye(self.classes, dtype=np.float32)[self.labels[picked]]
        if self.teachers:
            taught = np.mean([np.asarray(t.predict_on_batch(batch)) for t in self.teachers], axis=0)
            targets = (1.0 - self.teacher_weight) * targets + self.teacher_weight * taught
        return batch, targets

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


class AverageLastEpochs(keras.callbacks.Callback):
    """The mean of the weights at the end of the last `count` epochs (stochastic weight averaging, Izmailov et
    al., 2018): the end of a cosine schedule wanders around a flat minimum, and its centre generalises better
    than any one point on the way. Batch-norm statistics are averaged with the rest."""

    def __init__(self, count: int, epochs: int):
        super().__init__()
        self.first_epoch = max(0, epochs - count)  # 0-based
        self.total, self.seen = None, 0

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first_epoch:
            return
        weights = [np.asarray(w, np.float64) for w in self.model.get_weights()]
        self.total = weights if self.total is None else [t + w for t, w in zip(self.total, weights)]
        self.seen += 1

    def averaged(self) -> list[np.ndarray] | None:
        if not self.seen:
            return None
        return [(t / self.seen).astype(np.float32) for t in self.total]


def augment_config(config: TrainConfig) -> AugmentConfig:
    return AugmentConfig(low_res_prob=config.low_res_share, max_aspect=config.max_aspect,
                         fill_box_prob=config.fill_box_share)


def validation_scores(model: keras.Model, val_x: np.ndarray, val_y: np.ndarray) -> dict:
    probabilities = model.predict(to_model_batch(val_x), batch_size=1024, verbose=0)
    picked = np.clip(probabilities[np.arange(len(val_y)), val_y], 1e-12, 1.0)
    return {"accuracy": round(float((probabilities.argmax(axis=1) == val_y).mean()), 5),
            "log_loss": round(float(-np.log(picked).mean()), 5)}


def choose_average(model: keras.Model, averaged: list[np.ndarray], val_x, val_y) -> dict:
    """Keep the averaged weights or the best epoch's (already in `model`), whichever has the lower validation
    log loss: a few thousand images move accuracy by single errors, the loss by every example's confidence."""
    best_weights = model.get_weights()
    best = validation_scores(model, val_x, val_y)
    model.set_weights(averaged)
    mean = validation_scores(model, val_x, val_y)
    kept = mean["log_loss"] <= best["log_loss"]
    if not kept:
        model.set_weights(best_weights)
    return {"best_epoch": best, "averaged": mean, "kept": "averaged" if kept else "best epoch"}


def load_mnist(data_dir: str | None):
    """(train, test) as MnistSplit; a local IDX copy when one is given, else Keras' download."""
    if mnist.find_mnist_dir(data_dir) is not None:
        return mnist.load_split("train", data_dir), mnist.load_split("test", data_dir)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # Keras raises a bare Exception when the download fails (no network)
        raise mnist.MnistNotFound(f"MNIST is not in a local folder and the download failed ({str(error)[:80]}); "
                                  "pass --data DIR or set DIGITS_MNIST_DIR to the IDX files") from None
    return mnist.MnistSplit(x_train, y_train), mnist.MnistSplit(x_test, y_test)


def accuracy_report(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> dict:
    matrix = heldout.confusion_matrix(labels, predicted, classes)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {
        "accuracy": float((labels == predicted).mean()),
        "per_class_accuracy": {str(d): round(float(a), 5) for d, a in enumerate(per_class[:10])},
        "confusion_matrix": matrix.tolist(),
    }


def split_validation(images, labels, fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(len(images) * fraction))
    val, fit = order[:n_val], order[n_val:]
    return (images[fit], labels[fit]), (images[val], labels[val])


def with_extra_examples(images, labels, config: TrainConfig, seed: int):
    """MNIST images plus style variants and, with the reject class, "not a digit" examples (label 10)."""
    parts_x, parts_y = [images], [labels.astype(np.int64)]
    styles = int(round(config.style_share * len(images)))
    if styles:
        extra_x, extra_y = style_variants(images, labels, styles, seed)
        parts_x.append(extra_x)
        parts_y.append(extra_y.astype(np.int64))
    negatives = int(round(config.negative_share * len(images))) if config.reject_class else 0
    if negatives:
        split = mnist.MnistSplit(images, labels)
        negative_x, _ = not_digit_examples(split, negatives, seed, config.scene_share)
        parts_x.append(negative_x)
        parts_y.append(np.full(len(negative_x), NOT_A_DIGIT_INDEX, np.int64))
    return np.concatenate(parts_x), np.concatenate(parts_y)


def initial_weights(model: keras.Model, source_path: str) -> None:
    """Start from another model's weights, layer by layer; a head with fewer classes gets a new column."""
    source = keras.saving.load_model(source_path, compile=False)
    if len(source.layers) != len(model.layers):
        raise ValueError(f"--init-from {source_path}: {len(source.layers)} layers, not the {len(model.layers)} "
                         "of this architecture")
    for target, origin in zip(model.layers, source.layers):
        weights, start = target.get_weights(), origin.get_weights()
        if [w.shape for w in weights] == [w.shape for w in start]:
            target.set_weights(start)
        elif len(weights) == 2 and weights[0].shape[0] == start[0].shape[0] and weights[0].shape[1] > start[0].shape[1]:
            kernel, bias = weights[0] * 0.0, weights[1] * 0.0
            kernel[:, :start[0].shape[1]], bias[:start[1].shape[0]] = start[0], start[1]
            target.set_weights([kernel, bias])
        else:
            raise ValueError(f"--init-from {source_path}: its layer {origin.name} has weights "
                             f"{[tuple(w.shape) for w in start]}, this --arch's {target.name} "
                             f"{[tuple(w.shape) for w in weights]}: start from a model of the same --arch")


def load_teachers(paths: tuple[str, ...], classes: int) -> tuple:
    """The teacher models, each checked to answer the same classes as the student."""
    teachers = []
    for path in paths:
        try:
            teacher = keras.saving.load_model(path, compile=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"--teacher {path} is not a loadable .keras model "
                             f"({str(error).splitlines()[0][:100]})") from None
        if teacher.output_shape[-1] != classes:
            raise ValueError(f"--teacher {path}: {teacher.output_shape[-1]} classes, the student has {classes}")
        teachers.append(teacher)
    return tuple(teachers)


def train(config: TrainConfig) -> TrainResult:
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    classes = 11 if config.reject_class else 10
    model = build_model(config.arch, classes)
    if config.init_from:  # before the minutes of data preparation: a model that does not fit is said at once
        initial_weights(model, config.init_from)
    teachers = load_teachers(config.teachers, classes)
    train_split, test_split = load_mnist(config.data_dir)
    images, labels = train_split.images, train_split.labels
    if config.subset:
        images, labels = images[:config.subset], labels[:config.subset]
    (fit_x, fit_y), (val_x, val_y) = split_validation(images, labels, config.validation_split, config.seed)
    fit_x, fit_y = with_extra_examples(fit_x, fit_y, config, config.seed)
    val_x, val_y = with_extra_examples(val_x, val_y, replace(config, style_share=0.0), config.seed + 1)

    batches = AugmentedBatches(fit_x, fit_y, config.batch_size, config.seed,
                               augment_config(config) if config.augment else None, classes,
                               teachers, config.teacher_weight)
    steps = len(batches) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - steps // 20), warmup_target=config.learning_rate,
        warmup_steps=steps // 20)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])
    keep_best = KeepBestWeights()
    average = AverageLastEpochs(config.average_epochs, config.epochs) if config.average_epochs else None
    model.fit(batches, epochs=config.epochs,
              validation_data=(to_model_batch(val_x), keras.utils.to_categorical(val_y, classes)),
              callbacks=[keep_best] + ([average] if average else []), verbose=1 if sys.stdout.isatty() else 2)
    averaging = None
    if average is not None and average.averaged() is not None:
        averaging = choose_average(model, average.averaged(), val_x, val_y)

    def probabilities_of(images_: np.ndarray) -> np.ndarray:
        return model.predict(to_model_batch(images_), batch_size=1024, verbose=0)

    temperature = 1.0
    sets = heldout.all_sets(test_split, config.heldout_count)
    before = {s.name: heldout.score(probabilities_of(s.images), s.labels) for s in sets}
    if config.calibrate:
        temperature = fit_temperature(probabilities_of(val_x), val_y)
        fold_temperature(model, temperature)
    reject_bias = 0.0
    if config.reject_class and config.reject_budget is not None:
        reject_bias = fit_reject_bias(probabilities_of(val_x), val_y, NOT_A_DIGIT_INDEX, config.reject_budget)
        fold_reject_bias(model, NOT_A_DIGIT_INDEX, reject_bias)
    report_sets = {s.name: heldout.score(probabilities_of(s.images), s.labels) for s in sets}
    for name, result in report_sets.items():
        result["expected_calibration_error_before"] = before[name]["expected_calibration_error"]
        result["description"] = next(s.description for s in sets if s.name == name)
    probabilities = probabilities_of(test_split.images)
    report = accuracy_report(test_split.labels, probabilities.argmax(axis=1), classes)
    seconds = time.perf_counter() - started

    model_path = Path(config.output)
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    report_path = model_path.with_suffix(".train.json")
    confusion_path = model_path.with_suffix(".confusion.png")
    write_png_atomic(confusion_path, heldout.confusion_sheet(report_sets))
    write_json_atomic(report_path, {
        "model": model_path.name,
        "architecture": config.arch,
        "parameters": int(model.count_params()),
        "labels": list(class_names(classes)),
        "config": asdict(config),
        "best_epoch": keep_best.best_epoch,
        "best_val_accuracy": round(float(keep_best.best_accuracy), 5),
        "weight_averaging": averaging,
        "temperature": round(temperature, 5),
        "reject_bias": reject_bias,
        "test": report,
        "heldout": report_sets,
        "confusion_picture": confusion_path.name,
        "train_images": int(len(fit_x)),
        "train_not_digit_images": int((fit_y == NOT_A_DIGIT_INDEX).sum()),
        "seconds": round(seconds, 1),
        "command": config.command_line,
        "versions": {"python": platform.python_version(), "keras": keras.__version__,
                     "backend": keras.backend.backend(), "numpy": np.__version__},
    })
    return TrainResult(model_path, report_path, report["accuracy"], keep_best.best_epoch, seconds, confusion_path)


def describe(result: TrainResult) -> str:
    """Final lines for the terminal: where the model is, its accuracy, and its weakest digits."""
    per_class = json.loads(result.report_path.read_text())["test"]["per_class_accuracy"]
    weakest = sorted(per_class.items(), key=lambda item: item[1])[:3]
    return (f"saved {result.model_path} (best epoch {result.best_epoch}, MNIST test accuracy "
            f"{100 * result.test_accuracy:.2f}%, {result.seconds:.0f} s); report {result.report_path}\n"
            "weakest digits: " + ", ".join(f"{digit} {100 * accuracy:.2f}%" for digit, accuracy in weakest))

