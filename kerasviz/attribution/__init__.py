"""Which pixels matter: one module per family of explanation methods.

Every explainer is built once with its settings and called many times:
``Occlusion(model, patch=8, stride=4).explain(inputs, targets)`` returns ``(N, H, W)`` float32.
Classes are imported on first use.
"""

import importlib

_WHERE = {
    "Occlusion": "occlusion",
    "IncrementalOcclusion": "incremental",
    "Saliency": "gradients",
    "GradientInput": "gradients",
    "SmoothGrad": "gradients",
    "IntegratedGradients": "gradients",
    "GuidedBackprop": "gradients",
    "Deconvnet": "gradients",
    "GradCAM": "cam",
    "GradCAMPlusPlus": "cam",
    "ScoreCAM": "cam",
    "LayerCAM": "cam",
    "Lime": "lime",
}


def __getattr__(name):
    if name in _WHERE:
        module = importlib.import_module(f"kerasviz.attribution.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'kerasviz.attribution' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_WHERE])


# name on the command line and in the report -> explainer class
METHODS = {
    "occlusion": "Occlusion",
    "saliency": "Saliency",
    "gradient_input": "GradientInput",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "IntegratedGradients",
    "guided_backprop": "GuidedBackprop",
    "deconvnet": "Deconvnet",
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "layercam": "LayerCAM",
    "lime": "Lime",
}


def default_settings(name: str, input_shape) -> dict:
    """Settings that suit an image of ``input_shape`` ``(H, W, C)`` for method ``name``.

    Occlusion uses a patch of about a sixth of the smaller side with a quarter-patch stride;
    LIME uses a regular 8x8 grid on images under 64 px (segmenters find too few regions there)
    and SLIC superpixels otherwise, with 500 samples. Both score logits: a confident model's
    softmax is saturated, so hiding a part barely moves its probability and the maps come out
    empty, while the logit still shows what the part contributed.
    """
    h, w = int(input_shape[0]), int(input_shape[1])
    if name == "occlusion":
        patch = max(2, round(min(h, w) / 6))
        return {"patch": patch, "stride": max(1, patch // 4), "output": "logit"}
    if name == "lime":
        if min(h, w) < 64:
            return {"segmentation": "grid", "segmentation_args": {"cells": 8},
                    "num_samples": 500, "output": "logit"}
        return {"segmentation": "slic", "num_samples": 500, "output": "logit"}
    return {}


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method, else raise a KeyError listing the known ones."""
    if name not in METHODS:
        import difflib

        close = difflib.get_close_matches(str(name), list(METHODS), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise KeyError(f"Unknown method {name!r}.{hint} Known methods: {', '.join(METHODS)}")
    return name


def create(name: str, model, **settings):
    """Build the explainer called ``name`` (see `METHODS`) with sensible default settings.

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

    cls = __getattr__(METHODS[check_method(name)])
    return cls(model, **{**default_settings(name, inspect.input_shape(model)), **settings})
