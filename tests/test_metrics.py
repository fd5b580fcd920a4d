"""kerasviz.metrics: faithfulness curves, localisation scores and the randomisation check.

Ground truth comes from a model whose score is a known linear function of the pixels (the
deletion curve is then a sum we can write down), hand-made maps and masks, scipy's own
Spearman, and a Grad-CAM written here with a GradientTape on the trained shapes model.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kerasviz import inspect, metrics

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


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 1, (3, H, W, C)).astype(np.float32)


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
        want_auc = (curve.scores[:, 0] / 2 + curve.scores[:, 1:-1].sum(1)
                    + curve.scores[:, -1] / 2) / 16
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
        np.testing.assert_allclose(curve.scores[:, -1], np.asarray(model(images))[:, 0],
                                   rtol=1e-5, atol=1e-5)

    def test_mean_fill_and_image_fill(self, linear, images):
        model, _, _ = linear
        maps = metrics.random_map(images)
        mean = metrics.deletion(model, images, maps, 0, steps=2, deletion_fill="mean")
        means = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
        np.testing.assert_allclose(mean.scores[:, -1], np.asarray(model(means))[:, 0],
                                   rtol=1e-5, atol=1e-5)
        other = np.full((H, W, C), 0.3, np.float32)
        img = metrics.deletion(model, images, maps, 0, steps=2, deletion_fill=other)
        np.testing.assert_allclose(img.scores[:, -1],
                                   np.asarray(model(other[None]))[0, 0], rtol=1e-5)

    @pytest.mark.parametrize("output", ["probability", "logit"])
    def test_batch_size_invariance(self, functional_model, output):
        x = np.random.default_rng(4).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
        maps = metrics.edge_map(x)
        results = [metrics.Faithfulness(functional_model, steps=6, output=output,
                                        batch_size=bs).insertion(x, maps)
                   for bs in (1, 4, 1000)]
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
                images, np.zeros((3, H, W)))
        with pytest.raises(ValueError, match="insertion_canvas"):
            metrics.Faithfulness(model, insertion_canvas=np.zeros((4, 4))).insertion(
                images, np.zeros((3, H, W)))
        with pytest.raises(ValueError, match="targets"):
            faith.deletion(images, np.zeros((3, H, W)), targets=[0, 1])
        with pytest.raises(ValueError, match="output"):
            metrics.Faithfulness(model, output="softmax")
        with pytest.raises(ValueError, match="blur_sigma"):
            metrics.Faithfulness(model, blur_sigma=0)
        with pytest.raises(TypeError, match="model"):
            metrics.Faithfulness("model")


class TestLocalisation:
    def test_pointing_game_known_hits(self):
        maps = np.zeros((3, 4, 4), np.float32)
        masks = np.zeros((3, 4, 4), bool)
        masks[:, :2, :2] = True
        maps[0, 1, 1] = 5.0  # maximum inside
        maps[1, 3, 3] = 5.0  # maximum outside
        maps[2, 0, 0] = maps[2, 3, 3] = 5.0  # two tied maxima, one inside -> half a hit
        np.testing.assert_allclose(metrics.pointing_game(maps, masks), [1.0, 0.0, 0.5])

    def test_flat_map_scores_the_mask_area_and_tolerance_grows_the_mask(self):
        mask = np.zeros((4, 4), bool)
        mask[:2, :2] = True
        assert metrics.pointing_game(np.ones((4, 4)), mask) == pytest.approx(0.25)
        near = np.zeros((4, 4))
        near[2, 1] = 1.0  # one pixel below the mask
        assert metrics.pointing_game(near, mask) == 0.0
        assert metrics.pointing_game(near, mask, tolerance=1) == 1.0

    def test_energy_in_mask_known_shares(self):
        maps = np.array([[[1.0, 3.0], [0.0, -2.0]],
                         [[2.0, 2.0], [2.0, 2.0]],
                         [[-1.0, -1.0], [-1.0, 0.0]]], np.float32)
        masks = np.array([[[0, 1], [1, 1]],
                          [[1, 0], [0, 0]],
                          [[1, 1], [1, 1]]])
        got = metrics.energy_in_mask(maps, masks)
        np.testing.assert_allclose(got[:2], [0.75, 0.25])
        assert np.isnan(got[2])  # no positive attribution: undefined

    def test_top_k_iou_known_values(self):
        m = np.arange(16, dtype=np.float32).reshape(4, 4)  # best pixels: bottom row
        mask = np.zeros((4, 4), bool)
        mask[3, :] = True
        assert metrics.top_k_iou(m, mask) == pytest.approx(1.0)  # k = mask area
        assert metrics.top_k_iou(m, mask, fraction=0.5) == pytest.approx(4 / 8)
        assert metrics.top_k_iou(-m, mask) == pytest.approx(0.0)
        mask2 = np.zeros((4, 4), bool)
        mask2[3, 2:] = True
        assert metrics.top_k_iou(m, mask2, fraction=0.25) == pytest.approx(2 / 4)

    def test_bad_inputs(self):
        maps = np.zeros((2, 4, 4))
        with pytest.raises(ValueError, match="empty"):
            metrics.pointing_game(maps, np.zeros((2, 4, 4), bool))
        ok = np.ones((2, 4, 4), bool)
        ok[1] = False
        with pytest.raises(ValueError, match=r"images \[1\] are empty"):
            metrics.energy_in_mask(maps, ok)
        with pytest.raises(ValueError, match="masks"):
            metrics.top_k_iou(maps, np.ones((2, 4, 5), bool))
        with pytest.raises(ValueError, match="0/1"):
            metrics.energy_in_mask(maps, np.full((2, 4, 4), 2))
        with pytest.raises(ValueError, match="fraction"):
            metrics.top_k_iou(maps, np.ones((2, 4, 4), bool), fraction=1.5)
        with pytest.raises(ValueError, match="explanations"):
            metrics.pointing_game(np.zeros(4), np.ones(4, bool))
        with pytest.raises(ValueError, match="NaN"):
            metrics.pointing_game(np.full((4, 4), np.nan), np.ones((4, 4), bool))


class TestCorrelations:
    def test_spearman_matches_scipy(self):
        from scipy.stats import spearmanr

        rng = np.random.default_rng(7)
        a = rng.normal(size=(3, 6, 6))
        b = a + rng.normal(size=(3, 6, 6))
        b[0, :3] = 0.0  # ties
        want = [spearmanr(p.ravel(), q.ravel()).statistic for p, q in zip(a, b, strict=True)]
        np.testing.assert_allclose(metrics.spearman(a, b), want, rtol=1e-5)

    def test_spearman_constant_maps(self):
        flat, varied = np.zeros((1, 4, 4)), np.arange(16.0).reshape(1, 4, 4)
        assert metrics.spearman(flat, flat)[0] == 1.0
        assert metrics.spearman(flat, varied)[0] == 0.0

    def test_ssim(self):
        rng = np.random.default_rng(8)
        a = rng.random((2, 16, 16))
        np.testing.assert_allclose(metrics.ssim(a, a * 3 + 1), [1.0, 1.0], atol=1e-6)
        assert np.all(metrics.ssim(a, rng.random((2, 16, 16))) < 0.3)


def _grad_cam(model, images, targets):
    """Grad-CAM by hand: ReLU(sum_c mean(d score / d A_c) * A_c), upsampled by nearest."""
    import tensorflow as tf

    sub = inspect.submodel(model, inspect.last_spatial_layer(model))
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        acts, scores = sub(x, training=False)
        picked = tf.gather(scores, targets, axis=1, batch_dims=1)
    grads = tape.gradient(picked, acts).numpy()  # (N, h, w, c)
    acts = acts.numpy()
    cam = np.maximum((grads.mean(axis=(1, 2), keepdims=True) * acts).sum(-1), 0)  # (N, h, w)
    f = images.shape[1] // cam.shape[1]
    return np.repeat(np.repeat(cam, f, axis=1), f, axis=2).astype(np.float32)


def _edges(model, images, targets):
    return metrics.edge_map(images)


@pytest.fixture(scope="module")
def shapes_data():
    from kerasviz import datasets

    x, y, _ = datasets.shapes(4, seed=12345)
    return x, y


class TestRandomizationCheck:
    def test_grad_cam_changes_and_edge_map_fails(self, shipped, shapes_data):
        model = shipped("shapes_cnn")
        x, y = shapes_data
        before = [v.copy() for v in model.get_weights()]
        cam = metrics.randomization_check(model, _grad_cam, x, y, seed=0)
        edges = metrics.randomization_check(model, _edges, x, y, seed=0)
        # The user's model is untouched.
        for a, b in zip(before, model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert cam.layers[0] == "predictions" and cam.layers[-1] == "conv1"
        # Grad-CAM of the trained model is lost once the weights are random.
        assert cam.final_correlation < 0.5 and cam.passed
        assert np.mean(np.abs(cam.spearman[-1])) < 0.5
        # The edge map never consults the model: identical at every stage, and it fails.
        np.testing.assert_allclose(edges.spearman, 1.0)
        np.testing.assert_allclose(edges.ssim, 1.0, atol=1e-6)
        assert not edges.passed
        assert cam.randomized.shape == (len(cam.layers), 4, 64, 64)

    def test_stages_cascade_and_layers_subset(self, functional_model):
        x = np.random.default_rng(9).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
        seen = []

        def probe(model, images, targets):
            seen.append((model, [v.copy() for v in model.get_weights()]))
            return metrics.edge_map(images)

        result = metrics.randomization_check(functional_model, probe, x, targets=1,
                                             layers=["conv2", "predictions"])
        assert result.layers == ["predictions", "conv2"]
        user, w_user = seen[0]
        assert user is functional_model
        (copy1, w1), (copy2, w2) = seen[1], seen[2]
        assert copy2 is copy1  # one copy, randomised further at each stage
        assert copy1 is not functional_model
        # Weights in execution order: conv1 (k, b), conv2 (k, b), predictions (k, b).
        np.testing.assert_array_equal(w1[0], w_user[0])  # conv1 kept
        np.testing.assert_array_equal(w1[2], w_user[2])  # conv2 kept at stage 1
        assert not np.array_equal(w1[4], w_user[4])  # predictions random at stage 1
        assert not np.array_equal(w2[2], w_user[2])  # conv2 random at stage 2
        np.testing.assert_array_equal(w2[4], w1[4])  # cascading: predictions stays random
        np.testing.assert_array_equal(w2[0], w_user[0])  # conv1 never listed

    def test_explainer_class_and_seed(self, functional_model):
        x = np.random.default_rng(10).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)

        class Cam:
            def __init__(self, model, scale=1.0):
                self.model, self.scale = model, scale

            def explain(self, images, targets):
                return self.scale * _grad_cam(self.model, images, targets)

        a = metrics.randomization_check(functional_model, Cam, x, 0,
                                        explainer_kwargs={"scale": 2.0}, seed=3)
        b = metrics.randomization_check(functional_model, _grad_cam, x, 0, seed=3)
        np.testing.assert_allclose(a.randomized, 2.0 * b.randomized, rtol=1e-5, atol=1e-6)

    def test_bad_inputs(self, functional_model):
        x = np.zeros((2, 16, 16, 3), np.float32)
        with pytest.raises(ValueError, match="explanations"):
            metrics.randomization_check(functional_model, lambda m, i, t: np.zeros((2, 8, 8)),
                                        x)
        with pytest.raises(ValueError, match="no weights"):
            metrics.randomization_check(functional_model, _edges, x, layers=["pool1"])
        with pytest.raises(KeyError, match="conv9"):
            metrics.randomization_check(functional_model, _edges, x, layers=["conv9"])
        with pytest.raises(TypeError, match="explain"):
            metrics.randomization_check(functional_model, 3, x)
        with pytest.raises(ValueError, match="bound"):
            metrics.randomization_check(functional_model, _edges, x, bound=0)


class TestModelCopies:
    """`kerasviz.inspect` owns the copy and re-initialisation the sanity check needs."""

    def test_copy_is_independent_and_reinitialize_is_seeded(self, functional_model):
        assert inspect.weighted_layers(functional_model) == ["conv1", "conv2", "predictions"]
        before = [v.copy() for v in functional_model.get_weights()]
        twin = inspect.standalone_copy(functional_model)
        assert twin is not functional_model
        for a, b in zip(before, twin.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        x = np.random.default_rng(12).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
        np.testing.assert_allclose(twin(x), functional_model(x), rtol=1e-6, atol=1e-7)
        head = inspect.find_layer(twin, "predictions")
        inspect.reinitialize(head, 5)
        first = [w.copy() for w in head.get_weights()]
        assert not np.array_equal(first[0], before[4])
        inspect.reinitialize(head, np.random.default_rng(5))  # an int seed is a Generator's
        for a, b in zip(first, head.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(before, functional_model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)  # the user's model never changes

    def test_bad_arguments_named(self, functional_model):
        with pytest.raises(TypeError, match="model"):
            inspect.standalone_copy("model")
        with pytest.raises(TypeError, match="layer"):
            inspect.reinitialize("conv1", 0)
        with pytest.raises(TypeError, match="rng"):
            inspect.reinitialize(inspect.find_layer(functional_model, "conv1"), "seed")


class TestWithKerasvizExplainers:
    def test_gradcam_class_passes_on_the_trained_model(self, shipped, shapes_data):
        from kerasviz.attribution import GradCAM

        x, y = shapes_data
        # Randomising the head and the last conv block is enough to lose the map.
        result = metrics.randomization_check(shipped("shapes_cnn"), GradCAM, x[:2], y[:2],
                                             layers=["predictions", "conv4"],
                                             explainer_kwargs={"layer": "conv4"})
        assert result.layers == ["predictions", "conv4"]
        assert result.passed and result.final_correlation < 0.5

    def test_nested_and_sequential_models_are_copied_not_changed(self, nested_model,
                                                                 sequential_no_input):
        x = np.random.default_rng(11).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
        path = "mobilenetv2_0.35_32/Conv1"
        assert inspect.find_layer(nested_model, path) is not None
        before = [v.copy() for v in nested_model.get_weights()]
        seen = []

        def probe(model, images, targets):
            seen.append([inspect.find_layer(model, ref).get_weights()[0].copy()
                         for ref in ("predictions", path)])
            return metrics.edge_map(images)

        result = metrics.randomization_check(nested_model, probe, x,
                                             layers=["predictions", path])
        assert result.layers == ["predictions", path]
        for a, b in zip(before, nested_model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        (head0, conv0), (head1, conv1), (head2, conv2) = seen
        assert not np.array_equal(head1, head0) and np.array_equal(conv1, conv0)
        assert np.array_equal(head2, head1) and not np.array_equal(conv2, conv0)
        x16 = x[:, :16, :16]
        seq = metrics.randomization_check(sequential_no_input, _edges, x16, layers=["conv1"])
        assert seq.layers == ["conv1"] and not seq.passed


# --------------------------------------------------------------------------------------------
# Faithfulness on tf.distribute
# --------------------------------------------------------------------------------------------

# Logical devices must be configured before TensorFlow initialises its devices, so the check
# runs in a fresh interpreter (as in tests/test_distribute.py) and reports JSON.
_MIRRORED_SCRIPT = textwrap.dedent('''
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
''')


@pytest.fixture(scope="module")
def mirrored_report():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERASVIZ_QUIET": "1",
           "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True,
                          text=True, env=env, cwd=root, timeout=300)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize("where", ["outside", "inside"])  # model built outside/inside scope
def test_mirrored_curves_equal_single_device(mirrored_report, output, where):
    deletion_gap, insertion_gap = mirrored_report[f"{output}_{where}"]
    assert mirrored_report[f"{output}_spread"] > 1e-3  # the curves are not flat
    assert deletion_gap <= 1e-5 and insertion_gap <= 1e-5, (deletion_gap, insertion_gap)
    assert mirrored_report[f"{output}_{where}_targets"]  # top classes resolved alike
    # The deletion/insertion step and the target forward pass both ran on the two replicas.
    assert mirrored_report[f"{output}_{where}_distributed"]
