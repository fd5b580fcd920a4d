"""Feature maps of one image, one layer's strongest channels across images (with a colour
scale), a map over its input, and activation-maximization galleries."""

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


# A tile whose range is below this fraction of the figure's scale is drawn as constant.
FLAT_TILE = 1e-6


def activation_rows(
    maps: np.ndarray,
    channels,
    row_labels=None,
    tile_px: int = 72,
    dpi: int = 100,
    cmap: str = "viridis",
    title: str | None = None,
):
    """One layer's channels ``channels`` for several images: a row per image, a column per
    channel, one colour scale for the whole figure drawn as a colour bar.

    Sharing one scale makes tiles comparable across images and channels (a weak channel looks
    weak). A tile whose values are constant (within `FLAT_TILE` of the figure's scale, a
    channel that is silent on that image) is drawn grey with its value instead of being
    stretched to full contrast.

    Args:
        maps: ``(N, h, w, c)`` feature maps of one layer (`kerasviz.activations.activations`).
        channels: the ``k`` channels to show, in order (the same for every image).
        row_labels: ``N`` names written left of each row.
        tile_px: side of every tile in pixels at ``dpi`` (at least 48, so a map stays
            legible); the figure grows with the number of images and channels.
        dpi: the resolution the figure is meant to be saved at (`kerasviz.plot.save`'s).
        cmap: colour map.
        title: a figure title.

    Returns:
        A matplotlib ``Figure``; ``fig.axes`` holds the ``N * k`` tiles row by row, then the
        colour bar.

    Raises:
        ValueError: ``maps`` not of rank 4, channels out of range, a wrong number of row labels,
            ``tile_px`` below 48.

    >>> fig = activation_rows(maps["conv2"], channels=[3, 7, 1], row_labels=["a", "b"])
    >>> len(fig.axes)  # maps (2, 28, 28, 32): 2 rows x 3 channels + the colour bar
    7
    """
    arr = np.asarray(maps, np.float32)
    if arr.ndim != 4:
        raise ValueError(
            f"Expected `maps` of rank 4 (N, h, w, c). Received: maps.shape={arr.shape}"
        )
    idx = np.atleast_1d(np.asarray(channels))
    if idx.size == 0 or idx.min() < 0 or idx.max() >= arr.shape[-1]:
        raise ValueError(
            f"`channels` out of range: valid 0 to {arr.shape[-1] - 1}. "
            f"Received: {np.asarray(channels).tolist()}"
        )
    n, k = arr.shape[0], idx.size
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"Expected {n} `row_labels` (one per image). Received: {len(row_labels)}")
    if tile_px < 48:
        raise ValueError(f"Expected `tile_px` >= 48 (legible tiles). Received: {tile_px}")
    shown = arr[..., idx]  # (N, h, w, k)
    finite = shown[np.isfinite(shown)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scale = max(abs(lo), abs(hi))
    if hi - lo <= FLAT_TILE * scale or hi <= lo:  # every tile constant: an honest flat scale
        lo, hi = (lo - 1.0, hi + 1.0) if scale == 0 else (lo - scale, hi + scale)
    # Axes placed in inches, so every tile is exactly tile_px at dpi (a layout engine would
    # shrink them to make room for labels); saving with a tight box keeps that scale.
    side, gap, bar = tile_px / dpi, 0.06, 0.14
    left, top = 0.3, 0.25 + (0.3 if title else 0.0)
    width = left + k * side + (k - 1) * gap + 0.12 + bar + 0.5
    height = top + n * side + (n - 1) * gap + 0.1
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    axes = np.empty((n, k), dtype=object)
    for r in range(n):
        for j in range(k):
            x = left + j * (side + gap)
            y = height - top - (r + 1) * side - r * gap
            axes[r, j] = fig.add_axes((x / width, y / height, side / width, side / height))
    x = left + k * side + (k - 1) * gap + 0.12
    bar_ax = fig.add_axes(
        (
            x / width,
            (height - top - n * side - (n - 1) * gap) / height,
            bar / width,
            (n * side + (n - 1) * gap) / height,
        )
    )
    artist = None
    for r in range(n):
        for j, ch in enumerate(idx):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            tile = shown[r, :, :, j]
            spread = float(np.ptp(tile)) if np.isfinite(tile).all() else float("nan")
            if not spread > FLAT_TILE * scale:  # constant (or not finite): no contrast to show
                value = float(np.nanmean(tile)) if np.isfinite(tile).any() else float("nan")
                ax.imshow(np.full(tile.shape, 0.85), cmap="gray", vmin=0, vmax=1)
                ax.text(
                    0.5,
                    0.5,
                    f"constant\n{value:.3g}",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#555",
                )
            else:
                artist = ax.imshow(tile, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            if r == 0:
                ax.set_title(f"ch {int(ch)}", fontsize=8)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(str(row_labels[r]), fontsize=8)
    if artist is None:  # nothing but constant tiles: the bar still states the scale
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        artist = ScalarMappable(Normalize(lo, hi), cmap=cmap)
    fig.colorbar(artist, cax=bar_ax)
    bar_ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.12 / height, va="top")
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
