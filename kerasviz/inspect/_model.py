"""What a model is: its kind, its layers (also inside nested models), its input and output."""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

from kerasviz import _checks

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


_GRAPH_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def is_subclassed(model) -> bool:
    """True for a ``keras.Model`` with its own ``call`` (not Functional, not Sequential)."""
    return isinstance(model, _keras().Model) and not is_graph_model(model)


def graph_view(model) -> Any:
    """``model`` itself when it is Functional or Sequential; for a subclassed model, a
    Functional model that calls it as one layer on its input shape (the same weights, built
    once per model). Replaying the view reaches the layers inside the subclassed model (see
    `kerasviz.inspect._replay.tapped_call`).

    Raises:
        ValueError: a subclassed model that has not been built (no input shape known).
    """
    _check_model(model)
    if is_graph_model(model):
        return model
    view = _GRAPH_VIEWS.get(model)
    if view is None:
        config = model.get_build_config() if model.built else None
        shape = (config or {}).get("input_shape")
        if not isinstance(shape, list | tuple) or len(shape) < 2 or isinstance(shape[0], list):
            raise ValueError(
                f"Subclassed model {model.name!r} has no single input shape yet: call it once "
                "on a batch, or run `model.build((None, H, W, C))`."
            )
        keras = _keras()
        inputs = keras.Input(tuple(shape[1:]))
        view = keras.Model(inputs, model(inputs), name=f"kerasviz_{model.name}")
        _GRAPH_VIEWS[model] = view
    return view


def output_entries(model) -> list[tuple[tuple[str, ...], tuple]]:
    """``[(names, shape), ...]``: every output of ``model`` (in ``model.outputs`` order) with
    the names a user may call it by (its dict key, then the name of the layer that makes it)
    and its shape (batch first). Subclassed models are read through `graph_view`."""
    _check_model(model)
    _sequential_ready(model)
    view = graph_view(model)
    keras = _keras()
    outputs = list(view.outputs)
    keys: dict[int, str] = {}
    struct = getattr(view, "_outputs_struct", None)
    if isinstance(struct, dict):
        for key, tensor in struct.items():
            for flat in keras.tree.flatten(tensor):
                keys[id(flat)] = str(key)
    entries = []
    for i, tensor in enumerate(outputs):
        names = []
        if id(tensor) in keys:
            names.append(keys[id(tensor)])
        history = getattr(tensor, "_keras_history", None)
        if history is not None and history.operation is not view:
            names.append(history.operation.name)
        names.append(str(i))
        entries.append((tuple(dict.fromkeys(names)), tuple(tensor.shape)))
    return entries


def output_model(model, index: int) -> Any:
    """A Functional view of ``model`` whose one output is ``model.outputs[index]`` (the same
    layers and weights); ``model`` itself when it has one output."""
    from kerasviz.inspect._replay import graph_model

    view = graph_view(model)
    if len(view.outputs) == 1:
        return view
    return graph_model(view.inputs, view.outputs[index], f"{model.name}_output{index}", owner=view)


def callable_model(fn, input_shape, name: str = "callable", numpy: bool = False) -> Any:
    """A Keras model that calls ``fn`` on batches of ``input_shape`` ``(H, W, C)`` images.

    For a model that is not a ``keras.Model``: a function of TensorFlow/``keras.ops`` (any
    method, gradients included), or with ``numpy=True`` a function of numpy arrays (a model of
    another library, an ensemble; run through ``tf.numpy_function``: forward-only methods,
    occlusion, LIME and Score-CAM's scoring, no gradients). ``fn`` maps ``(N, H, W, C)``
    float32 to ``(N, K)`` (or any output a `kerasviz.scores` score reads).

    >>> model = callable_model(lambda x: ops.mean(x, axis=(1, 2)), (32, 32, 3))
    >>> Occlusion(model, patch=8).explain(images).shape
    (4, 32, 32)
    """
    keras = _keras()
    if not callable(fn):
        raise TypeError(f"Expected `fn` to be callable. Received: {type(fn).__name__}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"Expected `input_shape` (H, W, C). Received: {input_shape!r}")
    probe = np.zeros((1, *shape), np.float32)
    if numpy:
        import tensorflow as tf

        out_shape = np.asarray(fn(probe)).shape[1:]

        def run(x):
            y = tf.numpy_function(lambda a: np.asarray(fn(a), np.float32), [x], tf.float32)
            y.set_shape((None, *out_shape))
            return y

    else:
        run = fn

    class CallableModel(keras.Model):
        def call(self, x):
            return run(x)

    model = CallableModel(name=name)
    model(probe)  # built at this input shape
    return model


def graph_operations(model) -> list:
    """The operations of ``model``'s own graph, in order: its layers and, for a Functional
    model, the raw ``keras.ops`` operations between them (``Add``, ``Multiply``... as in
    MobileNetV3 and ConvNeXt), which are not layers and have no weights."""
    from keras.src.models.functional import Functional

    if isinstance(model, Functional):
        return list(model._operations)
    return list(model.layers)


def is_raw_op(op) -> bool:
    """True for a raw ``keras.ops`` operation of a graph (not a layer: no weights, no build)."""
    return not isinstance(op, _keras().layers.Layer)


def iter_layers(model, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Yield ``(path, layer)`` for every layer, descending into nested models.

    Paths join model names with ``/``: ``"mobilenetv2_1.00_96/block_3_expand"``. A nested model
    is yielded itself before its layers. Raw ``keras.ops`` operations of a Functional graph
    (``Add`` in MobileNetV3) are yielded too, in graph order, so they can be tapped like layers;
    they are ``keras.Operation`` objects without weights (see `is_raw_op`).

    >>> [p for p, _ in iter_layers(model)][:2]
    ['conv1', 'conv2']
    """
    if is_subclassed(model):  # its tracked layers, at any depth (see `tracked_layers`)
        yield from tracked_layers(model, prefix)
        return
    for layer in graph_operations(model):
        path = prefix + layer.name
        yield path, layer
        if isinstance(layer, _keras().Model) and is_graph_model(layer):
            yield from iter_layers(layer, prefix=path + "/")
        elif is_subclassed(layer):
            yield from tracked_layers(layer, prefix=path + "/")
        elif wrapped_model(layer) is not None:  # a view's call of a subclassed model
            inner = wrapped_model(layer)
            yield prefix + inner.name, inner
            yield from tracked_layers(inner, prefix=prefix + inner.name + "/")


def wrapped_model(op):
    """The subclassed model a kerasviz tapping layer calls, or ``None`` for any other op."""
    return getattr(op, "kerasviz_wraps", None)


def tracked_layers(layer, prefix: str = "") -> list[tuple[str, Any]]:
    """``(path, layer)`` for every layer tracked by ``layer`` (attributes, lists, nested
    Sequential blocks), depth first, paths joined with ``/`` (``"block3/block3_conv3"``).

    The layers of a subclassed model, which its ``call`` uses in an order only a call shows;
    `kerasviz.inspect.replay` taps them (see `kerasviz.inspect._replay.tapped_call`)."""
    found = []
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = prefix + child.name
        found.append((path, child))
        found.extend(tracked_layers(child, path + "/"))
    return found


def find_layer(model, ref) -> Any:
    """Resolve a layer from a name, a path, an index or a layer object.

    Args:
        model: a Keras model.
        ref: a layer name (``"conv2"``), a path through nested models
            (``"mobilenetv2_1.00_96/block_3_expand"``), a name that is unique anywhere in the
            nested models, an index into ``model.layers`` (negative counts from the end) or a
            ``keras.layers.Layer`` that belongs to the model. Raw ``keras.ops`` operations of
            the graph (``"add_3"`` in MobileNetV3) are found by name and path too.

    Returns:
        The ``keras.layers.Layer`` (or the ``keras.Operation``).

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
    if isinstance(ref, keras.Operation):
        for _, layer in entries:
            if layer is ref:
                return layer
        raise KeyError(
            f"Layer {ref.name!r} (the object passed as `layer`) is not part of model "
            f"{model.name!r}."
        )
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
        raise KeyError(
            f"Layer name {ref!r} is ambiguous in model {model.name!r}; use a path: {paths}"
        )
    path_of = {layer.name: path for path, layer in entries}
    path_of.update({path: path for path, _ in entries})
    close = difflib.get_close_matches(ref, list(path_of), n=5, cutoff=0.4)
    close = list(dict.fromkeys(path_of[c] for c in close))
    hint = f" Closest names: {close}." if close else ""
    raise KeyError(
        f"No layer {ref!r} in model {model.name!r}.{hint} "
        "`kerasviz info MODEL` (or kerasviz.inspect.layer_table(model)) lists them all."
    )


def layer_path(model, layer) -> str:
    """The path of ``layer`` inside ``model`` (``"outer_block/inner_layer"``)."""
    for path, candidate in iter_layers(model):
        if candidate is layer:
            return path
    raise KeyError(f"Layer {layer.name!r} is not part of model {model.name!r}.")


def as_refs(layers) -> list:
    """One layer reference or a sequence of them, as a list (``None`` gives ``[]``)."""
    keras = _keras()
    if layers is None:
        return []
    if isinstance(layers, str | int | np.integer | keras.Operation):
        return [layers]
    return list(layers)


def input_shape(model) -> tuple:
    """``(H, W, C)`` of the model's single input (entries may be ``None``)."""
    _check_model(model)
    _sequential_ready(model)
    return tuple(graph_view(model).inputs[0].shape[1:])


def num_outputs(model) -> int:
    """The size of the prediction's last axis (the number of classes)."""
    _check_model(model)
    _sequential_ready(model)
    return int(graph_view(model).outputs[0].shape[-1])


def check_inputs(
    model, inputs, name: str = "inputs", value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, bool]:
    """`kerasviz._checks.check_images` against ``model``'s input shape.

    Returns:
        ``(batch, single)``: float32 ``(N, H, W, C)`` and whether one image was given.

    Raises:
        ValueError: the checks of `kerasviz._checks.check_images`, or images whose ``H, W, C``
            differ from the model's where the model fixes them.

    >>> check_inputs(model, np.zeros((28, 28, 1)))[0].shape
    (1, 28, 28, 1)
    """
    _check_model(model)
    return _checks.check_images(
        inputs,
        name=name,
        value_range=value_range,
        shape=input_shape(model),
        owner=f"model {model.name!r}",
    )
