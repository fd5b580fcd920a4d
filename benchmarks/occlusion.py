"""Occlusion sensitivity: kerasviz against a naive loop, tf-explain, Xplique and the limit.

Run: ``python benchmarks/occlusion.py [--repeats 2] [--settings SUBSET]``, SUBSET a comma list of
``mobilenet,tf-explain,shapes,memory`` (all by default; about 2.7 CPU-minutes: 3.8 minutes
wall on 2 shared cores, 8 under heavy load);
``--quick`` runs the shapes_cnn setting only (seconds).

Rows of one setting are timed in turns (`_common.interleaved_times`) so they share the
machine's load drift; on a shared machine ratios still move by about +-10% between runs.

Rows, measured side by side in one run on the same model and images:

* ``limit``: the bare compiled forward passes (``tf.function`` around ``model(x,
  training=False)``) of the ``N * positions`` occluded images, built beforehand, in the same
  chunks of ``batch_size``. Any method that runs those passes costs at least this.
* ``kerasviz``: `kerasviz.attribution.Occlusion` (``N * (positions + 1)`` passes: one unoccluded
  pass per image gives the reference score).
* ``naive loop``: one eager ``model(x)`` per position, copies built in numpy.
* ``tf-explain`` (``OcclusionSensitivity``: stride = patch, grey 127.5, ``model.predict``) and
  ``Xplique`` (``Occlusion``) where importable. Install them into the venv without their
  dependencies (they would pull a CUDA TensorFlow)::

      .venv/bin/pip install --no-deps tf-explain xplique opencv-python-headless

  Both import OpenCV. Xplique's package ``__init__`` also imports ``tensorflow_probability``
  (which needs ``tf_keras``) and ``einops`` for unrelated estimators; when they are missing the
  benchmark puts placeholder modules in their place (`_common.import_peer`), which the
  Occlusion code never calls. A peer that still fails to import is reported with its error.

Models: ``MobileNetV2(weights=None)`` at 224x224 with BatchNorm statistics calibrated on a few
images (`_common.mobilenetv2`), patch 32 stride 16 (169 positions) and patch 32 stride 32 (49
positions, tf-explain's only mode); the shipped ``shapes_cnn`` at 64x64, patch 8 stride 4 (225
positions). Conventions are aligned before the maps are compared: same fill, same targets, same
positions; tf-explain's map is ``1 - score`` resized bilinearly, so it is read at the patch
centres; Xplique sums the drops of the covering patches, so its map is divided by the coverage
count. Peak memory of kerasviz is measured at two batch sizes, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    correlation,
    import_peer,
    interleaved_times,
    limit_forward,
    median_time,
    mobilenetv2,
    peak_rss,
    print_table,
    quiet,
    rss_bytes,
    sample_images,
)

quiet()

import numpy as np  # noqa: E402

XPLIQUE_STUBS = ("tensorflow_probability", "einops")


def positions(h, w, patch, stride):
    from kerasviz.attribution._patches import patch_starts

    return patch_starts(h, patch, stride), patch_starts(w, patch, stride)


def occluded_stack(images, patch, stride, fill):
    """All occluded copies ``(N * P, H, W, C)``, built in numpy (input of the limit row)."""
    n, h, w, _ = images.shape
    tops, lefts = positions(h, w, patch, stride)
    out = np.repeat(images, len(tops) * len(lefts), axis=0)
    k = 0
    for _ in range(n):
        for t in tops:
            for left in lefts:
                out[k, t : t + patch, left : left + patch] = fill
                k += 1
    return out


def naive_grid(model, image, target, patch, stride, fill, rows=None):
    """One eager ``model(x)`` per position: the textbook loop (first ``rows`` patch rows)."""
    h, w, _ = image.shape
    tops, lefts = positions(h, w, patch, stride)
    tops = tops[:rows]
    base = float(np.asarray(model(image[None], training=False))[0, target])
    grid = np.zeros((len(tops), len(lefts)), np.float32)
    for i, t in enumerate(tops):
        for j, left in enumerate(lefts):
            x = image.copy()
            x[t : t + patch, left : left + patch] = fill
            grid[i, j] = base - float(np.asarray(model(x[None], training=False))[0, target])
    return grid


def coverage_count(h, w, patch, stride):
    from kerasviz.attribution._patches import coverage

    tops, lefts = positions(h, w, patch, stride)
    return coverage(h, tops, patch).sum(1)[:, None] * coverage(w, lefts, patch).sum(1)[None, :]


def bench(
    title,
    model,
    images,
    targets,
    patch,
    stride,
    fill,
    batch_size,
    repeats,
    peers,
    naive_rows=None,
    multi=0,
):
    """Time every row of one setting in turns (`interleaved_times`); return agreement rows.

    ``naive_rows``: run the naive loop on that many patch rows only (all when ``None``) and
    scale its time to all positions; ``0`` skips it.
    """
    from kerasviz.attribution import Occlusion

    h, w = images.shape[1:3]
    tops, lefts = positions(h, w, patch, stride)
    count = len(tops) * len(lefts)
    one, one_target = images[:1], targets[:1]
    occ = Occlusion(model, patch=patch, stride=stride, fill=fill, batch_size=batch_size)
    out = {}
    fns = {
        "limit1": limit_forward(model, occluded_stack(one, patch, stride, fill), batch_size),
        "ours1": lambda: out.__setitem__("ours", occ.explain_full(one, one_target)),
    }
    if multi:
        batch, batch_targets = images[:multi], targets[:multi]
        fns["limitN"] = limit_forward(model, occluded_stack(batch, patch, stride, fill), batch_size)
        fns["oursN"] = lambda: occ.explain(batch, batch_targets)
    if "xplique" in peers:
        xp_occ = peers["xplique"].Occlusion(
            model,
            batch_size=batch_size,
            patch_size=patch,
            patch_stride=stride,
            occlusion_value=float(fill),
        )
        onehot = np.eye(occ.num_classes, dtype=np.float32)[one_target]
        fns["xplique"] = lambda: out.__setitem__("xplique", np.asarray(xp_occ.explain(one, onehot)))
    if "tf-explain" in peers and patch == stride:
        tfe = peers["tf-explain"].OcclusionSensitivity(batch_size=batch_size)
        fns["tf-explain"] = lambda: out.__setitem__(
            "tf-explain", tfe.get_sensitivity_map(model, one[0], int(one_target[0]), patch)
        )
    t = interleaved_times(fns, repeats)
    lim = t["limit1"]
    rows = [
        ["limit (compiled forward)", 1, count, lim, lim, 1.0],
        ["kerasviz Occlusion", 1, count + 1, t["ours1"], t["ours1"], t["ours1"] / lim],
    ]
    if multi:
        rows += [
            [
                "limit (compiled forward)",
                multi,
                multi * count,
                t["limitN"],
                t["limitN"] / multi,
                1.0,
            ],
            [
                "kerasviz Occlusion",
                multi,
                multi * (count + 1),
                t["oursN"],
                t["oursN"] / multi,
                t["oursN"] / t["limitN"],
            ],
            [
                f"  per image: {multi} per call / 1 per call",
                "",
                "",
                "",
                (t["oursN"] / multi) / t["ours1"],
                "",
            ],
        ]
    if "xplique" in t:
        rows.append(
            ["Xplique Occlusion", 1, count + 1, t["xplique"], t["xplique"], t["xplique"] / lim]
        )
    if "tf-explain" in t:
        rows.append(
            [
                "tf-explain OcclusionSensitivity",
                1,
                count,
                t["tf-explain"],
                t["tf-explain"],
                t["tf-explain"] / lim,
            ]
        )
    ours_maps, ours_grid = out["ours"].explanations, out["ours"].grid
    agree = []
    if naive_rows != 0:
        part = len(tops) if naive_rows is None else min(naive_rows, len(tops))
        grid_naive = None

        def run_naive():
            nonlocal grid_naive
            grid_naive = naive_grid(
                model, one[0], int(one_target[0]), patch, stride, fill, rows=part
            )

        t_naive = median_time(run_naive, 1, warmup=0)
        done = part * len(lefts) + 1
        t_naive *= (count + 1) / done
        label = "naive loop (eager, 1 per pass)"
        if part < len(tops):
            label += f" *timed on {done} passes, scaled"
        rows.append([label, 1, count + 1, t_naive, t_naive, t_naive / lim])
        agree.append(
            [
                title,
                f"kerasviz vs naive loop (grid, {part} of {len(tops)} rows)",
                correlation(ours_grid[0, :part], grid_naive),
                float(np.abs(ours_grid[0, :part] - grid_naive).max()),
            ]
        )
    if "xplique" in out:
        aligned = out["xplique"].reshape(h, w) / coverage_count(h, w, patch, stride)
        agree.append(
            [
                title,
                "kerasviz vs Xplique (map, sum / coverage)",
                correlation(ours_maps[0], aligned),
                float(np.abs(ours_maps[0] - aligned).max()),
            ]
        )
    if "tf-explain" in out:
        centres = out["tf-explain"][np.ix_(tops + patch // 2, lefts + patch // 2)]  # 1 - score
        agree.append(
            [
                title,
                "kerasviz vs tf-explain (grid, 1 - score at centres)",
                correlation(ours_grid[0], centres),
                float("nan"),
            ]
        )
    print_table(
        f"\n{title}",
        ["method", "images", "forward passes", "median s", "s / image", "x limit"],
        rows,
    )
    return agree


def memory_probe(batch_size):
    """In a fresh process: peak RSS increase of one MobileNetV2 explain call."""
    from kerasviz.attribution import Occlusion

    model = mobilenetv2(224)
    image = sample_images(1, 224, (-1.0, 1.0), seed=7)
    model(image, training=False)
    occ = Occlusion(model, patch=32, stride=16, fill=0.0, batch_size=batch_size)
    before = rss_bytes()
    _, peak = peak_rss(lambda: occ.explain(image, 0))
    print(json.dumps({"batch_size": batch_size, "before": before, "peak": before + peak}))


def memory_table(batch_sizes):
    rows = []
    for bs in batch_sizes:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-probe", str(bs)],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            rows.append([bs, "failed: " + out.stderr.strip().splitlines()[-1][:80], "", ""])
            continue
        probe = json.loads(lines[-1])
        batch_mb = bs * 224 * 224 * 3 * 4 / 2**20
        rows.append([bs, probe["before"] / 2**20, probe["peak"] / 2**20, batch_mb])
    stack = 169 * 224 * 224 * 3 * 4 / 2**20
    print_table(
        f"\nPeak memory of kerasviz Occlusion (MobileNetV2 224, 1 image, 169 positions; "
        f"process RSS in a fresh process before and during the first call, tracing "
        f"included; a pre-built stack of all copies alone would be {stack:.0f} MB)",
        ["batch_size", "RSS before MB", "peak RSS MB", "one input batch MB"],
        rows,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shapes_cnn only, no memory probes (a smoke run, seconds)",
    )
    parser.add_argument(
        "--settings",
        default="mobilenet,tf-explain,shapes,memory",
        help="comma-separated subset of: mobilenet, tf-explain, shapes, memory",
    )
    args = parser.parse_args()
    if args.memory_probe is not None:
        memory_probe(args.memory_probe)
        return

    import keras

    keras.utils.disable_interactive_logging()  # tf-explain calls model.predict (progress bars)
    peers = {}
    tfe, why = import_peer("tf_explain.core.occlusion_sensitivity")
    if tfe is None:
        print(f"tf-explain not compared: {why}")
    else:
        peers["tf-explain"] = tfe
    xp, why = import_peer("xplique.attributions", stubs=XPLIQUE_STUBS)
    if xp is None:
        print(f"Xplique not compared: {why}")
    else:
        peers["xplique"] = xp

    agree = []
    settings = {"shapes"} if args.quick else set(args.settings.split(","))
    if {"mobilenet", "tf-explain"} & settings:
        net = mobilenetv2(224)
        images = sample_images(2, 224, (-1.0, 1.0), seed=7)
        targets = np.argmax(np.asarray(net(images, training=False)), axis=-1).astype(np.int32)
    if "mobilenet" in settings:
        agree += bench(
            "MobileNetV2 224x224, patch 32 stride 16, fill 0 (grey), batch 32",
            net,
            images,
            targets,
            32,
            16,
            0.0,
            32,
            args.repeats,
            {k: v for k, v in peers.items() if k == "xplique"},
            naive_rows=2,
            multi=2,
        )
    if "tf-explain" in settings:
        # tf-explain takes [0, 255] images and greys patches with 127.5; a rescaling input
        # layer gives every implementation the same model and the same grey (0 in MobileNetV2).
        inputs = keras.Input((224, 224, 3))
        wrapped = keras.Model(inputs, net(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)))
        agree += bench(
            "MobileNetV2 224x224 on [0, 255] inputs, patch 32 stride 32, fill 127.5",
            wrapped,
            (images + 1.0) * 127.5,
            targets,
            32,
            32,
            127.5,
            32,
            args.repeats,
            peers,
            naive_rows=0,
        )
    if "shapes" in settings:
        shapes_setting(args, peers, agree)
    if agree:
        print_table(
            "\nAgreement of maps once conventions are aligned",
            ["setting", "pair", "correlation", "max abs diff"],
            agree,
        )
    if "memory" in settings and not args.skip_memory:
        memory_table([16, 64])


def shapes_setting(args, peers, agree):
    from kerasviz import datasets, models

    shapes_model = models.load("shapes_cnn")
    shape_images, shape_labels, _ = datasets.shapes(16, seed=12345)
    agree += bench(
        "shapes_cnn 64x64, patch 8 stride 4, fill 0.5, batch 64",
        shapes_model,
        shape_images,
        shape_labels.astype(np.int32),
        8,
        4,
        0.5,
        64,
        3 * args.repeats,
        peers,
        naive_rows=None,
        multi=16,
    )


if __name__ == "__main__":
    main()
