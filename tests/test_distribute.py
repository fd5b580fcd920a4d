"""Explainers and feature extraction on tf.distribute: the CPU split into 2 logical devices
under MirroredStrategy must give the single-device results, in input order.

Logical devices must be configured before TensorFlow initialises its devices, so the check
runs in a fresh interpreter and reports its figures as JSON.
"""

import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json, os
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras

    from kerasviz import _compute
    from kerasviz.attribution import (GradCAM, GuidedBackprop, IntegratedGradients, Lime,
                                      Occlusion, Saliency)
    from kerasviz.embedding import FeatureExtractor

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def build():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((12, 12, 3))
        x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
        x = keras.layers.Conv2D(5, 3, activation="relu", name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(8, activation="relu", name="fc")(x)
        outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
        return keras.Model(inputs, outputs)

    plain = build()
    with strategy.scope():  # weights mirrored on both replicas, as the docs recommend
        mirrored = build()
    images = np.random.default_rng(0).random((7, 12, 12, 3), dtype=np.float32)
    targets = np.array([0, 1, 2, 0, 1, 2, 0])  # input order must survive the gather
    report = {"replicas": _compute.replicas(strategy),
              "devices": list(strategy.extended.worker_devices)}

    def steps(explainer):
        """The compiled steps an explainer has built (each must be a distributed one)."""
        attributes = vars(explainer)  # instance attributes, not methods such as `_step`
        found = [attributes.get(a) for a in ("_step", "_forward", "_mask_step", "_acts_fn")]
        found += list(attributes.get("_steps", {}).values())
        return [f for f in found if f is not None]

    def compare(name, make, run):
        one = run(make(plain, None))
        # a model built outside the scope, and one built inside it
        two = run(make(plain, strategy))
        built = make(mirrored, strategy)
        three = run(built)
        report[name] = [float(np.abs(one - two).max()), float(np.abs(one - three).max()),
                        float(np.abs(one).max())]
        report[name + "_distributed"] = bool(steps(built)) and all(
            getattr(f, "strategy", None) is strategy for f in steps(built))

    explain = lambda e: e.explain(images, targets)  # noqa: E731
    compare("occlusion", lambda m, s: Occlusion(m, patch=4, stride=2, batch_size=6,
                                                strategy=s), explain)
    compare("occlusion_top", lambda m, s: Occlusion(m, patch=4, stride=2, batch_size=6,
                                                    strategy=s), lambda e: e.explain(images))
    compare("occlusion_grid", lambda m, s: Occlusion(m, patch=4, stride=2, batch_size=6,
                                                     strategy=s),
            lambda e: e.explain_full(images, targets).grid)
    compare("saliency", lambda m, s: Saliency(m, batch_size=4, strategy=s), explain)
    compare("integrated_gradients",
            lambda m, s: IntegratedGradients(m, steps=8, batch_size=10, strategy=s), explain)
    compare("gradcam", lambda m, s: GradCAM(m, layer="conv2", batch_size=4, strategy=s),
            explain)
    compare("gradcam_grid", lambda m, s: GradCAM(m, layer="conv2", batch_size=4, strategy=s),
            lambda e: e.explain_full(images, targets).grid)
    compare("integrated_gradients_completeness",
            lambda m, s: IntegratedGradients(m, steps=8, batch_size=10, strategy=s),
            lambda e: e.explain_full(images, targets).completeness.attribution_sum)
    compare("guided_backprop", lambda m, s: GuidedBackprop(m, batch_size=4, strategy=s),
            explain)
    compare("lime", lambda m, s: Lime(m, segmentation="grid", segmentation_args={"cells": 3},
                                      num_samples=40, batch_size=16, strategy=s), explain)
    compare("features", lambda m, s: FeatureExtractor(m, layer="fc", batch_size=4,
                                                      strategy=s),
            lambda e: e.extract(images))
    with strategy.scope():  # strategy=None picks up the active scope
        picked = Saliency(mirrored).strategy is strategy
    report["scope_picked_up"] = bool(picked)

    # Which replica computed each row: 5 rows padded to 6, 3 per replica, gathered in order.
    def replica_of(x):
        ctx = tf.distribute.get_replica_context()
        return x[:, 0] * 0 + tf.cast(ctx.replica_id_in_sync_group, tf.float32)
    ids = _compute.distribute(replica_of, strategy)(np.arange(10, dtype=np.float32).reshape(5, 2))
    report["replica_of_row"] = np.asarray(ids).tolist()

    # The dataset job on the strategy writes the same maps as on one device.
    import tempfile
    from pathlib import Path
    from PIL import Image
    from kerasviz import jobs
    tmp = Path(tempfile.mkdtemp())
    (tmp / "in").mkdir()
    for i, img in enumerate(images):
        Image.fromarray((img * 255).astype(np.uint8)).save(tmp / "in" / f"{i}.png")
    for name, s in (("one", None), ("two", strategy)):
        jobs.explain_folder(mirrored, tmp / "in", "occlusion", tmp / name, batch_size=4,
                            settings={"patch": 4, "stride": 2}, progress=False, strategy=s)
    report["job"] = max(float(np.abs(np.load(tmp / "one" / f"{i}.occlusion.npy")
                                     - np.load(tmp / "two" / f"{i}.occlusion.npy")).max())
                        for i in range(len(images)))
    rows = [[json.loads(x) for x in (tmp / n / "manifest.jsonl").read_text().splitlines()]
            for n in ("one", "two")]
    report["job_scores"] = max(abs(a.pop("score") - b.pop("score"))
                               for a, b in zip(*rows, strict=True))
    report["job_manifests_equal"] = rows[0] == rows[1]  # all but the scores, exactly
    # The command line on MirroredStrategy() (here: the CPU as its one replica).
    from kerasviz.cli import main
    plain.save(tmp / "model.keras")
    code = main(["explain", "--model", str(tmp / "model.keras"), "--images", str(tmp / "in"),
                 "--method", "occlusion", "--patch", "4", "--stride", "2", "--batch-size", "4",
                 "--out", str(tmp / "cli"), "--strategy", "mirrored", "--quiet"])
    report["cli"] = [code, max(float(np.abs(np.load(tmp / "one" / f"{i}.occlusion.npy")
                                            - np.load(tmp / "cli" / f"{i}.occlusion.npy")).max())
                               for i in range(len(images)))]
    print("RESULT", json.dumps(report))
''')


@pytest.fixture(scope="module")
def report(run_script):
    return run_script(SCRIPT)


def test_two_replicas_on_two_devices(report):
    assert report["replicas"] == 2
    assert report["devices"][0].endswith("CPU:0") and report["devices"][1].endswith("CPU:1")


@pytest.mark.parametrize(
    "name",
    [
        "occlusion",
        "occlusion_top",
        "occlusion_grid",
        "saliency",
        "integrated_gradients",
        "integrated_gradients_completeness",
        "guided_backprop",
        "gradcam",
        "gradcam_grid",
        "lime",
        "features",
    ],
)
def test_mirrored_equals_single_device(report, name):
    outside_scope, inside_scope, magnitude = report[name]
    assert magnitude > 1e-4  # the maps are not all zero, so equality means something
    assert outside_scope <= 1e-5, (name, outside_scope)
    assert inside_scope <= 1e-5, (name, inside_scope)
    assert report[name + "_distributed"]  # every compiled step ran on the two replicas


def test_active_scope_is_the_default(report):
    assert report["scope_picked_up"]


def test_rows_split_in_order_across_replicas(report):
    assert report["replica_of_row"] == [0, 0, 0, 1, 1]


def test_dataset_job_on_two_replicas(report):
    assert report["job"] <= 1e-5 and report["job_scores"] <= 1e-6
    assert report["job_manifests_equal"]


def test_command_line_strategy_option(report):
    code, difference = report["cli"]
    assert code == 0 and difference <= 1e-5


def test_bad_strategy_named():
    import keras

    from kerasviz.attribution import Saliency

    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(TypeError, match="strategy"):
        Saliency(model, strategy="mirrored")
