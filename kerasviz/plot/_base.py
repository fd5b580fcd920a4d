"""Shared drawing pieces: figures, image display, heat-map overlays, saving."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kerasviz.imageio import as_display


def pyplot():
    """matplotlib's pyplot, imported on first use with a non-interactive backend."""
    import matplotlib

    if "MPLBACKEND" not in os.environ and matplotlib.get_backend().lower() not in ("agg",):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(rows: int, cols: int, size: float = 2.0, **kwargs):
    """A ``(Figure, axes[rows, cols])`` pair with ``size`` inches per cell and axes off."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cols * size, rows * size), **kwargs)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def finish(fig, title: str | None = None, pad: float = 1.08, top: float = 0.95) -> None:
    """Lay ``fig`` out tightly, with ``title`` above the axes when given."""
    if title:
        fig.suptitle(title, fontsize=9)
        fig.tight_layout(pad=pad, rect=(0, 0, 1, top))
    else:
        fig.tight_layout(pad=pad)


def show_image(ax, image: np.ndarray, title: str | None = None) -> None:
    img = as_display(image)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    ax=None,
    alpha: float = 0.5,
    cmap: str | None = None,
    symmetric: bool | None = None,
    title: str | None = None,
    colorbar: bool = False,
):
    """Draw ``heatmap`` ``(H, W)`` over ``image`` ``(H, W, C)``.

    Args:
        image: the image, in any range (scaled to [0, 1] for display).
        heatmap: the map at the image's resolution.
        ax: an existing Axes to draw into; a new Figure is made when ``None``.
        alpha: opacity of the heat map.
        cmap: colour map; ``"bwr"`` for signed maps, ``"jet"`` otherwise, by default.
        symmetric: centre the colour scale on zero (default: when the map has both signs).
        title: a title above the axes.
        colorbar: add a colour bar.

    Returns:
        ``(Figure, Axes)``.

    >>> fig, ax = overlay(images[0], maps[0])
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"Expected `heatmap` of rank 2 (H, W). Received: shape={heat.shape}")
    img = np.asarray(image)
    if img.shape[:2] != heat.shape:
        raise ValueError(f"`heatmap` shape {heat.shape} differs from `image` shape {img.shape[:2]}")
    if ax is None:
        fig, axes = figure(1, 1, size=3.0)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    if symmetric is None:
        symmetric = bool(heat.min() < 0 < heat.max())
    if symmetric:
        bound = float(np.abs(heat).max()) or 1.0
        vmin, vmax, cmap = -bound, bound, cmap or "bwr"
    else:
        vmin, vmax, cmap = float(heat.min()), float(heat.max()), cmap or "jet"
        if vmax <= vmin:
            vmax = vmin + 1.0
    show_image(ax, img)
    im = ax.imshow(heat, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)
    if title:
        ax.set_title(title, fontsize=8)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig, ax


def image_grid(images: np.ndarray, titles=None, cols: int = 8, size: float = 1.5):
    """A grid of images ``(N, H, W, C)`` with optional titles; returns the ``Figure``."""
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.shape[0] == 0:
        raise ValueError(
            "Expected `images` of shape (N, H, W) or (N, H, W, C) with N >= 1. "
            f"Received: images.shape={images.shape}"
        )
    n = images.shape[0]
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = figure(rows, cols, size=size)
    for i in range(n):
        show_image(axes.flat[i], images[i], None if titles is None else str(titles[i]))
    fig.tight_layout()
    return fig


def save(fig, path, overwrite: bool = True, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG (or the suffix's format) and return the path."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
