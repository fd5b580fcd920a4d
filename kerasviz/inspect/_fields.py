"""Receptive fields: the input window of every spatial position of a layer, from the graph.

The model is replayed once (`call_graph`: one node per leaf layer call, nested models walked)
and every node learns how positions of its output relate to positions of its input along each
axis: a *conv-like* node (convolutions, depthwise and separable convolutions, pooling) reads
``kernel`` input positions starting at ``o * stride - before``; a *transpose* node
(``Conv2DTranspose``, nearest ``UpSampling2D``) is read the other way round; ``ZeroPadding2D``
and ``Cropping2D`` shift; elementwise layers pass the window through and merges (``Add``,
``Concatenate``...) take the union of their inputs' windows. Composing these from the input to
a layer gives, per output row and column, the bounding box of the input pixels it depends on.

Two boxes are kept per position and axis:

* the *clipped* window: the input pixels that really reach the position (exact; positions that
  read only zero padding have an empty window);
* the *full* window: the same box before clipping at the image border (it may start before 0 or
  end after the image), the size every crop of that layer has; border crops are the full window
  with the part outside the image padded.

Incremental occlusion (`kerasviz.attribution.incremental`) walks the same graph the other way
(which outputs change when an input window changes); both use the per-layer geometry of this
module (`reads`, `projected`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kerasviz.inspect._model import (
    _check_model,
    _keras,
    find_layer,
    graph_view,
    is_graph_model,
    layer_path,
)
from kerasviz.inspect._replay import Call, Replay, fresh_input, sized_model
from kerasviz.inspect._views import INFERENCE_IDENTITY

CONV_LIKE = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")
TRANSPOSE = ("Conv2DTranspose", "UpSampling2D")
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
NOT_SPATIAL = "its input or output is not a (h, w, C) map"
MIXES = "it mixes every position"
EMPTY = 2**40  # the start of an empty clipped window (its stop is -EMPTY)


# --------------------------------------------------------------------------------------------
# Geometry along one axis
# --------------------------------------------------------------------------------------------


def reads(out: np.ndarray, kernel: int, stride: int, before: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last input position read by output positions ``out`` of a conv-like layer.

    Output ``o`` reads inputs ``[o * stride - before, o * stride - before + kernel)`` (positions
    below 0 or past the end are padding).

    >>> reads(np.array([0, 1]), 3, 2, 1)
    (array([-1,  1]), array([1, 3]))
    """
    first = np.asarray(out) * stride - before
    return first, first + kernel - 1


def projected(
    lo: np.ndarray, hi: np.ndarray, kernel: int, stride: int, before: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Output interval ``[lo', hi')`` of a conv-like layer whose input interval ``[lo, hi)``
    changed: the outputs that read at least one changed input, clipped to ``[0, length)``.

    The inverse of `reads`: output ``o`` is in it when ``o * stride - before <= hi - 1`` and
    ``o * stride - before + kernel - 1 >= lo``.

    >>> projected(np.array([4]), np.array([5]), 3, 1, 1, 8)
    (array([3]), array([6]))
    """
    lo = -((-(np.asarray(lo) + before - kernel + 1)) // stride)  # ceil
    hi = (np.asarray(hi) - 1 + before) // stride + 1
    return np.clip(lo, 0, length), np.clip(hi, 0, length)


# --------------------------------------------------------------------------------------------
# The call graph: one node per leaf layer call, in execution order
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """Stands for the output of node ``node`` in recorded call arguments."""

    node: int


@dataclass
class _Node:
    """One leaf layer (or operation) call of the model, with how windows pass through it.

    ``kind`` is ``conv``, ``transpose``, ``pad``, ``crop``, ``pointwise``, ``identity``,
    ``merge``, ``input`` or ``full`` (no window rule: ``reason`` says why). ``kernel``,
    ``stride``, ``pad`` and ``dilation`` hold the per-axis geometry (kernel reach with
    dilation, stride, padding before and after, for ``crop`` the cropping; tap spacing).
    ``incremental`` is why incremental occlusion recomputes a node in full although its
    geometry is known (empty: it windows it).
    """

    index: int
    path: str
    layer: Any
    args: Any = None  # call arguments, KerasTensors replaced by `_Ref`
    kwargs: Any = None
    inputs: list[int] = field(default_factory=list)  # producer node of each tensor argument
    shape: tuple = ()  # output shape without the batch axis
    kind: str = "full"
    reason: str = ""
    incremental: str = ""
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    pad: tuple = ((0, 0), (0, 0))
    pad_value: float = 0.0
    dilation: tuple = (1, 1)


def _is_tensor(x) -> bool:
    return isinstance(x, _keras().KerasTensor)


def _spatial(shape) -> bool:
    return len(shape) == 3 and all(isinstance(s, int) for s in shape)


def _conv_geometry(node: _Node, layer, in_shape: tuple) -> str:
    """Fill kernel/stride/pad of a conv-like node; return a reason when it has no window rule."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "data_format is not channels_last"
    padding = str(layer.padding).lower()
    if kind.endswith("Pooling2D"):
        size, strides, dilation = layer.pool_size, layer.strides, (1, 1)
        if kind == "AveragePooling2D" and padding == "same":
            node.incremental = (
                "average pooling with 'same' padding divides by a position-dependent count"
            )
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
    node.dilation = tuple(dilation)
    node.pad_value = float("-inf") if kind == "MaxPooling2D" else 0.0
    return ""


def _transpose_geometry(node: _Node, layer, in_shape: tuple) -> str:
    """Geometry of a transposed convolution or nearest upsampling: the conv it is the
    transpose of maps this node's output back to its input."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "data_format is not channels_last"
    if kind == "UpSampling2D":
        if getattr(layer, "interpolation", "nearest") != "nearest":
            return f"interpolation {layer.interpolation!r} mixes neighbouring positions"
        node.kernel = node.stride = tuple(int(s) for s in layer.size)
        node.pad = ((0, 0), (0, 0))
        return ""
    padding = str(layer.padding).lower()
    if padding not in ("same", "valid"):
        return f"padding {padding!r}"
    reach = tuple(
        d * (k - 1) + 1 for k, d in zip(layer.kernel_size, layer.dilation_rate, strict=True)
    )
    pads = []
    for axis in range(2):
        n_in, n_out, k, s = in_shape[axis], node.shape[axis], reach[axis], layer.strides[axis]
        before = 0 if padding == "valid" else max((n_in - 1) * s + k - n_out, 0) // 2
        pads.append((before, 0))
    node.kernel, node.stride, node.pad = reach, tuple(layer.strides), tuple(pads)
    node.dilation = tuple(layer.dilation_rate)
    return ""


def _classify(node: _Node, layer, shapes: dict[int, tuple]) -> None:
    """Decide how windows pass through ``node`` (sets ``kind``, ``reason``, ``incremental``)."""
    kind = type(layer).__name__
    ins = [shapes[i] for i in node.inputs]
    node.kind = "full"
    if not _spatial(node.shape) or not ins or not all(_spatial(s) for s in ins):
        node.reason = NOT_SPATIAL
        return
    if kind in MIXING:
        node.reason = MIXES
        return
    if len(ins) == 1 and kind in CONV_LIKE:
        node.reason = _conv_geometry(node, layer, ins[0])
        node.kind = "full" if node.reason else "conv"
    elif len(ins) == 1 and kind in TRANSPOSE:
        node.reason = _transpose_geometry(node, layer, ins[0])
        node.kind = "full" if node.reason else "transpose"
        node.incremental = "no window rule for this layer"
    elif len(ins) == 1 and kind in INFERENCE_IDENTITY:
        node.kind = "identity"
    elif len(ins) == 1 and kind in POINTWISE:
        axis = getattr(layer, "axis", -1)
        axes = tuple(axis) if isinstance(axis, list | tuple) else (axis,)
        if kind in ("Softmax", "BatchNormalization") and axes not in ((-1,), (3,)):
            node.reason = f"normalises over axis {axis}"
        else:
            node.kind = "pointwise"
    elif len(ins) == 1 and kind in ("ZeroPadding2D", "Cropping2D"):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            node.reason = "data_format is not channels_last"
        elif kind == "ZeroPadding2D":
            node.kind, node.pad = "pad", tuple(tuple(p) for p in layer.padding)
        else:
            node.kind, node.pad = "crop", tuple(tuple(c) for c in layer.cropping)
            node.incremental = "no window rule for this layer"
    elif kind in MERGES and len(ins) >= 2 and all(s[:2] == node.shape[:2] for s in ins):
        axis = getattr(layer, "axis", -1)
        if kind == "Concatenate" and axis not in (-1, 3):
            node.reason = f"concatenates over axis {axis}"
        else:
            node.kind = "merge"
    else:
        node.reason = "no window rule for this layer"


def call_graph(model, purpose: str = "kerasviz", inner: bool = False) -> list[_Node]:
    """The leaf layer calls of ``model`` in execution order; node 0 is the input.

    Nested Functional and Sequential models are walked, so a backbone inside an outer model
    contributes its own layers. ``purpose`` names the caller in errors. A subclassed model is
    one opaque call, or with ``inner`` the layer calls its traced ``call`` made; a tensor its
    code made between layers (``tf.concat``, ``tf.image.resize``) is then a node without a
    window rule, and the model's output need not be its last layer call's.

    Raises:
        ValueError: several outputs, or a layer reading a tensor no earlier layer produced.
    """
    keras = _keras()
    calls: list[Call] = []

    def record(call: Call) -> None:  # leaf calls only: nested models are walked
        if not call.nested:
            calls.append(call)

    inputs = fresh_input(model)
    output = Replay(on_call=record, inner_calls=inner).run(model, inputs)
    if isinstance(output, list | tuple):
        if len(output) != 1:
            raise ValueError(
                f"{purpose} needs a model with one output; model {model.name!r} has {len(output)}."
            )
        output = output[0]
    nodes = [_Node(0, "input", None, shape=tuple(inputs.shape[1:]), kind="input")]
    producer = {id(inputs): 0}
    shapes = {0: nodes[0].shape}
    for call in calls:
        path, layer, args, kwargs, out = call.path, call.layer, call.args, call.kwargs, call.output
        inputs_of: list[int] = []

        def mark(x, inputs_of=inputs_of, path=path):
            if _is_tensor(x):
                if id(x) not in producer and inner and not isinstance(x, keras.KerasTensor):
                    # made by the code of a subclassed model's call, not by a layer
                    made = _Node(len(nodes), f"{path} (its input)", None, kind="full")
                    made.shape = tuple(x.shape[1:])
                    made.reason = "made by code between the layers of a subclassed model"
                    nodes.append(made)
                    producer[id(x)] = made.index
                    shapes[made.index] = made.shape
                if id(x) not in producer:
                    raise ValueError(
                        f"Layer {path!r} reads a tensor that no earlier layer of the model "
                        f"produced; {purpose} cannot follow it."
                    )
                inputs_of.append(producer[id(x)])
                return _Ref(producer[id(x)])
            return x

        marked_args = keras.tree.map_structure(mark, list(args))
        marked_kwargs = keras.tree.map_structure(mark, dict(kwargs))
        node = _Node(len(nodes), path, layer)
        node.args, node.kwargs = marked_args, marked_kwargs
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
    if inner:
        return nodes
    if id(output) not in producer or producer[id(output)] != len(nodes) - 1:
        raise ValueError(
            f"The output of model {model.name!r} is not produced by its last layer call; "
            f"{purpose} cannot follow it."
        )
    return nodes


# --------------------------------------------------------------------------------------------
# Receptive fields
# --------------------------------------------------------------------------------------------


@dataclass
class _AxisField:
    """Per output position along one axis: full and clipped ``[start, stop)`` input windows,
    and the step (input pixels per position) used to extend the full window past the ends."""

    full: np.ndarray  # (n, 2) int64
    clipped: np.ndarray  # (n, 2) int64; empty windows are (EMPTY, -EMPTY)
    jump: float

    def full_at(self, index: np.ndarray) -> np.ndarray:
        """``(len(index), 2)`` full windows, extended linearly outside ``[0, n)``."""
        n = len(self.full)
        inside = np.clip(index, 0, n - 1)
        shift = np.floor((index - inside) * self.jump).astype(np.int64)
        return self.full[inside] + shift[:, None]

    def clipped_at(self, index: np.ndarray) -> np.ndarray:
        """``(len(index), 2)`` clipped windows, empty outside ``[0, n)``."""
        n = len(self.clipped)
        out = self.clipped[np.clip(index, 0, n - 1)].copy()
        out[(index < 0) | (index >= n)] = (EMPTY, -EMPTY)
        return out


def _gather(src: _AxisField, sources: list[np.ndarray], n: int, jump: float) -> _AxisField:
    """The window of each of ``n`` outputs: the union over the input positions it reads
    (``sources[t][o]``: the t-th input position read by output ``o``, or -1 with a mask)."""
    full = np.stack([np.full(n, EMPTY), np.full(n, -EMPTY)], axis=1).astype(np.int64)
    clipped = full.copy()
    for index, valid in sources:
        f = src.full_at(index)
        c = src.clipped_at(index)
        full[:, 0] = np.where(valid, np.minimum(full[:, 0], f[:, 0]), full[:, 0])
        full[:, 1] = np.where(valid, np.maximum(full[:, 1], f[:, 1]), full[:, 1])
        clipped[:, 0] = np.where(valid, np.minimum(clipped[:, 0], c[:, 0]), clipped[:, 0])
        clipped[:, 1] = np.where(valid, np.maximum(clipped[:, 1], c[:, 1]), clipped[:, 1])
    return _AxisField(full, clipped, jump)


def _axis_field(node: _Node, axis: int, src: list[_AxisField]) -> _AxisField:
    n = node.shape[axis]
    out = np.arange(n)
    if node.kind in ("pointwise", "identity"):
        return src[0]
    if node.kind in ("pad", "crop"):
        shift = node.pad[axis][0] * (1 if node.kind == "pad" else -1)
        return _gather(src[0], [(out - shift, np.ones(n, bool))], n, src[0].jump)
    if node.kind == "merge":
        full = np.stack([s.full for s in src])
        clipped = np.stack([s.clipped for s in src])
        return _AxisField(
            np.stack([full[..., 0].min(0), full[..., 1].max(0)], axis=1),
            np.stack([clipped[..., 0].min(0), clipped[..., 1].max(0)], axis=1),
            min(s.jump for s in src),
        )
    k, s, before = node.kernel[axis], node.stride[axis], node.pad[axis][0]
    taps = range(0, k, node.dilation[axis])  # kernel taps inside the reach (dilation holes)
    if node.kind == "conv":
        first, _ = reads(out, k, s, before)
        sources = [(first + t, np.ones(n, bool)) for t in taps]
        return _gather(src[0], sources, n, src[0].jump * s)
    # transpose: input i writes outputs i * s - before + t for the taps t
    sources = []
    for t in taps:
        num = out + before - t
        sources.append((num // s, num % s == 0))
    return _gather(src[0], sources, n, src[0].jump / s)


@dataclass(frozen=True)
class ReceptiveField:
    """The input window of every output position of one spatial layer.

    Attributes:
        layer: the layer's path.
        input_size: ``(H, W)`` of the model's input.
        output_size: ``(h, w)`` of the layer's output.
        rows: int64 ``(h, 2)``: the ``[start, stop)`` input rows that output row ``i`` depends
            on, clipped at the image border (exact: a row outside it never reaches the position;
            ``start == stop`` for a row that reads only padding).
        cols: int64 ``(w, 2)``: the same for output columns.
        full_rows: int64 ``(h, 2)``: the window before clipping (may start below 0 or stop past
            ``H``): the box a crop of the field covers.
        full_cols: int64 ``(w, 2)``.
        stride: ``(sr, sc)`` input pixels between neighbouring output positions.
    """

    layer: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    full_rows: np.ndarray
    full_cols: np.ndarray
    stride: tuple[float, float]

    @property
    def size(self) -> tuple[int, int]:
        """``(fh, fw)``: the largest full window, the size of every crop of this layer."""
        return (
            int(np.max(self.full_rows[:, 1] - self.full_rows[:, 0])),
            int(np.max(self.full_cols[:, 1] - self.full_cols[:, 0])),
        )

    @property
    def starts(self) -> np.ndarray:
        """int64 ``(h, w, 2)``: clipped ``(top, left)`` of each output position's window."""
        h, w = self.output_size
        return np.stack(
            np.broadcast_arrays(self.rows[:, None, 0], self.cols[None, :, 0]), axis=-1
        ).reshape(h, w, 2)

    @property
    def sizes(self) -> np.ndarray:
        """int64 ``(h, w, 2)``: clipped ``(height, width)`` of each output position's window."""
        h, w = self.output_size
        heights = np.maximum(self.rows[:, 1] - self.rows[:, 0], 0)
        widths = np.maximum(self.cols[:, 1] - self.cols[:, 0], 0)
        return np.stack(np.broadcast_arrays(heights[:, None], widths[None, :]), axis=-1).reshape(
            h, w, 2
        )

    def window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of position ``(row, col)``, clipped at the border.

        >>> receptive_field(model, "conv2").window(0, 0)  # two 3x3 'same' convolutions
        (0, 0, 3, 3)
        """
        (r0, r1), (c0, c1) = self.rows[row], self.cols[col]
        return int(r0), int(c0), int(max(r1 - r0, 0)), int(max(c1 - c0, 0))

    def crops(
        self, images: np.ndarray, rows, cols, fill: float = 0.0, index=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crops of the full windows of output positions ``(rows[i], cols[i])``.

        Args:
            images: ``(N, H, W, C)`` images.
            rows, cols: ``(K,)`` output positions.
            fill: the value of the padded part of border crops.
            index: ``(K,)`` the image of each crop; ``None``: crop ``i`` is cut from
                ``images[i]``.

        Returns:
            ``(patches, valid)``: float32 ``(K, fh, fw, C)`` crops of `size` and bool
            ``(K, fh, fw)``, ``True`` on pixels of the clipped window (inside the image and
            reaching the position), ``False`` on padding.

        >>> patches, valid = receptive_field(model, "conv2").crops(images, [0, 4], [0, 4])
        >>> patches.shape, valid[0].sum()  # a 5 x 5 field, the first one clipped to 3 x 3
        ((2, 5, 5, 3), 9)
        """
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        index = np.arange(len(rows)) if index is None else np.asarray(index, np.int64)
        fh, fw = self.size
        count, channels = len(rows), images.shape[-1]
        patches = np.full((count, fh, fw, channels), fill, np.float32)
        valid = np.zeros((count, fh, fw), bool)
        for i, (n, r, c) in enumerate(zip(index, rows, cols, strict=True)):
            (t0, _), (l0, _) = self.full_rows[r], self.full_cols[c]
            (r0, r1), (c0, c1) = self.rows[r], self.cols[c]
            if r1 <= r0 or c1 <= c0:
                continue
            patches[i, r0 - t0 : r1 - t0, c0 - l0 : c1 - l0] = images[n, r0:r1, c0:c1]
            valid[i, r0 - t0 : r1 - t0, c0 - l0 : c1 - l0] = True
        return patches, valid


def _target_node(nodes: list[_Node], target, path: str, model) -> _Node:
    """The node of the first call of ``target`` (node 0 for the input layer)."""
    if isinstance(target, _keras().layers.InputLayer):
        return nodes[0]
    for node in nodes:
        if node.layer is target:
            return node
    if is_graph_model(target):
        raise ValueError(
            f"Expected `layer` to be a layer, not the nested model {path!r}: pass one of its "
            "layers (its last layer gives the same output)."
        )
    raise ValueError(
        f"Layer {path!r} is not reached by a forward pass of model {model.name!r} (it sits "
        "inside a subclassed model or is not used)."
    )


def receptive_field(model, layer, input_size: tuple[int, int] | None = None) -> ReceptiveField:
    """The input window of every output position of a spatial layer, computed from the graph.

    Exact for any chain or branching of ``Conv2D``, ``DepthwiseConv2D``, ``SeparableConv2D``,
    ``Conv2DTranspose`` (kernels, strides, dilation, ``"same"``/``"valid"`` padding), max and
    average pooling, nearest ``UpSampling2D``, ``ZeroPadding2D``, ``Cropping2D``, elementwise
    layers (activations, batch normalisation, dropout) and merges over channels or elementwise
    (``Add``, ``Concatenate``...), which take the union of their inputs' windows. The window is
    the bounding box of the input pixels an output position depends on.

    Args:
        model: a Keras model (Functional, Sequential or nested) with one image input.
        layer: a layer reference (see `find_layer`) whose output is ``(N, h, w, C)``.
        input_size: ``(H, W)`` for a model whose input size is open.

    Returns:
        A `ReceptiveField`.

    Raises:
        ValueError: the layer's output is not spatial; a layer between the input and ``layer``
            has no window rule (named); the input size is open and ``input_size`` is missing.
        KeyError: an unknown layer (closest names listed).

    >>> field = receptive_field(model, "conv2")  # two 3x3 'valid' convolutions on 32 x 32
    >>> field.size, field.output_size, field.window(0, 0)
    ((5, 5), (28, 28), (0, 0, 5, 5))
    """
    _check_model(model)
    target_layer = find_layer(model, layer)
    path = layer_path(model, target_layer)
    graph = graph_view(model)  # a subclassed model: a view whose inner calls are followed
    fixed = tuple(fresh_input(graph).shape[1:3])
    if input_size is not None:
        graph = sized_model(model, int(input_size[0]), int(input_size[1]))
    elif any(s is None for s in fixed):
        raise ValueError(
            f"Model {model.name!r} takes inputs of any size {fixed}; pass `input_size=(H, W)`."
        )
    nodes = call_graph(graph, purpose="receptive_field", inner=True)
    target = _target_node(nodes, target_layer, path, model)
    if not _spatial(target.shape):
        raise ValueError(
            f"Expected `layer` with a spatial (N, h, w, C) output. Received: layer={path!r} "
            f"with output shape {(None, *target.shape)}"
        )
    height, width = nodes[0].shape[:2]
    fields: dict[int, tuple[_AxisField, _AxisField]] = {}
    for n_pixels in (height, width):
        start = np.stack([np.arange(n_pixels), np.arange(n_pixels) + 1], axis=1)
        fields.setdefault(0, ())
        fields[0] = (*fields[0], _AxisField(start, start.copy(), 1.0))
    needed = _ancestors(nodes, target.index)
    for node in nodes[1 : target.index + 1]:
        if node.index not in needed:
            continue
        if node.kind == "full":
            raise ValueError(
                f"The receptive field of {path!r} is unknown: layer {node.path!r} "
                f"({type(node.layer).__name__}) lies between the input and it and has no "
                f"window rule ({node.reason})."
            )
        src = [fields[i] for i in node.inputs]
        fields[node.index] = (
            _axis_field(node, 0, [s[0] for s in src]),
            _axis_field(node, 1, [s[1] for s in src]),
        )
    fr, fc = fields[target.index]
    return ReceptiveField(
        layer=path,
        input_size=(int(height), int(width)),
        output_size=(int(target.shape[0]), int(target.shape[1])),
        rows=_tidy(fr.clipped),
        cols=_tidy(fc.clipped),
        full_rows=_tidy(fr.full),
        full_cols=_tidy(fc.full),
        stride=(float(fr.jump), float(fc.jump)),
    )


def _tidy(clipped: np.ndarray) -> np.ndarray:
    """Empty windows as ``start == stop`` (at 0) instead of the ``(EMPTY, -EMPTY)`` marker."""
    out = clipped.copy()
    empty = out[:, 1] <= out[:, 0]
    out[empty] = 0
    return out


def _ancestors(nodes: list[_Node], target: int) -> set[int]:
    """The nodes that feed node ``target``, and ``target`` itself."""
    wanted = {target}
    for node in reversed(nodes[: target + 1]):
        if node.index in wanted:
            wanted.update(node.inputs)
    return wanted
