"""Zeiler and Fergus's pictures: top dataset patches per unit (Fig. 2) and the occlusion row
(Fig. 7), plus the report section "What units respond to".

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014. Inputs
are the arrays `kerasviz.activations.top_patches` and `kerasviz.attribution.Occlusion` return
(read by attribute; nothing here computes).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import numpy as np

from kerasviz.plot import _base

OUTSIDE = np.array([0.92, 0.92, 0.92], np.float32)  # the padding of border patches
OUTSIDE_DARK = np.array([0.78, 0.78, 0.78], np.float32)  # its checker


def _rgb(x: np.ndarray) -> np.ndarray:
    """``(..., h, w, C)`` with C in (1, 3) as RGB ``(..., h, w, 3)``."""
    if x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    if x.shape[-1] != 3:
        raise ValueError(
            f"Expected patches with 1 or 3 channels to draw. Received: {x.shape[-1]} channels"
        )
    return x


def _mark_outside(tiles: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """RGB tiles ``(..., h, w, 3)`` with the pixels outside the image as a light checker."""
    h, w = tiles.shape[-3:-1]
    checker = ((np.arange(h)[:, None] // 2 + np.arange(w)[None, :] // 2) % 2).astype(bool)
    pad = np.where(checker[..., None], OUTSIDE_DARK, OUTSIDE)  # (h, w, 3)
    return np.where(valid[..., None], tiles, pad)


def patch_display(patches: np.ndarray, valid: np.ndarray, display: Callable | None = None):
    """Patches ``(..., h, w, C)`` in the model's range as RGB in [0, 1], padding marked.

    ``display`` maps model inputs to [0, 1] (`kerasviz._preprocess.Preprocessing.display`);
    default: one linear scale from the smallest to the largest pixel inside the images.
    """
    x = np.asarray(patches, np.float32)
    valid = np.asarray(valid, bool)
    if display is not None:
        shape = x.shape
        x = np.asarray(display(x.reshape(-1, *shape[-3:])), np.float32)
        x = x.reshape(*shape[:-1], x.shape[-1])
    else:
        inside = x[valid] if valid.any() else x
        lo, hi = float(inside.min()), float(inside.max())
        x = (x - lo) / (hi - lo if hi > lo else 1.0)
    return _mark_outside(np.clip(_rgb(x), 0.0, 1.0), valid)


def projection_display(projections: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Projections ``(..., h, w, C)`` as RGB in [0, 1]: grey is 0, each contrast-stretched on
    its own (as Zeiler and Fergus show them: the 99th percentile of its magnitudes saturates),
    padding marked."""
    p = np.asarray(projections, np.float32)
    flat = np.abs(p).reshape(*p.shape[:-3], -1)
    bound = np.percentile(flat, 99, axis=-1)[..., None, None, None]
    bound = np.where(bound > 0, bound, np.abs(p).max(axis=(-3, -2, -1), keepdims=True))
    x = 0.5 + 0.5 * p / np.where(bound > 0, bound, 1.0)
    return _mark_outside(np.clip(_rgb(x), 0.0, 1.0), np.asarray(valid, bool))


def top_patch_grid(
    top,
    units: Sequence[int] | None = None,
    display: Callable | None = None,
    projections: bool | None = None,
    size: float = 0.6,
    title: str | None = None,
):
    """Zeiler and Fergus's Fig. 2: for each unit its top patches, with their projections.

    One row per unit with its ``k`` patches, strongest first (the value above each), each the
    unit's receptive field (a light checker where the field leaves the image); with
    projections, the row below shows the deconvnet (or guided) projection of each activation.

    Args:
        top: a `kerasviz.activations.TopPatches`.
        units: the channels to draw, in order (each one of ``top.units``); default all.
        display: maps model inputs to [0, 1] for drawing (default: one linear scale).
        projections: draw the projection rows; ``None``: when ``top`` has projections.
        size: inches per tile.
        title: a figure title (default: the layer and its field size).

    Returns:
        A matplotlib ``Figure``.

    Raises:
        ValueError: a unit not in ``top.units``; projections asked for but absent.

    >>> fig = top_patch_grid(top_patches(model, "conv3", images, units=range(8)))
    """
    channels = [int(u) for u in top.units]
    chosen = channels if units is None else [int(u) for u in units]
    missing = [u for u in chosen if u not in channels]
    if missing or not chosen:
        raise ValueError(
            f"Expected `units` among the units of `top` {channels}. Received: units={units!r}"
        )
    rows_of = [channels.index(u) for u in chosen]
    if projections is None:
        projections = top.projections is not None
    if projections and top.projections is None:
        raise ValueError(
            "`top` has no projections: pass projection='deconvnet' to top_patches, or "
            "projections=False."
        )
    k = top.values.shape[1]
    tiles = patch_display(top.patches[rows_of], top.valid[rows_of], display)  # (U, k, h, w, 3)
    proj = projection_display(top.projections[rows_of], top.valid[rows_of]) if projections else None
    per_unit = 2 if projections else 1
    fig, axes = _base.figure(len(chosen) * per_unit, max(k, 1) + 1, size=size)
    for r, unit in enumerate(chosen):
        label = axes[r * per_unit, 0]
        label.text(0.5, 0.5, f"unit {unit}", ha="center", va="center", fontsize=6)
        if projections:
            axes[r * per_unit + 1, 0].text(
                0.5, 0.5, top.rule or "projection", ha="center", va="center", fontsize=5
            )
        for j in range(k):
            ax = axes[r * per_unit, j + 1]
            ax.imshow(tiles[r, j], interpolation="nearest")
            ax.set_title(f"{top.values[rows_of[r], j]:.2g}", fontsize=5, pad=1)
            if projections:
                axes[r * per_unit + 1, j + 1].imshow(proj[r, j], interpolation="nearest")
    fh, fw = top.patches.shape[2:4]
    _base.finish(fig, title or f"{top.layer}: top {k} patches per unit ({fh} x {fw} field)")
    return fig


def _label_colours(count: int):
    from matplotlib import colormaps

    cmap = colormaps["tab20" if count > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(count)]


def occlusion_row(
    image: np.ndarray,
    feature_map: np.ndarray,
    explanation,
    target: int | None = None,
    class_names: Sequence[str] | None = None,
    display: Callable | None = None,
    index: int = 0,
    size: float = 2.2,
):
    """Zeiler and Fergus's Fig. 7 row for one image.

    Panels: (a) the image; (b) the strongest feature map (the unit's activation on the
    unoccluded image); (c) the unit's total activation as a function of the occluder's
    position; (d) the probability of ``target`` as a function of the occluder's position;
    (e) the most probable class at each position, with a legend.

    Args:
        image: ``(H, W, C)`` the image, in the model's range.
        feature_map: ``(h, w)`` the unit's activation map on the unoccluded image.
        explanation: the `kerasviz.attribution.Explanation` of
            ``Occlusion(model, ..., layer=L).explain_full`` (grid, reference, targets,
            position_scores, labels).
        target: the class of panel (d); default: the class most probable over the positions.
        class_names: names of the classes for titles and the legend.
        display: maps model inputs to [0, 1] for drawing.
        index: which image of ``explanation``.
        size: inches per panel.

    Returns:
        A matplotlib ``Figure``.

    Raises:
        ValueError: an explanation without the label map or the unit's reference (not from
            `Occlusion` with ``layer``).

    >>> result = Occlusion(model, patch=8, stride=4, layer="conv4").explain_full(images)
    >>> fig = occlusion_row(images[0], maps[0, ..., result.targets[0]], result, target=2)
    """
    if explanation.labels is None or explanation.reference is None or explanation.layer is None:
        raise ValueError(
            "Expected the explain_full result of Occlusion(model, ..., layer=L) (with labels, "
            "reference and layer). Received: an explanation without them."
        )
    scores = explanation.position_scores[index]  # (rows, cols, K)
    labels = explanation.labels[index]
    unit = int(explanation.targets[index])
    total = explanation.reference[index] - explanation.grid[index]  # the unit's total activation
    if target is None:
        target = int(np.argmax(scores.mean(axis=(0, 1))))

    def name(c):
        return class_names[c] if class_names is not None else str(c)

    fig, axes = _base.figure(1, 5, size=size)
    shown = np.asarray(display(image[None]))[0] if display is not None else image
    _base.show_image(axes[0, 0], shown, "(a) input image")
    panels = [
        (feature_map, "viridis", f"(b) {explanation.layer}, unit {unit}"),
        (total, "viridis", f"(c) unit {unit}: total activation\nvs occluder position"),
        (scores[..., target], "jet", f"(d) p({name(target)})\nvs occluder position"),
    ]
    for ax, (grid, cmap, title) in zip(axes[0, 1:4], panels, strict=True):
        im = ax.imshow(grid, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=5)
    present = sorted(int(c) for c in np.unique(labels))
    colours = _label_colours(len(present))
    rgb = np.zeros((*labels.shape, 3), np.float32)
    for colour, c in zip(colours, present, strict=True):
        rgb[labels == c] = colour[:3]
    ax = axes[0, 4]
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title("(e) most probable class\nvs occluder position", fontsize=7)
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=col, label=name(c)) for col, c in zip(colours, present, strict=True)],
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=6,
        frameon=False,
    )
    _base.finish(fig)
    return fig


def units_section(
    tops: Sequence,
    figure: Callable[..., str],
    display: Callable | None = None,
    units_per_layer: int = 8,
    name: str = "units",
) -> str:
    """The HTML of the report section "What units respond to" (Zeiler and Fergus, Fig. 2).

    Draws, per `TopPatches` in ``tops``, the units with the strongest top activations (at most
    ``units_per_layer``) with `top_patch_grid`, and returns the section's HTML.

    Args:
        tops: `kerasviz.activations.TopPatches` results, one per layer (computed on the
            report's reference set).
        figure: ``figure(fig, name, alt, width=None) -> str`` saves a Figure and returns its
            ``<img>`` tag (the report's ``_Page.figure``).
        display: maps model inputs to [0, 1] for drawing.
        units_per_layer: units drawn per layer.
        name: the stem of the saved figures' names (``units_0``, ``units_1``...).

    Returns:
        HTML (paragraphs, headings and image tags).

    >>> tops = [top_patches(model, "conv4", reference, projection="deconvnet")]
    >>> body = units_section(tops, page.figure, display=prep.display)
    """
    parts = [
        '<p class="note">For each unit (channel) of a layer, the images of the reference set '
        "where it fires most, strongest first (at most one per image), each cut to the unit's "
        "exact receptive field (a light checker where the field leaves the image); beneath, "
        "where shown, the deconvnet projection of that one activation onto its patch "
        "(Zeiler and Fergus 2014, Fig. 2). Units are those with the strongest activations.</p>"
    ]
    if not tops:
        parts.append('<p class="note">No spatial layer to show.</p>')
    for i, top in enumerate(tops):
        strength = np.where(np.isfinite(top.values), top.values, -np.inf).mean(axis=1)
        order = np.argsort(-strength, kind="stable")[:units_per_layer]
        chosen = [int(top.units[j]) for j in order]
        fh, fw = top.patches.shape[2:4]
        parts.append(
            f"<h3><code>{html.escape(top.layer)}</code>: receptive field {fh} x {fw} pixels, "
            f"{top.images_seen} images searched</h3>"
        )
        fig = top_patch_grid(top, units=chosen, display=display)
        parts.append(figure(fig, f"{name}_{i}", f"top patches of {top.layer}", width=720))
    return "".join(parts)
