"""The small models kerasviz ships in ``saved_models/``, each with a JSON card beside it.

The card records what a user needs to feed and read the model: data, seed, accuracy figures,
class names, input shape and range. ``examples/train_models.py`` trains every model
deterministically on the CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SHIPPED = ("digits_cnn", "shapes_cnn", "snow_biased", "snow_fair")


def models_dir() -> Path:
    """Where shipped models live: ``$KERASVIZ_MODELS`` or the repository's ``saved_models/``."""
    env = os.environ.get("KERASVIZ_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "saved_models"


# Files `keras.saving.load_model` opens: the Keras 3 format and legacy (Keras 2) HDF5.
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def path(name: str) -> Path:
    """Path of a shipped model's ``.keras`` file (or of any model file path given)."""
    if name.lower().endswith(MODEL_SUFFIXES):
        return Path(name)
    if name not in SHIPPED:
        raise KeyError(f"Unknown shipped model {name!r}. Shipped: {list(SHIPPED)}")
    return models_dir() / f"{name}.keras"


def load(name: str):
    """Load a shipped model by name (``"digits_cnn"``), or a ``.keras`` or legacy HDF5
    (``.h5``/``.hdf5``, Keras 2) file by path.

    Raises:
        KeyError: an unknown shipped name.
        FileNotFoundError: the file is missing (train it with ``examples/train_models.py``).
        ValueError: the file is not a Keras model.

    >>> load("digits_cnn").output_shape
    (None, 10)
    """
    p = path(name)
    if not p.is_file():
        raise FileNotFoundError(
            f"No model file at {p}. Train the shipped models with "
            "`python examples/train_models.py`."
        )
    import keras

    try:
        return keras.saving.load_model(p, compile=False)
    except Exception as err:  # zip errors, bad configs: all mean "not a Keras model"
        raise ValueError(f"{p} could not be loaded as a Keras model: {err}") from None


def card(name: str) -> dict:
    """The JSON card of a model: ``name.json`` beside the ``.keras`` file (``{}`` if absent)."""
    p = path(name).with_suffix(".json")
    if not p.is_file():
        return {}
    return json.loads(p.read_text())


def preprocessing(
    card: dict, scale: float | None = None, offset: float | None = None
) -> tuple[float, float]:
    """``(scale, offset)`` mapping 8-bit pixels to model inputs: given values win, then the
    card's ``preprocessing``, then ``1/255`` and ``0``."""
    prep = card.get("preprocessing", {})
    return (
        prep.get("scale", 1 / 255) if scale is None else scale,
        prep.get("offset", 0.0) if offset is None else offset,
    )
