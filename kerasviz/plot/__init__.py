"""Drawing: every function takes numpy arrays and returns a ``Figure`` (or pixels).

Compute never draws and drawing never computes; nothing here imports `kerasviz.inspect`.
matplotlib is imported on first use, with the non-interactive Agg backend unless the user chose
another. `kerasviz.plot.raster` (``overlay_rgb``, ``png_bytes``) needs numpy and Pillow only, so
dataset jobs never load matplotlib; `kerasviz.plot.placement` (``place_grid``: a coarse grid
placed on the input at its cells' receptive-field centres) needs numpy only. Functions are
grouped by area in submodules and re-exported here lazily: ``kerasviz.plot.overlay_rgb``
imports the raster module alone.
"""

import importlib

# name -> submodule of kerasviz.plot
_WHERE = {
    "image_grid": "_base",
    "overlay": "_base",
    "save": "_base",
    "explanation_grid": "attribution",
    "draw_explanation": "attribution",
    "draw_greyed": "attribution",
    "neighbor_strips": "embedding",
    "embedding_map": "embedding",
    "cluster_montage": "embedding",
    "filter_tiles": "filters",
    "filter_grid": "filters",
    "activation_grid": "activations",
    "activation_rows": "activations",
    "activation_overlay": "activations",
    "maximization_gallery": "activations",
    "lime_view": "lime",
    "lime_overlay": "lime",
    "lime_figure": "lime",
    "overlay_rgb": "raster",
    "png_bytes": "raster",
    "place_grid": "placement",
    "top_patch_grid": "zf",
    "occlusion_row": "zf",
    "units_section": "zf",
}


def __getattr__(name):
    if name in _WHERE:
        module = importlib.import_module(f"kerasviz.plot.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'kerasviz.plot' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_WHERE])
