"""LIME pictures: the classic view (top superpixels kept, the rest greyed) and the heat map."""

from __future__ import annotations

import numpy as np

from kerasviz.imageio import as_display
from kerasviz.plot._base import figure, overlay


def _check(image, segments, weights):
    img = np.asarray(image)
    seg = np.asarray(segments)
    w = np.asarray(weights, dtype=np.float32)
    if img.ndim not in (2, 3):
        raise ValueError(f"Expected `image` of rank 3 (H, W, C). Received: shape={img.shape}")
    if seg.shape != img.shape[:2] or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(
            f"Expected integer `segments` of shape {img.shape[:2]} (H, W). "
            f"Received: shape={seg.shape}, dtype={seg.dtype}"
        )
    if w.ndim != 1 or seg.min() < 0 or seg.max() >= w.shape[0]:
        raise ValueError(
            f"Expected `weights` of shape (S,) with one weight per segment label "
            f"0..{int(seg.max())}. Received: shape={w.shape}"
        )
    return img, seg, w


def top_segments(weights, k: int = 5) -> np.ndarray:
    """Labels of the ``k`` superpixels with the largest positive weights (fewer if fewer > 0).

    >>> top_segments(np.array([0.1, -2.0, 0.5]), k=5)
    array([2, 0])
    """
    w = np.asarray(weights)
    order = np.argsort(-w, kind="stable")
    return order[w[order] > 0][:k]


def lime_view(
    image, segments, weights, k: int = 5, ax=None, grey: float = 0.35, title: str | None = None
):
    """The classic LIME picture: the ``k`` most positive superpixels in colour, the rest greyed.

    Args:
        image: ``(H, W, C)`` in any range (scaled for display).
        segments: ``(H, W)`` int superpixel labels ``0 .. S - 1``.
        weights: ``(S,)`` superpixel weights (``weights[i]`` of `Lime.explain_full`'s
            `kerasviz.attribution.Explanation`).
        k: how many superpixels to show.
        ax: an existing Axes, or ``None`` for a new Figure.
        grey: how much of the hidden part's own brightness stays visible (0 = flat grey).
        title: a title above the image.

    Returns:
        ``(Figure, Axes)``.

    >>> fig, ax = lime_view(images[0], result.segments[0], result.weights[0], k=5)
    """
    from skimage.segmentation import find_boundaries

    img, seg, w = _check(image, segments, weights)
    shown = np.isin(seg, top_segments(w, k))
    rgb = as_display(img)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    lum = rgb.mean(axis=-1, keepdims=True)
    out = np.where(shown[..., None], rgb, 0.5 * (1 - grey) + grey * lum)
    edges = find_boundaries(np.where(shown, seg, -1), mode="inner") & shown
    out[edges] = (1.0, 0.85, 0.0)
    if ax is None:
        fig, axes = figure(1, 1, size=3.0)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    ax.imshow(np.clip(out, 0, 1))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return fig, ax


def lime_overlay(
    image,
    segments,
    weights,
    ax=None,
    alpha: float = 0.55,
    title: str | None = None,
    colorbar: bool = False,
):
    """Superpixel weights as a signed heat map over the image (red helps, blue hurts).

    >>> fig, ax = lime_overlay(images[0], result.segments[0], result.weights[0])
    """
    img, seg, w = _check(image, segments, weights)
    return overlay(img, w[seg], ax=ax, alpha=alpha, symmetric=True, title=title, colorbar=colorbar)


def lime_figure(images, segments, weights, k: int = 5, titles=None, size: float = 2.0):
    """One row per image: the image, the LIME view (top ``k``) and the heat map.

    Args:
        images: ``(N, H, W, C)``.
        segments: ``(N, H, W)`` int labels.
        weights: ``N`` arrays of superpixel weights.
        k: superpixels shown in the LIME view.
        titles: optional ``N`` row titles.
        size: inches per panel.

    Returns:
        The ``Figure``.

    >>> fig = lime_figure(images, result.segments, result.weights)
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(segments) != images.shape[0] or len(weights) != images.shape[0]:
        raise ValueError(
            "Expected `images` (N, H, W, C) with N `segments` and N `weights`. "
            f"Received: {images.shape}, {len(segments)} segments, "
            f"{len(weights)} weights"
        )
    n = images.shape[0]
    fig, axes = figure(n, 3, size=size)
    from kerasviz.plot._base import show_image

    for i in range(n):
        show_image(axes[i, 0], images[i], None if titles is None else str(titles[i]))
        lime_view(
            images[i],
            segments[i],
            weights[i],
            k=k,
            ax=axes[i, 1],
            title=f"top {k} superpixels" if i == 0 else None,
        )
        lime_overlay(
            images[i], segments[i], weights[i], ax=axes[i, 2], title="weights" if i == 0 else None
        )
    fig.tight_layout()
    return fig
