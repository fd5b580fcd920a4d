"""Convolution kernels as arrays: one ``(kh, kw, in_ch)`` filter per output channel.

Keras stores kernels in several layouts; `filters` returns every kind as
``(n_filters, kh, kw, in_ch)`` float32, filter first, so that ``result[i]`` is the pattern that
output channel ``i`` responds to (or, for a transposed convolution, stamps onto its output):

================== ================================== ==================================
layer              Keras kernel layout                kerasviz ``(n, kh, kw, in_ch)``
================== ================================== ==================================
Conv2D             ``kernel (kh, kw, in/groups, out)``  ``kernel.transpose(3, 0, 1, 2)``
DepthwiseConv2D    ``kernel (kh, kw, in, mult)``        ``(in*mult, kh, kw, 1)``; filter
                                                        ``c*mult + m`` is ``kernel[:, :, c, m]``
                                                        (the layer's output-channel order)
SeparableConv2D    ``depthwise_kernel`` as above,       ``part="depthwise"`` (default): as
                   ``pointwise_kernel (1, 1, in*mult,   DepthwiseConv2D; ``part="pointwise"``:
                   out)``                               ``(out, 1, 1, in*mult)``
Conv2DTranspose    ``kernel (kh, kw, out, in)``         ``kernel.transpose(2, 0, 1, 3)``
Dense              ``kernel (in, units)``               ``(units, 1, 1, in)``: a Dense layer on a
                                                        vector is a 1x1 convolution
================== ================================== ==================================

Layers without a kernel (pooling, activations, ...) are refused with a ``ValueError``.
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks, inspect

KERNEL_TYPES = (*inspect.CONV_TYPES, "Dense")
PARTS = ("depthwise", "pointwise")


def _depthwise(kernel: np.ndarray) -> np.ndarray:
    kh, kw, cin, mult = kernel.shape
    # (kh, kw, in, mult) -> (kh, kw, in*mult): index c*mult + m, the layer's output order
    flat = kernel.reshape(kh, kw, cin * mult)
    return flat.transpose(2, 0, 1)[..., None]  # (in*mult, kh, kw, 1)


CHANNEL_ORDERS = ("RGB", "BGR")


def filters(model, layer, part: str | None = None, channel_order: str = "RGB") -> np.ndarray:
    """The kernel of a convolution layer as ``(n_filters, kh, kw, in_ch)`` float32.

    See the module docstring for how each layer type's kernel is reordered.

    Args:
        model: a Keras model (Functional, Sequential or nested).
        layer: a layer name, path through nested models, index or Layer (see
            `kerasviz.inspect.find_layer`).
        part: for a ``SeparableConv2D`` only: ``"depthwise"`` (the spatial filters, default) or
            ``"pointwise"`` (the 1x1 channel mixing).
        channel_order: the order of the colour channels the model takes (``"BGR"`` for
            Caffe-style models: VGG16/ResNet50 from ``keras.applications``, HED). A kernel that
            reads three channels is returned in RGB order whatever the model takes, so that
            ``result[..., 0]`` is red and colour tiles show the colours the filter responds to.

    Returns:
        ``(n_filters, kh, kw, in_ch)`` float32, a copy of the weights.

    Raises:
        ValueError: the layer has no convolution kernel (pooling, activation...), it is not
            built, its kernel is not 2-D spatial, or ``part`` does not fit the layer.
        KeyError: an unknown layer.

    >>> filters(model, "conv1").shape
    (32, 3, 3, 1)
    """
    _checks.check_choice(channel_order, "channel_order", CHANNEL_ORDERS)
    kernels = _kernels(model, layer, part)
    if channel_order == "BGR" and kernels.shape[-1] == 3:
        kernels = np.ascontiguousarray(kernels[..., ::-1])
    return kernels


def _kernels(model, layer, part: str | None) -> np.ndarray:
    obj = inspect.find_layer(model, layer)
    kind = type(obj).__name__
    if kind not in KERNEL_TYPES:
        raise ValueError(
            f"Layer {obj.name!r} ({kind}) has no convolution kernel. Expected `layer` to be one "
            f"of {', '.join(KERNEL_TYPES)}. Received: layer={layer!r}"
        )
    if not obj.built:
        raise ValueError(f"Layer {obj.name!r} is not built yet; call the model once first.")
    if part is not None and part not in PARTS:
        raise ValueError(
            f"Expected `part` to be None, 'depthwise' or 'pointwise'. Received: part={part!r}"
        )
    if kind != "SeparableConv2D" and part is not None:
        raise ValueError(
            f"`part` applies to SeparableConv2D only; layer {obj.name!r} is a "
            f"{kind}. Received: part={part!r}"
        )
    if kind == "SeparableConv2D":
        if part in (None, "depthwise"):
            return _depthwise(np.asarray(obj.depthwise_kernel, np.float32))
        kernel = np.asarray(obj.pointwise_kernel, np.float32)  # (1, 1, in*mult, out)
        return np.ascontiguousarray(kernel.transpose(3, 0, 1, 2))
    kernel = np.asarray(obj.kernel, np.float32)
    if kind == "Dense":
        if kernel.ndim != 2:
            raise ValueError(
                f"Dense layer {obj.name!r} has a kernel of rank {kernel.ndim}; "
                "expected rank 2 (in, units)."
            )
        return np.ascontiguousarray(kernel.T[:, None, None, :])  # (units, 1, 1, in)
    if kernel.ndim != 4:
        raise ValueError(
            f"Layer {obj.name!r} ({kind}) has a kernel of rank {kernel.ndim}; "
            "expected a 2-D convolution kernel of rank 4."
        )
    if kind == "DepthwiseConv2D":
        return np.ascontiguousarray(_depthwise(kernel))
    if kind == "Conv2DTranspose":
        return np.ascontiguousarray(kernel.transpose(2, 0, 1, 3))  # (out, kh, kw, in)
    return np.ascontiguousarray(kernel.transpose(3, 0, 1, 2))  # (out, kh, kw, in)


def _check_kernels(kernels) -> np.ndarray:
    arr = np.asarray(kernels, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ValueError(
            "Expected `kernels` of shape (n_filters, kh, kw, in_ch). "
            f"Received: kernels.shape={arr.shape}"
        )
    return arr


def norms(kernels: np.ndarray) -> np.ndarray:
    """The L2 norm of each filter: ``(n_filters,)`` float32.

    >>> norms(filters(model, "conv2")).shape
    (32,)
    """
    arr = _check_kernels(kernels)
    return np.sqrt(np.sum(arr.astype(np.float64) ** 2, axis=(1, 2, 3))).astype(np.float32)


def order(kernels: np.ndarray, by: str | None = "norm") -> np.ndarray:
    """Filter indices, strongest first (``by="norm"``) or in layer order (``by=None``).

    >>> order(filters(model, "conv2")).shape
    (32,)
    """
    arr = _check_kernels(kernels)
    if by is None:
        return np.arange(arr.shape[0])
    if by != "norm":
        raise ValueError(f"Expected `by` to be 'norm' or None. Received: by={by!r}")
    return np.argsort(-norms(arr), kind="stable")


def page(indices, page: int = 0, per_page: int = 32) -> np.ndarray:
    """The ``page``-th slice of ``per_page`` entries of ``indices`` (for very wide layers).

    >>> page(order(filters(model, "conv2")), page=1, per_page=16).shape  # 17th-32nd strongest
    (16,)
    """
    idx = np.asarray(indices)
    per_page = _checks.check_positive_int(per_page, "per_page")
    pages = max(1, -(-len(idx) // per_page))
    if isinstance(page, bool) or not isinstance(page, int | np.integer) or not 0 <= page < pages:
        raise ValueError(
            f"Expected `page` in [0, {pages - 1}] ({len(idx)} entries, {per_page} "
            f"per page). Received: page={page!r}"
        )
    return idx[page * per_page : (page + 1) * per_page]


def normalize(kernels: np.ndarray, scale: str = "layer", symmetric: bool = True) -> np.ndarray:
    """Kernels mapped to [0, 1] for display.

    Args:
        kernels: ``(n, kh, kw, in_ch)``.
        scale: ``"layer"``: one scale shared by all filters (their strengths stay comparable);
            ``"filter"``: each filter stretched on its own (weak filters become visible).
        symmetric: map zero to 0.5 and ``±max|w|`` to 0 and 1 (the default, so the sign of
            every weight is visible: grey is zero); otherwise min -> 0 and max -> 1.

    Returns:
        ``(n, kh, kw, in_ch)`` float32 in [0, 1].

    >>> normalize(filters(model, "conv1")).min() >= 0
    True
    """
    arr = _check_kernels(kernels).astype(np.float64)
    if scale not in ("layer", "filter"):
        raise ValueError(f"Expected `scale` to be 'layer' or 'filter'. Received: scale={scale!r}")
    axes = (1, 2, 3) if scale == "filter" else (0, 1, 2, 3)
    if symmetric:
        bound = np.max(np.abs(arr), axis=axes, keepdims=True)
        bound = np.where(bound > 0, bound, 1.0)
        out = arr / (2.0 * bound) + 0.5
    else:
        lo = np.min(arr, axis=axes, keepdims=True)
        hi = np.max(arr, axis=axes, keepdims=True)
        span = np.where(hi > lo, hi - lo, 1.0)
        out = (arr - lo) / span
    return np.clip(out, 0.0, 1.0).astype(np.float32)
