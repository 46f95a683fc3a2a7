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
    """The edge default: ~68k parameters, ~2.3M multiply-adds, about 80 us per image in int8 on one x86 core.

    Strided convolutions instead of pooling and few channels at 28x28 keep the multiply-adds low;
    the flatten head keeps where the strokes are, which matters for digits more than a global pool.
    """
    inputs = keras.Input((28, 28, 1), name="image")
    x = _conv_bn_relu(inputs, 8)
    x = _conv_bn_relu(x, 16, strides=2)   # 14x14
    x = _conv_bn_relu(x, 16)
    x = _conv_bn_relu(x, 32, strides=2)   # 7x7
    x = _conv_bn_relu(x, 32)
    x = _conv_bn_relu(x, 64)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_mlp(classes: int = 10) -> keras.Model:
    """The classic baseline the project grew from: Flatten-Dense128-Dense128-Dense10."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Flatten()(inputs)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")


ARCHITECTURES = {"cnn": build_cnn, "mlp": build_mlp}


def build_model(name: str, classes: int = 10) -> keras.Model:
    """`classes`: 10 digits, or 11 with "not a digit" last."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}: choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](classes)
