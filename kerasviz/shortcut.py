"""Shortcut finder: does a model look at the object, or at what surrounds it?

Ribeiro, Singh and Guestrin 2016 ("Why should I trust you?", Fig. 11): a husky-vs-wolf
classifier that scores well by looking at the snow. Two numbers expose such a shortcut:

* **background reliance**: the share of an explanation's positive mass that lies outside the
  object mask, per image and on average. A model that looks at the object puts its mass on the
  object (low reliance); one that reads the background puts it there (high reliance). Compare
  with the background's share of the image: a map that ignores the mask scores about that much.
* **swapped-background accuracy**: accuracy on the same kind of images with the backgrounds
  swapped; a shortcut model drops, an honest one does not.

>>> report = shortcut_report(model, images, masks, labels, "lime", swapped=(sw_images, sw_labels))
>>> print(format_table({"biased": {"lime": report}}))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerasviz import _checks

# Friendly method names -> (registry name in kerasviz.attribution, default settings). The defaults
# suit small images of whole objects on a background; pass settings to override them.
METHODS = {
    "lime": (
        "lime",
        {
            "segmentation": "felzenszwalb",
            "segmentation_args": {"scale": 50, "min_size": 10},
            "fill": "blur",
            "output": "logit",
            "num_samples": 500,
        },
    ),
    "occlusion": ("occlusion", {"patch": 8, "stride": 4, "fill": "blur", "output": "probability"}),
    "gradcam": ("gradcam", {}),
}


def background_reliance(explanations, masks, margin: int = 0) -> np.ndarray:
    """Share of positive attribution mass outside the object mask, per image.

    Args:
        explanations: ``(N, H, W)`` maps (higher = more important), or one ``(H, W)`` map.
        masks: boolean object masks of the same shape (``True`` on the object).
        margin: pixels within this distance of the object count as object. Methods that see
            the image through patches or coarse feature maps (occlusion, Grad-CAM) cannot put
            mass closer to an object than about half a patch or cell; ``0`` measures exactly.

    Returns:
        ``(N,)`` float32 in [0, 1] (a float for one map); ``nan`` where a map has no positive
        value at all.

    >>> background_reliance(np.ones((1, 4, 4)), np.eye(4, dtype=bool)[None])
    array([0.75], dtype=float32)
    """
    maps = np.asarray(explanations, dtype=np.float64)
    m = np.asarray(masks)
    if m.dtype != bool:
        if not np.all(np.isin(m, (0, 1))):
            raise TypeError(
                "Expected `masks` of booleans (or 0/1). "
                f"Received: dtype={m.dtype} with other values"
            )
        m = m.astype(bool)
    maps, single = _checks.as_batch(maps, "N, H, W", "explanations")
    if single and m.ndim == 2:
        m = m[None]
    if m.shape != maps.shape:
        raise ValueError(
            f"Expected `masks` of shape {maps.shape} like `explanations`. "
            f"Received: masks.shape={np.shape(masks)}"
        )
    margin = _checks.check_positive_int(margin, "margin", minimum=0)
    if margin:
        from scipy.ndimage import distance_transform_edt

        m = np.stack([distance_transform_edt(~mi) <= margin for mi in m])
    pos = np.maximum(maps, 0.0)
    total = pos.sum(axis=(1, 2))
    outside = np.where(m, 0.0, pos).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, outside / np.where(total > 0, total, 1.0), np.nan)
    share = share.astype(np.float32)
    return share[0] if single else share


def accuracy(model, images, labels, batch_size: int = 64) -> float:
    """Top-1 accuracy of ``model`` on ``images`` ``(N, H, W, C)`` with int ``labels`` ``(N,)``.

    >>> accuracy(model, images, labels)
    1.0
    """
    from kerasviz.attribution import Scorer

    scorer = Scorer(model, batch_size=batch_size)
    batch, _ = scorer.check_inputs(images)
    y = _labels(labels, batch.shape[0])
    return float(np.mean(np.argmax(scorer.predict(batch), axis=-1) == y))


def explainer(model, method, **settings):
    """An explainer for ``method``: a name, or an object with ``explain(inputs, targets)``
    (returned as is).

    ``"lime"``, ``"occlusion"`` and ``"gradcam"`` get the settings of `METHODS` (tuned for
    small images of a whole object: LIME on Felzenszwalb superpixels with a blurred fill and
    logits, occlusion with 8-pixel blurred patches on probabilities) over those of
    `kerasviz.attribution.create`; other registry names (`kerasviz.attribution.REGISTRY`) work
    too, with the registry's defaults, and class names of `kerasviz.attribution` with the
    class's own defaults.

    Raises:
        KeyError: an unknown name, listing the known ones.
        ImportError: a known method whose module is not available in this installation.

    >>> explainer(model, "lime", num_samples=200).num_samples
    200
    """
    if hasattr(method, "explain"):
        return method
    if not isinstance(method, str):
        raise TypeError(
            "Expected `method` to be a name or an object with `explain(inputs, "
            f"targets)`. Received: {type(method)!r}"
        )
    from kerasviz import attribution

    key = method.lower().replace("-", "").replace("_", "")
    by_class = {cls: name for name, cls in attribution.METHODS.items()}
    if key in METHODS:
        name, defaults = METHODS[key]
    elif method in attribution.REGISTRY:
        name, defaults = method, {}
    elif method in by_class:
        name, defaults = by_class[method], None
    else:
        known = sorted({*METHODS, *attribution.REGISTRY, *by_class})
        raise KeyError(f"Unknown method {method!r}. Known: {known}")
    try:
        cls = attribution.explainer_class(name)
    except ImportError as err:
        raise ImportError(f"Method {method!r} ({name}) is not available: {err}") from None
    if defaults is None:  # a class name: the class's own defaults
        return cls(model, **settings)
    return attribution.create(name, model, **{**defaults, **settings})


def available_methods() -> list[str]:
    """The short names of `METHODS` whose explainers can be imported here.

    >>> available_methods()
    ['lime', 'occlusion', 'gradcam']
    """
    from kerasviz import attribution

    out = []
    for key, (name, _) in METHODS.items():
        try:
            attribution.explainer_class(name)
        except ImportError:
            continue
        out.append(key)
    return out


@dataclass
class ShortcutReport:
    """What `shortcut_report` measured for one model and one method.

    Attributes:
        method: the explanation method's name.
        reliance: ``(N,)`` background reliance per image.
        mean_reliance: its mean over images (``nan`` maps left out).
        background_share: mean share of the image outside the mask (what a map that ignores
            the mask would score).
        accuracy: accuracy on ``images``.
        swapped_accuracy: accuracy on the swapped-background images (``nan`` if none given).
        explanations: ``(N, H, W)`` maps of the method, for display.
        targets: ``(N,)`` explained classes.
        mass: ``(N, H, W)`` maps whose positive mass was measured (``explanations`` except
            for LIME, see `shortcut_report`).
        masks: ``(N, H, W)`` the object masks.
        margin: the margin ``reliance`` was measured with.
    """

    method: str
    reliance: np.ndarray
    mean_reliance: float
    background_share: float
    accuracy: float
    swapped_accuracy: float
    explanations: np.ndarray
    targets: np.ndarray
    mass: np.ndarray
    masks: np.ndarray
    margin: int = 0

    def reliance_at(self, margin: int) -> float:
        """Mean background reliance measured with another ``margin``."""
        r = background_reliance(self.mass, self.masks, margin=margin)
        return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")

    @property
    def accuracy_drop(self) -> float:
        """``accuracy - swapped_accuracy``."""
        return self.accuracy - self.swapped_accuracy


def shortcut_report(
    model,
    images,
    masks,
    labels,
    method="lime",
    swapped=None,
    explain: str = "label",
    margin: int = 0,
    batch_size: int = 64,
    **settings,
) -> ShortcutReport:
    """Background reliance of ``model``'s explanations and its swapped-background accuracy.

    For LIME the mass of a superpixel is its weight, spread over its pixels
    (`Explanation.mass_maps`), so a large superpixel is not counted once per pixel.

    Args:
        model: a Keras image classifier.
        images: ``(N, H, W, C)`` in the model's input range.
        masks: ``(N, H, W)`` boolean object masks.
        labels: ``(N,)`` int true classes.
        method: an explanation method name (see `explainer`) or an explainer object.
        swapped: optional ``(images, labels)`` of background-swapped images.
        explain: ``"label"`` explains the true class, ``"prediction"`` the model's top class.
        margin: see `background_reliance`.
        batch_size: images per forward pass when measuring accuracy.
        **settings: settings of the explainer made from a method name.

    >>> shortcut_report(model, images, masks, labels, "gradcam").mean_reliance
    0.93
    """
    from kerasviz.attribution import Scorer
    from kerasviz.attribution.lime import Lime

    scorer = Scorer(model, batch_size=batch_size)
    batch, _ = scorer.check_inputs(images)
    n, h, w = batch.shape[:3]
    m = np.asarray(masks)
    if m.shape != (n, h, w):
        raise ValueError(
            f"Expected `masks` of shape ({n}, {h}, {w}) (N, H, W) like `images`. "
            f"Received: masks.shape={m.shape}"
        )
    y = _labels(labels, n)
    if explain not in ("label", "prediction"):
        raise ValueError(f"Expected `explain` in ('label', 'prediction'). Received: {explain!r}")
    if swapped is not None and (not isinstance(swapped, tuple | list) or len(swapped) != 2):
        raise ValueError(
            f"Expected `swapped` to be (images, labels) or None. Received: {type(swapped)!r}"
        )

    def acc(x, labels_):
        xb, _ = scorer.check_inputs(x, name="swapped images")
        yb = _labels(labels_, xb.shape[0])
        scores = scorer.predict(xb)
        return float(np.mean(np.argmax(scores, axis=-1) == yb)), scores

    accuracy_, scores = acc(batch, y)
    targets = y.astype(np.int32) if explain == "label" else np.argmax(scores, -1).astype(np.int32)
    name = method if isinstance(method, str) else type(method).__name__
    exp = explainer(model, method, **settings)
    if isinstance(exp, Lime):
        result = exp.explain_full(batch, targets)
        maps, mass = result.explanations, result.mass_maps()
    else:
        maps = mass = np.asarray(exp.explain(batch, targets), dtype=np.float32)
    reliance = background_reliance(mass, m, margin=margin)
    finite = np.isfinite(reliance)
    return ShortcutReport(
        method=name,
        reliance=reliance,
        mean_reliance=float(np.mean(reliance[finite])) if finite.any() else float("nan"),
        background_share=float(np.mean(background_reliance(np.ones(m.shape), m, margin))),
        accuracy=accuracy_,
        swapped_accuracy=acc(*swapped)[0] if swapped is not None else float("nan"),
        explanations=maps,
        targets=targets,
        mass=mass,
        masks=m.astype(bool),
        margin=margin,
    )


def compare(
    models: dict,
    images,
    masks,
    labels,
    methods=("lime", "occlusion", "gradcam"),
    swapped=None,
    margin: int = 0,
    skip_missing: bool = True,
    settings: dict | None = None,
) -> dict[str, dict[str, ShortcutReport]]:
    """`shortcut_report` for several models and methods: ``{model: {method: report}}``.

    Args:
        models: ``{name: keras.Model}``.
        images, masks, labels, swapped, margin: as in `shortcut_report`.
        methods: method names or explainer factories.
        skip_missing: leave out methods whose module is not available instead of raising.
        settings: ``{method: {setting: value}}`` passed to each method's explainer.

    >>> reports = compare({"biased": biased, "fair": fair}, images, masks, labels)
    """
    settings = settings or {}
    out: dict[str, dict[str, ShortcutReport]] = {}
    for model_name, model in models.items():
        out[model_name] = {}
        for method in methods:
            try:
                report = shortcut_report(
                    model,
                    images,
                    masks,
                    labels,
                    method,
                    swapped=swapped,
                    margin=margin,
                    **settings.get(method, {}),
                )
            except ImportError:
                if not skip_missing:
                    raise
                continue
            out[model_name][report.method] = report
    return out


def format_table(reports: dict[str, dict[str, ShortcutReport]], margins=None) -> str:
    """A plain-text table: one row per model and method.

    Args:
        reports: ``{model: {method: report}}`` as `compare` returns.
        margins: margins to show one reliance column each (default: the reports' own).

    >>> print(format_table(compare({"biased": biased}, images, masks, labels), margins=(0, 2)))
    """
    margins = [None] if margins is None else [int(mg) for mg in margins]
    cols = []
    for mg in margins:
        cols += ["reliance", "chance"] if mg is None else [f"rel@{mg}px", f"chance@{mg}"]
    head = (
        f"{'model':<14}{'method':<12}"
        + "".join(f"{c:>10}" for c in cols)
        + f"{'accuracy':>10}{'swapped':>9}{'drop':>7}"
    )
    lines = [head, "-" * len(head)]
    for model_name, by_method in reports.items():
        for method, r in by_method.items():
            values = []
            for mg in margins:
                mg = r.margin if mg is None else mg
                share = background_reliance(np.ones(r.masks.shape), r.masks, margin=mg)
                values += [r.reliance_at(mg), float(np.mean(share))]
            lines.append(
                f"{model_name:<14}{method:<12}"
                + "".join(f"{v:>10.2f}" for v in values)
                + f"{r.accuracy:>10.2f}{r.swapped_accuracy:>9.2f}"
                f"{r.accuracy_drop:>7.2f}"
            )
    return "\n".join(lines)


def _labels(labels, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"Expected `labels` of ints. Received: dtype={y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"Expected `labels` of shape ({n},). Received: labels.shape={y.shape}")
    return y
