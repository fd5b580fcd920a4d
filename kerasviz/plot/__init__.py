"""Drawing, with matplotlib only: every function takes numpy arrays and returns a ``Figure``.

Compute never draws and drawing never computes. matplotlib is imported on first use, with the
non-interactive Agg backend unless the user chose another. Functions are grouped by area in
submodules and re-exported here lazily.
"""

import importlib

# name -> submodule of kerasviz.plot
_WHERE = {
    "image_grid": "_base",
    "overlay": "_base",
    "save": "_base",
    "explanation_grid": "attribution",
    "draw_explanation": "attribution",
    "neighbor_strips": "embedding",
    "embedding_map": "embedding",
    "cluster_montage": "embedding",
    "filter_tiles": "filters",
    "filter_grid": "filters",
    "activation_grid": "activations",
    "activation_overlay": "activations",
    "maximization_gallery": "activations",
    "lime_view": "lime",
    "lime_overlay": "lime",
    "lime_figure": "lime",
}


def __getattr__(name):
    if name in _WHERE:
        module = importlib.import_module(f"kerasviz.plot.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'kerasviz.plot' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_WHERE])
