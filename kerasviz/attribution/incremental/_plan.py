"""Window geometry for incremental occlusion, planned in numpy one axis at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kerasviz.attribution.incremental._graph import _Node
from kerasviz.inspect._fields import MIXES, NOT_SPATIAL, projected


class IncrementalFallbackWarning(UserWarning):
    """A layer without a window rule: the rest of the graph is recomputed in full."""


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
    # output o reads input rows [o*s - before, o*s - before + k) (inspect's `reads`)
    lo, hi = projected(src.lo, src.hi, k, s, before, length)
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


def plan(
    nodes: list[_Node],
    tops: np.ndarray,
    lefts: np.ndarray,
    patch: tuple[int, int],
    full_threshold: float,
    tau: float | None,
) -> _Plan:
    """Window geometry of every node for these patch positions (see the module docstring)."""
    tops = np.asarray(tops, dtype=np.int64)
    lefts = np.asarray(lefts, dtype=np.int64)
    mode = ["win"]
    axes: list[tuple[_Axis, _Axis] | None] = [
        (
            _Axis(tops, tops + patch[0], patch[0], tops.copy()),
            _Axis(lefts, lefts + patch[1], patch[1], lefts.copy()),
        )
    ]
    notices: list[str] = []
    for node in nodes[1:]:
        upstream_full = any(mode[i] == "full" for i in node.inputs)
        if node.kind == "full" or node.incremental or upstream_full or not node.inputs:
            reason = node.incremental or node.reason
            if reason and not upstream_full and _spatial_layer(node):
                notices.append(
                    f"incremental occlusion: layer {node.path!r} "
                    f"({type(node.layer).__name__}) is recomputed in full from here "
                    f"on: {reason}."
                )
            mode.append("full")
            axes.append(None)
            continue
        src = [axes[i] for i in node.inputs]
        height, width = node.shape[0], node.shape[1]
        if node.kind == "conv":
            (pt, _), (pl, _) = node.pad
            out = (
                _conv_axis(src[0][0], node.kernel[0], node.stride[0], pt, height, tau),
                _conv_axis(src[0][1], node.kernel[1], node.stride[1], pl, width, tau),
            )
        elif node.kind in ("pointwise", "identity"):
            out = src[0]
        elif node.kind == "pad":
            (pt, _), (pl, _) = node.pad
            r, c = src[0]
            out = (
                _Axis(r.lo + pt, r.hi + pt, r.size, r.offset + pt),
                _Axis(c.lo + pl, c.hi + pl, c.size, c.offset + pl),
            )
        else:  # merge: the union of the changed intervals
            out = (
                _Axis.fit(
                    np.min([a[0].lo for a in src], 0), np.max([a[0].hi for a in src], 0), height
                ),
                _Axis.fit(
                    np.min([a[1].lo for a in src], 0), np.max([a[1].hi for a in src], 0), width
                ),
            )
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
    key = tuple(
        (m, None if a is None else (a[0].size, a[1].size)) for m, a in zip(mode, axes, strict=True)
    ) + (tuple(cleans),)
    return _Plan(nodes, mode, axes, notices, cleans, key)


def _spatial_layer(node: _Node) -> bool:
    """Whether a node maps a spatial map to a spatial map without mixing every position
    (a layer that does, like ``Flatten``, is recomputed in full without a notice)."""
    return node.reason not in (NOT_SPATIAL, MIXES)


def _same_window(a: tuple[_Axis, _Axis], b: tuple[_Axis, _Axis]) -> bool:
    return all(
        x.size == y.size and np.array_equal(x.offset, y.offset) for x, y in zip(a, b, strict=True)
    )


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
