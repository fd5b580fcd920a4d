"""The one-command HTML report of a model: filters, activations, predictions, explanations,
feature space. The folder it writes is self-contained (relative links to PNG files only), so it
can be zipped and opened elsewhere.

The page is built in a temporary folder next to the destination and moved into place when it
is complete; an existing report is replaced only when ``force=True``.

It stays bounded on a 150-layer backbone: the layer table is folded, activation maps are shown
for one representative layer per resolution stage (at most `MAX_LAYERS`) and the strongest
channels only, and the whole page holds at most ``max_figures`` images. It says when a
picture cannot be read: an image whose model outputs are nearly flat, or a map whose range is
at float noise, is drawn grey with the reason, and warned about on stderr.
"""

from __future__ import annotations

import html
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasviz._preprocess import Preprocessing

DEFAULT_METHODS = ("occlusion", "gradcam", "saliency", "lime")
DEFAULT_SAMPLES = {"digits_cnn": "digits", "shapes_cnn": "shapes"}  # saved_models/samples/
MAP_POINTS = 500  # points of the reference set drawn on the 2-D map
UNITS_SHOWN = 8  # units of the "What units respond to" section
MAX_LAYERS = 6  # representative layers of the activation section (one per resolution stage)
CHANNELS_SHOWN = 8  # strongest channels drawn per layer
MAX_FIGURES = 80  # images of a report, all sections together
# Outputs whose scores (log-probabilities for a softmax head) all lie within this span are
# "nearly flat": no class stands out, so every explanation of them is noise.
FLAT_SPREAD = 0.1
# A map whose range is below this fraction of the scores it explains (or of its own values) is
# float noise: float32 carries about 7 digits.
NOISE = 1e-6
# Layers that never represent a stage: inputs, containers, padding, pooling, regularisers.
_NOT_SHOWN = (
    "InputLayer",
    "Functional",
    "Sequential",
    "ZeroPadding2D",
    "Cropping2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "Dropout",
    "SpatialDropout2D",
    "GaussianNoise",
    "BatchNormalization",
)


def is_report_file(rel: str) -> bool:
    """Whether a file of a report folder is one a report writes (for folders written before
    reports carried a marker naming their files)."""
    return rel in ("index.html", "report.json") or rel.startswith(("img/", "projector/"))


@dataclass
class _Page:
    """Sections of HTML and the folder their images go to."""

    root: Path
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (id, title, html)
    timings: dict[str, float] = field(default_factory=dict)
    max_figures: int = MAX_FIGURES
    figures: int = 0
    warnings: list[str] = field(default_factory=list)

    def figure(self, fig, name: str, alt: str, width: int | None = None) -> str:
        """Save a matplotlib Figure as ``img/name.png`` and return its ``<img>`` tag; past the
        page's ``max_figures`` images, a note instead."""
        from kerasviz import plot

        if self.figures >= self.max_figures:
            return (
                f'<p class="note">({html.escape(alt)}: not drawn, the report already holds '
                f"{self.max_figures} images, its limit.)</p>"
            )
        plot.save(fig, self.root / "img" / f"{name}.png")
        self.figures += 1
        style = f' style="max-width:{width}px"' if width else ""
        return f'<img src="img/{name}.png" alt="{html.escape(alt)}"{style}>'

    def warn(self, text: str) -> None:
        """A warning shown at the top of the page and written to stderr at once."""
        self.warnings.append(text)
        sys.stderr.write(f"kerasviz report: warning: {text}\n")
        sys.stderr.flush()

    def add(self, key: str, title: str, body: str) -> None:
        self.sections.append((key, title, body))


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(pairs) -> str:
    """A two-column table of ``(name, value)`` with the names as row headers (no header row)."""
    body = "".join(
        f'<tr><th scope="row">{html.escape(str(k))}</th><td>{html.escape(_fact(v))}</td></tr>'
        for k, v in pairs
    )
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def _fact(value) -> str:
    """A card value as a reader writes it: ``test: 0.972``, ``0 to 1``, not raw JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fact(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(isinstance(v, int | float) for v in value):
            return f"{_fact(value[0])} to {_fact(value[1])}"
        return ", ".join(_fact(v) for v in value)
    return str(value)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
nav a { margin-right: 1em; } table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
code, pre { background: #f4f4f4; padding: 2px 4px; }
table.facts th { font-weight: 600; background: #fafafa; }
details summary { cursor: pointer; margin: 0.5em 0; }
.warn { background: #fff4e0; border-left: 4px solid #e69500; padding: 0.4em 0.8em; }
"""


def _warning_box(warnings) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<div class="warn"><strong>Read with care:</strong><ul>{items}</ul></div>'


def _render(page: _Page, title: str, subtitle: str) -> str:
    nav = " ".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t, _ in page.sections)
    body = "\n".join(
        f'<section id="{k}"><h2>{html.escape(t)}</h2>\n{b}\n</section>' for k, t, b in page.sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="note">{html.escape(subtitle)}</p>'
        f"{_warning_box(page.warnings)}<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )


def _summary_section(page: _Page, model, card: dict, rows) -> None:
    from kerasviz import inspect

    table = _table(
        ("path", "type", "output shape", "params", "filters", "activations", "CAM"),
        [
            (
                r.path,
                r.type,
                r.output_shape,
                f"{r.params:,}",
                "yes" if r.filters else "",
                "yes" if r.activations else "",
                "yes" if r.cam else "",
            )
            for r in rows
        ],
    )
    facts = [
        ("input", inspect.input_shape(model)),
        ("classes", inspect.num_outputs(model)),
        ("parameters", f"{model.count_params():,}"),
        ("layers", len(rows)),
        ("head", inspect.head_activation(model) or "linear"),
    ]
    for key, label in (
        ("data", "data"),
        ("accuracy", "accuracy"),
        ("input_range", "input range"),
        ("trained_by", "trained by"),
    ):
        if key in card:
            facts.append((label, card[key]))
    convs = sum(1 for r in rows if r.filters)
    folded = (
        f"<details><summary>All {len(rows)} layers ({convs} convolution"
        f"{'' if convs == 1 else 's'}): path, type, output "
        f"shape, parameters and what each can be used for</summary>{table}</details>"
    )
    page.add("summary", "Model", _facts(facts) + folded)


def flat_outputs(scores, probabilities: bool) -> list[str | None]:
    """Why each image's model outputs are too flat to explain, or ``None`` when they are not.

    Outputs are nearly flat when no class stands out: all ``K`` scores lie within
    `FLAT_SPREAD` of each other, in log-probability for a softmax head (``probabilities``),
    else in the scores themselves (logits). Explanations of such an output show noise, however
    confident they look once stretched to full contrast (an untrained head gives every class
    1/K).

    Args:
        scores: ``(N, K)`` model outputs.
        probabilities: the outputs are a softmax (they sum to 1).

    Returns:
        ``N`` entries: ``None``, or a sentence naming the top score and its spread.

    >>> flat_outputs(np.full((1, 3), 1 / 3), probabilities=True)[0]
    'outputs nearly flat: top probability 0.333 against 1/K = 0.333 (3 classes)'
    """
    arr = np.asarray(scores, np.float64)
    if arr.ndim != 2:
        raise ValueError(f"Expected `scores` of shape (N, K). Received: scores.shape={arr.shape}")
    n, k = arr.shape
    if k < 2:  # one output (a regression or a binary sigmoid): no classes to compare
        return [None] * n
    reasons: list[str | None] = []
    for row in arr:
        if not np.isfinite(row).all():
            reasons.append("outputs are not finite (NaN or infinity)")
            continue
        if probabilities:
            spread = float(np.ptp(np.log(np.maximum(row, 1e-30))))
            text = (
                f"outputs nearly flat: top probability {row.max():.3f} against 1/K = "
                f"{1 / k:.3f} ({k} classes)"
            )
        else:
            spread = float(np.ptp(row))
            text = f"outputs nearly flat: the {k} scores span only {spread:.2g}"
        reasons.append(text if spread < FLAT_SPREAD else None)
    return reasons


def _flat_for_head(outputs, head: str | None) -> list[str | None]:
    """`flat_outputs` of a model's outputs given its head: a softmax as probabilities,
    independent sigmoid labels as their logits, anything else as scores."""
    if head == "sigmoid":
        clipped = np.clip(np.asarray(outputs, np.float64), 1e-12, 1 - 1e-12)
        return flat_outputs(np.log(clipped / (1 - clipped)), probabilities=False)
    return flat_outputs(outputs, probabilities=head == "softmax")


def noise_maps(maps, scale) -> list[str | None]:
    """Why each map cannot be read, or ``None``: not finite, constant, or a range at float noise.

    A map's range (max - min) is at float noise when it is below `NOISE` times the size of the
    scores it explains (``scale``: the largest absolute score of that image) or times the map's
    own largest absolute value (a constant plus rounding errors).

    Args:
        maps: ``(N, H, W)`` explanations.
        scale: ``(N,)`` the size of the scores explained, per image.

    Returns:
        ``N`` entries: ``None``, or a sentence giving the range.

    >>> noise_maps(np.full((1, 4, 4), 1e-12) * np.arange(16).reshape(1, 4, 4), [1.0])[0]
    'map range 1.5e-11 is at float noise (scores of size 1)'
    """
    arr = np.asarray(maps, np.float64)
    sizes = np.broadcast_to(np.asarray(scale, np.float64), arr.shape[:1])
    reasons: list[str | None] = []
    for heat, size in zip(arr, sizes, strict=True):
        if not np.isfinite(heat).all():
            reasons.append("map has NaN or infinite values")
            continue
        spread = float(np.ptp(heat))
        peak = float(np.abs(heat).max())
        if spread == 0:
            reasons.append(f"map is constant ({peak:.3g})")
        elif spread <= NOISE * abs(float(size)):
            reasons.append(f"map range {spread:.2g} is at float noise (scores of size {size:.2g})")
        elif spread <= NOISE * peak:
            reasons.append(f"map range {spread:.2g} is at float noise around {peak:.3g}")
        else:
            reasons.append(None)
    return reasons


def _predictions_section(page: _Page, images, names, probs, class_names, flat) -> None:
    from kerasviz import plot

    k = min(3, probs.shape[1])
    rows = []
    for i, name in enumerate(names):
        order = np.argsort(-probs[i])[:k]
        rows.append((name, *[f"{class_names[c]}: {probs[i, c]:.3f}" for c in order]))
    header = ("image", *[f"top {j + 1}" for j in range(k)])
    if any(flat):
        header = (*header, "warning")
        rows = [(*row, reason or "") for row, reason in zip(rows, flat, strict=True)]
    fig = plot.image_grid(
        images,
        titles=[
            f"{n}\n{class_names[int(np.argmax(p))]}" + (" (flat)" if f else "")
            for n, p, f in zip(names, probs, flat, strict=True)
        ],
        cols=min(8, len(names)),
        size=1.6,
    )
    img = page.figure(fig, "inputs", "input images with their top class")
    page.add("predictions", "Inputs and top predictions", img + _table(header, rows))


def _filters_section(page: _Page, model, rows, channel_order: str = "RGB") -> None:
    from kerasviz import filters, plot

    convs = [r for r in rows if r.filters]
    if not convs:
        page.add("filters", "Filters", '<p class="note">No convolution layer.</p>')
        return
    first = filters.filters(model, convs[0].path, channel_order=channel_order)  # drawn RGB
    parts = [
        f"<h3>First layer: <code>{html.escape(convs[0].path)}</code>, {first.shape[0]} "
        f"filters of {first.shape[1]}x{first.shape[2]}x{first.shape[3]}</h3>"
    ]
    if first.shape[-1] in (1, 3):
        order = filters.order(first)[:64]
        fig = plot.filter_tiles(first, indices=order)
        parts.append(
            '<p class="note">Strongest first (L2 norm under each tile); grey is '
            "zero, so colour or brightness shows the sign of the weights.</p>"
        )
        parts.append(page.figure(fig, "filters_first", "first-layer filters"))
    else:
        parts.append(
            page.figure(
                plot.filter_grid(first, sort="norm"), "filters_first", "first-layer filter slices"
            )
        )
    if len(convs) > 1:
        second = filters.filters(model, convs[1].path)
        parts.append(
            f"<h3>Second layer: <code>{html.escape(convs[1].path)}</code>, "
            f"{second.shape[0]} filters of {second.shape[1]}x{second.shape[2]}x"
            f"{second.shape[3]}</h3>"
        )
        if second.shape[-1] in (1, 3):  # a depthwise layer: one image per filter again
            parts.append(
                '<p class="note">Each filter reads one channel (a depthwise convolution): '
                "one tile per filter, strongest first.</p>"
            )
            fig = plot.filter_tiles(second, indices=filters.order(second)[:64])
        else:
            parts.append(
                '<p class="note">Not an image any more: one greyscale slice per input channel '
                "(columns) for the 16 strongest filters (rows).</p>"
            )
            fig = plot.filter_grid(second, sort="norm")
        parts.append(page.figure(fig, "filters_second", "second-layer filters"))
    page.add("filters", "Filters", "".join(parts))


def representative_layers(rows, limit: int = MAX_LAYERS, sizes=None) -> list[str]:
    """One layer per resolution stage, at most ``limit``: the layers the report shows.

    Spatial layers (maps larger than 1 x 1) are cut into stages where the map shrinks by a
    stride or a pooling (its shorter side at most 2/3 of the stage's first); each stage is
    shown by its last layer that is not padding, pooling, normalisation or a container (a
    stage with none is skipped). With more stages than ``limit``, stages are taken evenly
    from the first to the last.

    Args:
        rows: `kerasviz.inspect.layer_table` rows, in execution order.
        limit: at most this many layers.
        sizes: ``{path: (h, w)}`` for layers whose table shape is open (an any-size model).

    Returns:
        Layer paths, shallow to deep.

    >>> representative_layers(inspect.layer_table(digits_cnn))
    ['conv2', 'conv4']
    """
    stages: list[list] = []
    start = None
    for row in rows:
        if not row.activations or row.type in ("InputLayer", "Functional", "Sequential"):
            continue
        h, w = (sizes or {}).get(row.path) or row.output_shape[1:3]
        side = None if h is None or w is None else min(h, w)
        if side == 1:  # a 1 x 1 map is a vector: nothing spatial to show
            continue
        if not stages or (side is not None and start is not None and side <= start / 1.5):
            stages.append([])
            start = side
        stages[-1].append(row)
    picks = []
    for stage in stages:
        shown = [r for r in stage if r.type not in _NOT_SHOWN]
        if shown:
            picks.append(shown[-1].path)
    if len(picks) > limit:
        keep = np.unique(np.round(np.linspace(0, len(picks) - 1, limit)).astype(int))
        picks = [picks[i] for i in keep]
    return picks


def _open_sizes(model, rows, batch) -> dict:
    """``{path: (h, w)}`` of the spatial layers of an any-size model, from one image."""
    from kerasviz import activations

    open_rows = [
        r.path
        for r in rows
        if r.activations
        and r.type not in ("InputLayer", "Functional", "Sequential")
        and None in r.output_shape[1:3]
    ]
    if not open_rows:
        return {}
    maps = activations.activations(model, batch[:1], open_rows)
    return {path: tuple(maps[path].shape[1:3]) for path in open_rows}


def _activations_section(page: _Page, model, images, names, layers, rows) -> None:
    from kerasviz import activations, plot

    chosen = "given"
    if layers is None:
        layers = representative_layers(rows, sizes=_open_sizes(model, rows, images))
        chosen = "representative"
    if not layers:
        page.add("activations", "Activation maps", '<p class="note">No layer chosen.</p>')
        return
    maps = activations.activations(model, images, layers)
    if chosen == "representative":
        intro = (
            f"One layer per resolution stage ({len(layers)} of the "
            f"{sum(1 for r in rows if r.activations)} layers with spatial maps; pass "
            "<code>layers=</code> (<code>--layers</code>) for others)"
        )
    else:
        intro = f"The {len(layers)} layers asked for"
    parts = [
        f'<p class="note">{intro}. For each, the {CHANNELS_SHOWN} channels with the highest '
        "mean activation over these images, one row per image, with one colour scale per "
        "layer (the bar on the right), so tiles compare across images and channels. A grey "
        "tile is a channel that is constant on that image.</p>"
    ]
    for li, (layer, values) in enumerate(maps.items()):
        if values.ndim != 4:
            parts.append(
                f"<p>{html.escape(layer)}: output of shape {values.shape[1:]} is not a "
                "spatial map.</p>"
            )
            continue
        h, w, c = values.shape[1:]
        strength = np.nan_to_num(values.mean(axis=(0, 1, 2)), nan=-np.inf)  # (c,)
        top = np.argsort(-strength, kind="stable")[: min(CHANNELS_SHOWN, c)]
        parts.append(
            f"<h3><code>{html.escape(layer)}</code>: {h} x {w}, strongest {len(top)} of "
            f"{c} channels</h3>"
        )
        fig = plot.activation_rows(values, top, row_labels=names)
        parts.append(page.figure(fig, f"act_{li}", f"activations of {layer}"))
    page.add("activations", "Activation maps", "".join(parts))


def _explanations_section(
    page: _Page,
    model,
    images,
    names,
    targets,
    class_names,
    methods,
    shown=None,
    flat=None,
    progress: bool = False,
) -> None:
    """``shown``: the images as drawn (default: ``images``); ``flat``: per image, why its
    outputs are too flat to explain (`flat_outputs`), or None."""
    from kerasviz import attribution, inspect, plot

    flat = flat or [None] * len(images)
    maps: dict[str, np.ndarray] = {}
    reasons: dict[str, list[str | None]] = {}
    views: dict[str, np.ndarray] = {}  # scored view ("probability" or "logit") -> scores
    rows = []
    for method in methods:
        explainer = attribution.create(method, model)
        start = time.perf_counter()
        found = explainer.explain(images, targets, progress=progress)
        took = time.perf_counter() - start
        page.timings[f"explain:{method}"] = took
        rows.append((method, type(explainer).__name__, f"{took:.2f}", f"{took / len(images):.3f}"))
        view = getattr(explainer, "output", "probability")
        if view not in views:
            scored = inspect.logits_model(model) if view == "logit" else model
            views[view] = np.asarray(scored.predict(images, verbose=0), np.float64)
        scale = np.abs(views[view]).max(axis=1)
        noise = noise_maps(found, scale)
        reasons[method] = [f or m for f, m in zip(flat, noise, strict=True)]
        maps[method] = np.where(np.isfinite(found), found, 0.0).astype(np.float32)
        for name, reason, was_flat in zip(names, noise, flat, strict=True):
            if reason and not was_flat:
                page.warn(f"{method} on {name}: {reason}; drawn grey")
    labels = [f"{n}: {class_names[t]}" for n, t in zip(names, targets, strict=True)]
    fig = plot.explanation_grid(
        images if shown is None else shown, maps, titles=labels, reasons=reasons
    )
    img = page.figure(fig, "explanations", "explanations: images by methods")
    note = (
        '<p class="note">Each column is one method\'s map for the top class of each '
        "image, over the image. Occlusion: score drop when a patch is hidden; Grad-CAM: "
        "gradient-weighted last conv map; saliency: input gradient magnitude; LIME: "
        "weights of a local linear fit on superpixels. A grey cell is a map that cannot be "
        "read, with the reason: the model's outputs are nearly flat for that image, or the "
        "map's range is at float noise.</p>"
    )
    greyed = [
        f"{n}: {f}; every map of it is drawn grey" for n, f in zip(names, flat, strict=True) if f
    ]
    greyed += [
        f"{method} on {n}: {r}"
        for method, values in reasons.items()
        for n, r, f in zip(names, values, flat, strict=True)
        if r and not f
    ]
    box = _warning_box(greyed)
    page.add(
        "explanations",
        "Which pixels matter",
        note + box + img + _table(("method", "class", "seconds", "seconds per image"), rows),
    )


def _reference_set(model_name: str | None, reference, input_shape, reading: dict):
    """``(images, labels or None, label names or None)`` of the reference set, or None.
    ``reading``: the keyword arguments of `kerasviz.imageio.load_images`."""
    if reference is not None:
        from kerasviz import imageio

        images, files = imageio.load_images(reference, input_shape, **reading)
        labels = [Path(f).parent.name for f in files]
        if len(set(labels)) > 1:  # one sub-folder per class
            names = sorted(set(labels))
            return images, np.array([names.index(x) for x in labels]), names
        return images, None, None
    if model_name == "digits_cnn":
        from kerasviz import datasets

        images, labels = datasets.digits(32)
        return images, labels, [str(d) for d in range(10)]
    return None


def _without_self(ref_shown, queries_shown, idx, dist, k: int):
    """``(idx, dist, skipped)``: the first ``k`` candidates of each query that are not the query
    itself (an input that is also in the reference set), and how many queries had such a copy.

    ``ref_shown``: ``(Q, K', H, W[, C])`` the candidates as drawn, ``queries_shown``: ``(Q, H,
    W[, C])``, both in [0, 1]. Identity is judged on the drawn images, equal to within 1.5/255
    everywhere, so a reference saved as an 8-bit file and read back is still the same image.
    """
    keep_idx, keep_dist, skipped = [], [], 0
    for q in range(idx.shape[0]):
        gap = np.abs(ref_shown[q] - queries_shown[q][None]).reshape(idx.shape[1], -1).max(axis=1)
        same = gap <= 1.5 / 255
        order = np.concatenate([np.flatnonzero(~same), np.flatnonzero(same)])[:k]
        skipped += bool(same.any())
        keep_idx.append(idx[q, order])
        keep_dist.append(dist[q, order])
    return np.stack(keep_idx), np.stack(keep_dist), skipped


def _feature_section(
    page: _Page,
    model,
    images,
    names,
    reference,
    class_names,
    progress: bool,
    display=None,
    map_points: int = MAP_POINTS,
) -> None:
    """``display``: maps model inputs to images in [0, 1] for drawing (default: as they are)."""
    from kerasviz import embedding, plot

    if reference is None:
        page.add(
            "features",
            "Feature space",
            '<p class="note">No reference set: pass '
            "<code>--reference DIR</code> (images, optionally one sub-folder per class) to "
            "see nearest neighbours and a 2-D map of the penultimate layer.</p>",
        )
        return
    ref_images, ref_labels, ref_names = reference
    show = display or (lambda x: x)
    start = time.perf_counter()
    extractor = embedding.FeatureExtractor(model)
    ref_vectors = extractor.extract(ref_images, progress=progress)
    vectors = extractor.extract(images)
    k = min(6, len(ref_images))
    # A few more candidates than shown, so that an input found in the reference set can be
    # left out of its own neighbours.
    idx, dist = embedding.nearest(ref_vectors, vectors, k=min(len(ref_images), k + 3))
    queries = show(images)
    candidates = show(ref_images[idx.ravel()]).reshape(*idx.shape, *queries.shape[1:])
    idx, dist, skipped = _without_self(candidates, queries, idx, dist, k)
    fig = plot.neighbor_strips(
        queries,
        show(ref_images[idx]),
        dist,
        neighbor_labels=None if ref_labels is None else ref_labels[idx],
        class_names=ref_names,
    )
    strips = page.figure(fig, "neighbours", "nearest neighbours in feature space")
    # t-SNE costs seconds per thousand points: the map shows a seeded subsample, with the
    # inputs embedded together with it (t-SNE places only the points it is fitted on).
    shown = np.sort(np.random.default_rng(0).permutation(len(ref_images))[:map_points])
    method = "tsne" if len(shown) + len(images) >= 10 else "pca"
    label = {"tsne": "t-SNE", "pca": "PCA"}[method]
    points = embedding.project(np.concatenate([ref_vectors[shown], vectors]), method, seed=0)
    ref_points, input_points = points[: len(shown)], points[len(shown) :]
    sample = (
        f"all {len(shown)} reference images"
        if len(shown) == len(ref_images)
        else f"{len(shown)} of the {len(ref_images)} reference images (a seeded sample)"
    )
    fig = plot.embedding_map(
        ref_points,
        None if ref_labels is None else ref_labels[shown],
        show(ref_images[shown]),
        thumbnails=40,
        class_names=ref_names,
        title=f"{label} map of {len(shown)} reference images; stars: the inputs",
        marks=input_points,
        mark_labels=names,
    )
    scatter = page.figure(fig, "feature_map", "2-D map of the reference set", width=700)
    labels = None if ref_labels is None else [ref_names[i] for i in ref_labels]
    embedding.export_projector(
        page.root / "projector", ref_vectors, labels=labels, images=show(ref_images)
    )
    page.timings["features"] = time.perf_counter() - start
    layer = extractor.layer
    purity = ""
    if ref_labels is not None:
        clusters = embedding.kmeans(ref_vectors, n_clusters=len(ref_names), seed=0)
        purity = (
            f" KMeans({len(ref_names)}) cluster purity against the labels: "
            f"{embedding.purity(clusters, ref_labels):.3f}."
        )
    selves = ""
    if skipped:
        selves = (
            " 1 input is also in the reference set; it is not listed as its own neighbour."
            if skipped == 1
            else f" {skipped} inputs are also in the reference set; none is listed as its own "
            "neighbour."
        )
    page.add(
        "features",
        "Feature space",
        (
            f'<p class="note">Feature vectors ({ref_vectors.shape[1]} values, layer '
            f"<code>{html.escape(str(layer))}</code>) of {len(ref_images)} reference "
            f"images.{purity}"
            f"</p><h3>Nearest neighbours of each input</h3>"
            f'<p class="note">The {k} nearest reference images by euclidean distance between '
            f"feature vectors.{selves}</p>"
            + strips
            + f"<h3>{label} map</h3>"
            + f'<p class="note">The map shows {sample}, {label}-embedded together with the '
            f"{len(images)} inputs (black stars).</p>"
            + scatter
            + "<h3>TensorBoard embedding projector</h3><p>The folder <code>projector/</code> holds "
            f"the vectors of all {len(ref_images)} reference images, labels and a sprite. Open "
            "it with</p><pre>tensorboard --logdir projector --host 127.0.0.1</pre><p>and choose "
            "<em>Projector</em>.</p>"
        ),
    )


def _units_layer(model, rows) -> str | None:
    """The deepest spatial layer whose receptive field is at most half the input, so that its
    top patches are parts of images rather than whole images (else the last spatial layer).
    Field sizes grow with depth, so a bisection over the layer table finds it in a few walks."""
    from kerasviz import inspect

    spatial = [r.path for r in rows if r.activations and r.type != "InputLayer"]
    if not spatial:
        return None
    height, width = inspect.input_shape(model)[:2]
    limit = min(height, width) / 2

    def small(path) -> bool:
        try:
            return max(inspect.receptive_field(model, path).size) <= limit
        except ValueError:  # a layer the call graph does not reach: treat as too deep
            return False

    low, high = 0, len(spatial)  # spatial[:low] small, spatial[high:] large
    while low < high:
        mid = (low + high) // 2
        if small(spatial[mid]):
            low = mid + 1
        else:
            high = mid
    return spatial[low - 1] if low else spatial[-1]


def _units_section(page: _Page, model, rows, reference, progress: bool, display=None) -> None:
    """Zeiler and Fergus's Fig. 2 on the reference set: each strong unit's top-9 patches."""
    from kerasviz import activations, plot

    if reference is None:
        page.add(
            "units",
            "What units respond to",
            '<p class="note">No reference set: pass <code>--reference DIR</code> to see the '
            "image patches where units fire most.</p>",
        )
        return
    layer = _units_layer(model, rows)
    if layer is None:
        page.add("units", "What units respond to", plot.units_section([], page.figure))
        return
    start = time.perf_counter()
    images = reference[0]
    # First every unit without projections (one pass), then the strongest units projected.
    found = activations.top_patches(model, layer, images, k=9, progress=progress)
    strength = np.where(np.isfinite(found.values), found.values, -np.inf).mean(axis=1)
    chosen = found.units[np.argsort(-strength, kind="stable")[:UNITS_SHOWN]]
    top = activations.top_patches(
        model, layer, images, units=[int(u) for u in chosen], k=9, projection="deconvnet"
    )
    body = plot.units_section(
        [top], page.figure, display=display, units_per_layer=UNITS_SHOWN, name="units"
    )
    page.timings["units"] = time.perf_counter() - start
    page.add("units", "What units respond to", body)


def _stopwatch(page: _Page):
    """``with timed("name"):`` adds the block's seconds to ``page.timings["name"]``."""
    from contextlib import contextmanager

    @contextmanager
    def timed(name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            page.timings[name] = page.timings.get(name, 0.0) + time.perf_counter() - start

    return timed


def _class_names(path, card: dict, n: int) -> list[str]:
    if path is not None:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
        if len(names) != n:
            raise ValueError(
                f"class_names: {path} has {len(names)} names; the model has {n} "
                "classes (one name per line expected)."
            )
        return names
    names = card.get("class_names")
    if names and len(names) == n:
        return list(names)
    return [str(i) for i in range(n)]


def build_report(
    model="digits_cnn",
    images=None,
    out="kerasviz-report",
    methods=DEFAULT_METHODS,
    layers=None,
    class_names=None,
    scale=None,
    offset=None,
    reference=None,
    force: bool = False,
    progress: bool = True,
    max_images: int = 8,
    preprocessing=None,
    resize: str | None = None,
    size=None,
    max_figures: int = MAX_FIGURES,
) -> Path:
    """Render the HTML report of a model on a few images into ``out/index.html``.

    Args:
        model: a ``keras.Model``, a shipped model name (``"digits_cnn"``) or a ``.keras`` path
            (its card, ``name.json`` beside it, gives class names and preprocessing).
        images: image files or folders; default: the shipped samples of a shipped model
            given by name.
        out: the report folder (written whole, then moved into place).
        methods: explanation methods (see `kerasviz.attribution.METHODS`).
        layers: layers whose activation maps are shown; default: one representative layer
            per resolution stage, at most `MAX_LAYERS` (`representative_layers`).
        class_names: a text file with one class name per line; default: the model card's.
        scale, offset: 8-bit pixel ``v`` becomes ``v * scale + offset``; default: the card's
            preprocessing, else ``1/255`` and ``0``.
        reference: a folder of reference images (one sub-folder per class gives labels) for
            nearest neighbours, the 2-D map and the projector export; the shipped digits model
            uses the 1797 scikit-learn digits by default.
        force: replace an existing report at ``out``.
        progress: print what is being computed (to stderr; ``KERASVIZ_QUIET`` silences it).
        max_images: at most this many images are used.
        preprocessing: a `kerasviz._preprocess.Preprocessing`; wins over ``scale`` and
            ``offset``; default: the card's (``"tf"``, ``"torch"``, ``"caffe"`` or a scale).
        resize: ``"squash"``, ``"crop"`` or ``"pad"`` (`kerasviz.imageio.RESIZE_MODES`);
            default: the card's ``resize``, else ``"squash"``.
        size: ``(H, W)`` to read images at, for a model that accepts any size; default: the
            card's ``input_size``. Images are drawn through ``preprocessing.display`` (RGB
            again for ``"caffe"`` inputs).
        max_figures: at most this many images in the report; past it, sections say what was
            left out.

    Returns:
        The path of ``index.html``.

    Raises:
        TypeError: ``model`` is neither a ``keras.Model`` nor a name or path.
        FileExistsError: ``out`` exists and ``force`` is False.
        KeyError: an unknown method or layer.
        ValueError, FileNotFoundError: unreadable model or images.

    >>> build_report("digits_cnn", out="/tmp/report")
    PosixPath('/tmp/report/index.html')
    """
    from kerasviz import _checks, _files, _progress, attribution, imageio, inspect, models

    out = Path(out)
    try:  # before any work: a report replaces only a report, and only when asked
        _files.check_replaceable(out, force, "--force (force=True)", ours=is_report_file)
    except FileExistsError as err:
        raise FileExistsError(f"out: {err}") from None
    for method in methods:
        attribution.check_method(method)
    max_figures = _checks.check_positive_int(max_figures, "max_figures")
    max_images = _checks.check_positive_int(max_images, "max_images")
    started = time.perf_counter()

    say = _progress.Progress(0, label="kerasviz report", enabled=progress).note

    if isinstance(model, str | Path):
        model_ref = str(model)
        say(f"loading {model_ref}")
        keras_model = models.load(model_ref)
        card = models.card(model_ref, model=keras_model)
    else:
        import keras

        if not isinstance(model, keras.Model):
            raise TypeError(
                "Expected `model` to be a keras.Model, a shipped model name or a "
                f".keras path. Received: model of type {type(model).__name__}"
            )
        keras_model, card, model_ref = model, {}, None
    shape = inspect.input_shape(keras_model)
    prep = Preprocessing.from_card(card, scale, offset) if preprocessing is None else preprocessing
    if size is None and (shape[0] is None or shape[1] is None):
        size = models.card_size(card)
    reading = {
        "preprocessing": prep,
        "resize": resize or card.get("resize") or "squash",
        "size": None if size is None else tuple(size),
    }
    if images is None:
        if model_ref not in DEFAULT_SAMPLES:
            raise ValueError(
                "images: this model has no shipped samples; pass image files or a "
                "folder (--images)."
            )
        images = models.models_dir() / "samples" / DEFAULT_SAMPLES[model_ref]
    batch, files = imageio.load_images(images, shape, **reading)
    batch, files = batch[:max_images], files[:max_images]
    names = [Path(f).stem for f in files]
    n_classes = inspect.num_outputs(keras_model)
    classes = _class_names(class_names, card, n_classes)
    if layers is not None:
        for ref in layers:
            inspect.find_layer(keras_model, ref)  # unknown layers fail before any work
    ref_set = _reference_set(model_ref, reference, shape, reading)
    shown = prep.display(batch)  # RGB (or grey) in [0, 1], whatever the model's range

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _files.temp_folder(out)
    try:
        page = _Page(tmp, max_figures=max_figures)
        say("model summary")
        rows = inspect.layer_table(keras_model)  # one graph walk serves three sections
        _summary_section(page, keras_model, card, rows)
        probs = keras_model.predict(batch, verbose=0)
        flat = _flat_for_head(probs, inspect.head_activation(keras_model))
        for name, reason in zip(names, flat, strict=True):
            if reason:
                page.warn(f"{name}: {reason}; its explanations are drawn grey")
        _predictions_section(page, shown, names, probs, classes, flat)
        timed = _stopwatch(page)
        say("filters")
        with timed("filters"):
            _filters_section(page, keras_model, rows, prep.channel_order)
        say("activations")
        with timed("activations"):
            _activations_section(page, keras_model, batch, names, layers, rows)
        targets = np.argmax(probs, axis=-1)
        if methods:
            say(f"explanations: {', '.join(methods)}")
            _explanations_section(
                page, keras_model, batch, names, targets, classes, methods, shown, flat, progress
            )
        say("feature space")
        _feature_section(page, keras_model, batch, names, ref_set, classes, progress, prep.display)
        say("units")
        _units_section(page, keras_model, rows, ref_set, progress, prep.display)
        total = time.perf_counter() - started
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in page.timings.items())
        subtitle = (
            f"{keras_model.name} on {len(batch)} images; made by kerasviz in "
            f"{total:.1f} s ({timing})."
        )
        (tmp / "index.html").write_text(
            _render(page, f"kerasviz report: {keras_model.name}", subtitle)
        )
        (tmp / "report.json").write_text(
            json.dumps(
                {
                    "model": model_ref or keras_model.name,
                    "images": [str(f) for f in files],
                    "methods": list(methods),
                    "input": {
                        "preprocessing": prep.to_dict(),
                        "resize": reading["resize"],
                        "size": list(batch.shape[1:3]),
                    },
                    "seconds": round(total, 2),
                    "timings": {k: round(v, 3) for k, v in page.timings.items()},
                    "images_drawn": page.figures,
                    "warnings": page.warnings,
                },
                indent=2,
            )
        )
        _files.replace_folder(tmp, out, ours=is_report_file)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"wrote {out / 'index.html'} in {time.perf_counter() - started:.1f} s")
    return out / "index.html"
