"""Views of a model: its logits, its table of layers, its default CAM and feature layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kerasviz.inspect._model import (
    CONV_TYPES,
    _check_model,
    _keras,
    _sequential_ready,
    is_graph_model,
    is_raw_op,
)
from kerasviz.inspect._replay import Replay, fresh_input, graph_model, replay

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
    return graph_model(inputs, outputs, f"{model.name}_logits", owner=model)


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


def _params(op) -> int:
    """The weight count of a built layer; 0 for an unbuilt one and for a raw operation."""
    if is_raw_op(op) or not op.built:
        return 0
    return int(op.count_params())


def layer_table(model) -> list[LayerInfo]:
    """Every layer reached by a forward pass, in execution order, with what it can be used for.

    Raw ``keras.ops`` operations of the graph (the ``Add`` and ``Multiply`` of MobileNetV3 and
    ConvNeXt) are rows too: their type is the operation's class name and their params 0.
    Dimensions the model leaves open (``Input((None, None, 3))``) are ``None``.

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
                params=_params(tap.layer),
                filters=kind in CONV_TYPES,
                activations=spatial,
                cam=spatial and all(s is None or s > 1 for s in shape[1:3]),
            )
        )
    return rows


def last_spatial_layer(model, before_head: bool = False) -> str:
    """The path of the last layer with a spatial output (h, w > 1): the default CAM layer.

    ``before_head``: skip the layer that makes the model's output (and the layer a final
    activation reads): for a dense (per-position) output, whose head is itself spatial.

    Padding and pooling layers and nested models themselves are skipped (their maps repeat or
    subsample another layer's; Grad-CAM is defined on the last convolutional block).
    Descends into nested backbones, so for an outer model around a 96 px MobileNetV2 it returns
    ``"mobilenetv2_1.00_96/out_relu"``.

    Raises:
        ValueError: the model has no layer with a spatial output.
    """
    skip = (
        "Functional",
        "Sequential",
        "ZeroPadding2D",
        "InputLayer",
        "MaxPooling2D",
        "AveragePooling2D",
    )
    table = layer_table(model)
    containers = {r.path.rsplit("/", 1)[0] for r in table if "/" in r.path}  # hold layers
    rows = [r for r in table if r.cam and r.type not in skip and r.path not in containers]
    if before_head and rows:
        keras = _keras()
        heads = set()
        outputs = (
            [model.layers[-1]]
            if isinstance(model, keras.Sequential)
            else [t._keras_history.operation for t in model.outputs]
        )
        for head in outputs:
            if is_graph_model(head):
                head = _head_layer(head)
            heads.add(head.name)
            if isinstance(head, keras.layers.Activation | keras.layers.Softmax):
                inbound = head._inbound_nodes[0].input_tensors if head._inbound_nodes else []
                for tensor in keras.tree.flatten(inbound):
                    history = getattr(tensor, "_keras_history", None)
                    if history is not None:
                        heads.add(history.operation.name)
        rows = [r for r in rows if r.name not in heads]
    if not rows:
        raise ValueError(
            f"Model {model.name!r} has no layer with a spatial (N, h, w, c) output "
            "with h, w > 1; CAM methods need one."
        )
    return rows[-1].path


# Layers that pass their input through unchanged at inference.
INFERENCE_IDENTITY = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
)


_POOLINGS = (
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Flatten",
)


def _is_classifier(layer, tensor) -> bool:
    """A ``Dense`` layer, or a convolution applied to a 1x1 map (MobileNetV3's ``logits``): a
    fully connected layer either way."""
    keras = _keras()
    if isinstance(layer, keras.layers.Dense):
        return True
    shape = tuple(getattr(tensor, "shape", ()) or ())
    return type(layer).__name__ == "Conv2D" and len(shape) == 4 and shape[1:3] == (1, 1)


def feature_layer(model) -> str:
    """Path of the layer whose output feeds the model's classifier: the default feature layer.

    This is the classic "final feature vector" (AlexNet's fc7): the input of the last ``Dense``
    layer, or of the last convolution applied to a 1x1 map (a fully connected layer written as
    a convolution, as in MobileNetV3). Layers that are the identity at inference
    (``Dropout``, ``GaussianNoise``...) are walked past, so for ``fc1 -> dropout ->
    predictions`` the answer is ``"fc1"`` (same values). A model without such a layer gets its
    last global-pooling or ``Flatten`` output.

    Raises:
        ValueError: the model has neither a classifier layer nor a pooling/flatten layer, or its
            classifier reads the model input.

    >>> feature_layer(model)
    'fc1'
    """
    _check_model(model)
    if not is_graph_model(model):
        raise TypeError(f"Model {model.name!r} is a subclassed model; pass `layer=` explicitly.")
    inputs_of: dict[int, Any] = {}  # the first positional input of every layer call

    def remember(call):
        if call.args:
            inputs_of.setdefault(id(call.layer), call.args[0])

    walk = Replay(on_call=remember)
    walk.run(model, fresh_input(model))
    heads = [t for t in walk.taps if _is_classifier(t.layer, inputs_of.get(id(t.layer)))]
    if not heads:
        pooled = [t for t in walk.taps if type(t.layer).__name__ in _POOLINGS]
        if pooled:
            return pooled[-1].path
        raise ValueError(
            f"Model {model.name!r} has no Dense layer and no global pooling or Flatten layer; "
            "pass `layer=` to choose the feature layer."
        )
    layer = heads[-1].layer
    while True:
        tensor = inputs_of.get(id(layer))
        feeder = next((t for t in walk.taps if t.output is tensor), None)
        if feeder is None:
            raise ValueError(
                f"The last Dense layer {layer.name!r} of model {model.name!r} reads "
                "the model input; pass `layer=` to choose the feature layer."
            )
        if type(feeder.layer).__name__ not in INFERENCE_IDENTITY:
            return feeder.path
        layer = feeder.layer
