"""Activation maximization: kerasviz (16 units in one compiled graph) against tf-keras-vis.

Run: ``python benchmarks/activation_max.py [--steps 32] [--peer-units 4]`` (about 2 minutes on
2 loaded CPU cores).

Model: the shipped ``shapes_cnn`` (64x64x3), objective: the mean activation of channels 0-15 of
``relu3`` (a middle block). Same image size and the same number of steps on every row; each side
uses its own default transforms and regularisers (ours: jitter, scale, rotation, total
variation; tf-keras-vis: Jitter(4), Rotate2D(1), TotalVariation2D, Norm). Rows:

* ``kerasviz batched``: `ActivationMaximization(batch_size=16)`, all 16 units together.
* ``kerasviz one at a time``: the same with ``batch_size=1`` (16 runs of one image).
* ``tf-keras-vis``: ``ActivationMaximization`` with ``CategoricalScore(unit)`` on a
  Functional view ``input -> GAP(relu3)``, one unit per call (its API optimises one score per
  seed image); timed on ``--peer-units`` units and reported per unit.
* ``limit (forward only)``: ``steps`` compiled forward passes of 16 images, no gradient: a
  floor that no gradient method can go under.

Printed: seconds per unit (median of the runs) and the ratio of tf-keras-vis to ours batched
(target >= 4), plus the mean unit activation reached by each side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import import_peer, median_time, print_table, quiet  # noqa: E402

quiet()

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--peer-units", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from kerasviz import _compute, models
    from kerasviz.activations import ActivationMaximization

    model = models.load("shapes_cnn")
    layer, steps, units = "relu3", args.steps, list(range(args.units))
    ours = ActivationMaximization(model, layer, steps=steps, batch_size=len(units))
    single = ActivationMaximization(model, layer, steps=steps, batch_size=1)
    ours.maximize(units[:1] * len(units), progress=False)  # trace the compiled step once
    single.maximize(units[:1], progress=False)
    images = {}

    def run_ours():
        images["ours"] = ours.maximize(units, progress=False)

    batched = median_time(run_ours, repeats=args.repeats, warmup=0) / len(units)
    one_by_one = median_time(
        lambda: single.maximize(units, progress=False), repeats=1, warmup=0
    ) / len(units)
    ours_value = float(np.mean(ours.unit_values(images["ours"], units)))

    forward = _compute.compiled_forward(model)
    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (len(units), 64, 64, 3)), tf.float32)
    forward(x)
    limit = median_time(lambda: [forward(x) for _ in range(steps)][-1].numpy(), repeats=3) / len(
        units
    )

    rows = [
        ["kerasviz batched", len(units), batched, 1.0, f"{ours_value:.3f}"],
        ["kerasviz one at a time", len(units), one_by_one, one_by_one / batched, ""],
    ]
    peer, why = import_peer("tf_keras_vis.activation_maximization")
    ratio = None
    if peer is None:
        print(f"tf-keras-vis not importable: {why}")
    else:
        from tf_keras_vis.utils.scores import CategoricalScore

        sub = keras.Model(
            model.inputs, keras.layers.GlobalAveragePooling2D()(model.get_layer(layer).output)
        )
        reference = peer.ActivationMaximization(sub, clone=False)
        reference(
            CategoricalScore(0),
            seed_input=tf.random.uniform((1, 64, 64, 3)),
            input_range=(0.0, 1.0),
            steps=2,
        )  # warm-up
        per_unit, values = [], []
        for unit in units[: args.peer_units]:
            start = time.perf_counter()
            img = reference(
                CategoricalScore(unit),
                input_range=(0.0, 1.0),
                steps=steps,
                seed_input=tf.random.stateless_uniform((1, 64, 64, 3), (0, unit)),
            )
            per_unit.append(time.perf_counter() - start)
            values.append(float(ours.unit_values(np.asarray(img, np.float32), [unit])[0]))
        peer_time = statistics.median(per_unit)
        ratio = peer_time / batched
        mine = ours.unit_values(images["ours"][: args.peer_units], units[: args.peer_units])
        rows.append(
            [
                "tf-keras-vis (one unit per call)",
                args.peer_units,
                peer_time,
                ratio,
                f"{np.mean(values):.3f} (ours on these: {np.mean(mine):.3f})",
            ]
        )
    rows.append(["limit (forward only)", len(units), limit, limit / batched, ""])
    print_table(
        f"activation maximization, shapes_cnn {layer}, 64x64, {steps} steps: "
        "seconds per unit (ratio = row / kerasviz batched)",
        ["method", "units timed", "s / unit", "ratio", "mean activation"],
        rows,
    )
    if ratio is not None:
        print(f"tf-keras-vis / kerasviz batched = {ratio:.1f}x per unit (target >= 4x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
