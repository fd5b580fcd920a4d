"""Incremental occlusion (Krypton) against full re-inference and the forward-pass limit.

Run: ``python benchmarks/incremental.py [--positions 32] [--quick] [--layers]`` (about 4-5
minutes on 2 loaded CPU cores; ``--quick``: shapes_cnn only, under a minute).

Rows, measured in turns (`_common.interleaved_times`) on the same model, image and positions:

* ``limit``: the bare compiled forward passes of the occluded images, built beforehand, in
  chunks of ``batch_size`` (`_common.limit_forward`): what full re-inference costs at best.
* ``full``: `Occlusion.score` (full re-inference, the occluded copies built in the graph).
* ``incremental``: `IncrementalOcclusion.score` (one clean pass per image, then only the
  changed window of every layer per position; the clean pass is included in its time).

Settings: ``keras.applications.VGG16(weights=None)`` and ``MobileNetV2(weights=None)`` at 224x224
with patch 16 stride 8 (729 positions) and patch 32 stride 16 (169 positions); the shipped
``shapes_cnn`` at 64x64 with patch 8 stride 4 (225 positions). On the 224 px models a random
subset of ``--positions`` positions of one image is timed (the plan and the compiled step are
those of the whole grid) and the seconds are extrapolated to the whole grid; the table says so.
``max |diff|`` is the largest absolute difference between the incremental and the full
probabilities' drops over the timed positions (for shapes_cnn: of the whole probability map).
``FLOP ratio`` is full / incremental multiply-add FLOPs of convolutions and Dense layers per
position, from the window plan.

VGG16's random weights are rescaled to He initialisation (its Glorot default shrinks every
activation by half per layer, so its softmax would be flat) and its head so that the logits of a
few images spread with standard deviation 2: then the probability drops are large enough for the
1e-4 comparison to mean something. MobileNetV2 is `_common.mobilenetv2` (BatchNorm statistics
calibrated on images).

Further tables: the full-computation threshold measured on VGG16 (patch 16 stride 8), the error
of the approximations against the exact maps, and (``--layers``, or when VGG16 misses the 3x
target) per-layer seconds of one chunk run eagerly, incremental beside full.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    correlation,
    interleaved_times,
    limit_forward,
    mobilenetv2,
    print_table,
    quiet,
    sample_images,
)

quiet()

import numpy as np  # noqa: E402


def vgg16(seed: int = 0, logit_std: float = 2.0):
    """VGG16(weights=None) with He-scaled kernels and a head whose logits spread (see above)."""
    import keras

    from kerasviz import inspect

    keras.utils.set_random_seed(seed)
    model = keras.applications.VGG16(weights=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            kernel = layer.kernel.numpy()
            fan_in, fan_out = (
                np.prod(kernel.shape[:-1]),
                kernel.shape[-1] * np.prod(kernel.shape[:-2]),
            )
            layer.kernel.assign(kernel * np.sqrt((fan_in + fan_out) / fan_in))
    head = model.get_layer("predictions")
    logits = np.asarray(inspect.logits_model(model)(sample_images(2, 224, (0, 255), seed=7)))
    scale = logit_std / max(float(logits.std(axis=1).mean()), 1e-12)
    head.kernel.assign(head.kernel.numpy() * scale)
    head.bias.assign(head.bias.numpy() * scale)
    return model


def occluded(image, tasks, patch, fills):
    """The occluded copies ``(T, H, W, C)`` of ``tasks`` rows ``(image, top, left)``."""
    out = np.repeat(image, len(tasks), axis=0)
    for k, (_, top, left) in enumerate(tasks):
        out[k, top : top + patch, left : left + patch] = fills[0, 0, 0]
    return out


def setting(title, model, image, patch, stride, batch_size, count, repeats, seed=0):
    """Time limit / full / incremental on ``count`` positions (all when ``None``)."""
    from kerasviz.attribution import IncrementalOcclusion, Occlusion
    from kerasviz.attribution.incremental import flops

    full = Occlusion(model, patch=patch, stride=stride, batch_size=batch_size)
    inc = IncrementalOcclusion(model, patch=patch, stride=stride, batch_size=batch_size)
    h, w = image.shape[1:3]
    tops, lefts = full.positions(h, w)
    tasks = full.tasks(1, tops, lefts)[1:]  # the positions, without the reference row
    total = len(tasks)
    if count is not None and count < total:
        rng = np.random.default_rng(seed)
        tasks = tasks[np.sort(rng.choice(total, count, replace=False))]
    fills = full.fills(image)
    limit = limit_forward(full.scored, occluded(image, tasks, patch, fills), batch_size)
    results = {}

    def run(name, explainer):
        def go():
            results[name] = explainer.score(image, tasks, fills)
            return results[name]

        return go

    seconds = interleaved_times(
        {"limit": limit, "full": run("full", full), "incremental": run("incremental", inc)},
        repeats=repeats,
    )
    f_inc, f_full = flops(inc.plan(h, w))
    reference = np.asarray(full.predict(image))[0]
    target = int(np.argmax(reference))
    drops_full = reference[target] - results["full"][:, target]
    drops_inc = reference[target] - results["incremental"][:, target]
    diff = float(np.abs(drops_full - drops_inc).max())
    scale = len(tasks) and total / len(tasks)
    note = "all" if len(tasks) == total else f"{len(tasks)} of {total}, x{scale:.1f}"
    rows = [
        [
            title,
            name,
            note,
            seconds[name] * scale,
            seconds["full"] / seconds[name],
            seconds["limit"] / seconds[name],
            f"{f_full / f_inc:.2f}" if name == "incremental" else "",
            f"{diff:.1e}" if name == "incremental" else "",
        ]
        for name in ("limit", "full", "incremental")
    ]
    return rows, seconds["full"] / seconds["incremental"], inc, float(np.abs(drops_full).max())


def threshold_table(model, image, count, repeats):
    from kerasviz.attribution.incremental import IncrementalOcclusion, flops

    thresholds = (0.3, 0.5, 0.75, 1.0)
    explainers = {
        t: IncrementalOcclusion(model, patch=16, stride=8, batch_size=16, full_threshold=t)
        for t in thresholds
    }
    tasks = explainers[0.5].tasks(1, *explainers[0.5].positions(224, 224))[1:]
    tasks = tasks[np.sort(np.random.default_rng(1).choice(len(tasks), count, replace=False))]
    fills = explainers[0.5].fills(image)
    seconds = interleaved_times(
        {t: (lambda e=e: e.score(image, tasks, fills)) for t, e in explainers.items()},
        repeats=repeats,
    )
    rows = []
    for t, e in explainers.items():
        made = e.plan(224, 224)
        windowed = sum(m == "win" for m in made.mode[1:])
        f_inc, f_full = flops(made)
        rows.append([t, windowed, f"{f_full / f_inc:.2f}", seconds[t] / len(tasks)])
    print_table(
        f"VGG16 224, patch 16 stride 8: full-computation threshold ({count} positions)",
        ["full_threshold", "windowed layers", "FLOP ratio", "s / position"],
        rows,
    )


def approximation_table(cases, repeats):
    """Error of the approximations against the exact map (probability), and their time."""
    import time

    from kerasviz.attribution.incremental import IncrementalOcclusion

    def timed(explainer, images):
        explainer.explain(images[:1])  # trace
        best, maps = np.inf, None
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            maps = explainer.explain(images)
            best = min(best, time.perf_counter() - start)
        return maps, best

    rows = []
    for title, model, images, patch, stride in cases:
        exact, exact_s = timed(
            IncrementalOcclusion(model, patch=patch, stride=stride, batch_size=32), images
        )
        rows.append([title, "exact", exact_s, 1.0, 0.0, 0.0, 1.0])
        for name, kwargs in (
            ("tau 0.75", {"projective_threshold": 0.75}),
            ("tau 0.5", {"projective_threshold": 0.5}),
            ("adaptive 0.5", {"adaptive": 0.5}),
            ("adaptive 0.25", {"adaptive": 0.25}),
        ):
            approx, best = timed(
                IncrementalOcclusion(model, patch=patch, stride=stride, batch_size=32, **kwargs),
                images,
            )
            err = np.abs(approx - exact)
            rows.append(
                [
                    title,
                    name,
                    best,
                    exact_s / best,
                    float(err.max()),
                    float(err.mean()),
                    correlation(approx, exact),
                ]
            )
    print_table(
        "Approximations against the exact map (probability drops; error over all pixels)",
        ["setting", "mode", "s", "speed-up", "max |err|", "mean |err|", "corr"],
        rows,
    )


def layer_table(model, image):
    from kerasviz.attribution.incremental import IncrementalOcclusion

    inc = IncrementalOcclusion(model, patch=16, stride=8, batch_size=16)
    rows = inc.layer_times(image)
    total_inc, total_full = sum(r[2] for r in rows), sum(r[3] for r in rows)
    shown = [
        [p, m, a * 1e3, b * 1e3, f"{b / a:.1f}" if a > 0 else ""]
        for p, m, a, b in rows
        if max(a, b) > 1e-3
    ]
    shown.append(["total", "", total_inc * 1e3, total_full * 1e3, f"{total_full / total_inc:.1f}"])
    print_table(
        "VGG16 224, patch 16 stride 8: ms per layer for one chunk of 16 positions "
        "(eager, best of 2)",
        ["layer", "mode", "incremental ms", "full ms", "ratio"],
        shown,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--positions",
        type=int,
        default=32,
        help="positions timed on the 224 px models (default 32)",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="shapes_cnn only")
    parser.add_argument("--layers", action="store_true", help="always print per-layer times")
    args = parser.parse_args()

    import keras

    from kerasviz import datasets, models

    headers = [
        "model",
        "row",
        "positions timed",
        "s (whole grid)",
        "full / row",
        "limit / row",
        "FLOP ratio",
        "max |diff|",
    ]
    shapes_model = models.load("shapes_cnn")
    shapes_images = datasets.shapes(2, size=64, seed=3)[0]
    rows, _, _, scale = setting(
        "shapes_cnn 64, p8 s4",
        shapes_model,
        shapes_images[:1],
        8,
        4,
        64,
        None,
        max(args.repeats, 3),
    )
    all_rows = list(rows)
    print_table("shapes_cnn (one image)", headers, rows)
    print(f"(largest probability drop: {scale:.3g})")
    if args.quick:
        approximation_table(
            [("shapes_cnn p8 s4", shapes_model, shapes_images, 8, 4)], max(2, args.repeats)
        )
        return
    keras.utils.set_random_seed(0)
    vgg = vgg16()
    vgg_image = sample_images(1, 224, (0.0, 255.0), seed=11)
    speedups = []
    for patch, stride in ((16, 8), (32, 16)):
        rows, speed, _, scale = setting(
            f"VGG16 224, p{patch} s{stride}",
            vgg,
            vgg_image,
            patch,
            stride,
            16,
            args.positions,
            args.repeats,
        )
        all_rows += rows
        speedups.append(speed)
        print_table(f"VGG16 (one image; largest probability drop {scale:.3g})", headers, rows)
    mobile = mobilenetv2(224, classes=1000)
    mobile_image = sample_images(1, 224, (-1.0, 1.0), seed=12)
    for patch, stride in ((16, 8), (32, 16)):
        rows, _, _, scale = setting(
            f"MobileNetV2 224, p{patch} s{stride}",
            mobile,
            mobile_image,
            patch,
            stride,
            32,
            args.positions * 2,
            args.repeats,
        )
        all_rows += rows
        print_table(f"MobileNetV2 (one image; largest probability drop {scale:.3g})", headers, rows)
    print_table("All settings", headers, all_rows)
    threshold_table(vgg, vgg_image, 32, args.repeats)
    approximation_table(
        [
            ("shapes_cnn p8 s4", shapes_model, shapes_images, 8, 4),
            ("MobileNetV2 224 p32 s16", mobile, mobile_image, 32, 16),
        ],
        max(2, args.repeats),
    )
    if args.layers or speedups[0] < 3.0:
        layer_table(vgg, vgg_image)


if __name__ == "__main__":
    main()
