"""Attribution maps drawn over their images: one method, or a grid of images x methods.

Works for any method that returns ``(N, H, W)`` maps (occlusion, gradients, CAM, LIME).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kerasviz import _checks
from kerasviz.imageio import as_display
from kerasviz.plot import _base

SCALES = ("each", "method")


def _limits(heat: np.ndarray, symmetric: bool | None) -> tuple[float, float, bool]:
    """``(vmin, vmax, symmetric)`` for a map or a stack of maps."""
    lo, hi = float(np.min(heat)), float(np.max(heat))
    if symmetric is None:
        symmetric = lo < 0 < hi
    if symmetric:
        bound = max(abs(lo), abs(hi)) or 1.0
        return -bound, bound, True
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi, False


def draw_explanation(
    ax,
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = 0.5,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    symmetric: bool | None = None,
    title: str | None = None,
):
    """Draw ``heatmap`` ``(H, W)`` over ``image`` ``(H, W, C)`` in ``ax``; return the map artist.

    The colour scale is ``[vmin, vmax]`` when both are given, else taken from the map
    (centred on 0 when ``symmetric``, or when the map has both signs and ``symmetric`` is
    ``None``). Default colour map: ``"bwr"`` for symmetric scales, ``"jet"`` otherwise.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    if vmin is None or vmax is None:
        vmin, vmax, symmetric = _limits(heat, symmetric)
    elif symmetric is None:
        symmetric = vmin < 0 < vmax and np.isclose(-vmin, vmax)
    _base.show_image(ax, image)
    artist = ax.imshow(
        heat, cmap=cmap or ("bwr" if symmetric else "jet"), vmin=vmin, vmax=vmax, alpha=alpha
    )
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    return artist


def draw_greyed(ax, image: np.ndarray, reason: str, title: str | None = None) -> None:
    """Draw ``image`` faded to grey in ``ax`` with ``reason`` over it: a map that is not shown
    because it cannot be read (a flat model output, a range at float noise)."""
    import textwrap

    img = as_display(np.asarray(image))
    grey = img if img.ndim == 2 else img.mean(axis=-1)
    ax.imshow(0.75 + 0.2 * grey, cmap="gray", vmin=0, vmax=1)
    ax.text(
        0.5,
        0.5,
        textwrap.fill(reason, 22),
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=6.5,
        color="#333",
    )
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def explanation_grid(
    images: np.ndarray,
    explanations: Mapping[str, np.ndarray],
    titles: Sequence[str] | None = None,
    alpha: float = 0.5,
    cmap: str | None = None,
    symmetric: bool | None = None,
    scale: str = "each",
    show_images: bool = True,
    colorbar: bool = False,
    size: float = 2.0,
    reasons: Mapping[str, Sequence[str | None]] | None = None,
):
    """A grid with one row per image and one column per method, maps over their images.

    Args:
        images: ``(N, H, W, C)`` images, or one image ``(H, W, C)``.
        explanations: method name -> maps ``(N, H, W)`` (or ``(H, W)`` for one image), all at
            the images' resolution; columns follow the mapping's order.
        titles: one title per image, shown on the first column (e.g. class names).
        alpha: opacity of the maps.
        cmap: colour map for every method (default ``"bwr"`` for signed maps, ``"jet"``).
        symmetric: centre the colour scale on 0; ``None`` decides per map (per method with
            ``scale="method"``) from whether it has both signs.
        scale: ``"each"`` scales every map to its own range; ``"method"`` shares one range per
            method (column) across images, so images can be compared.
        show_images: add a first column with the plain images.
        colorbar: add a colour bar to every map.
        size: inches per cell.
        reasons: method name -> one entry per image: ``None``, or why that map must not be
            read (a flat model output, a range at float noise). Such a cell shows the image
            greyed with the reason instead of the stretched map, and its map is left out of
            the shared ``scale="method"`` range.

    Returns:
        The ``Figure``; ``fig.axes`` run row by row.

    Raises:
        ValueError: no methods, maps of the wrong shape, a wrong number of titles, an unknown
            ``scale``.

    >>> fig = explanation_grid(images, {"occlusion": occ_maps, "grad-cam": cam_maps})
    >>> len(fig.axes)  # images (2, 64, 64, 3): 2 rows x (image + 2 methods)
    6
    """
    imgs, single = _checks.as_batch(np.asarray(images), "N, H, W, C", "images")
    _checks.check_choice(scale, "scale", SCALES)
    if not isinstance(explanations, Mapping) or not explanations:
        raise ValueError(
            "Expected `explanations` to be a non-empty dict of method name -> "
            f"(N, H, W) maps. Received: {type(explanations).__name__}"
        )
    n, h, w = imgs.shape[:3]
    maps = {}
    for name, value in explanations.items():
        arr = np.asarray(value, dtype=np.float32)
        if single and arr.ndim == 2:
            arr = arr[None]
        if arr.shape != (n, h, w):
            raise ValueError(
                f"Expected `explanations[{name!r}]` of shape {(n, h, w)} to match "
                f"`images`. Received: shape={np.asarray(value).shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`explanations[{name!r}]` contains NaN or infinite values.")
        maps[str(name)] = arr
    greyed = {name: [None] * n for name in maps}
    for name, values in (reasons or {}).items():
        if name not in maps or len(values) != n:
            raise ValueError(
                f"Expected `reasons` to map method names of `explanations` to {n} entries "
                f"(one per image). Received: {name!r} with {len(values)}"
            )
        greyed[name] = [None if v is None else str(v) for v in values]
    if titles is not None and len(titles) != n:
        raise ValueError(
            f"Expected `titles` with {n} entries (one per image). Received: {len(titles)}"
        )
    offset = 1 if show_images else 0
    fig, axes = _base.figure(n, len(maps) + offset, size=size)
    for col, (name, arr) in enumerate(maps.items()):
        readable = [row for row in range(n) if greyed[name][row] is None]
        shared = _limits(arr[readable], symmetric) if scale == "method" and readable else None
        for row in range(n):
            ax = axes[row, col + offset]
            if greyed[name][row] is not None:
                draw_greyed(ax, imgs[row], greyed[name][row], title=name if row == 0 else None)
                continue
            if shared is None:
                vmin, vmax, sym = _limits(arr[row], symmetric)
            else:
                vmin, vmax, sym = shared
            artist = draw_explanation(
                ax,
                imgs[row],
                arr[row],
                alpha=alpha,
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                symmetric=sym,
                title=name if row == 0 else None,
            )
            if colorbar:
                fig.colorbar(artist, ax=ax, fraction=0.046, pad=0.04)
    if show_images:
        for row in range(n):
            ax = axes[row, 0]
            _base.show_image(ax, imgs[row], titles[row] if titles is not None else None)
    elif titles is not None:
        for row in range(n):
            axes[row, 0].set_title(f"{titles[row]}\n{axes[row, 0].get_title()}".strip(), fontsize=8)
    fig.tight_layout()
    return fig
