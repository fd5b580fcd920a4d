"""Graph pieces of incremental occlusion's compiled steps: slices and pastes of windows, the
layers' own operations on them, the clean pass and the one-chunk step."""

from __future__ import annotations

from typing import Any

from kerasviz.attribution.incremental._graph import _Node, _Ref
from kerasviz.attribution.incremental._plan import _Plan, _same_window

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
        y = ops.depthwise_conv(
            x, layer.kernel, layer.strides, "valid", dilation_rate=layer.dilation_rate
        )
    else:
        y = ops.separable_conv(
            x,
            layer.depthwise_kernel,
            layer.pointwise_kernel,
            layer.strides,
            "valid",
            dilation_rate=layer.dilation_rate,
        )
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


def _forward(
    tf,
    plan_: _Plan,
    patch,
    fill_hw,
    channels,
    cleans,
    fills,
    tasks,
    row_table,
    col_table,
    clock=None,
):
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
            base = _slice(
                tf,
                cleans[plan_.clean_index(j, node.pad, node.pad_value)],
                image,
                top,
                left,
                (out_r.size - 1) * sr + kr,
                (out_c.size - 1) * sc + kc,
            )
            x = _paste(tf, base, window[j], rows[j] - (top - pt), cols[j] - (left - pl))
            window[i] = _conv_op(node.layer, x)
        else:  # merge
            parts = {}
            for j in node.inputs:
                if _same_window(axes[j], axes[i]):
                    parts[j] = window[j]
                    continue
                base = _slice(
                    tf,
                    cleans[plan_.clean_index(j)],
                    image,
                    rows[i],
                    cols[i],
                    axes[i][0].size,
                    axes[i][1].size,
                )
                parts[j] = _paste(tf, base, window[j], rows[j] - rows[i], cols[j] - cols[i])
            window[i] = _call_full(node, parts)
        if clock is not None:
            clock(node, window[i])
    last = nodes[-1].index
    return full[last] if last in full else materialized(last)


def _step_fn(
    tf,
    plan_: _Plan,
    shape: tuple[int, int, int],
    patch: tuple[int, int],
    fill_hw: tuple[int, int],
    jit_compile: bool,
    on_trace,
):
    """The compiled one-chunk step: scores of ``B`` occluded copies, computed incrementally."""
    nodes = plan_.nodes
    channels = shape[2]
    clean_specs = []
    for index, pad, _ in plan_.cleans:
        h, w, c = nodes[index].shape
        clean_specs.append(
            tf.TensorSpec(
                (None, h + pad[0][0] + pad[0][1], w + pad[1][0] + pad[1][1], c), tf.float32
            )
        )

    @tf.function(
        jit_compile=jit_compile,
        input_signature=[
            clean_specs,
            tf.TensorSpec((None, *fill_hw, channels), tf.float32),
            tf.TensorSpec((None, 3), tf.int32),
            tf.TensorSpec((len(nodes), None), tf.int32),
            tf.TensorSpec((len(nodes), None), tf.int32),
        ],
    )
    def step(cleans, fills, tasks, row_table, col_table):
        on_trace()
        return _forward(
            tf, plan_, patch, fill_hw, channels, cleans, fills, tasks, row_table, col_table
        )

    return step
