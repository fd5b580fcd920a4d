"""The one-command HTML report of a model: filters, activations, predictions, explanations,
feature space. The folder it writes is self-contained (relative links to PNG files only), so it
can be zipped and opened elsewhere.

The page is built in a temporary folder next to the destination and moved into place when it
is complete; an existing report is replaced only when ``force=True``.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasviz._preprocess import Preprocessing

DEFAULT_METHODS = ("occlusion", "gradcam", "saliency", "lime")
DEFAULT_SAMPLES = {"digits_cnn": "digits", "shapes_cnn": "shapes"}  # saved_models/samples/
MAP_POINTS = 500  # points of the reference set drawn on the 2-D map
UNITS_SHOWN = 8  # units of the "What units respond to" section


@dataclass
class _Page:
    """Sections of HTML and the folder their images go to."""

    root: Path
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (id, title, html)
    timings: dict[str, float] = field(default_factory=dict)

    def figure(self, fig, name: str, alt: str, width: int | None = None) -> str:
        """Save a matplotlib Figure as ``img/name.png`` and return its ``<img>`` tag."""
        from kerasviz import plot

        plot.save(fig, self.root / "img" / f"{name}.png")
        style = f' style="max-width:{width}px"' if width else ""
        return f'<img src="img/{name}.png" alt="{html.escape(alt)}"{style}>'

    def add(self, key: str, title: str, body: str) -> None:
        self.sections.append((key, title, body))


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
nav a { margin-right: 1em; } table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
code, pre { background: #f4f4f4; padding: 2px 4px; }
"""


def _render(page: _Page, title: str, subtitle: str) -> str:
    nav = " ".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t, _ in page.sections)
    body = "\n".join(
        f'<section id="{k}"><h2>{html.escape(t)}</h2>\n{b}\n</section>' for k, t, b in page.sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="note">{html.escape(subtitle)}</p>'
        f"<nav>{nav}</nav>\n{body}\n</body></html>\n"
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
        ("head", inspect.head_activation(model) or "linear"),
    ]
    for key in ("data", "accuracy", "input_range", "trained_by"):
        if key in card:
            facts.append(
                (key, json.dumps(card[key]) if not isinstance(card[key], str) else card[key])
            )
    page.add("summary", "Model", _table(("", ""), facts) + "<h3>Layers</h3>" + table)


def _predictions_section(page: _Page, images, names, probs, class_names) -> None:
    from kerasviz import plot

    k = min(3, probs.shape[1])
    rows = []
    for i, name in enumerate(names):
        order = np.argsort(-probs[i])[:k]
        rows.append((name, *[f"{class_names[c]}: {probs[i, c]:.3f}" for c in order]))
    fig = plot.image_grid(
        images,
        titles=[
            f"{n}\n{class_names[int(np.argmax(p))]}" for n, p in zip(names, probs, strict=True)
        ],
        cols=min(8, len(names)),
        size=1.6,
    )
    img = page.figure(fig, "inputs", "input images with their top class")
    header = ("image", *[f"top {j + 1}" for j in range(k)])
    page.add("predictions", "Inputs and top predictions", img + _table(header, rows))


def _filters_section(page: _Page, model, rows) -> None:
    from kerasviz import filters, plot

    convs = [r for r in rows if r.filters]
    if not convs:
        page.add("filters", "Filters", '<p class="note">No convolution layer.</p>')
        return
    first = filters.filters(model, convs[0].path)
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
            f'{second.shape[3]}</h3><p class="note">Not an image any more: one '
            "greyscale slice per input channel (columns) for the 16 strongest filters "
            "(rows).</p>"
        )
        parts.append(
            page.figure(
                plot.filter_grid(second, sort="norm"),
                "filters_second",
                "second-layer filter slices",
            )
        )
    page.add("filters", "Filters", "".join(parts))


def _activations_section(page: _Page, model, images, names, layers, rows) -> None:
    from kerasviz import activations, plot

    if layers is None:
        layers = [r.path for r in rows if r.filters]
    if not layers:
        page.add("activations", "Activation maps", '<p class="note">No layer chosen.</p>')
        return
    maps = activations.activations(model, images, layers)
    parts = [
        '<p class="note">For each layer and image, the 16 channels with the highest '
        "mean activation (one colour scale per layer and image).</p>"
    ]
    for li, (layer, values) in enumerate(maps.items()):
        if values.ndim != 4:
            parts.append(
                f"<p>{html.escape(layer)}: output of shape {values.shape[1:]} is not a "
                "spatial map.</p>"
            )
            continue
        parts.append(f"<h3><code>{html.escape(layer)}</code> {values.shape[1:]}</h3>")
        top, _ = activations.top_channels(values, k=min(16, values.shape[-1]))
        for i, name in enumerate(names):
            fig = plot.activation_grid(
                values[i], channels=top[i], cols=8, size=0.8, title=f"{name}: {layer}"
            )
            parts.append(page.figure(fig, f"act_{li}_{i}", f"{layer} on {name}", width=560))
    page.add("activations", "Activation maps", "".join(parts))


def _explanations_section(
    page: _Page, model, images, names, targets, class_names, methods, shown=None
) -> None:
    """``shown``: the images as drawn (default: ``images``)."""
    from kerasviz import attribution, plot

    maps: dict[str, np.ndarray] = {}
    rows = []
    for method in methods:
        explainer = attribution.create(method, model)
        start = time.perf_counter()
        maps[method] = explainer.explain(images, targets)
        took = time.perf_counter() - start
        page.timings[f"explain:{method}"] = took
        rows.append((method, type(explainer).__name__, f"{took:.2f}", f"{took / len(images):.3f}"))
    labels = [f"{n}: {class_names[t]}" for n, t in zip(names, targets, strict=True)]
    fig = plot.explanation_grid(images if shown is None else shown, maps, titles=labels)
    img = page.figure(fig, "explanations", "explanations: images by methods")
    note = (
        '<p class="note">Each column is one method\'s map for the top class of each '
        "image, over the image. Occlusion: score drop when a patch is hidden; Grad-CAM: "
        "gradient-weighted last conv map; saliency: input gradient magnitude; LIME: "
        "weights of a local linear fit on superpixels.</p>"
    )
    page.add(
        "explanations",
        "Which pixels matter",
        note + img + _table(("method", "class", "seconds", "seconds per image"), rows),
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


def _feature_section(
    page: _Page, model, images, names, reference, class_names, progress: bool, display=None
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
    idx, dist = embedding.nearest(ref_vectors, vectors, k=min(6, len(ref_images)))
    fig = plot.neighbor_strips(
        show(images),
        show(ref_images[idx]),
        dist,
        neighbor_labels=None if ref_labels is None else ref_labels[idx],
        class_names=ref_names,
    )
    strips = page.figure(fig, "neighbours", "nearest neighbours in feature space")
    # t-SNE costs seconds per thousand points: the map shows a seeded subsample.
    shown = np.sort(np.random.default_rng(0).permutation(len(ref_images))[:MAP_POINTS])
    method = "tsne" if len(shown) >= 10 else "pca"
    points = embedding.project(ref_vectors[shown], method=method, seed=0)
    fig = plot.embedding_map(
        points,
        None if ref_labels is None else ref_labels[shown],
        show(ref_images[shown]),
        thumbnails=40,
        class_names=ref_names,
        title=f"{method.upper()} map of {len(shown)} reference images",
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
    page.add(
        "features",
        "Feature space",
        (
            f'<p class="note">Feature vectors ({ref_vectors.shape[1]} values, layer '
            f"<code>{html.escape(str(layer))}</code>) of {len(ref_images)} reference "
            f"images.{purity}"
            "</p><h3>Nearest neighbours of each input</h3>"
            + strips
            + f"<h3>{method.upper()} map</h3>"
            + scatter
            + "<h3>TensorBoard embedding projector</h3><p>The folder <code>projector/</code> holds "
            "the vectors, labels and a sprite. Open it with</p><pre>tensorboard --logdir "
            "projector --host 127.0.0.1</pre><p>and choose <em>Projector</em>.</p>"
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
) -> Path:
    """Render the HTML report of a model on a few images into ``out/index.html``.

    Args:
        model: a ``keras.Model``, a shipped model name (``"digits_cnn"``) or a ``.keras`` path
            (its card, ``name.json`` beside it, gives class names and preprocessing).
        images: image files or folders; default: the shipped samples of a shipped model
            given by name.
        out: the report folder (written whole, then moved into place).
        methods: explanation methods (see `kerasviz.attribution.METHODS`).
        layers: layers whose activation maps are shown; default: every conv layer.
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
    from kerasviz import _files, _progress, attribution, imageio, inspect, models

    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"out: {out} exists; pass --force (force=True) to replace it.")
    for method in methods:
        attribution.check_method(method)
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
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        page = _Page(tmp)
        say("model summary")
        rows = inspect.layer_table(keras_model)  # one graph walk serves three sections
        _summary_section(page, keras_model, card, rows)
        probs = keras_model.predict(batch, verbose=0)
        _predictions_section(page, shown, names, probs, classes)
        say("filters")
        _filters_section(page, keras_model, rows)
        say("activations")
        _activations_section(page, keras_model, batch, names, layers, rows)
        targets = np.argmax(probs, axis=-1)
        say(f"explanations: {', '.join(methods)}")
        if methods:
            _explanations_section(page, keras_model, batch, names, targets, classes, methods, shown)
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
                },
                indent=2,
            )
        )
        _files.replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"wrote {out / 'index.html'} in {time.perf_counter() - started:.1f} s")
    return out / "index.html"
