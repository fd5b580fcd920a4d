"""kerasviz.metrics.faithfulness: deletion and insertion curves against a model whose score is a
known linear function of the pixels, and the same curves on tf.distribute."""

import textwrap

import numpy as np
import pytest

from kerasviz import metrics

H, W, C = 8, 8, 2


@pytest.fixture(scope="module")
def linear(keras):
    """score_0 = sum(w * x) + b, score_1 = -score_0: a known linear function of the pixels."""
    rng = np.random.default_rng(0)
    w = rng.uniform(0.1, 1.0, (H, W, C)).astype(np.float32)
    b = np.float32(0.25)
    inputs = keras.Input((H, W, C))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(2, name="linear")
    outputs = dense(x)
    model = keras.Model(inputs, outputs, name="linear_model")
    kernel = np.stack([w.reshape(-1), -w.reshape(-1)], axis=1)
    dense.set_weights([kernel, np.array([b, -b], np.float32)])
    return model, w, b


def _hand_deletion(image, weights, bias, order, steps, fill=0.0):
    """The curve by hand: remove pixels (all channels) in ``order``, P/steps at a time."""
    contrib = (weights * (image - fill)).sum(-1).reshape(-1)  # (P,)
    base = float((weights * fill).sum() + bias)
    pixels = contrib.size
    out = []
    for s in range(steps + 1):
        k = int(round(s * pixels / steps))
        kept = np.ones(pixels, bool)
        kept[order[:k]] = False
        out.append(base + contrib[kept].sum())
    return np.array(out)


class TestDeletionInsertion:
    def test_deletion_equals_hand_computed_curve(self, linear, images):
        model, w, b = linear
        maps = np.random.default_rng(2).normal(size=images.shape[:3]).astype(np.float32)
        curve = metrics.deletion(model, images, maps, targets=0, steps=16)
        for i in range(len(images)):
            order = np.argsort(-maps[i].reshape(-1), kind="stable")
            want = _hand_deletion(images[i], w, b, order, 16)
            np.testing.assert_allclose(curve.scores[i], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(curve.fractions, np.arange(17) / 16)
        # Trapezoid by hand: 16 equal steps of 1/16.
        want_auc = (
            curve.scores[:, 0] / 2 + curve.scores[:, 1:-1].sum(1) + curve.scores[:, -1] / 2
        ) / 16
        np.testing.assert_allclose(curve.auc, want_auc, rtol=1e-6)

    def test_uneven_steps_and_constant_fill(self, linear, images):
        model, w, b = linear
        maps = images.sum(-1)  # any map; 64 pixels in 7 steps do not divide evenly
        curve = metrics.deletion(model, images, maps, targets=0, steps=7, deletion_fill=0.5)
        order = np.argsort(-maps[1].reshape(-1), kind="stable")
        want = _hand_deletion(images[1], w, b, order, 7, fill=0.5)
        np.testing.assert_allclose(curve.scores[1], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(curve.fractions, np.rint(np.arange(8) * 64 / 7) / 64)

    def test_perfect_map_beats_random_maps_on_both_areas(self, linear, images):
        model, w, _ = linear
        perfect = (w * images).sum(-1)  # exact contribution of each pixel to score 0
        faith = metrics.Faithfulness(model, steps=16, deletion_fill=0.0, insertion_canvas=0.0)
        best_del = faith.deletion(images, perfect, 0).auc
        best_ins = faith.insertion(images, perfect, 0).auc
        for seed in range(5):
            rand = metrics.random_map(images, seed=seed)
            assert np.all(best_del < faith.deletion(images, rand, 0).auc)
            assert np.all(best_ins > faith.insertion(images, rand, 0).auc)

    def test_insertion_ends_at_the_image_and_starts_at_the_blur(self, linear, images):
        from scipy import ndimage

        model, _, _ = linear
        maps = metrics.random_map(images, seed=3)
        curve = metrics.insertion(model, images, maps, targets=0, steps=4, blur_sigma=2.0)
        blurred = np.stack([ndimage.gaussian_filter(im, sigma=(2, 2, 0)) for im in images])
        scores = np.asarray(model(blurred))[:, 0]
        np.testing.assert_allclose(curve.scores[:, 0], scores, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            curve.scores[:, -1], np.asarray(model(images))[:, 0], rtol=1e-5, atol=1e-5
        )

    def test_mean_fill_and_image_fill(self, linear, images):
        model, _, _ = linear
        maps = metrics.random_map(images)
        mean = metrics.deletion(model, images, maps, 0, steps=2, deletion_fill="mean")
        means = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
        np.testing.assert_allclose(
            mean.scores[:, -1], np.asarray(model(means))[:, 0], rtol=1e-5, atol=1e-5
        )
        other = np.full((H, W, C), 0.3, np.float32)
        img = metrics.deletion(model, images, maps, 0, steps=2, deletion_fill=other)
        np.testing.assert_allclose(
            img.scores[:, -1], np.asarray(model(other[None]))[0, 0], rtol=1e-5
        )

    @pytest.mark.parametrize("output", ["probability", "logit"])
    def test_batch_size_invariance(self, functional_model, output):
        x = np.random.default_rng(4).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
        maps = metrics.edge_map(x)
        results = [
            metrics.Faithfulness(functional_model, steps=6, output=output, batch_size=bs).insertion(
                x, maps
            )
            for bs in (1, 4, 1000)
        ]
        for other in results[1:]:
            np.testing.assert_allclose(other.scores, results[0].scores, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(other.targets, results[0].targets)

    def test_top_class_by_default_and_single_image(self, functional_model):
        x = np.random.default_rng(5).uniform(0, 1, (16, 16, 3)).astype(np.float32)
        maps = metrics.edge_map(x)
        curve = metrics.deletion(functional_model, x, maps, steps=4)
        top = int(np.argmax(functional_model(x[None])))
        assert curve.targets.tolist() == [top]
        assert curve.scores.shape == (5,) and curve.auc.shape == ()
        np.testing.assert_allclose(curve.scores[0], np.max(functional_model(x[None])), rtol=1e-5)

    def test_compiled_step_is_traced_once(self, functional_model):
        x = np.random.default_rng(6).uniform(0, 1, (5, 16, 16, 3)).astype(np.float32)
        faith = metrics.Faithfulness(functional_model, steps=3, batch_size=4)
        faith.deletion(x, metrics.edge_map(x))
        faith.insertion(x[:2], metrics.random_map(x[:2]))
        assert faith._step.experimental_get_tracing_count() == 1

    def test_bad_inputs(self, linear, images):
        model, _, _ = linear
        faith = metrics.Faithfulness(model, steps=4)
        with pytest.raises(ValueError, match=r"explanations.*Received: explanations.shape"):
            faith.deletion(images, np.zeros((3, H, W + 1)))
        with pytest.raises(ValueError, match="explanations"):
            faith.deletion(images, np.zeros((2, H, W)))
        with pytest.raises(ValueError, match="inputs"):
            faith.deletion(np.zeros((3, H + 1, W, C)), np.zeros((3, H + 1, W)))
        with pytest.raises(ValueError, match="steps"):
            metrics.Faithfulness(model, steps=65).deletion(images, np.zeros((3, H, W)))
        with pytest.raises(ValueError, match="deletion_fill"):
            metrics.Faithfulness(model, deletion_fill="zeros")
        with pytest.raises(ValueError, match="deletion_fill"):
            metrics.Faithfulness(model, deletion_fill=np.zeros((3, 3))).deletion(
                images, np.zeros((3, H, W))
            )
        with pytest.raises(ValueError, match="insertion_canvas"):
            metrics.Faithfulness(model, insertion_canvas=np.zeros((4, 4))).insertion(
                images, np.zeros((3, H, W))
            )
        with pytest.raises(ValueError, match="targets"):
            faith.deletion(images, np.zeros((3, H, W)), targets=[0, 1])
        with pytest.raises(ValueError, match="output"):
            metrics.Faithfulness(model, output="softmax")
        with pytest.raises(ValueError, match="blur_sigma"):
            metrics.Faithfulness(model, blur_sigma=0)
        with pytest.raises(TypeError, match="model"):
            metrics.Faithfulness("model")


# Logical devices must be configured before TensorFlow initialises its devices, so the check
# runs in a fresh interpreter (as in tests/test_distribute.py) and reports JSON.
_MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import keras

    from kerasviz import metrics

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def build():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((12, 12, 3))
        x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
        return keras.Model(inputs, outputs)

    plain = build()
    with strategy.scope():
        mirrored = build()
    images = np.random.default_rng(0).random((5, 12, 12, 3), dtype=np.float32)
    maps = metrics.edge_map(images)
    report = {}
    for output in ("probability", "logit"):
        # 5 images x 8 points = 40 rows in chunks of 6: uneven chunks, padded on each replica.
        one = metrics.Faithfulness(plain, steps=7, deletion_fill="blur", batch_size=6,
                                   output=output)
        curves = {"one": (one.deletion(images, maps), one.insertion(images, maps))}
        for name, model in (("outside", plain), ("inside", mirrored)):
            faith = metrics.Faithfulness(model, steps=7, deletion_fill="blur", batch_size=6,
                                         output=output, strategy=strategy)
            curves[name] = (faith.deletion(images, maps), faith.insertion(images, maps))
            report[f"{output}_{name}_distributed"] = (
                getattr(faith._step, "strategy", None) is strategy
                and getattr(faith.scorer._forward, "strategy", None) is strategy)
        for name in ("outside", "inside"):
            report[f"{output}_{name}"] = [
                max(float(np.abs(a.scores - b.scores).max()),
                    float(np.abs(a.auc - b.auc).max()))
                for a, b in zip(curves["one"], curves[name], strict=True)]
            report[f"{output}_{name}_targets"] = all(
                np.array_equal(a.targets, b.targets)
                for a, b in zip(curves["one"], curves[name], strict=True))
        report[f"{output}_spread"] = float(np.ptp(curves["one"][0].scores))
    print("RESULT", json.dumps(report))
""")


@pytest.fixture(scope="module")
def mirrored_report(run_script):
    return run_script(_MIRRORED_SCRIPT)


@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize("where", ["outside", "inside"])  # model built outside/inside scope
def test_mirrored_curves_equal_single_device(mirrored_report, output, where):
    deletion_gap, insertion_gap = mirrored_report[f"{output}_{where}"]
    assert mirrored_report[f"{output}_spread"] > 1e-3  # the curves are not flat
    assert deletion_gap <= 1e-5 and insertion_gap <= 1e-5, (deletion_gap, insertion_gap)
    assert mirrored_report[f"{output}_{where}_targets"]  # top classes resolved alike
    # The deletion/insertion step and the target forward pass both ran on the two replicas.
    assert mirrored_report[f"{output}_{where}_distributed"]
