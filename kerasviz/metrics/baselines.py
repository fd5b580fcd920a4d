"""Baselines that ignore the model: the floor every explanation method must beat."""

from __future__ import annotations

import numpy as np

from kerasviz import _checks


def random_map(inputs, seed: int = 0) -> np.ndarray:
    """Uniform noise shaped like the images: the floor every method must beat.

    >>> random_map(np.zeros((2, 8, 8, 3))).shape
    (2, 8, 8)
    """
    batch, single = _checks.check_images(inputs)
    rng = np.random.default_rng(seed)
    maps = rng.random(batch.shape[:3], dtype=np.float32)
    return _checks.restore_single(maps, single)


def edge_map(inputs) -> np.ndarray:
    """Sobel gradient magnitude of the channel-mean image: a map from the image alone.

    Edge maps look like saliency maps yet never consult the model (Adebayo et al. 2018); the
    randomisation check must fail them.

    >>> edge_map(np.zeros((2, 8, 8, 3))).shape
    (2, 8, 8)
    """
    from scipy import ndimage

    batch, single = _checks.check_images(inputs)
    gray = batch.mean(axis=-1)  # (N, H, W)
    gy = ndimage.sobel(gray, axis=1, mode="reflect")
    gx = ndimage.sobel(gray, axis=2, mode="reflect")
    return _checks.restore_single(np.hypot(gx, gy).astype(np.float32), single)
