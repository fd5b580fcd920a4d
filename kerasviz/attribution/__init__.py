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


def default_settings(name: str, input_shape) -> dict:
    """Settings that suit an image of ``input_shape`` ``(H, W, C)`` for method ``name``.

    Occlusion (full and incremental) uses a patch of about a sixth of the smaller side with a
    quarter-patch stride; LIME uses a regular 8x8 grid on images under 64 px (segmenters find
    too few regions there) and SLIC superpixels otherwise, with 500 samples. Both score logits:
    a confident model's softmax is saturated, so hiding a part barely moves its probability and
    the maps come out empty, while the logit still shows what the part contributed. Other
    methods, and unknown names, get ``{}`` (their class defaults).

    >>> default_settings("occlusion", (64, 64, 3))
    {'patch': 11, 'stride': 2, 'output': 'logit'}
    """
    h, w = int(input_shape[0]), int(input_shape[1])
    if name in ("occlusion", "occlusion_incremental"):
        patch = max(2, round(min(h, w) / 6))
        return {"patch": patch, "stride": max(1, patch // 4), "output": "logit"}
    if name == "lime":
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
    return cls(model, **{**default_settings(name, inspect.input_shape(model)), **settings})
