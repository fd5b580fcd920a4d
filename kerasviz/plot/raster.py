"""Heat-map overlays as pixels and PNG bytes, with numpy and Pillow only (no matplotlib).

Dataset jobs write one overlay per image: drawing a matplotlib figure for each would cost more
than the explanation. These functions compute the colours directly, so they are fast and never
import matplotlib.
"""

from __future__ import annotations

import io

import numpy as np

from kerasviz.imageio import as_display

SIGNED = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], np.float32)  # -, 0, +
RAMP = np.array(
    [[0.0, 0.0, 0.5], [0.0, 0.3, 1.0], [0.0, 0.9, 0.9], [1.0, 0.9, 0.0], [0.9, 0.0, 0.0]],
    np.float32,
)


def colours(values: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``values`` in [0, 1] ``(H, W)`` to RGB ``(H, W, 3)`` by linear interpolation of anchors.

    Args:
        values: any shape; clipped to [0, 1].
        anchors: ``(A, 3)`` RGB colours at ``0, 1/(A-1), ..., 1``, ``A >= 2``.

    Returns:
        float32 RGB of shape ``values.shape + (3,)``.

    >>> colours(np.array([0.0, 0.5, 1.0]), SIGNED).tolist()
    [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]
    """
    pos = np.clip(values, 0.0, 1.0) * (len(anchors) - 1)
    low = np.minimum(pos.astype(np.int64), len(anchors) - 2)
    frac = (pos - low)[..., None]
    return anchors[low] * (1.0 - frac) + anchors[low + 1] * frac


def overlay_rgb(image: np.ndarray, explanation: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The map over the image as uint8 RGB ``(H, W, 3)``: no figure, fast enough for datasets.

    Signed maps (both signs present) are centred on 0 (blue negative, white 0, red positive);
    others go from dark blue (lowest) to red (highest). The image is shown as it is when it lies
    in [0, 1], else rescaled to its own range (`kerasviz.imageio.as_display`).

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, C)`` with ``C >= 3`` (the first three
            channels are shown).
        explanation: the map ``(H, W)``; NaN counts as 0.
        alpha: weight of the colours against the image.

    Returns:
        uint8 ``(H, W, 3)``.

    >>> overlay_rgb(np.zeros((8, 8, 1)), np.ones((8, 8))).shape
    (8, 8, 3)
    """
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    img = as_display(img[..., :3])
    m = np.nan_to_num(np.asarray(explanation, np.float32))
    if m.min() < 0.0 < m.max():
        scale = float(np.abs(m).max())
        colour = colours(0.5 + 0.5 * m / scale, SIGNED)
    else:
        low, high = float(m.min()), float(m.max())
        colour = colours((m - low) / (high - low) if high > low else np.zeros_like(m), RAMP)
    mixed = (1.0 - alpha) * img + alpha * colour
    return np.round(np.clip(mixed, 0.0, 1.0) * 255.0).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """A uint8 image ``(H, W)`` or ``(H, W, 3)`` encoded as PNG.

    >>> png_bytes(np.zeros((2, 2, 3), np.uint8))[:4]
    b'\\x89PNG'
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()
