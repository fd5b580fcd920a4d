"""A coarse grid (a CAM, a feature map, an occlusion grid) placed on its input by receptive
fields: each cell's value sits at the centre of the input window it sees, and pixels between
centres are interpolated bilinearly. Stretching the grid over the whole image instead (what
``tf.image.resize`` does) is wrong as soon as the windows do not tile the image: with "valid"
padding a 10 x 10 grid of a 32 px input sees only the centre, and stretching would light up
the corners. numpy only.
"""

from __future__ import annotations

import numpy as np


def _weights(centres: np.ndarray, length: int) -> np.ndarray:
    """``(length, n)``: row ``p`` holds the linear-interpolation weights of pixel ``p`` over the
    ``n`` cell centres; pixels beyond the first or last centre take that cell alone."""
    n = centres.shape[0]
    eye = np.eye(n)
    pixels = np.arange(length, dtype=np.float64)
    if n == 1:
        return np.ones((length, 1))
    return np.stack([np.interp(pixels, centres, eye[:, i]) for i in range(n)], axis=1)


def field_centres(field) -> tuple[np.ndarray, np.ndarray]:
    """``(row_centres (h,), col_centres (w,))`` in input pixels of a
    `kerasviz.inspect.ReceptiveField`: the middle of each cell's full window (before clipping
    at the border, so a "same"-padded cell stays centred on its own pixel)."""
    rows = np.asarray(field.full_rows, np.float64)
    cols = np.asarray(field.full_cols, np.float64)
    return (rows[:, 0] + rows[:, 1] - 1) / 2, (cols[:, 0] + cols[:, 1] - 1) / 2


def placement_weights(field) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (H, h), cols (W, w))`` float32: the linear maps `place_grid` applies along each
    axis (``rows @ grid @ cols.T``), for placing grids inside a compiled graph."""
    rows, cols = field_centres(field)
    height, width = (int(v) for v in field.input_size)
    return _weights(rows, height).astype(np.float32), _weights(cols, width).astype(np.float32)


def place_grid(grid, field) -> np.ndarray:
    """Place a grid ``(N, h, w)`` (or ``(h, w)``) on the input of its layer by receptive fields.

    Cell ``(i, j)`` is put at the centre of its receptive field (`field_centres`); each pixel
    takes the bilinear interpolation of the four nearest cell centres, and pixels outside the
    outermost centres take the value of the nearest one (no extrapolation). At a centre pixel
    the map equals its cell's value exactly.

    Args:
        grid: ``(N, h, w)`` or ``(h, w)`` values, one per output position of the layer.
        field: the layer's `kerasviz.inspect.ReceptiveField` (``inspect.receptive_field(model,
            layer)``); only its ``full_rows``, ``full_cols`` and ``input_size`` are read.

    Returns:
        float32 ``(N, H, W)`` (``(H, W)`` for a 2-D grid) at the input's size.

    Raises:
        ValueError: a grid whose ``(h, w)`` is not the field's output size.

    >>> place_grid(cam_grid, inspect.receptive_field(model, "conv4")).shape
    (6, 32, 32)
    """
    arr = np.asarray(grid, np.float64)
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    rows, cols = field_centres(field)
    if arr.ndim != 3 or arr.shape[1:] != (rows.shape[0], cols.shape[0]):
        raise ValueError(
            f"Expected `grid` of shape (N, {rows.shape[0]}, {cols.shape[0]}) (the layer's output "
            f"size). Received: grid.shape={np.asarray(grid).shape}"
        )
    height, width = (int(v) for v in field.input_size)
    along_rows = _weights(rows, height)  # (H, h)
    along_cols = _weights(cols, width)  # (W, w)
    placed = np.einsum("Yh,nhw,Xw->nYX", along_rows, arr, along_cols)  # (N, H, W)
    placed = placed.astype(np.float32)
    return placed[0] if single else placed
