"""The model-inspection core: the single module that knows Keras graph internals.

Everything else in kerasviz asks this module for layers, sub-models and validated inputs.

Three kinds of model are supported, in any nesting:

* Functional models (``keras.Model(inputs, outputs)``);
* Sequential models, built with an ``Input`` or built by a first call / ``build()``;
* models used as layers inside other models (a ``keras.applications`` backbone inside an outer
  Functional model). A layer of such a backbone is not connected to the outer model's inputs,
  so ``keras.Model(outer.inputs, inner.get_layer(name).output)`` fails. We *replay* the graph
  instead: every Functional or Sequential model found on the way is walked layer by layer on the
  outer tensors, so each inner layer gets an output tensor that is connected to the outer input.

Subclassed models (a custom ``call``) are opaque: they are called as one layer and their inner
layers cannot be tapped.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LayerRef = "str | int | keras.layers.Layer"

CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")


def _keras():
    import keras

    return keras


def is_graph_model(obj) -> bool:
    """True for a Functional or Sequential model whose layers we can walk."""
    keras = _keras()
    from keras.src.models.functional import Functional

    return isinstance(obj, keras.Sequential | Functional)


def _check_model(model) -> None:
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected `model` to be a keras.Model. Received: model of type {type(model).__name__}"
        )


def _sequential_ready(model) -> None:
    """Raise a clear error for a Sequential model that has no known input shape yet."""
    keras = _keras()
    if isinstance(model, keras.Sequential) and getattr(model, "_functional", None) is None:
        raise ValueError(
            f"Sequential model {model.name!r} has no input shape yet. Call it once on a batch, "
            "or run `model.build((None, H, W, C))`, or start it with `keras.Input(shape)`."
        )


# --------------------------------------------------------------------------------------------
# Finding layers
# --------------------------------------------------------------------------------------------


def iter_layers(model, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Yield ``(path, layer)`` for every layer, descending into nested models.

    Paths join model names with ``/``: ``"mobilenetv2_1.00_96/block_3_expand"``. A nested model
    is yielded itself before its layers.

    >>> [p for p, _ in iter_layers(model)][:2]
    ['conv1', 'conv2']
    """
    for layer in model.layers:
        path = prefix + layer.name
        yield path, layer
        if isinstance(layer, _keras().Model) and is_graph_model(layer):
            yield from iter_layers(layer, prefix=path + "/")


def find_layer(model, ref) -> Any:
    """Resolve a layer from a name, a path, an index or a layer object.

    Args:
        model: a Keras model.
        ref: a layer name (``"conv2"``), a path through nested models
            (``"mobilenetv2_1.00_96/block_3_expand"``), a name that is unique anywhere in the
            nested models, an index into ``model.layers`` (negative counts from the end) or a
            ``keras.layers.Layer`` that belongs to the model.

    Returns:
        The ``keras.layers.Layer``.

    Raises:
        KeyError: the name or path is unknown (the message lists the closest real names), or
            the index is out of range.
        TypeError: ``ref`` is of another type.

    >>> find_layer(model, "conv2").name
    'conv2'
    """
    _check_model(model)
    keras = _keras()
    if isinstance(ref, bool):
        raise TypeError(f"Expected `layer` to be a name, index or Layer. Received: {ref!r}")
    if isinstance(ref, int | np.integer):
        n = len(model.layers)
        if not -n <= int(ref) < n:
            raise KeyError(
                f"`layer` index {int(ref)} is out of range for model {model.name!r} with "
                f"{n} layers (valid: {-n} to {n - 1})."
            )
        return model.layers[int(ref)]
    entries = list(iter_layers(model))
    if isinstance(ref, keras.layers.Layer):
        for _, layer in entries:
            if layer is ref:
                return layer
        raise KeyError(f"Layer {ref.name!r} (the object passed as `layer`) is not part of model "
                       f"{model.name!r}.")
    if not isinstance(ref, str):
        raise TypeError(
            "Expected `layer` to be a name, a path, an index or a keras Layer. "
            f"Received: layer of type {type(ref).__name__}"
        )
    for path, layer in entries:
        if path == ref:
            return layer
    by_name = [layer for _, layer in entries if layer.name == ref]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        paths = [p for p, layer in entries if layer.name == ref]
        raise KeyError(f"Layer name {ref!r} is ambiguous in model {model.name!r}; use a path: "
                       f"{paths}")
    path_of = {layer.name: path for path, layer in entries}
    path_of.update({path: path for path, _ in entries})
    close = difflib.get_close_matches(ref, list(path_of), n=5, cutoff=0.4)
    close = list(dict.fromkeys(path_of[c] for c in close))
    hint = f" Closest names: {close}." if close else ""
    raise KeyError(f"No layer {ref!r} in model {model.name!r}.{hint} "
                   "See kerasviz.inspect.layer_table(model) for all layers.")


def layer_path(model, layer) -> str:
    """The path of ``layer`` inside ``model`` (``"outer_block/inner_layer"``)."""
    for path, candidate in iter_layers(model):
        if candidate is layer:
            return path
    raise KeyError(f"Layer {layer.name!r} is not part of model {model.name!r}.")


# --------------------------------------------------------------------------------------------
# Replaying the graph on fresh inputs
# --------------------------------------------------------------------------------------------


@dataclass
class _Tap:
    """One layer call seen while replaying: where it is, what it is, what it gave."""

    path: str
    layer: Any
    output: Any


class Replay:
    """Walks a (possibly nested) model on new symbolic inputs and records every layer output.

    Subclass it and extend ``_call`` to record more (inputs, shapes); see `replay`.
    """

    def __init__(self, overrides: dict[int, Any] | None = None):
        self.overrides = overrides or {}
        self.taps: list[_Tap] = []
        self._seen: set[int] = set()

    def run(self, model, inputs, prefix: str = ""):
        keras = _keras()
        if isinstance(model, keras.Sequential):
            x = inputs
            for layer in model.layers:
                x = self._call(layer, (x,), {}, prefix)
            return x

        def operation_fn(op):
            return lambda *args, **kwargs: self._call(op, args, kwargs, prefix)

        return model._run_through_graph(inputs, operation_fn=operation_fn)

    def _call(self, layer, args, kwargs, prefix):
        path = prefix + layer.name
        if id(layer) in self.overrides:
            out = self.overrides[id(layer)](*args, **kwargs)
        elif is_graph_model(layer):
            _sequential_ready(layer)
            inner_in = args[0] if len(args) == 1 else list(args)
            out = self.run(layer, inner_in, prefix=path + "/")
        else:
            out = layer(*args, **kwargs)
        if id(layer) not in self._seen:  # a shared layer keeps its first output
            self._seen.add(id(layer))
            self.taps.append(_Tap(path, layer, out))
        return out

    def output_of(self, layer):
        for tap in self.taps:
            if tap.layer is layer:
                return tap.output
        return None


def fresh_input(model):
    """A new ``keras.Input`` shaped like the model's single input."""
    keras = _keras()
    _sequential_ready(model)
    if len(model.inputs) != 1:
        raise ValueError(
            f"kerasviz explains image models with one input; model {model.name!r} has "
            f"{len(model.inputs)} inputs."
        )
    ref = model.inputs[0]
    return keras.Input(shape=tuple(ref.shape[1:]), dtype=ref.dtype, name="kerasviz_input")


def replay(model, overrides=None):
    """Walk ``model`` on a fresh symbolic input, recording every layer call.

    Args:
        model: a Functional or Sequential model (nested models are walked too).
        overrides: ``{id(layer): callable}``: call the callable instead of that layer (how the
            logits view and guided backprop change a layer without touching the model).

    Returns:
        ``(inputs, prediction, walk)``: the new ``keras.Input``, the prediction tensor and the
        `Replay` whose ``taps`` list every layer's path, object and output in execution order.

    >>> inputs, prediction, walk = replay(model)
    >>> walk.taps[0].path
    'conv1'
    """
    _check_model(model)
    if not is_graph_model(model):
        raise TypeError(
            f"Model {model.name!r} is a subclassed model ({type(model).__name__}); its layers "
            "cannot be reached. Wrap its layers in a Functional or Sequential model."
        )
    inputs = fresh_input(model)
    walk = Replay(overrides)
    outputs = walk.run(model, inputs)
    if isinstance(outputs, list | tuple):
        if len(outputs) != 1:
            raise ValueError(
                f"kerasviz explains models with one output; model {model.name!r} has "
                f"{len(outputs)} outputs."
            )
        outputs = outputs[0]
    return inputs, outputs, walk


def submodel(model, layers=()) -> Any:
    """A Functional model returning several intermediate outputs and the prediction.

    One forward pass of the returned model gives every requested layer's output, followed by
    the model's prediction, for Functional, Sequential and nested models alike. The layers are
    the user's own (weights are shared, nothing is copied or changed).

    Args:
        model: a Keras model (Functional, Sequential, or with nested sub-models).
        layers: one layer reference or a sequence of them (see `find_layer`).

    Returns:
        A ``keras.Model`` whose outputs are ``[output of each layer ..., prediction]``.

    Raises:
        KeyError: an unknown layer (closest names listed).
        ValueError: a Sequential model without input shape; several inputs or outputs.

    >>> sub = submodel(model, ["conv1", "conv2"])
    >>> [tuple(o.shape) for o in sub.outputs]
    [(None, 30, 30, 32), (None, 28, 28, 32), (None, 10)]
    """
    keras = _keras()
    refs = as_refs(layers)
    targets = [find_layer(model, ref) for ref in refs]
    inputs, prediction, walk = replay(model)
    outs = []
    for layer in targets:
        if isinstance(layer, keras.layers.InputLayer):
            outs.append(inputs)
            continue
        out = walk.output_of(layer)
        if out is None:
            raise ValueError(
                f"Layer {layer.name!r} is not reached by a forward pass of model {model.name!r} "
                "(it sits inside a subclassed model or is not used)."
            )
        outs.append(out)
    return keras.Model(inputs, [*outs, prediction], name=f"{model.name}_kerasviz")


def as_refs(layers) -> list:
    """One layer reference or a sequence of them, as a list (``None`` gives ``[]``)."""
    keras = _keras()
    if layers is None:
        return []
    if isinstance(layers, str | int | np.integer | keras.layers.Layer):
        return [layers]
    return list(layers)


def flat_model(model) -> Any:
    """A Functional view of any supported model with the same prediction (weights shared).

    Libraries that expect a Functional model (tf-keras-vis, Xplique) can be handed this view
    of a Sequential or nested model.
    """
    keras = _keras()
    inputs, prediction, _ = replay(model)
    return keras.Model(inputs, prediction, name=f"{model.name}_flat")


# --------------------------------------------------------------------------------------------
# Logits
# --------------------------------------------------------------------------------------------

_SQUASHERS = ("softmax", "sigmoid")


def _activation_name(fn) -> str | None:
    if fn is None:
        return None
    name = getattr(fn, "__name__", None) or getattr(fn, "name", None)
    return name if name in _SQUASHERS else None


def _head_layer(model):
    """The layer that produces the model's prediction, descending into nested models."""
    keras = _keras()
    _sequential_ready(model)
    if isinstance(model, keras.Sequential):
        last = model.layers[-1]
    else:
        last = model.outputs[0]._keras_history.operation
    if is_graph_model(last):
        return _head_layer(last)
    return last


def head_activation(model) -> str | None:
    """``"softmax"``, ``"sigmoid"`` or ``None``: the squashing function of the model's head."""
    keras = _keras()
    head = _head_layer(model)
    if isinstance(head, keras.layers.Softmax):
        return "softmax"
    return _activation_name(getattr(head, "activation", None))


def logits_model(model) -> Any:
    """A view of ``model`` whose softmax (or sigmoid) head is replaced by its logits.

    The user's model is neither changed nor retrained. For a ``Dense`` head the view shares the
    head's weights (it computes ``x @ kernel + bias`` from the same variables); a separate
    ``Activation``/``Softmax`` layer is skipped; any other layer with a squashing activation is
    copied once with a linear activation. A model whose head is already linear is returned as
    a Functional view with the same outputs.

    >>> logits_model(model).outputs[0].shape
    (None, 10)
    """
    keras = _keras()
    from keras import ops

    head = _head_layer(model)
    overrides = {}
    if isinstance(head, keras.layers.Softmax) or (
        isinstance(head, keras.layers.Activation) and _activation_name(head.activation)
    ):
        overrides[id(head)] = lambda x, *a, **k: x
    elif _activation_name(getattr(head, "activation", None)):
        if isinstance(head, keras.layers.Dense):

            def linear_dense(x, *args, **kwargs):
                y = ops.matmul(x, head.kernel)
                return y + head.bias if head.bias is not None else y

            overrides[id(head)] = linear_dense
        else:
            config = head.get_config()
            config["activation"] = "linear"
            config["name"] = head.name + "_logits"
            clone = type(head).from_config(config)
            built = False

            def linear_clone(x, *args, **kwargs):
                nonlocal built
                out = clone(x)
                if not built:
                    clone.set_weights(head.get_weights())
                    built = True
                return out

            overrides[id(head)] = linear_clone
    inputs, outputs, _ = replay(model, overrides)
    return keras.Model(inputs, outputs, name=f"{model.name}_logits")


# --------------------------------------------------------------------------------------------
# Describing a model
# --------------------------------------------------------------------------------------------


@dataclass
class LayerInfo:
    """One row of `layer_table`."""

    path: str
    name: str
    type: str
    output_shape: tuple
    params: int
    filters: bool  # has a convolution kernel that `kerasviz.filters` can render
    activations: bool  # gives spatial feature maps (N, h, w, c)
    cam: bool  # a spatial map with h, w > 1 that CAM methods can target


def layer_table(model) -> list[LayerInfo]:
    """Every layer reached by a forward pass, in execution order, with what it can be used for.

    >>> [row.name for row in layer_table(model) if row.filters]
    ['conv1', 'conv2', 'conv3', 'conv4']
    """
    _, _, walk = replay(model)
    rows = []
    for tap in walk.taps:
        shape = tuple(getattr(tap.output, "shape", ()) or ())
        kind = type(tap.layer).__name__
        spatial = len(shape) == 4
        rows.append(
            LayerInfo(
                path=tap.path,
                name=tap.layer.name,
                type=kind,
                output_shape=shape,
                params=int(tap.layer.count_params()) if tap.layer.built else 0,
                filters=kind in CONV_TYPES,
                activations=spatial,
                cam=spatial and all(s is None or s > 1 for s in shape[1:3]),
            )
        )
    return rows


def last_spatial_layer(model) -> str:
    """The path of the last layer with a spatial output (h, w > 1): the default CAM layer.

    Padding and pooling layers and nested models themselves are skipped (their maps repeat or
    subsample another layer's; Grad-CAM is defined on the last convolutional block).
    Descends into nested backbones, so for an outer model around a 96 px MobileNetV2 it returns
    ``"mobilenetv2_1.00_96/out_relu"``.

    Raises:
        ValueError: the model has no layer with a spatial output.
    """
    skip = ("Functional", "Sequential", "ZeroPadding2D", "InputLayer", "MaxPooling2D",
            "AveragePooling2D")
    rows = [r for r in layer_table(model) if r.cam and r.type not in skip]
    if not rows:
        raise ValueError(f"Model {model.name!r} has no layer with a spatial (N, h, w, c) output "
                         "with h, w > 1; CAM methods need one.")
    return rows[-1].path


def input_shape(model) -> tuple:
    """``(H, W, C)`` of the model's single input (entries may be ``None``)."""
    _check_model(model)
    _sequential_ready(model)
    return tuple(model.inputs[0].shape[1:])


def num_outputs(model) -> int:
    """The size of the prediction's last axis (the number of classes)."""
    _check_model(model)
    _sequential_ready(model)
    return int(model.outputs[0].shape[-1])


# --------------------------------------------------------------------------------------------
# Validating user input, once, here
# --------------------------------------------------------------------------------------------


def real_array(value, name: str) -> np.ndarray:
    """``value`` as a numpy array of a real numeric dtype (int or float), unconverted.

    Raises:
        ValueError: it cannot be read as an array (ragged lists and the like).
        TypeError: booleans, strings, objects, complex numbers.
    """
    try:
        arr = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"`{name}` could not be read as an array: {err}") from None
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"Expected `{name}` of a real numeric dtype (float or int). "
                        f"Received: {name}.dtype={arr.dtype}")
    return arr


def as_batch(arr: np.ndarray, axes: str, name: str) -> tuple[np.ndarray, bool]:
    """``arr`` with a leading batch axis, and whether it was given as one item.

    ``axes`` names the batched axes, e.g. ``"N, H, W, C"``: an array of one rank less is one
    item and gains the batch axis; an array of that rank is returned as is.

    Raises:
        ValueError: any other rank, naming ``name`` and both accepted layouts.

    >>> as_batch(np.zeros((4, 4)), "N, H, W", "maps")[0].shape
    (1, 4, 4)
    """
    names = axes.split(", ")
    if arr.ndim == len(names) - 1:
        return arr[None], True
    if arr.ndim == len(names):
        return arr, False
    raise ValueError(f"Expected `{name}` of rank {len(names) - 1} ({', '.join(names[1:])}) or "
                     f"{len(names)} ({axes}). Received: {name}.shape={arr.shape}")


def check_images(
    inputs,
    model=None,
    name: str = "inputs",
    value_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, bool]:
    """Validate images and return them as a float32 batch.

    Args:
        inputs: ``(N, H, W, C)`` or one image ``(H, W, C)``; numpy, a tensor or nested lists.
        model: when given, ``H, W, C`` must match its input where the model fixes them.
        name: the argument's name used in messages.
        value_range: when given, every value must lie in ``[low, high]``.

    Returns:
        ``(batch, single)``: the float32 ``(N, H, W, C)`` array and whether one image was given
        (pass ``single`` to `restore_single` to drop the batch axis again).

    Raises:
        TypeError: not numeric (strings, objects, complex numbers).
        ValueError: wrong rank, empty batch, NaN or inf, shape not matching the model, values
            outside ``value_range``.

    >>> batch, single = check_images(np.zeros((32, 32, 1)))
    >>> batch.shape, single
    ((1, 32, 32, 1), True)
    """
    arr, single = as_batch(real_array(inputs, name), "N, H, W, C", name)
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` is an empty batch. Received: {name}.shape={arr.shape}")
    if min(arr.shape[1:]) == 0:
        raise ValueError(f"`{name}` has an empty axis. Received: {name}.shape={arr.shape}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{name}` contains {bad} NaN or infinite values (or values too large "
                         "for float32).")
    if model is not None:
        expected = input_shape(model)
        if len(expected) != 3:
            raise ValueError(f"Model {model.name!r} takes inputs of shape {expected}; kerasviz "
                             "needs image models with inputs (H, W, C).")
        for got, want in zip(arr.shape[1:], expected, strict=True):
            if want is not None and got != want:
                raise ValueError(
                    f"Expected `{name}` of shape (N, {', '.join(str(s) for s in expected)}) for "
                    f"model {model.name!r}. Received: {name}.shape={arr.shape}"
                )
    if value_range is not None:
        low, high = value_range
        lo, hi = float(arr.min()), float(arr.max())
        if lo < low - 1e-6 or hi > high + 1e-6:
            raise ValueError(f"Expected `{name}` values in [{low}, {high}]. "
                             f"Received values in [{lo:g}, {hi:g}].")
    return np.ascontiguousarray(arr), single


def restore_single(result: np.ndarray, single: bool) -> np.ndarray:
    """Drop the batch axis again when `check_images` received a single image."""
    return result[0] if single else result


def check_targets(targets, n: int, num_classes: int, name: str = "targets") -> np.ndarray | None:
    """Validate class targets: ``None`` (top class), one int, or one int per image.

    Returns:
        ``None``, or an int32 array of shape ``(n,)``.

    Raises:
        TypeError: non-integer targets.
        ValueError: a wrong number of targets or a class out of range.

    >>> check_targets(3, n=2, num_classes=10)
    array([3, 3], dtype=int32)
    """
    if targets is None:
        return None
    arr = np.asarray(targets)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(
            arr == np.round(arr)
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"Expected `{name}` to be None, an int or a sequence of ints. "
                            f"Received: {name}={targets!r}")
    if arr.ndim == 0:
        arr = np.full((n,), int(arr))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"Expected `{name}` to be None, one int, or {n} ints (one per image). "
                         f"Received: {name} of shape {arr.shape}")
    if arr.min() < 0 or arr.max() >= num_classes:
        raise ValueError(f"`{name}` out of range: the model has {num_classes} classes "
                         f"(0 to {num_classes - 1}). Received: {arr.tolist()}")
    return arr.astype(np.int32)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"Expected `{name}` to be an int. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"Expected `{name}` >= {minimum}. Received: {name}={value}")
    return int(value)


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or an ``(h, w)`` pair of ints >= ``minimum``, returned as a pair."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(
                f"Expected `{name}` to be an int or (h, w). Received: {name}={value!r}"
            )
        return (check_positive_int(value[0], name, minimum),
                check_positive_int(value[1], name, minimum))
    v = check_positive_int(value, name, minimum)
    return v, v


# --------------------------------------------------------------------------------------------
# Feature vectors
# --------------------------------------------------------------------------------------------

# Layers that pass their input through unchanged at inference.
_INFERENCE_IDENTITY = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                       "GaussianNoise", "GaussianDropout", "AlphaDropout",
                       "ActivityRegularization")


class _InputsReplay(Replay):
    """A replay that also remembers the first positional input of every layer call."""

    def __init__(self):
        super().__init__()
        self.inputs_of: dict[int, Any] = {}

    def _call(self, layer, args, kwargs, prefix):
        if args:
            self.inputs_of.setdefault(id(layer), args[0])
        return super()._call(layer, args, kwargs, prefix)


def feature_layer(model) -> str:
    """Path of the layer whose output feeds the model's last ``Dense`` layer.

    This is the classic "final feature vector" (AlexNet's fc7): the input of the classifier.
    Layers that are the identity at inference (``Dropout``, ``GaussianNoise``...) are walked
    past, so for ``fc1 -> dropout -> predictions`` the answer is ``"fc1"`` (same values).

    Raises:
        ValueError: the model has no ``Dense`` layer, or its last one reads the model input.

    >>> feature_layer(model)
    'fc1'
    """
    keras = _keras()
    _check_model(model)
    if not is_graph_model(model):
        raise TypeError(f"Model {model.name!r} is a subclassed model; pass `layer=` explicitly.")
    walk = _InputsReplay()
    walk.run(model, fresh_input(model))
    dense = [t for t in walk.taps if isinstance(t.layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"Model {model.name!r} has no Dense layer; pass `layer=` to choose the "
                         "feature layer.")
    layer = dense[-1].layer
    while True:
        tensor = walk.inputs_of.get(id(layer))
        feeder = next((t for t in walk.taps if t.output is tensor), None)
        if feeder is None:
            raise ValueError(f"The last Dense layer {layer.name!r} of model {model.name!r} reads "
                             "the model input; pass `layer=` to choose the feature layer.")
        if type(feeder.layer).__name__ not in _INFERENCE_IDENTITY:
            return feeder.path
        layer = feeder.layer
