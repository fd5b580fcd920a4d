"""kerasviz: see what a Keras convolutional network has learned and why it decides what it does.

Submodules are imported on first use, so ``import kerasviz`` (and the command line's ``--help``)
stays fast; TensorFlow is loaded only by the modules that compute.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "activations",
    "attribution",
    "datasets",
    "embedding",
    "filters",
    "inspect",
    "metrics",
    "models",
    "plot",
    "report",
    "shortcut",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"kerasviz.{name}")
    raise AttributeError(f"module 'kerasviz' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES])
