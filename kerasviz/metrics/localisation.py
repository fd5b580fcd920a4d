"""Localisation against ground truth: does the map point at the object a mask marks?

`pointing_game` (Zhang et al., ECCV 2016), `energy_in_mask` (the energy-based pointing game of
Score-CAM, Wang et al. 2020) and `top_k_iou`; numpy in, numpy out.
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks
from kerasviz.metrics._maps import rank


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def pointing_game(explanations, masks, tolerance: int = 0) -> np.ndarray:
    """Whether each map's maximum falls inside the object (Zhang et al., ECCV 2016).

    When several pixels share the maximum, the hit is the share of them inside the mask, so a
    flat map scores the mask's area rather than a free hit. The mean over images is the
    pointing-game accuracy.

    Args:
        explanations: ``(N, H, W)`` maps or one ``(H, W)`` map.
        masks: boolean (or 0/1) masks of the same shape; each must mark a pixel.
        tolerance: the mask is grown by this many pixels (a disk) before testing; Zhang et
            al. use 15 px at 224 px.

    Returns:
        ``(N,)`` float32 hits in [0, 1] (a 0-d array for one map).

    Raises:
        ValueError: shapes differ, an empty mask, a negative tolerance.

    >>> pointing_game(maps, masks).mean()  # accuracy over the batch
    0.9375
    """
    maps, single = _checks.check_maps(explanations)
    marks = _checks.check_masks(masks, maps)
    tol = _checks.check_positive_int(tolerance, "tolerance", minimum=0)
    if tol:
        from scipy import ndimage

        disk = _disk(tol)
        marks = np.stack([ndimage.binary_dilation(m, structure=disk) for m in marks])
    top = maps == maps.max(axis=(1, 2), keepdims=True)  # (N, H, W) the maxima
    hits = (top & marks).sum(axis=(1, 2)) / top.sum(axis=(1, 2))
    return _checks.restore_single(hits.astype(np.float32), single)


def energy_in_mask(explanations, masks) -> np.ndarray:
    """Share of the positive attribution that lies inside the mask.

    ``sum(max(e, 0) * mask) / sum(max(e, 0))`` per image ("energy-based pointing game",
    Wang et al., Score-CAM, 2020). A map with no positive value has no energy to place: NaN.

    Args:
        explanations: ``(N, H, W)`` maps or one ``(H, W)`` map.
        masks: boolean (or 0/1) masks of the same shape; each must mark a pixel.

    Returns:
        ``(N,)`` float32 in [0, 1] or NaN (a 0-d array for one map).

    >>> energy_in_mask(np.array([[1., 3.], [0., -2.]]), np.array([[0, 1], [1, 1]]))
    array(0.75, dtype=float32)
    """
    maps, single = _checks.check_maps(explanations)
    marks = _checks.check_masks(masks, maps)
    positive = np.maximum(maps, 0.0).astype(np.float64)
    total = positive.sum(axis=(1, 2))
    inside = (positive * marks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    return _checks.restore_single(share.astype(np.float32), single)


def top_k_iou(explanations, masks, fraction: float | None = None) -> np.ndarray:
    """Intersection over union of each map's top pixels with the mask.

    Args:
        explanations: ``(N, H, W)`` maps or one ``(H, W)`` map.
        masks: boolean (or 0/1) masks of the same shape; each must mark a pixel.
        fraction: share of the pixels kept (the top-k%), in (0, 1]; ``None`` keeps as many
            pixels as each mask has, so a map that ranks the mask first scores exactly 1.
            Ties keep row-major order.

    Returns:
        ``(N,)`` float32 IoU in [0, 1] (a 0-d array for one map).

    >>> top_k_iou(maps, masks, fraction=0.1).shape
    (16,)
    """
    maps, single = _checks.check_maps(explanations)
    marks = _checks.check_masks(masks, maps)
    n, h, w = maps.shape
    if fraction is None:
        k = marks.reshape(n, -1).sum(axis=1)
    else:
        share = _checks.check_fraction(fraction, "fraction")
        k = np.full(n, max(1, int(round(share * h * w))))
    top = rank(maps) < k[:, None, None]  # (N, H, W)
    inter = (top & marks).sum(axis=(1, 2))
    union = (top | marks).sum(axis=(1, 2))
    return _checks.restore_single((inter / union).astype(np.float32), single)


# --------------------------------------------------------------------------------------------
# Baselines that ignore the model
