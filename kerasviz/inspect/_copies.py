"""Standalone copies of a model and re-initialised weights, for modules that must change a model
without touching the user's (the sanity check of `kerasviz.metrics` randomises a copy)."""

from __future__ import annotations

import numpy as np

from kerasviz.inspect._model import _check_model, _keras, find_layer
from kerasviz.inspect._views import layer_table


def standalone_copy(model):
    """An independent copy of ``model``: the same graph and weights in new variables.

    Nested models are copied too, so changing any weight of the copy leaves ``model`` as it was.

    Args:
        model: a Keras model (Functional, Sequential or nested).

    Returns:
        A new ``keras.Model`` (``keras.models.clone_model`` with ``model``'s weights).

    Raises:
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: ``keras.models.clone_model`` cannot copy it (a subclassed model without
            ``get_config``, for instance).

    >>> twin = standalone_copy(model)
    >>> twin is model, len(twin.weights) == len(model.weights)
    (False, True)
    """
    _check_model(model)
    keras = _keras()
    try:
        twin = keras.models.clone_model(model)
    except Exception as err:
        raise ValueError(
            f"Model {model.name!r} could not be copied with "
            f"keras.models.clone_model ({err}); a standalone copy is needed so "
            "that the user's model is never changed."
        ) from None
    twin.set_weights(model.get_weights())
    return twin


def weighted_layers(model) -> list[str]:
    """Paths of the layers that own weights, in execution order (nested models descended).

    A nested model is never listed itself; its layers with weights are.

    >>> weighted_layers(model)
    ['conv1', 'conv2', 'predictions']
    """
    _check_model(model)
    paths = []
    for row in layer_table(model):
        layer = find_layer(model, row.path)
        if row.type in ("Functional", "Sequential") or not getattr(layer, "weights", None):
            continue
        paths.append(row.path)
    return paths


def reinitialize(layer, rng: np.random.Generator | int = 0) -> None:
    """Re-initialise every weight of ``layer`` in place from its own initializer (seeded).

    A variable named ``kernel``, ``bias``, ``gamma``... takes the layer's
    ``kernel_initializer``, ``bias_initializer``... (a seeded initializer gets a seed drawn
    from ``rng``); one without an initializer attribute is drawn from a normal with its current
    standard deviation (0.05 when that is 0).

    Args:
        layer: a Keras layer (of a copy: see `standalone_copy`).
        rng: a ``numpy.random.Generator``, or an int seed; the same seed gives the same weights.

    Raises:
        TypeError: ``layer`` is not a Keras layer, or ``rng`` is neither a Generator nor an int.

    >>> reinitialize(find_layer(twin, "predictions"), np.random.default_rng(0))
    """
    keras = _keras()
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            f"Expected `layer` to be a keras Layer. Received: layer of type {type(layer).__name__}"
        )
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"Expected `rng` to be a numpy.random.Generator or an int seed. "
            f"Received: rng of type {type(rng).__name__}"
        )
    new = []
    for var in layer.weights:
        name = var.path.split("/")[-1]
        shape = tuple(var.shape)
        init = getattr(layer, f"{name}_initializer", None)
        value = None
        if init is not None:
            config = keras.initializers.serialize(init)
            inner = config.get("config", {}) if isinstance(config, dict) else {}
            if "seed" in inner:
                inner["seed"] = int(rng.integers(2**31 - 1))
            value = np.asarray(keras.initializers.get(config)(shape, dtype=var.dtype))
        if value is None:
            std = float(np.std(np.asarray(var)))
            value = rng.normal(0.0, std if std > 0 else 0.05, shape)
        new.append(np.asarray(value, dtype=np.asarray(var).dtype))
    layer.set_weights(new)
