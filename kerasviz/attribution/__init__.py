"""Which pixels matter: one module per family of explanation methods.

Every explainer is built once with its settings and called many times:
``Occlusion(model, patch=8, stride=4).explain(inputs, targets)`` returns ``(N, H, W)`` float32
and ``explain_full(inputs, targets)`` an `Explanation`. Classes are imported on first use.

The registry (`REGISTRY`) names every method once: the command line, the report, dataset jobs
and the shortcut finder build explainers through `create`.
"""

import importlib
from typing import NamedTuple


class Entry(NamedTuple):
    """One method of the registry: the module and the class that implement it."""

    module: str  # module under kerasviz.attribution
    cls: str  # class name in that module


# name on the command line, in the report and in Explanation.method -> (module, class)
REGISTRY = {
    "occlusion": Entry("occlusion", "Occlusion"),
    "occlusion_incremental": Entry("incremental", "IncrementalOcclusion"),
    "saliency": Entry("gradients", "Saliency"),
    "gradient_input": Entry("gradients", "GradientInput"),
    "smoothgrad": Entry("gradients", "SmoothGrad"),
    "integrated_gradients": Entry("gradients", "IntegratedGradients"),
    "guided_backprop": Entry("gradients", "GuidedBackprop"),
    "deconvnet": Entry("gradients", "Deconvnet"),
    "gradcam": Entry("cam", "GradCAM"),
    "gradcam++": Entry("cam", "GradCAMPlusPlus"),
    "scorecam": Entry("cam", "ScoreCAM"),
    "layercam": Entry("cam", "LayerCAM"),
    "lime": Entry("lime", "Lime"),
}

# name -> explainer class name (kept for the command line and the report)
METHODS = {name: entry.cls for name, entry in REGISTRY.items()}

# Names importable from this package, resolved lazily: class name -> module.
_LAZY = {
    **{entry.cls: entry.module for entry in REGISTRY.values()},
    "Explanation": "_result",
    "Completeness": "_result",
    "Scorer": "_base",
    "Explainer": "_base",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"kerasviz.attribution.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'kerasviz.attribution' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


# methods whose registry defaults depend on the image size, and the settings that do
SIZED = {
    "occlusion": ("patch", "stride"),
    "occlusion_incremental": ("patch", "stride"),
    "lime": ("segmentation", "segmentation_args"),
}


def _side(value) -> int | None:
    return None if value is None else int(value)


def default_settings(name: str, input_shape) -> dict:
    """Settings that suit an image of ``input_shape`` ``(H, W, C)`` for method ``name``.

    Occlusion (full and incremental) uses a patch of about a sixth of the smaller side with a
    quarter-patch stride; LIME uses a regular 8x8 grid on images under 64 px (segmenters find
    too few regions there) and SLIC superpixels otherwise, with 500 samples. Both score logits:
    a confident model's softmax is saturated, so hiding a part barely moves its probability and
    the maps come out empty, while the logit still shows what the part contributed. Other
    methods, and unknown names, get ``{}`` (their class defaults).

    A side left open (``None``, a model built on ``Input((None, None, 3))``) gives only the
    settings that do not depend on the size; `create` then fills in the rest from the images
    of each call.

    >>> default_settings("occlusion", (64, 64, 3))
    {'patch': 11, 'stride': 2, 'output': 'logit'}
    >>> default_settings("occlusion", (None, None, 3))
    {'output': 'logit'}
    """
    h, w = _side(input_shape[0]), _side(input_shape[1])
    known = h is not None and w is not None
    if name in ("occlusion", "occlusion_incremental"):
        if not known:
            return {"output": "logit"}
        patch = max(2, round(min(h, w) / 6))
        return {"patch": patch, "stride": max(1, patch // 4), "output": "logit"}
    if name == "lime":
        if not known:
            return {"num_samples": 500, "output": "logit"}
        if min(h, w) < 64:
            return {
                "segmentation": "grid",
                "segmentation_args": {"cells": 8},
                "num_samples": 500,
                "output": "logit",
            }
        return {"segmentation": "slic", "num_samples": 500, "output": "logit"}
    return {}


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method, else raise a KeyError listing the known ones.

    >>> check_method("gradcam")
    'gradcam'
    """
    if name not in REGISTRY:
        import difflib

        close = difflib.get_close_matches(str(name), list(REGISTRY), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise KeyError(f"Unknown method {name!r}.{hint} Known methods: {', '.join(REGISTRY)}")
    return name


def explainer_class(name: str) -> type:
    """The explainer class of method ``name`` (its module is imported now).

    Raises:
        KeyError: an unknown method; the message lists the known ones.
        ImportError: the method's module cannot be imported in this installation.

    >>> explainer_class("occlusion_incremental").__name__
    'IncrementalOcclusion'
    """
    entry = REGISTRY[check_method(name)]
    module = importlib.import_module(f"kerasviz.attribution.{entry.module}")
    return getattr(module, entry.cls)


def create(name: str, model, **settings):
    """Build the explainer called ``name`` (see `REGISTRY`) with sensible default settings.

    ``create(name, model, **s)`` is ``Class(model, **{**default_settings(name, shape), **s})``
    with ``shape`` the model's input shape: the same settings give the same explainer and the
    same results. The registry's defaults differ from the class defaults here:

    * ``"occlusion"`` and ``"occlusion_incremental"``: ``patch`` about a sixth of the input's
      smaller side (the classes: 16), ``stride`` a quarter of it (the classes: half the
      patch), and ``output="logit"`` (the classes: ``"probability"``);
    * ``"lime"``: ``segmentation="grid"`` with 8x8 cells under 64 px, else ``"slic"``,
      ``num_samples=500`` and ``output="logit"`` (see `default_settings`);
    * every other method: the class defaults.

    A model whose input leaves its height or width open (``Input((None, None, 3))``) gets a
    `SizedExplainer`: it answers the same calls and, for each image size it is given, builds
    the explainer on a view of the model at that size (`kerasviz.inspect.sized_model`) with
    the defaults of that size (settings passed here always win).

    Args:
        name: a method name such as ``"occlusion"``, ``"gradcam"`` or ``"lime"``.
        model: the Keras model to explain.
        **settings: keyword settings of the explainer's class, overriding the defaults.

    Raises:
        KeyError: an unknown method; the message lists the known ones.

    >>> create("occlusion", model, patch=8).explain(images).shape
    (4, 64, 64)
    """
    from kerasviz import inspect

    cls = explainer_class(name)
    shape = inspect.input_shape(model)
    open_size = shape[0] is None or shape[1] is None
    if open_size:
        return SizedExplainer(name, cls, model, settings)
    return cls(model, **{**default_settings(name, shape), **settings})


class SizedExplainer:
    """The explainer of a model with an open input size, built for each image size it meets.

    `create` returns one for a model built on ``Input((None, None, C))``. Each call reads the
    size of its images and uses (and keeps) the explainer built for that size: on
    `kerasviz.inspect.sized_model` of the model (the same layers and weights, every shape
    known, which occlusion plans and CAM upsampling need), with `default_settings` of that size
    under the settings given to `create` (a ``layer`` setting is resolved in the user's model).
    Other attributes are read from an explainer built on the model itself with the settings
    that do not depend on the size, which also checks the settings when the object is made.

    Args:
        name: the method's registry name.
        cls: its class.
        model: the model.
        settings: the settings given to `create`.

    >>> explainer = create("occlusion", open_model)
    >>> explainer.explain(np.zeros((2, 48, 64, 3))).shape
    (2, 48, 64)
    """

    def __init__(self, name: str, cls: type, model, settings: dict):
        from kerasviz import inspect

        self.name = name
        self.cls = cls
        self._settings = dict(settings)
        if isinstance(settings.get("layer"), str | int):  # paths of the user's model, not the view
            self._settings["layer"] = inspect.find_layer(model, settings["layer"])
        self._by_size: dict[tuple[int, int], object] = {}
        open_defaults = default_settings(name, (None, None, None))
        self._base = cls(model, **{**open_defaults, **settings})

    def for_size(self, height: int, width: int):
        """The explainer for images of ``height x width`` pixels (built once per size)."""
        from kerasviz import inspect

        key = (int(height), int(width))
        if key not in self._by_size:
            view = inspect.sized_model(self._base.model, *key)
            shape = (*key, None)
            self._by_size[key] = self.cls(
                view, **{**default_settings(self.name, shape), **self._settings}
            )
        return self._by_size[key]

    def _for(self, inputs):
        from kerasviz import inspect

        batch, _ = inspect.check_inputs(self._base.model, inputs)
        return self.for_size(*batch.shape[1:3])

    def explain(self, inputs, targets=None, progress: bool = False, **options):
        """`Explainer.explain` with the settings of the images' size."""
        return self._for(inputs).explain(inputs, targets, progress=progress, **options)

    def explain_full(self, inputs, targets=None, progress: bool = False, **options):
        """`Explainer.explain_full` with the settings of the images' size."""
        return self._for(inputs).explain_full(inputs, targets, progress=progress, **options)

    def __getattr__(self, attr):
        if attr.startswith("__") or attr in ("_base", "_settings", "_by_size"):
            raise AttributeError(attr)
        return getattr(self._base, attr)

    def __repr__(self) -> str:
        return f"SizedExplainer({self.name!r}, sizes={sorted(self._by_size)})"
