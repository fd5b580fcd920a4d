"""The call graph of a model for incremental occlusion: one node per leaf layer call, in
execution order, with how a changed window passes through it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kerasviz import inspect

CONV_LIKE = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")
POINTWISE = ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "BatchNormalization", "Rescaling")
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
MIXING = (
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Dense",
    "Reshape",
    "MultiHeadAttention",
    "Attention",
)


# --------------------------------------------------------------------------------------------
# The call graph: one node per leaf layer call, in execution order
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """Stands for the output of node ``node`` in recorded call arguments."""

    node: int


@dataclass
class _Node:
    """One leaf layer (or operation) call of the model, with how windows pass through it."""

    index: int
    path: str
    layer: Any
    args: Any = None  # call arguments, KerasTensors replaced by `_Ref`
    kwargs: Any = None
    inputs: list[int] = field(default_factory=list)  # producer node of each tensor argument
    shape: tuple = ()  # output shape without the batch axis
    kind: str = "full"  # conv | pointwise | identity | pad | merge | full
    reason: str = ""  # why a node of an unknown kind cannot be windowed
    # per axis (rows, cols) for conv-like layers: kernel reach, stride, padding before/after
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    pad: tuple = ((0, 0), (0, 0))
    pad_value: float = 0.0


def _is_tensor(x) -> bool:
    import keras

    return isinstance(x, keras.KerasTensor)


def _spatial(shape) -> bool:
    return len(shape) == 3 and all(isinstance(s, int) for s in shape)


def _conv_geometry(node: _Node, layer, in_shape: tuple) -> str:
    """Fill kernel/stride/pad of a conv-like node; return a reason when it cannot be windowed."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "data_format is not channels_last"
    padding = str(layer.padding).lower()
    if kind.endswith("Pooling2D"):
        size, strides, dilation = layer.pool_size, layer.strides, (1, 1)
        if kind == "AveragePooling2D" and padding == "same":
            return "average pooling with 'same' padding divides by a position-dependent count"
    else:
        size, strides, dilation = layer.kernel_size, layer.strides, layer.dilation_rate
    if padding not in ("same", "valid"):
        return f"padding {padding!r}"
    reach = tuple(d * (k - 1) + 1 for k, d in zip(size, dilation, strict=True))
    pads = []
    for axis in range(2):
        n_in, n_out = in_shape[axis], node.shape[axis]
        k, s = reach[axis], strides[axis]
        if padding == "valid":
            expect, before = (n_in - k) // s + 1, 0
        else:
            expect = -(-n_in // s)
            before = max((expect - 1) * s + k - n_in, 0) // 2
        if expect != n_out:
            return f"output size {n_out} differs from the expected {expect}"
        after = max(0, (n_out - 1) * s - before + k - n_in)
        pads.append((before, after))
    node.kernel, node.stride, node.pad = reach, tuple(strides), tuple(pads)
    node.pad_value = float("-inf") if kind == "MaxPooling2D" else 0.0
    return ""


def _classify(node: _Node, layer, shapes: dict[int, tuple]) -> None:
    """Decide how windows pass through ``node`` (sets ``kind`` and ``reason``)."""
    kind = type(layer).__name__
    ins = [shapes[i] for i in node.inputs]
    if not _spatial(node.shape) or not ins or not all(_spatial(s) for s in ins):
        node.kind = "full"
        return
    if kind in MIXING:
        node.kind = "full"
        return
    if len(ins) == 1 and kind in CONV_LIKE:
        reason = _conv_geometry(node, layer, ins[0])
        node.kind, node.reason = ("full", reason) if reason else ("conv", "")
    elif len(ins) == 1 and kind in inspect.INFERENCE_IDENTITY:
        node.kind = "identity"
    elif len(ins) == 1 and kind in POINTWISE:
        axis = getattr(layer, "axis", -1)
        axes = tuple(axis) if isinstance(axis, list | tuple) else (axis,)
        if kind in ("Softmax", "BatchNormalization") and axes not in ((-1,), (3,)):
            node.kind, node.reason = "full", f"normalises over axis {axis}"
        else:
            node.kind = "pointwise"
    elif len(ins) == 1 and kind == "ZeroPadding2D":
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            node.kind, node.reason = "full", "data_format is not channels_last"
        else:
            node.kind, node.pad = "pad", tuple(tuple(p) for p in layer.padding)
    elif kind in MERGES and len(ins) >= 2 and all(s[:2] == node.shape[:2] for s in ins):
        axis = getattr(layer, "axis", -1)
        if kind == "Concatenate" and axis not in (-1, 3):
            node.kind, node.reason = "full", f"concatenates over axis {axis}"
        else:
            node.kind = "merge"
    else:
        node.kind, node.reason = "full", "no window rule for this layer"


def call_graph(model) -> list[_Node]:
    """The leaf layer calls of ``model`` in execution order; node 0 is the input.

    Nested Functional and Sequential models are walked (see `kerasviz.inspect`), so a backbone
    inside an outer model contributes its own layers.
    """
    import keras

    calls: list[inspect.Call] = []

    def record(call: inspect.Call) -> None:  # leaf calls only: nested models are walked
        if not call.nested:
            calls.append(call)

    inputs = inspect.fresh_input(model)
    output = inspect.Replay(on_call=record).run(model, inputs)
    if isinstance(output, list | tuple):
        if len(output) != 1:
            raise ValueError(
                f"Incremental occlusion needs a model with one output; model "
                f"{model.name!r} has {len(output)}."
            )
        output = output[0]
    nodes = [_Node(0, "input", None, shape=tuple(inputs.shape[1:]), kind="input")]
    producer = {id(inputs): 0}
    shapes = {0: nodes[0].shape}
    for call in calls:
        path, layer, args, kwargs, out = call.path, call.layer, call.args, call.kwargs, call.output
        node = _Node(len(nodes), path, layer)
        inputs_of: list[int] = []

        def mark(x, inputs_of=inputs_of, path=path):
            if _is_tensor(x):
                if id(x) not in producer:
                    raise ValueError(
                        f"Layer {path!r} reads a tensor that no earlier layer of "
                        "the model produced; incremental occlusion cannot plan it."
                    )
                inputs_of.append(producer[id(x)])
                return _Ref(producer[id(x)])
            return x

        node.args = keras.tree.map_structure(mark, list(args))
        node.kwargs = keras.tree.map_structure(mark, dict(kwargs))
        node.inputs = inputs_of
        leaves = keras.tree.flatten(out)
        if len(leaves) != 1:
            node.shape, node.kind = (), "full"
            node.reason = "several outputs"
        else:
            node.shape = tuple(leaves[0].shape[1:])
            _classify(node, layer, shapes)
        producer[id(leaves[0])] = node.index
        shapes[node.index] = node.shape
        nodes.append(node)
    if id(output) not in producer or producer[id(output)] != len(nodes) - 1:
        raise ValueError(
            f"The output of model {model.name!r} is not produced by its last layer "
            "call; incremental occlusion cannot plan it."
        )
    return nodes
