"""Which pixels matter: one module per family of explanation methods.

Every explainer is built once with its settings and called many times:
``Occlusion(model, patch=8, stride=4).explain(inputs, targets)`` returns ``(N, H, W)`` float32.
Classes are imported on first use.
"""

import importlib

_WHERE = {
    "Occlusion": "occlusion",
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
