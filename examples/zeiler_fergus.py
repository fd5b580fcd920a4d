"""What each unit responds to, from real data: Zeiler and Fergus (ECCV 2014) on the shipped models.

    python examples/zeiler_fergus.py                 # writes into out/zeiler_fergus/
    python examples/zeiler_fergus.py --out /tmp/zf --quick

For ``shapes_cnn`` (on ``datasets.shapes``) and ``digits_cnn`` (on ``datasets.digits``) this
writes, into ``OUT/MODEL/``:

* ``top_patches_LAYER.png`` for every conv block: Fig. 2, the 8 units with the strongest
  activations, each with the 9 images where it fires most cut to its exact receptive field
  (`kerasviz.activations.top_patches`, one pass over the data), and below each patch the
  deconvnet projection of that activation;
* ``occlusion_row_{0,1}.png``: Fig. 7 for two images: the image, the strongest feature map of the
  last conv block, that unit's total activation and the true class's probability as functions of
  the occluder's position, and the most probable class at each position (one `Occlusion` pass
  with ``layer=``).

It prints, per layer and unit, what the top images are (their classes, and for the shapes how
many of the nine receptive fields are centred on the object), which is what the closing note of
the README reads. ``--quick`` (for CI) searches 160 images and draws the last block only.
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

# the output of each conv block (after its BatchNorm and ReLU where it has them)
BLOCKS = {
    "shapes_cnn": ["relu1", "relu2", "relu3", "relu4"],
    "digits_cnn": ["conv1", "conv2", "conv3", "conv4"],
}
OCCLUSION = {"shapes_cnn": (12, 4), "digits_cnn": (6, 2)}  # patch, stride


def data(name: str, n: int):
    """``(images, labels, masks or None, class names)`` of the model's own kind of data."""
    from kerasviz import datasets

    if name == "shapes_cnn":
        images, labels, masks = datasets.shapes(n, seed=1)
        return images, labels, masks, list(datasets.SHAPE_CLASSES)
    images, labels = datasets.digits(32)
    pick = np.random.default_rng(0).permutation(len(images))[:n]
    return images[pick], labels[pick], None, [str(d) for d in range(10)]


def describe(top, labels, masks, class_names, units) -> list[str]:
    """One line per unit: the classes of its top images, and how often its field is centred on
    the object (shapes)."""
    lines = []
    for unit in units:
        u = list(top.units).index(unit)
        counts = np.bincount(labels[top.indices[u]], minlength=len(class_names))
        classes = ", ".join(
            f"{class_names[c]} {counts[c]}" for c in np.argsort(-counts) if counts[c] > 0
        )
        line = f"  unit {unit:3d}  top value {top.values[u, 0]:7.3f}  classes: {classes}"
        if masks is not None:
            top_, left, h, w = top.boxes[u].T
            centre = masks[top.indices[u], top_ + h // 2, left + w // 2]
            line += f"  centred on the object: {int(centre.sum())}/{len(centre)}"
        lines.append(line)
    return lines


def run(name: str, out: Path, quick: bool) -> None:
    from kerasviz import activations, models, plot
    from kerasviz.attribution import Occlusion

    model = models.load(name)
    n = 160 if quick else 2000
    images, labels, masks, class_names = data(name, n)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    show = lambda x: np.clip(x, 0.0, 1.0)  # noqa: E731 - the shipped models read [0, 1] pixels
    layers = BLOCKS[name][-1:] if quick else BLOCKS[name]
    for layer in layers:
        start = time.perf_counter()
        top = activations.top_patches(
            model, layer, images, k=9, batch_size=64, projection="deconvnet"
        )
        seconds = time.perf_counter() - start
        strength = top.values.mean(axis=1)
        units = [int(top.units[j]) for j in np.argsort(-strength, kind="stable")[:8]]
        fig = plot.top_patch_grid(top, units=units, display=show)
        plot.save(fig, folder / f"top_patches_{layer}.png")
        fh, fw = top.field.size
        print(
            f"{name} {layer}: field {fh}x{fw}, {top.images_seen} images, "
            f"{len(top.units)} units, {seconds:.1f} s (with projections)"
        )
        print("\n".join(describe(top, labels, masks, class_names, units)))
    # Fig. 7: the strongest feature map of the last block under occlusion, and the label map
    last = BLOCKS[name][-1]
    patch, stride = OCCLUSION[name]
    occlusion = Occlusion(model, patch=patch, stride=stride, fill="mean", layer=last)
    picks = [int(np.argmax(labels == c)) for c in (0, 1)]
    result = occlusion.explain_full(images[picks])
    maps = activations.activations(model, images[picks], last)[last]
    for i, index in enumerate(picks):
        unit = int(result.targets[i])
        fig = plot.occlusion_row(
            images[index],
            maps[i, ..., unit],
            result,
            target=int(labels[index]),
            class_names=class_names,
            display=show,
            index=i,
        )
        plot.save(fig, folder / f"occlusion_row_{i}.png")
        kept = float((result.labels[i] == labels[index]).mean())
        print(
            f"{name} occlusion image {index} ({class_names[labels[index]]}): strongest unit "
            f"{unit} of {last}; label unchanged at {kept:.0%} of occluder positions"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/zeiler_fergus", help="output folder")
    parser.add_argument("--quick", action="store_true", help="small settings for CI")
    parser.add_argument("--models", nargs="+", default=list(BLOCKS), choices=list(BLOCKS))
    args = parser.parse_args(argv)
    out = Path(args.out)
    for name in args.models:
        run(name, out, args.quick)
    print(f"figures in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
