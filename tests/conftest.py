"""Shared fixtures: small models of the three kinds kerasviz must support, and shipped models."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERASVIZ_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def run_script():
    """``run_script(code, *args)``: run ``code`` in a fresh interpreter at the repository root
    (kerasviz from this checkout) and return the JSON it printed after ``RESULT ``.

    For checks that need a fresh process: logical devices set before TensorFlow starts, memory
    peaks of one process.
    """

    def run(code: str, *args) -> dict:
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        done = subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        assert done.returncode == 0 and lines, done.stderr[-3000:]
        return json.loads(lines[-1][len("RESULT ") :])

    return run


@pytest.fixture(scope="session")
def keras():
    import keras

    return keras


def _conv_stack(keras, prefix=""):
    layers = keras.layers
    return [
        layers.Conv2D(4, 3, padding="same", activation="relu", name=f"{prefix}conv1"),
        layers.MaxPooling2D(name=f"{prefix}pool1"),
        layers.Conv2D(6, 3, padding="same", activation="relu", name=f"{prefix}conv2"),
        layers.GlobalAveragePooling2D(name=f"{prefix}gap"),
        layers.Dense(3, activation="softmax", name=f"{prefix}predictions"),
    ]


@pytest.fixture(scope="session")
def functional_model(keras):
    """A 16x16x3 Functional CNN with 3 classes."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3), name="image")
    x = inputs
    for layer in _conv_stack(keras):
        x = layer(x)
    return keras.Model(inputs, x, name="functional_cnn")


@pytest.fixture(scope="session")
def sequential_model(keras):
    """The same CNN as a Sequential model that starts with an Input."""
    keras.utils.set_random_seed(2)
    return keras.Sequential([keras.Input((16, 16, 3)), *_conv_stack(keras)], name="seq_cnn")


@pytest.fixture(scope="session")
def sequential_no_input(keras):
    """A Sequential model without an Input, built by a first call."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(_conv_stack(keras), name="seq_noinput")
    model(np.zeros((1, 16, 16, 3), np.float32))
    return model


@pytest.fixture(scope="session")
def nested_model(keras):
    """A small MobileNetV2(weights=None) backbone used as a layer of an outer Functional model."""
    keras.utils.set_random_seed(4)
    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35
    )
    inputs = keras.Input((32, 32, 3), name="image")
    x = base(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="nested_cnn")


_SHIPPED = {}


@pytest.fixture(scope="session")
def shipped():
    """``shipped(name)`` loads a model from saved_models/ once per session."""
    from kerasviz import models

    def load(name):
        if name not in _SHIPPED:
            _SHIPPED[name] = models.load(name)
        return _SHIPPED[name]

    return load
