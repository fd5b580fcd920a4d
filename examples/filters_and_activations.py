"""What the network learned: filters, activation maps and activation maximization.

    python examples/filters_and_activations.py                 # writes into out/filters/
    python examples/filters_and_activations.py --out /tmp/f --quick

For ``digits_cnn`` and ``shapes_cnn`` this writes, into ``OUT/MODEL/``:

* ``conv1_tiles.png``: first-layer filters, one tile each (colour for the RGB shapes model,
  grey for the digits), grey = 0 so the sign of every weight shows, sorted by kernel norm;
* ``conv2_grid.png``: the second conv layer as filters x input channels (the 16 strongest
  filters by norm, first 16 input channels), each row labelled with its norm;
* ``maps_image{0,1}_LAYER.png``: for two inputs, the 16 most active channels of every conv
  block (after its nonlinearity), one colour scale per layer, plus ``overlay_image{0,1}.png``:
  the last block's most active channel drawn over the input;
* ``max_gallery.png``: activation maximization of 16 channels of a middle block, optimised
  together in one compiled graph (labels ``layer:channel`` under each tile).

``--quick`` (for CI) uses 24 optimisation steps instead of 256; ``$KERASVIZ_MAX_STEPS`` lowers
the step count further.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also for the subprocesses

from kerasviz._compute import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's start-up lines and retracing notices stay off the terminal

import numpy as np  # noqa: E402

# conv block output (after BN / ReLU) that the maps and the gallery use, by model
MID_LAYER = {"digits_cnn": "conv3", "shapes_cnn": "relu3"}
FOLLOWERS = ("BatchNormalization", "ReLU", "Activation", "LeakyReLU")


def block_outputs(model) -> list[str]:
    """For each Conv2D, the last of the BatchNorm/activation layers right after it."""
    from kerasviz import inspect

    rows = inspect.layer_table(model)
    out = []
    for i, row in enumerate(rows):
        if row.type != "Conv2D":
            continue
        j = i
        while j + 1 < len(rows) and rows[j + 1].type in FOLLOWERS:
            j += 1
        out.append(rows[j].path)
    return out


def sample_images(name: str) -> np.ndarray:
    from kerasviz import datasets

    if name == "digits_cnn":
        images, labels = datasets.digits(size=32)
        return images[[int(np.argmax(labels == 3)), int(np.argmax(labels == 8))]]
    images, _, _ = datasets.shapes(2, size=64, seed=3)
    return images


def render(name: str, out: Path, steps: int) -> list[Path]:
    from kerasviz import activations as ka
    from kerasviz import filters as kf
    from kerasviz import models, plot

    model = models.load(name)
    folder = out / name
    written = []

    k1 = kf.filters(model, "conv1")
    fig = plot.filter_tiles(
        k1,
        indices=kf.order(k1),
        cols=8,
        title=f"{name} conv1: {k1.shape[0]} filters {k1.shape[1:]}, strongest first (grey = 0)",
    )
    written.append(plot.save(fig, folder / "conv1_tiles.png"))

    k2 = kf.filters(model, "conv2")
    fig = plot.filter_grid(
        k2,
        sort="norm",
        page=0,
        per_page=16,
        max_channels=16,
        title=f"{name} conv2: 16 strongest of {k2.shape[0]} filters x "
        f"first 16 of {k2.shape[-1]} inputs (rows: filter, norm)",
    )
    written.append(plot.save(fig, folder / "conv2_grid.png"))

    images = sample_images(name)
    layers = block_outputs(model)
    maps = ka.activations(model, images, layers)
    for i in range(len(images)):
        for layer in layers:
            top, _ = ka.top_channels(maps[layer][i], k=16)
            fig = plot.activation_grid(
                maps[layer][i],
                channels=top,
                shared_scale=True,
                title=f"{name} image {i}: {layer}, 16 most active channels (channel: mean)",
            )
            written.append(plot.save(fig, folder / f"maps_image{i}_{layer}.png"))
        last = maps[layers[-1]][i]
        best = int(ka.top_channels(last, k=1)[0][0])
        fig, _ = plot.activation_overlay(
            images[i], last[..., best], title=f"{layers[-1]} channel {best}"
        )
        written.append(plot.save(fig, folder / f"overlay_image{i}.png"))

    layer = MID_LAYER[name]
    am = ka.ActivationMaximization(
        model, layer, steps=steps, learning_rate=0.05, tv=0.1, blur_sigma=0.5, blur_every=4, seed=0
    )
    units = list(range(16))
    start = time.perf_counter()
    gallery = am.maximize(units, progress=False)
    seconds = time.perf_counter() - start
    values = am.unit_values(gallery, units)
    labels = [f"{layer}:{u} ({v:.1f})" for u, v in zip(units, values, strict=True)]
    fig = plot.maximization_gallery(
        gallery,
        labels,
        cols=8,
        title=f"{name}: images that maximise {layer} channels (mean activation)",
    )
    written.append(plot.save(fig, folder / "max_gallery.png"))
    print(f"{name}: 16 units x {ka.max_steps(steps)} steps in {seconds:.1f} s")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/filters", help="output folder")
    parser.add_argument("--quick", action="store_true", help="few steps (for CI)")
    parser.add_argument("--models", nargs="+", default=["digits_cnn", "shapes_cnn"])
    args = parser.parse_args(argv)
    out = Path(args.out)
    steps = 24 if args.quick else 256
    for name in args.models:
        for path in render(name, out, steps):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
