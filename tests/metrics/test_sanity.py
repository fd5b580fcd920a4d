"""kerasviz.metrics.sanity: rank correlations against scipy, and the randomisation check with a
Grad-CAM written here on the trained shapes model."""

import numpy as np
import pytest

from kerasviz import inspect, metrics

H, W, C = 8, 8, 2


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

        result = metrics.randomization_check(
            functional_model, probe, x, targets=1, layers=["conv2", "predictions"]
        )
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

        a = metrics.randomization_check(
            functional_model, Cam, x, 0, explainer_kwargs={"scale": 2.0}, seed=3
        )
        b = metrics.randomization_check(functional_model, _grad_cam, x, 0, seed=3)
        np.testing.assert_allclose(a.randomized, 2.0 * b.randomized, rtol=1e-5, atol=1e-6)

    def test_bad_inputs(self, functional_model):
        x = np.zeros((2, 16, 16, 3), np.float32)
        with pytest.raises(ValueError, match="explanations"):
            metrics.randomization_check(functional_model, lambda m, i, t: np.zeros((2, 8, 8)), x)
        with pytest.raises(ValueError, match="no weights"):
            metrics.randomization_check(functional_model, _edges, x, layers=["pool1"])
        with pytest.raises(KeyError, match="conv9"):
            metrics.randomization_check(functional_model, _edges, x, layers=["conv9"])
        with pytest.raises(TypeError, match="explain"):
            metrics.randomization_check(functional_model, 3, x)
        with pytest.raises(ValueError, match="bound"):
            metrics.randomization_check(functional_model, _edges, x, bound=0)


class TestWithKerasvizExplainers:
    def test_gradcam_class_passes_on_the_trained_model(self, shipped, shapes_data):
        from kerasviz.attribution import GradCAM

        x, y = shapes_data
        # Randomising the head and the last conv block is enough to lose the map.
        result = metrics.randomization_check(
            shipped("shapes_cnn"),
            GradCAM,
            x[:2],
            y[:2],
            layers=["predictions", "conv4"],
            explainer_kwargs={"layer": "conv4"},
        )
        assert result.layers == ["predictions", "conv4"]
        assert result.passed and result.final_correlation < 0.5

    def test_nested_and_sequential_models_are_copied_not_changed(
        self, nested_model, sequential_no_input
    ):
        x = np.random.default_rng(11).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
        path = "mobilenetv2_0.35_32/Conv1"
        assert inspect.find_layer(nested_model, path) is not None
        before = [v.copy() for v in nested_model.get_weights()]
        seen = []

        def probe(model, images, targets):
            seen.append(
                [
                    inspect.find_layer(model, ref).get_weights()[0].copy()
                    for ref in ("predictions", path)
                ]
            )
            return metrics.edge_map(images)

        result = metrics.randomization_check(nested_model, probe, x, layers=["predictions", path])
        assert result.layers == ["predictions", path]
        for a, b in zip(before, nested_model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        (head0, conv0), (head1, conv1), (head2, conv2) = seen
        assert not np.array_equal(head1, head0) and np.array_equal(conv1, conv0)
        assert np.array_equal(head2, head1) and not np.array_equal(conv2, conv0)
        x16 = x[:, :16, :16]
        seq = metrics.randomization_check(sequential_no_input, _edges, x16, layers=["conv1"])
        assert seq.layers == ["conv1"] and not seq.passed
