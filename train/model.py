"""The architectures, by name. Keras 3 only (no `tensorflow` import), so training runs on any backend."""
from __future__ import annotations

import keras
from keras import layers


def _conv_bn_relu(x, filters: int, strides: int = 1):
    # Bias is redundant before batch norm; BN folds into the conv at export, so int8 costs nothing extra.
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_cnn(classes: int = 10) -> keras.Model:
    """The edge default: ~79k parameters, ~4.0M multiply-adds, about 0.03 ms per image in int8 on one core here.

    Strided convolutions instead of pooling and few channels at 28x28 keep the multiply-adds low;
    the flatten head keeps where the strokes are, which matters for digits more than a global pool.
    Widths were measured, not guessed: trained on as many not-a-digit examples, 8-16-16-32-32-64 (71k
    parameters) rejected as many non-digits but read fewer MNIST digits (99.33% against 99.41%); the wider
    middle and the narrower last layer (fewer flatten weights) keep the int8 file under 100 KB.
    """
    inputs = keras.Input((28, 28, 1), name="image")
    x = _conv_bn_relu(inputs, 12)
    x = _conv_bn_relu(x, 24, strides=2)   # 14x14
    x = _conv_bn_relu(x, 24)
    x = _conv_bn_relu(x, 48, strides=2)   # 7x7
    x = _conv_bn_relu(x, 48)
    x = _conv_bn_relu(x, 40)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_teacher(classes: int = 10) -> keras.Model:
    """The `cnn` at about three times its widths (385k parameters, ~25M multiply-adds): too slow for the
    device, trained only to teach the `cnn` (`digits train --teacher`), which learns no more from models of
    its own size than from the labels. 20 epochs on 2 CPU cores read MNIST 99.47%, under the `cnn`'s 40
    (README, Training): it needs more epochs than a CPU session gives it."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = _conv_bn_relu(inputs, 32)
    x = _conv_bn_relu(x, 64, strides=2)   # 14x14
    x = _conv_bn_relu(x, 64)
    x = _conv_bn_relu(x, 128, strides=2)  # 7x7
    x = _conv_bn_relu(x, 128)
    x = _conv_bn_relu(x, 64)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="teacher")


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
