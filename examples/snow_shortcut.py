"""Husky or wolf? Find the model that learned the snow (Ribeiro et al. 2016, Fig. 11).

    python examples/snow_shortcut.py                      # 16 test images, figure in /tmp
    python examples/snow_shortcut.py --n 8 --out snow.png --samples 300

Two shipped models see the same kind of pictures: ``snow_biased`` was trained where every wolf
stood on snow and every husky on grass; ``snow_fair`` on a set where the background says
nothing. Both score 100 % on test images drawn like their training set. The example explains
both with LIME, occlusion and Grad-CAM (whichever are available), prints the background
reliance (share of positive attribution mass outside the animal; "chance" is what a map that
ignores the animal would score) and the accuracy on images with swapped backgrounds, and draws
a figure: each row an image, for each model its LIME view (top 5 superpixels), occlusion and
Grad-CAM maps.

Reliance is printed exactly (``rel@0px``) and with pixels within 2 px of the animal counted as
animal (``rel@2px``): occlusion patches and Grad-CAM's 8x8 cells spill some mass over the
animal's outline even when the evidence lies inside it (the coats tell the classes apart).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also for the subprocesses

from kerasviz._compute import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's start-up lines and retracing notices stay off the terminal

import numpy as np  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="test images to explain")
    parser.add_argument("--swapped", type=int, default=200, help="swapped images for accuracy")
    parser.add_argument("--samples", type=int, default=500, help="LIME samples per image")
    parser.add_argument("--rows", type=int, default=4, help="images in the figure")
    parser.add_argument("--out", default="/tmp/snow_shortcut.png", help="figure path")
    args = parser.parse_args(argv)

    from kerasviz import datasets, models, shortcut
    from kerasviz.plot import _base, lime

    images, labels, masks = datasets.snow(args.n, "test", seed=1)
    swapped = datasets.snow(args.swapped, "swapped", seed=1)[:2]
    nets = {name: models.load(name) for name in ("snow_biased", "snow_fair")}
    methods = shortcut.available_methods()
    start = time.perf_counter()
    reports = shortcut.compare(
        nets,
        images,
        masks,
        labels,
        methods=methods,
        swapped=swapped,
        settings={"lime": {"num_samples": args.samples}},
    )
    seconds = time.perf_counter() - start
    print(
        f"{args.n} test images (animal covers {masks.mean():.0%} of each image on average), "
        f"{args.swapped} swapped; methods: {', '.join(methods)}; {seconds:.1f} s"
    )
    print(shortcut.format_table(reports, margins=(0, 2)))

    # Figure: one row per image; per model its LIME view and the other methods' heat maps.
    rows = min(args.rows, args.n)
    order = np.argsort(labels[: args.n], kind="stable")  # huskies first, then wolves
    picks = np.concatenate([order[: rows // 2], order[::-1][: rows - rows // 2]])
    names = datasets.SNOW_CLASSES
    cols = 1 + len(nets) * len(methods)
    fig, axes = _base.figure(rows, cols, size=1.7)
    for r, i in enumerate(picks):
        _base.show_image(
            axes[r, 0], images[i], f"{names[labels[i]]}" if r else f"image\n{names[labels[i]]}"
        )
        axes[r, 0].contour(masks[i], levels=[0.5], colors="yellow", linewidths=0.6)
        c = 1
        for model_name, by_method in reports.items():
            for method, rep in by_method.items():
                ax = axes[r, c]
                head = f"{model_name.replace('snow_', '')}: {method}\n" if r == 0 else ""
                title = f"{head}reliance {rep.reliance[i]:.2f}"
                if method == "lime":
                    res = _lime_result(nets[model_name], images[i], labels[i], args.samples)
                    lime.lime_view(
                        images[i], res.segments[0], res.weights[0], k=5, ax=ax, title=title
                    )
                else:
                    _base.overlay(images[i], rep.explanations[i], ax=ax, title=title)
                c += 1
    fig.tight_layout()
    path = _base.save(fig, args.out)
    print(f"figure: {path}")
    return reports


def _lime_result(model, image, label, samples):
    """The same LIME settings the report used, on one image (same seed, same result)."""
    from kerasviz import shortcut

    exp = shortcut.explainer(model, "lime", num_samples=samples)
    return exp.explain_full(image[None], int(label))


if __name__ == "__main__":
    main()
