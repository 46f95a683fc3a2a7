"""The architectures, by name. Keras 3 only (no `tensorflow` import), so training runs on any backend."""
from __future__ import annotations

import keras
from keras import layers


def _conv_bn_relu(x, filters: int, strides: int = 1):
    # Bias is redundant before batch norm; BN folds into the conv at export, so int8 costs nothing extra.
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _strided_cnn(classes: int, widths: tuple[int, ...], dropout: float, name: str) -> keras.Model:
    """Six 3x3 conv + BN + ReLU layers of `widths`, the second and fourth strided (28 -> 14 -> 7), a flatten
    head. Strided convolutions instead of pooling keep the multiply-adds low; the flatten head keeps where the
    strokes are, which matters for digits more than a global pool."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for index, filters in enumerate(widths):
        x = _conv_bn_relu(x, filters, strides=2 if index in (1, 3) else 1)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build_cnn(classes: int = 10) -> keras.Model:
    """The edge default: ~79k parameters, ~4.0M multiply-adds, about 0.03 ms per image in int8 on one core here.

    Few channels at 28x28 keep the multiply-adds low. Widths were measured, not guessed: trained on as many
    not-a-digit examples, 8-16-16-32-32-64 (71k parameters) rejected as many non-digits but read fewer MNIST
    digits (99.33% against 99.41%); the wider middle and the narrower last layer (fewer flatten weights) keep
    the int8 file under 100 KB.
    """
    return _strided_cnn(classes, (12, 24, 24, 48, 48, 40), dropout=0.3, name="cnn")


def build_teacher(classes: int = 10) -> keras.Model:
    """The `cnn` at about three times its widths (387k parameters, ~25M multiply-adds): too slow for the
    device, trained only to teach the `cnn` (`digits train --teacher`), which learns no more from models of
    its own size than from the labels. 20 epochs on 2 CPU cores read MNIST 99.47%, under the `cnn`'s 40
    (README, Training): it needs more epochs than a CPU session gives it."""
    return _strided_cnn(classes, (32, 64, 64, 128, 128, 64), dropout=0.4, name="teacher")


def build_mlp(classes: int = 10) -> keras.Model:
    """The classic baseline the project grew from: Flatten-Dense128-Dense128-Dense10."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Flatten()(inputs)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")


ARCHITECTURES = {"cnn": build_cnn, "teacher": build_teacher, "mlp": build_mlp}


def build_model(name: str, classes: int = 10) -> keras.Model:
    """`classes`: 10 digits, or 11 with "not a digit" last."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}: choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](classes)
