"""What a hidden pixel shows: fills, baselines and canvases, with one blur rule.

Occlusion's fill, Integrated Gradients' baseline, LIME's hidden superpixels and the deletion
and insertion references of `kerasviz.metrics` all replace pixels by a *reference* image. They
share these forms and this module:

* a number (every channel), a ``(C,)`` colour, an ``(H, W, C)`` image or an ``(N, H, W, C)``
  batch like the inputs;
* ``"zeros"``: black;
* ``"mean"``: each image's mean colour (per channel);
* ``"blur"``: the image under a Gaussian blur of ``sigma`` pixels along rows and columns
  (never across images or channels), reflecting at the border.

One sigma rule everywhere: ``blur_sigma=None`` means ``max(H, W) / 16`` (4 px at 64 px, 14 px
at 224 px), wide enough to remove the detail a part of the image carries and narrow enough to
keep its colour.
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks

NAMED = ("zeros", "mean", "blur")


def default_sigma(height: int, width: int) -> float:
    """The blur sigma in pixels when none is given: ``max(H, W) / 16``.

    >>> default_sigma(64, 48)
    4.0
    """
    return max(int(height), int(width)) / 16.0


def check_sigma(value, name: str = "blur_sigma") -> float | None:
    """``None`` or a finite number > 0, as a float."""
    return None if value is None else _checks.check_positive_float(value, name)


def sigma_for(batch: np.ndarray, sigma: float | None) -> float:
    """``sigma``, or the default for the images of ``batch`` ``(N, H, W, C)``."""
    return default_sigma(batch.shape[1], batch.shape[2]) if sigma is None else float(sigma)


def blur(batch: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Gaussian blur of each image of ``batch`` ``(N, H, W, C)``, float32.

    >>> blur(np.zeros((2, 8, 8, 3)), 1.0).shape
    (2, 8, 8, 3)
    """
    from scipy.ndimage import gaussian_filter

    s = sigma_for(batch, sigma)
    return gaussian_filter(batch, sigma=(0, s, s, 0), mode="reflect").astype(np.float32)


def mean_colour(batch: np.ndarray) -> np.ndarray:
    """Each image's mean colour, float32 ``(N, 1, 1, C)`` (accumulated in float64)."""
    return batch.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)


def check_reference(value, name: str, names: tuple[str, ...] = NAMED):
    """Check a reference setting once, at construction: a name of ``names`` or numeric.

    Returns the name, or the value as a float32 array (shapes are checked against the images
    in `reference`).
    """
    if isinstance(value, str):
        return _checks.check_choice(value, name, names)
    if isinstance(value, bool):
        raise TypeError(
            f"Expected `{name}` to be a number, an array or one of {names}. "
            f"Received: {name}={value!r}"
        )
    arr = _checks.real_array(value, name).astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def reference(value, batch: np.ndarray, name: str, sigma: float | None = None) -> np.ndarray:
    """The reference images ``(N, H, W, C)`` float32 for ``batch``.

    Args:
        value: a name of `NAMED` or numeric (see the module docstring).
        batch: float32 ``(N, H, W, C)`` images.
        name: the argument named in errors.
        sigma: the blur sigma; ``None`` for `default_sigma`.

    Raises:
        ValueError: an unknown name, non-finite values, or a shape that is none of ``()``,
            ``(C,)``, ``(H, W, C)``, ``(N, H, W, C)``.
        TypeError: a boolean.

    >>> reference("mean", np.ones((2, 4, 4, 3)), "fill").shape
    (2, 4, 4, 3)
    """
    value = check_reference(value, name)
    if isinstance(value, str):
        if value == "zeros":
            return np.zeros_like(batch, dtype=np.float32)
        if value == "mean":
            return np.ascontiguousarray(np.broadcast_to(mean_colour(batch), batch.shape))
        return blur(batch, sigma)
    if value.ndim == 0 or value.shape in (batch.shape[1:], batch.shape, batch.shape[-1:]):
        return np.ascontiguousarray(np.broadcast_to(value, batch.shape), dtype=np.float32)
    raise ValueError(
        f"Expected `{name}` to be a number, a (C,) colour, an (H, W, C) image or "
        f"an (N, H, W, C) batch like `inputs` {batch.shape}. Received: "
        f"{name}.shape={value.shape}"
    )
