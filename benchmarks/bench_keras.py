"""Keras 3 on TensorFlow peer: the same VGG13 and light model, Adam + softmax cross-entropy,
through Keras's own compiled train/predict functions (train_on_batch / predict_on_batch).

jit_compile=True (XLA) or False (TF graph + oneDNN); run.py keeps the faster. Not included,
unlike ferjax's step: the center loss and its center update.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402  (ImportError here is how run.py learns the peer is missing)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import (LIGHT_PARAMS_1CH, VGG13_PARAMS_1CH, random_batch, rate,  # noqa: E402
                               time_steps)
from ferjax.config import LIGHT_LAYERS, ModelConfig  # noqa: E402
from ferjax.features import num_channels  # noqa: E402


class SpaceToDepth2(keras.layers.Layer):
    """(B,H,W,C) -> (B,H/2,W/2,4C), channel order (dy, dx, c) as ferjax's light model."""

    def call(self, x):
        _, h, w, c = x.shape
        x = keras.ops.reshape(x, (-1, h // 2, 2, w // 2, 2, c))
        x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return keras.ops.reshape(x, (-1, h // 2, w // 2, 4 * c))

    def compute_output_shape(self, s):
        return (s[0], s[1] // 2, s[2] // 2, 4 * s[3])


def _conv(width):
    return keras.layers.Conv2D(width, 3, padding="same", activation="relu")


def vgg13(channels: int, image_size: int = 64, num_classes: int = 8) -> keras.Model:
    layers = [keras.Input((image_size, image_size, channels))]
    for widths in ((64, 64), (128, 128), (256, 256, 256), (256, 256, 256)):
        layers += [_conv(w) for w in widths]
        layers += [keras.layers.MaxPooling2D(2), keras.layers.Dropout(0.25)]
    layers += [keras.layers.Flatten(), keras.layers.Dense(1024, activation="relu"),
               keras.layers.Dropout(0.5), keras.layers.Dense(1024, activation="relu"),
               keras.layers.Dropout(0.5), keras.layers.Dense(num_classes)]
    return keras.Sequential(layers)


def light(channels: int, image_size: int = 64, num_classes: int = 8) -> keras.Model:
    layers = [keras.Input((image_size, image_size, channels)), SpaceToDepth2()]
    def conv_bn(width):   # ferjax's light model: conv, batch norm (momentum 0.9), ReLU
        return [keras.layers.Conv2D(width, 3, padding="same"),
                keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5), keras.layers.ReLU()]

    table = LIGHT_LAYERS[ModelConfig.light_layers]   # ferjax's default layer table
    for i, w in enumerate(table.widths):
        layers += conv_bn(w)
        layers += [keras.layers.MaxPooling2D(2)] if i + 1 in table.pool_after else []
    layers += [keras.layers.GlobalAveragePooling2D() if table.pooled else keras.layers.Flatten(),
               keras.layers.Dropout(0.25), keras.layers.Dense(table.fc, activation="relu"),
               keras.layers.Dropout(0.5), keras.layers.Dense(num_classes)]
    return keras.Sequential(layers)


def build(model: str, channels: int, image_size: int = 64) -> keras.Model:
    net = {"vgg13": vgg13, "light": light}[model](channels, image_size)
    if image_size == 64:
        expected = {"vgg13": VGG13_PARAMS_1CH + 576 * (channels - 1),
                    "light": LIGHT_PARAMS_1CH + 864 * (channels - 1)}[model]
        trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
        assert trainable == expected, (model, trainable, expected)
    return net


def _setup(model, batch, features, image_size, jit_compile):
    keras.utils.set_random_seed(0)
    net = build(model, num_channels(features), image_size)
    net.compile(optimizer=keras.optimizers.Adam(3e-4),
                loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                jit_compile=bool(jit_compile))
    data = random_batch(batch, num_channels(features), image_size)
    return net, tf.constant(data["image"]), tf.constant(data["target"])


def train(model: str = "light", batch: int = 64, features: str = "O", jit_compile: bool = True,
          warmup: int = 3, steps: int = 10, image_size: int = 64) -> dict:
    net, x, y = _setup(model, batch, features, image_size, jit_compile)
    last = {}

    def one():   # train_on_batch returns the loss as a host float: the step has finished
        last["loss"] = float(np.asarray(net.train_on_batch(x, y)).ravel()[0])

    timing = time_steps(one, warmup, steps)
    return {"images_per_s": rate(timing, batch), "params": int(net.count_params()),
            "jit_compile": bool(jit_compile), "loss_finite": bool(np.isfinite(last["loss"])),
            **timing}


def infer(model: str = "light", batch: int = 256, features: str = "O", jit_compile: bool = True,
          warmup: int = 3, steps: int = 10, image_size: int = 64) -> dict:
    net, x, _ = _setup(model, batch, features, image_size, jit_compile)
    timing = time_steps(lambda: net.predict_on_batch(x), warmup, steps)
    return {"images_per_s": rate(timing, batch), "params": int(net.count_params()),
            "jit_compile": bool(jit_compile), **timing}


def probe() -> dict:
    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


FUNCTIONS = {"train": train, "infer": infer, "probe": probe}
