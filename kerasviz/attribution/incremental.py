"""Incremental inference for occlusion: recompute only the window a patch changes (Krypton).

Nakandala, Kumar and Papakonstantinou, "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations" (SIGMOD 2019).

Full re-inference runs the whole network for every patch position, yet a patch changes only a
small window of each early feature map. The clean image is run once and every layer's output is
kept. For a patch position, each layer's *changed window* is the set of output rows and columns
whose receptive field meets the changed window of its input: it grows by the kernel's reach and
shrinks with stride and pooling. Only that window is recomputed, from a slice of the cached clean
input map with the input's changed window pasted in, so the result is exact.

Window geometry is planned once per image shape and set of patch positions, in numpy, one axis at
a time (rows depend only on a patch's top, columns only on its left edge): every layer gets a
static window size (the largest over positions, so one compiled graph serves every position) and
a per-position offset table. A compiled ``tf.function`` then runs a chunk of ``batch_size``
positions through the plan: gathers of cached slices, a paste of the changed window (index
arithmetic and ``where``), and the layer's own operation in ``"valid"`` mode on the slice.

A layer switches to full computation (the clean map with the window pasted in, then the layer
itself) when its window covers at least ``full_threshold`` of its map, at layers that mix every
position (``Flatten``, global pooling, ``Dense``), and after any layer the window logic does not
know (one warning names it); everything after a full layer is full.

Windowed layers: ``Conv2D``, ``DepthwiseConv2D``, ``SeparableConv2D`` (``"same"``/``"valid"``
padding, any stride and dilation), ``MaxPooling2D`` (both paddings), ``AveragePooling2D``
(``"valid"``), ``BatchNormalization`` (inference), ``Activation``, ``ReLU``, ``LeakyReLU``,
``ELU``, ``Softmax`` over channels, ``Rescaling``, ``ZeroPadding2D``, ``Add``, ``Subtract``,
``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Concatenate`` over channels, and the
``Dropout`` family (the identity at inference).

Approximations (off by default):

* ``projective_threshold=tau``: a window may not grow beyond ``tau`` of its map along an axis
  (Krypton's projective-field threshold); values outside the truncated window are taken from the
  clean map. Smaller ``tau`` is faster and less exact.
* ``adaptive=fraction``: coarse-to-fine. Positions on every other row and column of the patch
  grid are scored exactly; the rest are interpolated from them, and only the ``fraction`` of
  interpolated positions with the largest interpolated score change is then scored exactly.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kerasviz import _checks, inspect
from kerasviz.attribution.occlusion import NO_PATCH, Occlusion, grid_to_map

CONV_LIKE = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")
POINTWISE = ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "BatchNormalization",
             "Rescaling")
IDENTITY = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
            "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
            "Identity")
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
MIXING = ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Dense", "Reshape",
          "MultiHeadAttention", "Attention")


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


class _Recorder(inspect.Replay):
    """A replay that records every leaf call with its arguments (nested models are walked)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, Any, Any, Any, Any]] = []

    def _call(self, layer, args, kwargs, prefix):
        out = super()._call(layer, args, kwargs, prefix)
        if not inspect.is_graph_model(layer):
            self.calls.append((prefix + layer.name, layer, args, kwargs, out))
        return out


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
    elif len(ins) == 1 and kind in IDENTITY:
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

    inputs = inspect.fresh_input(model)
    recorder = _Recorder()
    output = recorder.run(model, inputs)
    if isinstance(output, list | tuple):
        if len(output) != 1:
            raise ValueError(f"Incremental occlusion needs a model with one output; model "
                             f"{model.name!r} has {len(output)}.")
        output = output[0]
    nodes = [_Node(0, "input", None, shape=tuple(inputs.shape[1:]), kind="input")]
    producer = {id(inputs): 0}
    shapes = {0: nodes[0].shape}
    for path, layer, args, kwargs, out in recorder.calls:
        node = _Node(len(nodes), path, layer)
        inputs_of: list[int] = []

        def mark(x, inputs_of=inputs_of, path=path):
            if _is_tensor(x):
                if id(x) not in producer:
                    raise ValueError(f"Layer {path!r} reads a tensor that no earlier layer of "
                                     "the model produced; incremental occlusion cannot plan it.")
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
        raise ValueError(f"The output of model {model.name!r} is not produced by its last layer "
                         "call; incremental occlusion cannot plan it.")
    return nodes


# --------------------------------------------------------------------------------------------
# Window geometry, one axis at a time
# --------------------------------------------------------------------------------------------


@dataclass
class _Axis:
    """Changed interval ``[lo, hi)`` per position, and the static window (size, offsets)."""

    lo: np.ndarray
    hi: np.ndarray
    size: int = 0
    offset: np.ndarray | None = None

    @staticmethod
    def fit(lo, hi, length) -> _Axis:
        lo = np.clip(lo, 0, length)
        hi = np.clip(hi, 0, length)
        size = int(max(1, np.max(hi - lo)))
        offset = np.clip(lo, 0, length - size)
        return _Axis(lo, hi, size, offset.astype(np.int64))


def _conv_axis(src: _Axis, k: int, s: int, before: int, length: int, tau: float | None) -> _Axis:
    # output o reads input rows [o*s - before, o*s - before + k)
    lo = -((-(src.lo + before - k + 1)) // s)  # ceil
    hi = (src.hi - 1 + before) // s + 1
    lo, hi = np.clip(lo, 0, length), np.clip(hi, 0, length)
    if tau is not None:
        cap = max(1, math.ceil(tau * length))
        wide = hi - lo > cap
        centre = (lo + hi) // 2
        lo = np.where(wide, np.clip(centre - cap // 2, 0, length - cap), lo)
        hi = np.where(wide, lo + cap, hi)
    return _Axis.fit(lo, hi, length)


@dataclass
class _Plan:
    """Per node: ``"win"`` with two `_Axis` or ``"full"``; the clean maps the step reads."""

    nodes: list[_Node]
    mode: list[str]
    axes: list[tuple[_Axis, _Axis] | None]
    notices: list[str]
    cleans: list[tuple[int, tuple, float]]  # (node, ((top, bottom), (left, right)), pad value)
    key: tuple

    def clean_index(self, node: int, pad=((0, 0), (0, 0)), value: float = 0.0) -> int:
        return self.cleans.index((node, pad, value))


def plan(nodes: list[_Node], tops: np.ndarray, lefts: np.ndarray, patch: tuple[int, int],
         full_threshold: float, tau: float | None) -> _Plan:
    """Window geometry of every node for these patch positions (see the module docstring)."""
    tops = np.asarray(tops, dtype=np.int64)
    lefts = np.asarray(lefts, dtype=np.int64)
    mode = ["win"]
    axes: list[tuple[_Axis, _Axis] | None] = [(
        _Axis(tops, tops + patch[0], patch[0], tops.copy()),
        _Axis(lefts, lefts + patch[1], patch[1], lefts.copy()),
    )]
    notices: list[str] = []
    for node in nodes[1:]:
        upstream_full = any(mode[i] == "full" for i in node.inputs)
        if node.kind == "full" or upstream_full or not node.inputs:
            if node.reason and not upstream_full:
                notices.append(f"incremental occlusion: layer {node.path!r} "
                               f"({type(node.layer).__name__}) is recomputed in full from here "
                               f"on: {node.reason}.")
            mode.append("full")
            axes.append(None)
            continue
        src = [axes[i] for i in node.inputs]
        height, width = node.shape[0], node.shape[1]
        if node.kind == "conv":
            (pt, _), (pl, _) = node.pad
            out = (_conv_axis(src[0][0], node.kernel[0], node.stride[0], pt, height, tau),
                   _conv_axis(src[0][1], node.kernel[1], node.stride[1], pl, width, tau))
        elif node.kind in ("pointwise", "identity"):
            out = src[0]
        elif node.kind == "pad":
            (pt, _), (pl, _) = node.pad
            r, c = src[0]
            out = (_Axis(r.lo + pt, r.hi + pt, r.size, r.offset + pt),
                   _Axis(c.lo + pl, c.hi + pl, c.size, c.offset + pl))
        else:  # merge: the union of the changed intervals
            out = (_Axis.fit(np.min([a[0].lo for a in src], 0), np.max([a[0].hi for a in src], 0),
                             height),
                   _Axis.fit(np.min([a[1].lo for a in src], 0), np.max([a[1].hi for a in src], 0),
                             width))
        if out[0].size * out[1].size >= full_threshold * height * width:
            mode.append("full")
            axes.append(None)
        else:
            mode.append("win")
            axes.append(out)
    cleans: list[tuple[int, tuple, float]] = []

    def need(entry):
        if entry not in cleans:
            cleans.append(entry)

    for node in nodes[1:]:
        if mode[node.index] == "win" and node.kind == "conv":
            need((node.inputs[0], node.pad, node.pad_value))
        elif mode[node.index] == "win" and node.kind == "merge":
            for i in node.inputs:
                if not _same_window(axes[i], axes[node.index]):
                    need((i, ((0, 0), (0, 0)), 0.0))
        elif mode[node.index] == "full":
            for i in node.inputs:
                if mode[i] == "win":
                    need((i, ((0, 0), (0, 0)), 0.0))
    key = tuple((m, None if a is None else (a[0].size, a[1].size)) for m, a in zip(
        mode, axes, strict=True)) + (tuple(cleans),)
    return _Plan(nodes, mode, axes, notices, cleans, key)


def _same_window(a: tuple[_Axis, _Axis], b: tuple[_Axis, _Axis]) -> bool:
    return all(x.size == y.size and np.array_equal(x.offset, y.offset)
               for x, y in zip(a, b, strict=True))


def flops(plan_: _Plan) -> tuple[float, float]:
    """``(incremental, full)`` multiply-add FLOPs per patch position (convolutions and Dense)."""
    inc = full = 0.0
    for node in plan_.nodes[1:]:
        layer, kind = node.layer, type(node.layer).__name__
        per_position = 0.0
        if kind == "Conv2D":
            k = np.prod(layer.kernel_size)
            per_position = 2.0 * k * layer.kernel.shape[-2] * layer.kernel.shape[-1]
        elif kind == "DepthwiseConv2D":
            per_position = 2.0 * np.prod(layer.kernel_size) * node.shape[-1]
        elif kind == "SeparableConv2D":
            dw = layer.depthwise_kernel.shape
            per_position = 2.0 * (np.prod(dw) + np.prod(layer.pointwise_kernel.shape))
        elif kind == "Dense":
            inc += 2.0 * np.prod(layer.kernel.shape)
            full += 2.0 * np.prod(layer.kernel.shape)
            continue
        else:
            continue
        positions = float(np.prod(node.shape[:2]))
        full += per_position * positions
        axes = plan_.axes[node.index]
        inc += per_position * (positions if axes is None else axes[0].size * axes[1].size)
    return inc, full


# --------------------------------------------------------------------------------------------
# Graph pieces used inside the compiled step
# --------------------------------------------------------------------------------------------


def _slice(tf, clean, image, top, left, height: int, width: int):
    """``(B, height, width, C)``: windows of ``clean[image]`` starting at ``(top, left)``."""
    rows = top[:, None] + tf.range(height)[None, :]  # (B, h)
    index = tf.stack([tf.broadcast_to(image[:, None], tf.shape(rows)), rows], axis=-1)
    x = tf.gather_nd(clean, index)  # (B, h, Wp, C)
    cols = left[:, None] + tf.range(width)[None, :]  # (B, w)
    return tf.gather(x, cols, axis=2, batch_dims=1)  # (B, h, w, C)


def _paste(tf, base, window, top, left):
    """``base`` with ``window`` written at ``(top, left)`` (per row; parts outside are dropped)."""
    height, width = base.shape[1], base.shape[2]
    wh, ww = window.shape[1], window.shape[2]
    r = tf.range(height)[None, :] - top[:, None]  # (B, h) row inside the window
    c = tf.range(width)[None, :] - left[:, None]  # (B, w)
    in_r = (r >= 0) & (r < wh)
    in_c = (c >= 0) & (c < ww)
    x = tf.gather(window, tf.clip_by_value(r, 0, wh - 1), axis=1, batch_dims=1)  # (B, h, ww, C)
    x = tf.gather(x, tf.clip_by_value(c, 0, ww - 1), axis=2, batch_dims=1)  # (B, h, w, C)
    mask = in_r[:, :, None, None] & in_c[:, None, :, None]
    return tf.where(mask, x, base)


def _conv_op(layer, x):
    """The layer's own operation on ``x`` with ``"valid"`` padding (bias, activation included)."""
    from keras import ops

    kind = type(layer).__name__
    if kind == "MaxPooling2D":
        return ops.max_pool(x, layer.pool_size, layer.strides, padding="valid")
    if kind == "AveragePooling2D":
        return ops.average_pool(x, layer.pool_size, layer.strides, padding="valid")
    if kind == "Conv2D":
        y = ops.conv(x, layer.kernel, layer.strides, "valid", dilation_rate=layer.dilation_rate)
    elif kind == "DepthwiseConv2D":
        y = ops.depthwise_conv(x, layer.kernel, layer.strides, "valid",
                               dilation_rate=layer.dilation_rate)
    else:
        y = ops.separable_conv(x, layer.depthwise_kernel, layer.pointwise_kernel, layer.strides,
                               "valid", dilation_rate=layer.dilation_rate)
    if layer.use_bias:
        y = y + layer.bias
    return layer.activation(y) if layer.activation is not None else y


def _call_full(node: _Node, values: dict[int, Any]):
    """Call the node's layer with its recorded arguments, reading tensors from ``values``."""
    args = _map_refs(node.args, values)
    kwargs = _map_refs(node.kwargs, values)
    return node.layer(*args, **kwargs)


def _map_refs(structure, values):
    if isinstance(structure, _Ref):
        return values[structure.node]
    if isinstance(structure, list):
        return [_map_refs(s, values) for s in structure]
    if isinstance(structure, tuple):
        return tuple(_map_refs(s, values) for s in structure)
    if isinstance(structure, dict):
        return {k: _map_refs(v, values) for k, v in structure.items()}
    return structure


class IncrementalFallbackWarning(UserWarning):
    """A layer without a window rule: the rest of the graph is recomputed in full."""


def _clean_fn(tf, plan_: _Plan, shape: tuple[int, int, int]):
    """``images -> (padded clean maps listed in plan.cleans, prediction)``, compiled."""
    nodes = plan_.nodes

    @tf.function(input_signature=[tf.TensorSpec((None, *shape), tf.float32)])
    def clean(images):
        values = {0: images}
        for node in nodes[1:]:
            values[node.index] = _call_full(node, values)
        maps = []
        for index, pad, value in plan_.cleans:
            x = values[index]
            if pad != ((0, 0), (0, 0)):
                x = tf.pad(x, [[0, 0], list(pad[0]), list(pad[1]), [0, 0]], constant_values=value)
            maps.append(x)
        return maps, values[nodes[-1].index]

    return clean


def _forward(tf, plan_: _Plan, patch, fill_hw, channels, cleans, fills, tasks, row_table,
             col_table, clock=None):
    """One chunk through the plan: the body of the compiled step. ``clock(node, value)`` is
    called after each node (used to time layers eagerly)."""
    nodes, mode, axes = plan_.nodes, plan_.mode, plan_.axes
    image, top_index, left_index = tasks[:, 0], tasks[:, 1], tasks[:, 2]  # (B,) each
    rows = tf.gather(row_table, top_index, axis=1)  # (nodes, B) window offsets
    cols = tf.gather(col_table, left_index, axis=1)
    batch = tf.shape(tasks)[0]
    window: dict[int, Any] = {}
    full: dict[int, Any] = {}
    if fill_hw == (1, 1):
        window[0] = tf.broadcast_to(tf.gather(fills, image), (batch, *patch, channels))
    else:
        window[0] = _slice(tf, fills, image, rows[0], cols[0], *patch)

    def materialized(j):
        if j not in full:
            base = tf.gather(cleans[plan_.clean_index(j)], image)  # (B, h, w, C)
            full[j] = _paste(tf, base, window[j], rows[j], cols[j])
        return full[j]

    for node in nodes[1:]:
        i = node.index
        if mode[i] == "full":
            full[i] = _call_full(node, {j: materialized(j) for j in node.inputs})
            if clock is not None:
                clock(node, full[i])
            continue
        if node.kind in ("identity", "pad"):
            window[i] = window[node.inputs[0]]
        elif node.kind == "pointwise":
            window[i] = _call_full(node, {node.inputs[0]: window[node.inputs[0]]})
        elif node.kind == "conv":
            j = node.inputs[0]
            (pt, _), (pl, _) = node.pad
            (sr, sc), (kr, kc) = node.stride, node.kernel
            out_r, out_c = axes[i]
            top, left = rows[i] * sr, cols[i] * sc  # slice start in the padded map
            base = _slice(tf, cleans[plan_.clean_index(j, node.pad, node.pad_value)], image,
                          top, left, (out_r.size - 1) * sr + kr, (out_c.size - 1) * sc + kc)
            x = _paste(tf, base, window[j], rows[j] - (top - pt), cols[j] - (left - pl))
            window[i] = _conv_op(node.layer, x)
        else:  # merge
            parts = {}
            for j in node.inputs:
                if _same_window(axes[j], axes[i]):
                    parts[j] = window[j]
                    continue
                base = _slice(tf, cleans[plan_.clean_index(j)], image, rows[i], cols[i],
                              axes[i][0].size, axes[i][1].size)
                parts[j] = _paste(tf, base, window[j], rows[j] - rows[i], cols[j] - cols[i])
            window[i] = _call_full(node, parts)
        if clock is not None:
            clock(node, window[i])
    last = nodes[-1].index
    return full[last] if last in full else materialized(last)


def _step_fn(tf, plan_: _Plan, shape: tuple[int, int, int], patch: tuple[int, int],
             fill_hw: tuple[int, int], jit_compile: bool, on_trace):
    """The compiled one-chunk step: scores of ``B`` occluded copies, computed incrementally."""
    nodes = plan_.nodes
    channels = shape[2]
    clean_specs = []
    for index, pad, _ in plan_.cleans:
        h, w, c = nodes[index].shape
        clean_specs.append(tf.TensorSpec(
            (None, h + pad[0][0] + pad[0][1], w + pad[1][0] + pad[1][1], c), tf.float32))

    @tf.function(jit_compile=jit_compile, input_signature=[
        clean_specs,
        tf.TensorSpec((None, *fill_hw, channels), tf.float32),
        tf.TensorSpec((None, 3), tf.int32),
        tf.TensorSpec((len(nodes), None), tf.int32),
        tf.TensorSpec((len(nodes), None), tf.int32),
    ])
    def step(cleans, fills, tasks, row_table, col_table):
        on_trace()
        return _forward(tf, plan_, patch, fill_hw, channels, cleans, fills, tasks, row_table,
                        col_table)

    return step


class IncrementalOcclusion(Occlusion):
    """Occlusion computed by incremental inference (Krypton, Nakandala et al., SIGMOD 2019).

    Same maps as `Occlusion` (exact up to float rounding, typically < 1e-5 on probabilities),
    fewer operations: each patch position recomputes only the window of every feature map that
    the patch can change, reading the rest from one clean pass per image (see the module
    docstring for the layers with window rules). All other arguments are those of `Occlusion`.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        patch: patch size, an int or ``(h, w)`` (as in `Occlusion`).
        stride: step between patches (as in `Occlusion`).
        full_threshold: a layer whose window covers at least this fraction of its map is
            computed in full (with every layer after it); in ``(0, 1]``. On VGG16 at 224 px
            (2 CPU cores) 0.3, 0.5, 0.75 and 1 timed within the machine's noise of each other
            (``benchmarks/incremental.py``): a window over half its map saves about what its
            gathers and pastes cost.
        projective_threshold: approximate. ``None`` (exact) or ``tau`` in ``(0, 1]``: a window
            may not grow beyond ``tau`` of its map along an axis; what lies beyond is taken
            from the clean map.
        adaptive: approximate. ``None`` (exact) or a fraction in ``(0, 1]``: score every other
            row and column of the patch grid, interpolate the rest, and score exactly only that
            fraction of the interpolated positions (those with the largest change).
        mode: ``"incremental"`` (accepted so that ``Occlusion(..., mode="incremental")`` can
            hand its arguments over).
        **settings: the other arguments of `Occlusion` (``fill``, ``output``, ``batch_size``,
            ``jit_compile``, ``blur_sigma``). The incremental step runs on one device.

    Attributes:
        notices: one line per layer that made the rest of the graph fall back to full
            computation in the last plan (also issued as `IncrementalFallbackWarning`).
        last_plan: the window plan of the last call (``flops(last_plan)`` gives the FLOPs).

    >>> maps = IncrementalOcclusion(model, patch=8, stride=4).explain(images)  # (2, 64, 64, 3)
    >>> maps.shape
    (2, 64, 64)
    """

    def __init__(self, model, patch=16, stride=None, *, full_threshold: float = 0.5,
                 projective_threshold: float | None = None, adaptive: float | None = None,
                 mode: str = "incremental", **settings):
        if mode != "incremental":
            raise ValueError(f"Expected `mode` 'incremental' for IncrementalOcclusion (use "
                             f"Occlusion for full re-inference). Received: mode={mode!r}")
        super().__init__(model, patch=patch, stride=stride, **settings)
        self.mode = "incremental"
        self.full_threshold = _fraction(full_threshold, "full_threshold")
        self.projective_threshold = (None if projective_threshold is None
                                     else _fraction(projective_threshold, "projective_threshold"))
        self.adaptive = None if adaptive is None else _fraction(adaptive, "adaptive")
        self.nodes = call_graph(self.scored)
        self.notices: list[str] = []
        self.last_plan: _Plan | None = None
        self.last_exact: np.ndarray | None = None
        self._plans: dict[tuple, _Plan] = {}
        self._compiled: dict[tuple, tuple] = {}

    def plan(self, height: int, width: int, tops=None, lefts=None) -> _Plan:
        """The window plan for images ``(height, width)`` and these patch starts (default: the
        grid of `positions`). Cached; a new plan issues its fallback notices as warnings."""
        if tops is None or lefts is None:
            tops, lefts = self.positions(height, width)
        key = (height, width, tuple(int(t) for t in tops), tuple(int(v) for v in lefts))
        if key not in self._plans:
            made = plan(self.nodes, np.asarray(tops), np.asarray(lefts), self.patch,
                        self.full_threshold, self.projective_threshold)
            for notice in made.notices:
                warnings.warn(notice, IncrementalFallbackWarning, stacklevel=3)
            self._plans[key] = made
        self.last_plan = self._plans[key]
        self.notices = list(self.last_plan.notices)
        return self.last_plan

    def _functions(self, made: _Plan, shape: tuple[int, int, int], fill_hw: tuple[int, int]):
        import tensorflow as tf

        key = (made.key, shape, fill_hw)
        if key not in self._compiled:
            def on_trace():
                self.traces += 1

            self._compiled[key] = (
                _clean_fn(tf, made, shape),
                _step_fn(tf, made, shape, self.patch, fill_hw, self.jit_compile, on_trace),
            )
        return self._compiled[key]

    def score(self, batch: np.ndarray, tasks: np.ndarray, fills: np.ndarray | None = None,
              progress: bool = False) -> np.ndarray:
        """Scores ``(T, K)`` of the occluded copies described by ``tasks`` ``(T, 3)``.

        Same contract as `Occlusion.score`; rows with ``top = NO_PATCH`` get the clean score.
        Images are processed in groups small enough that their cached feature maps stay within
        about ``batch_size`` images' worth of activations.
        """
        import tensorflow as tf

        from kerasviz import _compute

        n, height, width, _ = batch.shape
        fill = self.fills(batch) if fills is None else np.asarray(fills, dtype=np.float32)
        if fill.ndim != 4 or fill.shape[0] != n or fill.shape[1:3] not in ((1, 1),
                                                                          (height, width)):
            raise ValueError(f"Expected `fills` of shape ({n}, 1, 1, C) or ({n}, {height}, "
                             f"{width}, C). Received: fills.shape={fill.shape}")
        tasks = np.ascontiguousarray(tasks, dtype=np.int32)
        real = tasks[:, 1] != NO_PATCH
        tops = np.unique(tasks[real, 1])
        lefts = np.unique(tasks[real, 2])
        if real.any() and (tops.min() < 0 or tops.max() + self.patch[0] > height
                           or lefts.min() < 0 or lefts.max() + self.patch[1] > width):
            raise ValueError(f"Patch positions must lie inside the {height}x{width} image. "
                             f"Received tops {tops.min()}..{tops.max()}, lefts "
                             f"{lefts.min()}..{lefts.max()} for patch {self.patch}.")
        grid_tops, grid_lefts = self.positions(height, width)
        if np.isin(tops, grid_tops).all() and np.isin(lefts, grid_lefts).all():
            tops, lefts = grid_tops, grid_lefts  # one plan (and trace) for any subset of the grid
        made = self.plan(height, width, tops if len(tops) else [0], lefts if len(lefts) else [0])
        clean, step = self._functions(made, tuple(batch.shape[1:]), tuple(fill.shape[1:3]))
        row_table = np.zeros((len(made.nodes), max(1, len(tops))), np.int32)
        col_table = np.zeros((len(made.nodes), max(1, len(lefts))), np.int32)
        for i, axes in enumerate(made.axes):
            if axes is not None:
                row_table[i], col_table[i] = axes[0].offset, axes[1].offset
        row_table, col_table = tf.constant(row_table), tf.constant(col_table)
        local = np.stack([tasks[:, 0], np.searchsorted(tops, tasks[:, 1]),
                          np.searchsorted(lefts, tasks[:, 2])], axis=1).astype(np.int32)
        per_image = max(1, int(real.sum()) // n)
        group = max(1, min(n, -(-self.batch_size // per_image)))
        out = np.zeros((len(tasks), self.num_classes), np.float32)
        bar = _compute.progress_bar(len(tasks), progress, "incremental occlusion")
        done = 0
        for first in range(0, n, group):
            last = min(n, first + group)
            maps, prediction = clean(tf.constant(batch[first:last]))
            prediction = prediction.numpy()
            fill_group = tf.constant(fill[first:last])
            mine = (tasks[:, 0] >= first) & (tasks[:, 0] < last)
            reference = np.flatnonzero(mine & ~real)
            out[reference] = prediction[tasks[reference, 0] - first]
            todo = np.flatnonzero(mine & real)
            for start, stop in _compute.padded_chunks(len(todo), self.batch_size):
                rows = todo[start:stop]
                chunk = local[rows] - np.array([first, 0, 0], np.int32)
                out[rows] = step(maps, fill_group, tf.constant(chunk), row_table,
                                 col_table).numpy()
            done += int(mine.sum())
            if bar is not None:
                bar.update(done)
        return out

    def explain(self, inputs, targets=None, return_grid: bool = False, progress: bool = False):
        """Occlusion maps for ``inputs``, as `Occlusion.explain` (exact unless an approximation
        was chosen).

        With ``adaptive`` set, ``last_exact`` holds the ``(N, rows, cols)`` boolean mask of the
        grid positions that were scored exactly (the others are interpolated).

        >>> maps = IncrementalOcclusion(model, patch=8, stride=4).explain(images)
        >>> maps.shape  # images (2, 64, 64, 3)
        (2, 64, 64)
        """
        if self.adaptive is None:
            return super().explain(inputs, targets, return_grid=return_grid, progress=progress)
        batch, single = inspect.check_inputs(self.model, inputs)
        n, height, width, _ = batch.shape
        chosen = _checks.check_targets(targets, n, self.num_classes)
        tops, lefts = self.positions(height, width)
        rows, cols = len(tops), len(lefts)
        coarse_r = np.unique(np.r_[np.arange(0, rows, 2), rows - 1])
        coarse_c = np.unique(np.r_[np.arange(0, cols, 2), cols - 1])
        first = self.tasks(n, tops[coarse_r], lefts[coarse_c])
        scores = self.score(batch, first, progress=progress)
        scores = scores.reshape(n, len(coarse_r) * len(coarse_c) + 1, -1)  # (N, P' + 1, K)
        if chosen is None:
            chosen = np.argmax(scores[:, 0], axis=-1).astype(np.int32)
        picked = np.take_along_axis(scores, chosen[:, None, None], axis=2)[..., 0]  # (N, P'+1)
        reference = picked[:, 0]  # (N,)
        coarse = (picked[:, :1] - picked[:, 1:]).reshape(n, len(coarse_r), len(coarse_c))
        along_r = _linear(coarse_r, rows)  # (rows, r')
        along_c = _linear(coarse_c, cols)  # (cols, c')
        grid = np.einsum("ia,nab,jb->nij", along_r, coarse, along_c).astype(np.float32)
        exact = np.zeros((n, rows, cols), bool)
        exact[:, coarse_r[:, None], coarse_c[None, :]] = True
        grid[:, coarse_r[:, None], coarse_c[None, :]] = coarse
        picks = []
        for image in range(n):
            candidates = np.flatnonzero(~exact[image].ravel())
            keep = math.ceil(self.adaptive * len(candidates))
            if keep == 0:
                continue
            order = np.argsort(-np.abs(grid[image].ravel()[candidates]), kind="stable")
            for flat in np.sort(candidates[order[:keep]]):
                picks.append((image, *divmod(int(flat), cols)))
        if picks:
            picks = np.asarray(picks, dtype=np.int64)  # (M, 3) image, row, col
            second = np.stack([picks[:, 0], tops[picks[:, 1]], lefts[picks[:, 2]]], axis=1)
            drops = self.score(batch, second.astype(np.int32), progress=progress)
            drops = reference[picks[:, 0]] - drops[np.arange(len(picks)), chosen[picks[:, 0]]]
            grid[picks[:, 0], picks[:, 1], picks[:, 2]] = drops
            exact[picks[:, 0], picks[:, 1], picks[:, 2]] = True
        maps = grid_to_map(grid, tops, lefts, self.patch, (height, width))
        self.last_grid, self.last_positions = grid, (tops, lefts)
        self.last_targets, self.last_exact = chosen, exact
        maps = _checks.restore_single(maps, single)
        if return_grid:
            return maps, _checks.restore_single(grid, single)
        return maps

    def layer_times(self, batch: np.ndarray, repeats: int = 2) -> list[tuple[str, str, float,
                                                                             float]]:
        """Where the time goes: per layer, seconds for one chunk of ``batch_size`` positions.

        Runs the first ``batch_size`` patch positions of the first image eagerly, node by node,
        once incrementally and once with every layer in full (plain re-inference), and keeps the
        fastest of ``repeats`` runs of each.

        Returns:
            rows ``(path, mode, incremental seconds, full seconds)`` in execution order;
            ``mode`` is ``"win"`` (windowed) or ``"full"``.
        """
        import time

        import tensorflow as tf

        batch, _ = inspect.check_inputs(self.model, batch)
        image = batch[:1]
        height, width = image.shape[1:3]
        made = self.plan(height, width)
        tops, lefts = self.positions(height, width)
        fill = self.fills(image)
        tasks = self.tasks(1, tops, lefts)[1:self.batch_size + 1]
        local = np.stack([tasks[:, 0], np.searchsorted(tops, tasks[:, 1]),
                          np.searchsorted(lefts, tasks[:, 2])], axis=1).astype(np.int32)
        every = plan(self.nodes, tops, lefts, self.patch, 1e-12, None)
        every.mode = ["win"] + ["full"] * (len(self.nodes) - 1)
        every.axes = [every.axes[0]] + [None] * (len(self.nodes) - 1)
        every.cleans = [(0, ((0, 0), (0, 0)), 0.0)]
        timings = []
        for which in (made, every):
            maps, _ = _clean_fn(tf, which, tuple(image.shape[1:]))(tf.constant(image))
            tables = []
            for size, axis in ((len(tops), 0), (len(lefts), 1)):
                table = np.zeros((len(self.nodes), size), np.int32)
                for i, axes in enumerate(which.axes):
                    if axes is not None:
                        table[i] = axes[axis].offset
                tables.append(tf.constant(table))
            best = np.full(len(self.nodes), np.inf)
            for _ in range(max(1, repeats)):
                seen = np.zeros(len(self.nodes))
                last = [time.perf_counter()]

                def clock(node, value, seen=seen, last=last):
                    np.asarray(value)  # wait for the result
                    now = time.perf_counter()
                    seen[node.index] = now - last[0]
                    last[0] = now

                _forward(tf, which, self.patch, tuple(fill.shape[1:3]), image.shape[3], maps,
                         tf.constant(fill), tf.constant(local), *tables, clock=clock)
                best = np.minimum(best, seen)
            timings.append(best)
        return [(node.path, made.mode[node.index], float(timings[0][node.index]),
                 float(timings[1][node.index])) for node in self.nodes[1:]]


def _linear(known: np.ndarray, length: int) -> np.ndarray:
    """``(length, len(known))`` weights of linear interpolation from the ``known`` indices."""
    weights = np.zeros((length, len(known)), np.float64)
    for i in range(length):
        j = int(np.searchsorted(known, i, side="right")) - 1
        if j >= len(known) - 1 or known[j] == i:
            weights[i, min(j, len(known) - 1)] = 1.0
            continue
        t = (i - known[j]) / (known[j + 1] - known[j])
        weights[i, j], weights[i, j + 1] = 1.0 - t, t
    return weights


def _fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not (
        0.0 < float(value) <= 1.0
    ):
        raise ValueError(f"Expected `{name}` in (0, 1]. Received: {name}={value!r}")
    return float(value)
