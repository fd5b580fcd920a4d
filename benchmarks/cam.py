"""Grad-CAM and gradient methods: kerasviz against tf-keras-vis, tf-explain, Xplique and the floor.

Run: ``python benchmarks/cam.py [--repeats 2] [--quick]`` (about 4 minutes on 2 idle CPU cores;
``--quick``: 96 px MobileNetV2, one repeat).

Rows, measured side by side in one run on the same model, images and targets:

* ``floor``: one compiled forward pass of the batch (``tf.function`` around ``model(x,
  training=False)``). Grad-CAM needs this pass plus the backward pass from the score down to
  the target layer only, so a good implementation costs about 1x.
* ``kerasviz``: `kerasviz.attribution.GradCAM` (targets given, so no extra pass for the top
  class).
* ``tf-keras-vis`` (``Gradcam``, given `_common.tf_keras_vis_model`'s logits
  copy), ``tf-explain`` (``GradCAM.get_gradients_and_filters`` + ``generate_ponderated_output``,
  raw gradients, the drawing left out; one class for the whole batch, so the images of the
  timed batch all get one target) and ``Xplique`` (``GradCAM``), where importable. Install the
  last two without their dependencies (they would pull a CUDA TensorFlow)::

      .venv/bin/pip install --no-deps tf-explain xplique opencv-python-headless

Then saliency, SmoothGrad and Integrated Gradients, whose cost is per gradient evaluation:
their ratio is to the forward pass of as many images as they differentiate.

Models: ``MobileNetV2(weights=None)`` at 224x224 with BatchNorm statistics calibrated on a few
images (`_common.mobilenetv2`), batch 32, target layer ``out_relu`` (7x7); the shipped
``shapes_cnn`` and ``snow_biased`` at 64x64 (8x8 maps), batch 32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    correlation,
    import_peer,
    limit_forward,
    median_time,
    mobilenetv2,
    print_table,
    quiet,
    sample_images,
    tf_keras_vis_model,
)

quiet()

import numpy as np  # noqa: E402

XPLIQUE_STUBS = ("tensorflow_probability", "einops")


def interleaved(fns, repeats: int) -> list[float]:
    """Median seconds of each of ``fns``, run in turn ``repeats`` times after one warm-up."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, store in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            store.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


def _min_r(ours, theirs) -> float:
    """The smallest per-image Pearson correlation of two stacks of maps."""
    return min(correlation(a, b) for a, b in zip(ours, np.asarray(theirs), strict=True))


def gradcam_rows(title, model, images, targets, layer, repeats, peers):
    """Time Grad-CAM by every implementation; return (table rows, agreement rows)."""
    import tensorflow as tf

    from kerasviz.attribution import GradCAM

    ours = GradCAM(model, layer=layer, output="logit", batch_size=len(images))
    # Floor and ours alternate, so load from other processes hits both alike.
    floor, t = interleaved(
        [limit_forward(model, images, len(images)), lambda: ours.explain(images, targets)],
        max(repeats, 3),
    )
    rows = [["floor: 1 compiled forward pass", floor, 1.0]]
    rows.append(["kerasviz GradCAM", t, t / floor])
    result = ours.explain_full(images, targets)
    maps, grids = result.explanations, result.grid
    agree = []
    view = tf_keras_vis_model(model, "logit")
    name = ours.layer.name

    if "tf-keras-vis" in peers:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.scores import CategoricalScore

        cam = Gradcam(view)
        score = CategoricalScore(list(targets))

        def run_tfkv(expand=True):
            return cam(
                score,
                images,
                penultimate_layer=name,
                seek_penultimate_conv_layer=False,
                normalize_cam=False,
                expand_cam=expand,
            )

        t = median_time(run_tfkv, repeats)
        rows.append(["tf-keras-vis Gradcam", t, t / floor])
        agree.append([title, "kerasviz vs tf-keras-vis (grid)", _min_r(grids, run_tfkv(False))])
        ours_ac = GradCAM(model, layer=layer, batch_size=len(images), align_corners=True)
        agree.append(
            [
                title,
                "kerasviz (align_corners) vs tf-keras-vis (map)",
                _min_r(ours_ac.explain(images, targets), run_tfkv()),
            ]
        )

    if "tf-explain" in peers:
        gc = peers["tf-explain"].GradCAM
        one = int(targets[0])

        def run_tfe():
            outs, grads = gc.get_gradients_and_filters(view, images, name, one, False)
            return np.stack([np.asarray(m) for m in gc.generate_ponderated_output(outs, grads)])

        t = median_time(run_tfe, repeats)
        rows.append(["tf-explain GradCAM (one class)", t, t / floor])
        same = ours.explain_full(images, np.full_like(targets, one)).grid
        theirs = np.maximum(run_tfe(), 0.0)  # tf-explain applies its ReLU when drawing
        agree.append([title, "kerasviz vs tf-explain (grid)", _min_r(same, theirs)])

    if "xplique" in peers:
        xp = peers["xplique"].GradCAM(view, conv_layer=name, batch_size=len(images))
        onehot = tf.one_hot(targets, int(view.outputs[0].shape[-1])).numpy()
        t = median_time(lambda: np.asarray(xp.explain(images, onehot)), repeats)
        rows.append(["Xplique GradCAM", t, t / floor])
        theirs = np.asarray(xp.explain(images, onehot)).reshape(maps.shape)
        agree.append([title, "kerasviz vs Xplique (map)", _min_r(maps, theirs)])
    print_table(f"\nGrad-CAM, {title}: median seconds", ["method", "seconds", "x floor"], rows)
    return agree


def gradient_rows(title, model, images, targets, samples, repeats, peers):
    """Saliency on the batch; SmoothGrad / IG on n images x samples points (one batch)."""
    from kerasviz.attribution import IntegratedGradients, Saliency, SmoothGrad

    n = len(images)
    few = images[: max(1, n // samples)]
    few_t = targets[: len(few)]
    rows_points = len(few) * samples
    floor = median_time(limit_forward(model, images, n), repeats)
    rows = [[f"floor: forward pass of {n} images", floor, 1.0]]
    sal = Saliency(model, batch_size=n)
    t = median_time(lambda: sal.explain(images, targets), repeats)
    rows.append([f"kerasviz Saliency ({n} images)", t, t / floor])
    sg = SmoothGrad(model, samples=samples, batch_size=n)
    t = median_time(lambda: sg.explain(few, few_t), repeats)
    rows.append(
        [f"kerasviz SmoothGrad ({len(few)} images x {samples})", t, t / floor * n / rows_points]
    )
    ig = IntegratedGradients(model, steps=samples, batch_size=n)
    t = median_time(lambda: ig.explain(few, few_t), repeats)
    rows.append(
        [
            f"kerasviz IntegratedGradients ({len(few)} x {samples} steps)",
            t,
            t / floor * n / rows_points,
        ]
    )
    if "tf-keras-vis" in peers:
        from tf_keras_vis.saliency import Saliency as TfkvSaliency
        from tf_keras_vis.utils.scores import CategoricalScore

        tfkv = TfkvSaliency(tf_keras_vis_model(model, "logit"))
        t = median_time(
            lambda: tfkv(CategoricalScore(list(targets)), images, normalize_map=False), repeats
        )
        rows.append([f"tf-keras-vis Saliency ({n} images)", t, t / floor])
        t = median_time(
            lambda: tfkv(
                CategoricalScore(list(few_t)),
                few,
                normalize_map=False,
                smooth_samples=samples,
                smooth_noise=0.15,
            ),
            repeats,
        )
        rows.append(
            [
                f"tf-keras-vis SmoothGrad ({len(few)} images x {samples})",
                t,
                t / floor * n / rows_points,
            ]
        )
        ref = tfkv(CategoricalScore(list(targets)), images, normalize_map=False)
        ours = sal.explain(images, targets)
        print(f"saliency agreement with tf-keras-vis ({title}): min r = {_min_r(ours, ref):.5f}")
    print_table(
        f"\nGradient methods, {title}: median seconds; 'x floor' per gradient "
        "evaluation (time / forward pass of as many images)",
        ["method", "seconds", "x floor"],
        rows,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="96 px MobileNetV2, 1 repeat")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    size = 96 if args.quick else 224
    warnings.filterwarnings("ignore", message="The structure of `inputs`")

    peers = {}
    for label, module, stubs in [
        ("tf-keras-vis", "tf_keras_vis.gradcam", ()),
        ("tf-explain", "tf_explain.core.grad_cam", ()),
        ("xplique", "xplique.attributions", XPLIQUE_STUBS),
    ]:
        mod, why = import_peer(module, stubs=stubs)
        if mod is None:
            print(f"{label} not compared: {why}")
        else:
            peers[label] = mod

    from kerasviz import datasets, models

    agree = []
    net = mobilenetv2(size)
    images = sample_images(32, size, (-1.0, 1.0), seed=7)
    targets = np.argmax(np.asarray(net(images, training=False)), axis=-1).astype(np.int32)
    title = f"MobileNetV2 {size}x{size}, batch 32, out_relu"
    agree += gradcam_rows(title, net, images, targets, "out_relu", repeats, peers)
    for name in ("shapes_cnn", "snow_biased"):
        model = models.load(name)
        make = datasets.shapes if name == "shapes_cnn" else datasets.snow
        imgs, labels, _ = make(32, seed=5)
        agree += gradcam_rows(
            f"{name} 64x64, batch 32", model, imgs, labels.astype(np.int32), None, repeats, peers
        )
    gradient_rows(f"MobileNetV2 {size}x{size}", net, images, targets, 8, repeats, peers)
    imgs, labels, _ = datasets.shapes(32, seed=5)
    gradient_rows(
        "shapes_cnn 64x64",
        models.load("shapes_cnn"),
        imgs,
        labels.astype(np.int32),
        16,
        repeats,
        peers,
    )
    print_table(
        "\nAgreement of Grad-CAM maps (minimum over images of Pearson r)",
        ["setting", "pair", "min r"],
        agree,
    )


if __name__ == "__main__":
    main()
