"""Filter tiles: colour tiles for first layers, filters x input-channels grids for deeper ones.

Takes the ``(n_filters, kh, kw, in_ch)`` arrays of `kerasviz.filters.filters`.
"""

from __future__ import annotations

import numpy as np

from kerasviz import filters as _filters
from kerasviz.plot import _base


def _indices(n: int, indices, name: str) -> np.ndarray:
    if indices is None:
        return np.arange(n)
    idx = np.atleast_1d(np.asarray(indices))
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"Expected `{name}` to be a non-empty sequence of ints. Received: {name}={indices!r}"
        )
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"`{name}` out of range: valid 0 to {n - 1}. Received: {idx.tolist()}")
    return idx


def filter_tiles(
    kernels: np.ndarray,
    indices=None,
    scale: str = "layer",
    symmetric: bool = True,
    cols: int = 8,
    size: float = 1.0,
    labels: bool = True,
    title: str | None = None,
):
    """One tile per filter: colour for 3 input channels, grey for 1 (AlexNet's first layer view).

    Args:
        kernels: ``(n, kh, kw, in_ch)`` with ``in_ch`` 1 or 3 (use `filter_grid` otherwise).
        indices: which filters, in which order (e.g. ``kerasviz.filters.order(k)[:32]``).
        scale: ``"layer"`` (one scale for all) or ``"filter"`` (each stretched).
        symmetric: grey = 0, so the sign of the weights is visible (default).
        cols: tiles per row.
        size: inches per tile.
        labels: write the filter index and its L2 norm under each tile.
        title: a figure title.

    Returns:
        A matplotlib ``Figure``.

    >>> fig = filter_tiles(kerasviz.filters.filters(model, "conv1"))
    """
    k = np.asarray(kernels, np.float32)
    if k.ndim != 4 or k.shape[-1] not in (1, 3):
        raise ValueError(
            "Expected `kernels` (n, kh, kw, 1 or 3) for tiles; use filter_grid for "
            f"deeper layers. Received: kernels.shape={k.shape}"
        )
    idx = _indices(k.shape[0], indices, "indices")
    shown = _filters.normalize(k, scale=scale, symmetric=symmetric)[idx]
    norm = _filters.norms(k)[idx]
    cols = max(1, min(cols, len(idx)))
    rows = -(-len(idx) // cols)
    fig, axes = _base.figure(rows, cols, size=size)
    for j, (i, tile) in enumerate(zip(idx, shown, strict=True)):
        ax = axes.flat[j]
        img = tile[..., 0] if tile.shape[-1] == 1 else tile
        ax.imshow(
            img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
        )
        if labels:
            ax.set_title(f"{i}  |w|={norm[j]:.2f}", fontsize=6)
    _base.finish(fig, title, pad=0.3, top=0.96)
    return fig


def filter_grid(
    kernels: np.ndarray,
    filters=None,
    channels=None,
    sort: str | None = None,
    page: int = 0,
    per_page: int = 16,
    max_channels: int = 16,
    scale: str = "layer",
    symmetric: bool = True,
    size: float = 0.6,
    title: str | None = None,
):
    """Rows = filters, columns = input channels: one greyscale ``kh x kw`` tile each.

    A wide layer stays legible: choose ``filters`` explicitly, or sort them by kernel norm
    (``sort="norm"``) and show one ``page`` of ``per_page`` rows; at most ``max_channels``
    input channels are drawn unless ``channels`` picks them. Each row is labelled with the
    filter index and its L2 norm (`kerasviz.filters.norms` gives all norms as numbers).

    Args:
        kernels: ``(n, kh, kw, in_ch)``.
        filters: filter indices (rows); overrides ``sort``/``page``.
        channels: input-channel indices (columns); default the first ``max_channels``.
        sort: ``"norm"`` (strongest first) or ``None`` (layer order).
        page: which page of ``per_page`` filters.
        per_page: rows per page.
        max_channels: columns when ``channels`` is ``None``.
        scale: ``"layer"`` or ``"filter"`` (see `kerasviz.filters.normalize`).
        symmetric: grey = 0, white positive, black negative (default).
        size: inches per tile.
        title: a figure title.

    Returns:
        A matplotlib ``Figure``.

    >>> fig = filter_grid(kerasviz.filters.filters(model, "conv2"), sort="norm", page=0)
    """
    k = np.asarray(kernels, np.float32)
    if k.ndim != 4:
        raise ValueError(
            f"Expected `kernels` of shape (n, kh, kw, in_ch). Received: kernels.shape={k.shape}"
        )
    if filters is None:
        rows_idx = _filters.page(_filters.order(k, by=sort), page=page, per_page=per_page)
    else:
        rows_idx = _indices(k.shape[0], filters, "filters")
    if channels is None:
        cols_idx = np.arange(min(k.shape[-1], max_channels))
    else:
        cols_idx = _indices(k.shape[-1], channels, "channels")
    shown = _filters.normalize(k, scale=scale, symmetric=symmetric)
    norm = _filters.norms(k)
    fig, axes = _base.figure(len(rows_idx), len(cols_idx), size=size)
    for r, i in enumerate(rows_idx):
        for c, ch in enumerate(cols_idx):
            ax = axes[r, c]
            ax.imshow(shown[i, :, :, ch], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if r == 0:
                ax.set_title(f"in {ch}", fontsize=6)
        axes[r, 0].set_axis_on()
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_ylabel(
            f"f{i}\n{norm[i]:.2f}", fontsize=6, rotation=0, labelpad=14, va="center"
        )
    _base.finish(fig, title, pad=0.3, top=0.96)
    return fig
