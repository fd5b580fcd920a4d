"""Fixtures shared by the embedding tests: a model with known features."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def linear_model(keras):
    """4x4x1 -> conv (1x1, 2 channels: x and -2x + 0.5) -> flatten -> dropout -> Dense(3)."""
    inputs = keras.Input((4, 4, 1), name="image")
    conv = keras.layers.Conv2D(2, 1, name="conv")
    h = conv(inputs)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(h)
    conv.set_weights(
        [np.array([1.0, -2.0], np.float32).reshape(1, 1, 1, 2), np.array([0.0, 0.5], np.float32)]
    )
    return keras.Model(inputs, outputs, name="linear")


@pytest.fixture(scope="module")
def x4():
    return np.random.default_rng(0).uniform(0, 1, (7, 4, 4, 1)).astype(np.float32)
