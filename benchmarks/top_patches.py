"""Top dataset patches per unit (Zeiler & Fergus Fig. 2) against the bare forward pass.

Run: ``python benchmarks/top_patches.py [--images 2000] [--quick]`` (about a minute on 2 loaded
CPU cores; ``--quick``: 400 images).

Rows, timed in turns (`_common.interleaved_times`) on the same model, layer and images:

* ``forward``: the bare compiled forward pass up to the layer (`kerasviz.inspect.layer_model`
  in `kerasviz._compute.compiled_forward`), batch by batch, every map brought to host memory:
  the cost floor of anything that reads every activation once.
* ``ours``: `kerasviz.activations.TopPatchFinder.find` for every channel of the layer, k = 9,
  one entry per image (the compiled pass also finds each image's strongest position per unit,
  a running top-k keeps the best entries and cuts their receptive-field patches), the finder
  built once like the forward pass it is compared with;
* ``one-off``: the `kerasviz.activations.top_patches` call, which also builds the finder
  (receptive field, sub-model, one trace) every time.
* ``naive``: every map kept (``(N, h, w, C)`` concatenated), then per unit an argsort of the
  per-image maxima and the patches cut from the images afterwards.

The target is ``ours / forward <= 1.2``. ``agree`` says whether naive and ours found the
same images, positions and patches; ``kept MB`` is what each keeps in memory at the end.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import interleaved_times, print_table, quiet  # noqa: E402

quiet()

import numpy as np  # noqa: E402

from kerasviz import _compute, activations, datasets, inspect, models  # noqa: E402
from kerasviz.inspect._fields import receptive_field  # noqa: E402

BATCH = 64


def forward_fn(model, layer, images):
    forward = _compute.compiled_forward(inspect.layer_model(model, layer))
    tf = _compute.tf()

    def run():
        out = []
        for start in range(0, len(images), BATCH):
            out.append(np.asarray(forward([tf.constant(images[start : start + BATCH])])))
        return out

    return run


def naive_fn(model, layer, images, k=9):
    forward = _compute.compiled_forward(inspect.layer_model(model, layer))
    field = receptive_field(model, layer)
    tf = _compute.tf()

    def run():
        maps = np.concatenate(
            [
                np.asarray(forward([tf.constant(images[start : start + BATCH])]))
                for start in range(0, len(images), BATCH)
            ]
        )  # (N, h, w, C)
        n, h, w, c = maps.shape
        flat = maps.reshape(n, h * w, c)
        best = flat.max(axis=1)  # (N, C)
        where = flat.argmax(axis=1)  # (N, C)
        out = []
        for unit in range(c):
            order = np.argsort(-best[:, unit], kind="stable")[:k]
            rows, cols = np.divmod(where[order, unit], w)
            patches, _ = field.crops(images, rows, cols, index=order)
            out.append((order, rows, cols, patches))
        return out, maps.nbytes

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 400 if args.quick else args.images
    cases = [
        ("shapes_cnn", "relu2", datasets.shapes(n, seed=2)[0]),
        ("shapes_cnn", "relu4", datasets.shapes(n, seed=2)[0]),
        ("digits_cnn", "conv4", datasets.digits(32)[0][:n]),
    ]
    rows = []
    for name, layer, images in cases:
        images = np.ascontiguousarray(images, dtype=np.float32)
        model = models.load(name)
        ours_result = {}
        finder = activations.TopPatchFinder(model, layer, k=9, batch_size=BATCH)

        def ours(finder=finder, images=images, store=ours_result):
            store["top"] = finder.find(images)

        def one_off(model=model, layer=layer, images=images):
            activations.top_patches(model, layer, images, k=9, batch_size=BATCH)

        naive_result = {}
        naive = naive_fn(model, layer, images)

        def naive_run(store=naive_result, naive=naive):
            store["out"], store["bytes"] = naive()

        times = interleaved_times(
            {
                "forward": forward_fn(model, layer, images),
                "ours": ours,
                "one-off": one_off,
                "naive": naive_run,
            },
            repeats=3,
        )
        top = ours_result["top"]
        agree = all(
            np.array_equal(top.indices[u], order)
            and np.array_equal(top.positions[u, :, 0], r)
            and np.array_equal(top.positions[u, :, 1], c)
            and np.array_equal(top.patches[u], p)
            for u, (order, r, c, p) in enumerate(naive_result["out"])
        )
        kept = (top.patches.nbytes + top.valid.nbytes + top.values.nbytes) / 2**20
        rows.append(
            [
                f"{name}/{layer}",
                len(images),
                times["forward"],
                times["ours"],
                times["naive"],
                times["ours"] / times["forward"],
                times["one-off"] / times["forward"],
                times["naive"] / times["forward"],
                "yes" if agree else "NO",
                f"{kept:.2f} / {naive_result['bytes'] / 2**20:.1f}",
            ]
        )
    print_table(
        f"top_patches, k=9, every channel, batch {BATCH} (median s of 3, timed in turns)",
        [
            "model/layer",
            "images",
            "forward s",
            "ours s",
            "naive s",
            "ours/forward",
            "one-off/forward",
            "naive/forward",
            "agree",
            "kept MB ours / naive",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
