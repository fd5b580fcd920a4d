"""How much to trust each explanation method: a methods x metrics table on the shapes model.

Every explainer in `kerasviz.attribution` that imports (missing ones are listed), plus two
baselines that ignore the model (uniform noise, and a Sobel edge map of the image), is run on
``shapes_cnn`` with the true classes as targets and scored with `kerasviz.metrics`:

* deletion AUC (lower is better) and insertion AUC (higher is better), probability of the
  target, trapezoid over the fraction of pixels switched. Deletion fills with a blurred copy
  (sigma 4 px): with the paper's black fill a few scattered black pixels already push this
  small model off its data (every map, random included, drops to chance after 1/16 of the
  pixels), so the black-fill column is printed too, to show that it does not discriminate;
* pointing game, energy inside the object mask and IoU of the top pixels (as many as the mask
  has) with the mask (higher is better);
* randomisation: mean |Spearman| between the trained model's maps and those of a fully
  randomised copy (cascading, top layer down; lower is better), and whether it is below the
  bound 0.5;
* seconds per image of ``explain`` (median of repeats, after a warm-up call that traces).

Run: ``python benchmarks/faithfulness.py [--images 16] [--sanity-images 4] [--steps 32]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from kerasviz import datasets, metrics, models  # noqa: E402

# Settings chosen to keep the whole run to a few minutes on two CPU cores.
METHODS = [
    ("Occlusion", {"patch": 8, "stride": 4}),
    ("Saliency", {}),
    ("GradientInput", {}),
    ("SmoothGrad", {"samples": 25}),
    ("IntegratedGradients", {"steps": 32}),
    ("GuidedBackprop", {}),
    ("Deconvnet", {}),
    ("GradCAM", {}),
    ("GradCAMPlusPlus", {}),
    ("LayerCAM", {}),
    ("ScoreCAM", {}),
    ("Lime", {"segmentation": "slic", "num_samples": 300}),
]


def available() -> tuple[list[tuple[str, object, dict]], list[str]]:
    """Explainer classes that import, and the names that do not."""
    from kerasviz import attribution

    found, missing = [], []
    for name, kwargs in METHODS:
        try:
            cls = getattr(attribution, name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name} ({type(err).__name__}: {err})")
            continue
        found.append((name, cls, kwargs))
    return found, missing


def time_per_image(fn, images, targets, repeats: int) -> float:
    fn(images[:2], targets[:2])  # warm-up: traces the compiled steps
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images, targets)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--sanity-images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import tensorflow as tf

    # Each randomisation stage builds a fresh explainer (fresh compiled functions) on purpose,
    # and TensorFlow warns about the many traces; they are expected here.
    tf.get_logger().setLevel("ERROR")
    model = models.load("shapes_cnn")
    images, labels, masks = datasets.shapes(args.images, seed=12345)
    targets = labels.astype(np.int32)
    sanity_x, sanity_t = images[: args.sanity_images], targets[: args.sanity_images]
    faith = metrics.Faithfulness(model, steps=args.steps, deletion_fill="blur", batch_size=128)
    black = metrics.Faithfulness(model, steps=args.steps, deletion_fill=0.0, batch_size=128)
    found, missing = available()

    entries = []
    for name, cls, kwargs in found:
        explainer = cls(model, **kwargs)
        entries.append(
            (
                name,
                lambda x, t, e=explainer: e.explain(x, t),
                lambda m, x, t, c=cls, k=kwargs: c(m, **k).explain(x, t),
            )
        )
    entries.append(
        (
            "random map",
            lambda x, t: metrics.random_map(x, seed=0),
            lambda m, x, t: metrics.random_map(x, seed=0),
        )
    )
    entries.append(
        ("edge map", lambda x, t: metrics.edge_map(x), lambda m, x, t: metrics.edge_map(x))
    )

    print(
        f"shapes_cnn, {args.images} images of kerasviz.datasets.shapes(seed=12345), true "
        f"classes; deletion fill {faith.deletion_fill!r} (sigma 4 px), insertion canvas "
        f"{faith.insertion_canvas!r} (sigma 4 px), {args.steps} steps; randomisation on "
        f"{args.sanity_images} images, all layers with weights randomised top-down."
    )
    mask_share = float(masks.mean())
    print(
        f"Object masks cover {mask_share:.3f} of the pixels (the energy a random map puts "
        "in them).\n"
    )
    header = (
        "| method | deletion AUC ↓ | deletion AUC, black fill | insertion AUC ↑ "
        "| pointing game ↑ | energy in mask ↑ | top-k IoU ↑ "
        "| randomisation \\|ρ\\| ↓ | sanity (\\|ρ\\| < 0.5) | s / image |"
    )
    print(header)
    print("|" + " --- |" * 10)
    wall = time.perf_counter()
    rows = {}
    for name, explain, explain_on in entries:
        seconds = time_per_image(explain, images, targets, args.repeats)
        maps = explain(images, targets)
        d = faith.deletion(images, maps, targets).auc.mean()
        d0 = black.deletion(images, maps, targets).auc.mean()
        i = faith.insertion(images, maps, targets).auc.mean()
        pg = metrics.pointing_game(maps, masks).mean()
        en = np.nanmean(metrics.energy_in_mask(maps, masks))
        iou = metrics.top_k_iou(maps, masks).mean()
        check = metrics.randomization_check(model, explain_on, sanity_x, sanity_t, seed=0)
        rows[name] = (d, -i, -pg, -en, -iou, check.final_correlation)  # lower is better
        print(
            f"| {name} | {d:.3f} | {d0:.3f} | {i:.3f} | {pg:.3f} | {en:.3f} | {iou:.3f} | "
            f"{check.final_correlation:.3f} | {'pass' if check.passed else 'FAIL'} | "
            f"{seconds:.4f} |",
            flush=True,
        )
    for name in ("Occlusion", "GradCAM"):
        if name in rows:
            beats = all(m < r for m, r in zip(rows[name], rows["random map"], strict=True))
            print(
                f"{name} beats the random map on every metric (black-fill column aside): "
                f"{'yes' if beats else 'NO'}"
            )
    print(f"\nMissing methods: {', '.join(missing) if missing else 'none'}")
    print(f"Total {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
