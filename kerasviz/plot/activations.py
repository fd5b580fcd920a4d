"""Feature maps of one image, a map over its input, and activation-maximization galleries."""

from __future__ import annotations

import numpy as np

from kerasviz.plot import _base


def activation_grid(
    maps: np.ndarray,
    channels=None,
    shared_scale: bool = True,
    cols: int = 8,
    size: float = 1.0,
    cmap: str = "viridis",
    title: str | None = None,
):
    """The channels of one image's feature maps ``(h, w, c)`` as a grid of tiles.

    Args:
        maps: ``(h, w, c)`` (one image of `kerasviz.activations.activations`).
        channels: which channels, in order (e.g. from `top_channels`); default all.
        shared_scale: one colour scale for all tiles (strengths comparable) or one per tile.
        cols: tiles per row.
        size: inches per tile.
        cmap: colour map.
        title: a figure title (e.g. the layer name).

    Returns:
        A matplotlib ``Figure``.

    >>> fig = activation_grid(maps["conv1"][0], channels=range(16))
    """
    arr = np.asarray(maps, np.float32)
    if arr.ndim != 3:
        raise ValueError(
            f"Expected `maps` of rank 3 (h, w, c) for one image. Received: maps.shape={arr.shape}"
        )
    idx = np.arange(arr.shape[-1]) if channels is None else np.atleast_1d(np.asarray(channels))
    if idx.size == 0 or idx.min() < 0 or idx.max() >= arr.shape[-1]:
        raise ValueError(
            f"`channels` out of range: valid 0 to {arr.shape[-1] - 1}. "
            f"Received: {np.asarray(channels).tolist()}"
        )
    cols = max(1, min(cols, len(idx)))
    rows = -(-len(idx) // cols)
    fig, axes = _base.figure(rows, cols, size=size)
    lo, hi = float(arr[..., idx].min()), float(arr[..., idx].max())
    for j, ch in enumerate(idx):
        tile = arr[..., ch]
        vmin, vmax = (lo, hi) if shared_scale else (float(tile.min()), float(tile.max()))
        if vmax <= vmin:
            vmax = vmin + 1e-6
        ax = axes.flat[j]
        ax.imshow(tile, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"{ch}: {tile.mean():.2f}", fontsize=6)
    _base.finish(fig, title)
    return fig


def activation_overlay(
    image: np.ndarray,
    activation: np.ndarray,
    ax=None,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
):
    """Draw one feature map ``(h, w)`` over its input image ``(H, W, C)``, stretched to fit.

    The map is drawn over the image's extent with bilinear interpolation (a display choice;
    the array itself is not resampled).

    Returns:
        ``(Figure, Axes)``.

    >>> fig, ax = activation_overlay(images[0], maps["conv4"][0, :, :, 7])
    """
    heat = np.asarray(activation, np.float32)
    if heat.ndim != 2:
        raise ValueError(f"Expected `activation` of rank 2 (h, w). Received: shape={heat.shape}")
    img = np.asarray(image)
    if img.ndim != 3:
        raise ValueError(f"Expected `image` of rank 3 (H, W, C). Received: shape={img.shape}")
    if ax is None:
        fig, axes = _base.figure(1, 1, size=3.0)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    _base.show_image(ax, img)
    h, w = img.shape[:2]
    lo, hi = float(heat.min()), float(heat.max())
    ax.imshow(
        heat,
        cmap=cmap,
        alpha=alpha,
        vmin=lo,
        vmax=hi if hi > lo else lo + 1e-6,
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        interpolation="bilinear",
    )
    if title:
        ax.set_title(title, fontsize=8)
    return fig, ax


def maximization_gallery(
    images: np.ndarray, labels=None, cols: int = 8, size: float = 1.4, title: str | None = None
):
    """Activation-maximization images ``(N, H, W, C)`` with a unit label under each tile.

    Returns:
        A matplotlib ``Figure``.

    >>> fig = maximization_gallery(am.maximize(range(16)), [f"conv3:{i}" for i in range(16)])
    """
    arr = np.asarray(images, np.float32)
    if arr.ndim != 4:
        raise ValueError(f"Expected `images` of rank 4 (N, H, W, C). Received: shape={arr.shape}")
    n = arr.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"Expected {n} labels (one per image). Received: {len(labels)}")
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = _base.figure(rows, cols, size=size)
    for i in range(n):
        ax = axes.flat[i]
        _base.show_image(ax, arr[i])
        if labels is not None:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(str(labels[i]), fontsize=7)
    _base.finish(fig, title)
    return fig
