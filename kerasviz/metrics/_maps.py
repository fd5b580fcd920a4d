"""What every metric does to explanation maps: check them against the images, rank pixels."""

from __future__ import annotations

import numpy as np

from kerasviz import _checks


def maps_for(explanations, batch: np.ndarray, single: bool) -> np.ndarray:
    """Maps checked against the images they explain: one ``(H, W)`` map per image.

    Args:
        explanations: the maps as given (`kerasviz._checks.check_maps` forms).
        batch: the checked ``(N, H, W, C)`` images.
        single: whether one image was given (for the shape named in errors).

    Returns:
        float32 ``(N, H, W)`` maps.

    Raises:
        ValueError: maps of another shape than the images'.

    >>> maps_for(np.zeros((8, 8)), np.zeros((1, 8, 8, 3)), True).shape
    (1, 8, 8)
    """
    maps, _ = _checks.check_maps(explanations)
    want = batch.shape[:3]
    if maps.shape != want:
        shown = f"({want[1]}, {want[2]})" if single else str(tuple(want))
        raise ValueError(
            f"Expected `explanations` of shape {shown} (one (H, W) map per image "
            f"of `inputs`). Received: explanations.shape="
            f"{np.shape(explanations)}"
        )
    return maps


def rank(maps: np.ndarray) -> np.ndarray:
    """Importance rank of each pixel, 0 = most important; ties keep row-major order.

    ``(N, H, W)`` float -> ``(N, H, W)`` int32.

    >>> rank(np.array([[[0.1, 0.9], [0.5, 0.5]]]))
    array([[[3, 0],
            [1, 2]]], dtype=int32)
    """
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")  # (N, P): pixel indices, best first
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None].repeat(n, 0), axis=1)
    return ranks.reshape(maps.shape).astype(np.int32)
