"""Gradient explanations against closed forms, hand-weighted nets and direct tape gradients."""

import numpy as np
import pytest

from kerasviz.attribution import (
    Deconvnet,
    GradientInput,
    GuidedBackprop,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
)


def _images(n, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).random((n, size, size, channels)).astype(np.float32)


@pytest.fixture(scope="module")
def linear_model(keras):
    """logits = flatten(x) @ W + b on 4x4x2 images, with a softmax head."""
    rng = np.random.default_rng(5)
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(3, activation="softmax", name="predictions")
    outputs = dense(x)
    model = keras.Model(inputs, outputs)
    dense.set_weights([rng.normal(size=(32, 3)).astype(np.float32), np.zeros(3, np.float32)])
    return model


@pytest.fixture(scope="module")
def smooth_cnn(keras):
    """A small CNN with smooth activations (softplus, tanh) and a linear head."""
    keras.utils.set_random_seed(11)
    return keras.Sequential(
        [
            keras.Input((12, 12, 2)),
            keras.layers.Conv2D(4, 3, activation="softplus"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Conv2D(4, 3, activation="tanh"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )


def _tape_gradients(model, x, targets):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = model(x, training=False)
        score = tf.gather(out, targets, axis=1, batch_dims=1)
    return tape.gradient(score, x).numpy()


class TestSaliency:
    def test_linear_model_gives_abs_weight_column(self, linear_model):
        weights = linear_model.get_layer("predictions").get_weights()[0]  # (32, 3)
        x = _images(2, size=4, channels=2)
        maps = Saliency(linear_model).explain(x, targets=[2, 0])
        for i, t in enumerate([2, 0]):
            expected = np.abs(weights[:, t].reshape(4, 4, 2)).max(axis=-1)
            np.testing.assert_allclose(maps[i], expected, rtol=1e-5)

    def test_gradient_input_of_linear_model_is_each_pixels_contribution(self, linear_model):
        weights = linear_model.get_layer("predictions").get_weights()[0]
        x = _images(3, size=4, channels=2)
        maps = GradientInput(linear_model).explain(x, targets=1)
        expected = (x * weights[:, 1].reshape(4, 4, 2)).sum(axis=-1)
        np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize(
        "kind", ["functional_model", "sequential_model", "sequential_no_input", "nested_model"]
    )
    def test_equals_direct_tape_gradient_on_every_model_kind(self, kind, request):
        model = request.getfixturevalue(kind)
        size = model.inputs[0].shape[1]
        x = _images(3, size=size)
        targets = np.array([0, 2, 1], np.int32)
        expected = np.abs(_tape_gradients(model, x, targets)).max(axis=-1)
        maps = Saliency(model, output="probability").explain(x, targets)
        np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-7)

    def test_top_class_by_default_and_single_image(self, functional_model):
        x = _images(2)
        top = functional_model.predict(x, verbose=0).argmax(-1)
        sal = Saliency(functional_model)
        np.testing.assert_allclose(sal.explain(x), sal.explain(x, top), rtol=1e-6)
        assert sal.explain(x[0]).shape == (16, 16)

    def test_bad_input(self, functional_model):
        sal = Saliency(functional_model)
        with pytest.raises(ValueError, match="rank"):
            sal.explain(np.zeros((16, 16), np.float32))
        with pytest.raises(ValueError, match="out of range"):
            sal.explain(_images(1), targets=3)
        with pytest.raises(ValueError, match="shape"):
            sal.explain(_images(1, size=20))
        with pytest.raises(ValueError, match="output"):
            Saliency(functional_model, output="softmax")


class TestSmoothGrad:
    def test_zero_noise_equals_saliency(self, functional_model):
        x = _images(3)
        smooth = SmoothGrad(functional_model, noise=0.0, samples=4).explain(x, [0, 1, 2])
        plain = Saliency(functional_model).explain(x, [0, 1, 2])
        np.testing.assert_allclose(smooth, plain, rtol=1e-5, atol=1e-8)

    def test_mean_of_noisy_gradients_by_hand(self, functional_model):
        x = _images(2)
        sg = SmoothGrad(functional_model, noise=0.2, samples=3, seed=7, value_range=(0, 1))
        got = sg.mean_gradients(x, targets=[1, 2])
        sal = Saliency(functional_model)
        for i, t in enumerate([1, 2]):
            noisy = np.stack(
                [
                    x[i]
                    + 0.2
                    * np.random.default_rng((7, i, s)).standard_normal(
                        x.shape[1:], dtype=np.float32
                    )
                    for s in range(3)
                ]
            )
            expected = sal.gradients(noisy, targets=t).mean(axis=0)
            np.testing.assert_allclose(got[i], expected, rtol=1e-4, atol=1e-7)

    def test_batch_size_invariance_and_seed(self, functional_model):
        x = _images(3)
        runs = [
            SmoothGrad(functional_model, samples=5, seed=3, batch_size=b).explain(x, 1)
            for b in (1, 3, 15)
        ]
        for other in runs[1:]:
            np.testing.assert_allclose(other, runs[0], rtol=1e-5, atol=1e-8)
        changed = SmoothGrad(functional_model, samples=5, seed=4).explain(x, 1)
        assert not np.allclose(changed, runs[0])

    def test_bad_settings(self, functional_model):
        with pytest.raises(ValueError, match="noise"):
            SmoothGrad(functional_model, noise=-0.1)
        with pytest.raises(ValueError, match="samples"):
            SmoothGrad(functional_model, samples=0)
        with pytest.raises(ValueError, match="value_range"):
            SmoothGrad(functional_model, value_range=(1, 0))


class TestIntegratedGradients:
    def test_completeness_within_one_percent_at_64_steps(self, smooth_cnn):
        x = _images(4, size=12, channels=2, seed=3) * 2.0
        ig = IntegratedGradients(smooth_cnn, steps=64, batch_size=48)
        result = ig.explain_full(x, targets=[0, 1, 2, 0])
        maps, report = result.explanations, result.completeness
        assert np.all(np.abs(report.score_difference) > 1e-2)  # a non-trivial change to explain
        np.testing.assert_allclose(
            maps.reshape(4, -1).sum(axis=1), report.attribution_sum, rtol=1e-4
        )
        logits = smooth_cnn.predict(x, verbose=0)[np.arange(4), [0, 1, 2, 0]]
        base = smooth_cnn.predict(np.zeros_like(x), verbose=0)[np.arange(4), [0, 1, 2, 0]]
        np.testing.assert_allclose(report.score_difference, logits - base, rtol=1e-4)
        assert report.gap.max() < 0.01, report.gap

    def test_linear_model_is_exact_and_baselines(self, keras):
        inputs = keras.Input((3, 3, 1))
        dense = keras.layers.Dense(2)
        model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
        w = np.arange(18, dtype=np.float32).reshape(9, 2) - 8
        dense.set_weights([w, np.ones(2, np.float32)])
        x = _images(2, size=3, channels=1)
        for baseline in ("zeros", "mean", "blur", 0.5, np.full((3, 3, 1), 0.25, np.float32)):
            ig = IntegratedGradients(model, baseline=baseline, steps=3)
            b = ig.baselines(x)
            result = ig.explain_full(x, targets=1)
            maps, report = result.explanations, result.completeness
            np.testing.assert_allclose(
                maps, ((x - b) * w[:, 1].reshape(3, 3, 1))[..., 0], rtol=1e-5, atol=1e-5
            )
            np.testing.assert_allclose(
                report.attribution_sum, report.score_difference, rtol=1e-4, atol=1e-5
            )

    def test_batch_size_invariance(self, functional_model):
        x = _images(3)
        runs = [
            IntegratedGradients(functional_model, steps=8, batch_size=b).explain(x, 2)
            for b in (1, 3, 24)
        ]
        for other in runs[1:]:
            np.testing.assert_allclose(other, runs[0], rtol=1e-5, atol=1e-7)

    def test_bad_baseline(self, functional_model):
        with pytest.raises(ValueError, match="baseline"):
            IntegratedGradients(functional_model, baseline="black")
        with pytest.raises(ValueError, match="baseline"):
            IntegratedGradients(functional_model, baseline=np.zeros((8, 8, 3))).explain(_images(1))
        with pytest.raises(ValueError, match="steps"):
            IntegratedGradients(functional_model, steps=0)


# ---------------------------------------------------------------------------------------------
# Guided backprop and deconvnet on a hand-weighted 2-layer ReLU net
# ---------------------------------------------------------------------------------------------

W1 = np.array(
    [[1.0, -1.0, 0.5], [2.0, 1.0, -1.0], [-1.0, 0.5, 1.0], [0.5, 2.0, 1.0]], np.float32
)  # (4 inputs, 3 hidden)
B1 = np.array([0.0, 0.1, -0.2], np.float32)
W2 = np.array([[1.0, -2.0], [-1.5, 1.0], [2.0, 0.5]], np.float32)  # (3 hidden, 2 classes)


def _two_layer(keras, fused: bool, sequential: bool = False):
    dense1 = keras.layers.Dense(3, activation="relu" if fused else None, name="hidden")
    dense2 = keras.layers.Dense(2, activation="softmax", name="predictions")
    middle = [] if fused else [keras.layers.ReLU(name="relu")]
    layers = [keras.layers.Flatten(), dense1, *middle, dense2]
    if sequential:
        model = keras.Sequential([keras.Input((2, 2, 1)), *layers])
    else:
        inputs = keras.Input((2, 2, 1))
        x = inputs
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x)
    dense1.set_weights([W1, B1])
    dense2.set_weights([W2, np.zeros(2, np.float32)])
    return model


@pytest.mark.parametrize("fused,sequential", [(True, False), (False, False), (True, True)])
def test_relu_rules_on_hand_weighted_net(keras, fused, sequential):
    model = _two_layer(keras, fused, sequential)
    x = np.array([[[0.5], [1.0]], [[0.2], [0.3]]], np.float32)[None]  # one 2x2x1 image
    flat = x.reshape(4)
    active = (flat @ W1 + B1) > 0
    assert active.tolist() == [True, True, False]  # hidden unit 2 is off
    before = model.predict(x, verbose=0)
    for target in (0, 1):
        up = W2[:, target]  # d logit / d hidden, with a negative entry at an active unit
        plain = W1 @ (up * active)
        guided = W1 @ (np.maximum(up, 0) * active)
        deconv = W1 @ np.maximum(up, 0)
        got_plain = Saliency(model).gradients(x, target).reshape(4)
        got_guided = GuidedBackprop(model).gradients(x, target).reshape(4)
        got_deconv = Deconvnet(model).gradients(x, target).reshape(4)
        np.testing.assert_allclose(got_plain, plain, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_guided, guided, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_deconv, deconv, rtol=1e-5, atol=1e-6)
        assert not np.allclose(guided, plain) and not np.allclose(deconv, guided)
    # The user's model is untouched: same prediction, same activation functions.
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    assert model.get_layer("hidden").activation.__name__ == ("relu" if fused else "linear")


def test_channel_projection_and_bad_layers(functional_model):
    x = _images(3)
    deconv = Deconvnet(functional_model, layer="conv2")
    assert deconv.num_units == 6
    maps = deconv.explain(x, targets=[0, 5, 3])
    assert maps.shape == (3, 16, 16) and np.all(np.isfinite(maps))
    # The gradient of one unit's strongest activation only reaches its receptive field.
    grads = GuidedBackprop(functional_model, layer="conv1").gradients(x, targets=1)
    reach = np.abs(grads).max(axis=-1) > 0
    for r in reach:
        rows, cols = np.nonzero(r)
        assert rows.size == 0 or (np.ptp(rows) <= 2 and np.ptp(cols) <= 2)
    with pytest.raises(ValueError, match="out of range"):
        deconv.explain(x, targets=6)
    with pytest.raises(ValueError, match="spatial"):
        Deconvnet(functional_model, layer="gap")
    with pytest.raises(KeyError, match="conv"):
        GuidedBackprop(functional_model, layer="conv9")


@pytest.mark.parametrize("kind", ["sequential_model", "nested_model"])
def test_rules_run_on_every_model_kind(kind, request):
    model = request.getfixturevalue(kind)
    size = model.inputs[0].shape[1]
    x = _images(2, size=size)
    before = model.predict(x, verbose=0)
    for cls in (GuidedBackprop, Deconvnet):
        one = cls(model, batch_size=1).explain(x, targets=1)
        two = cls(model, batch_size=2).explain(x, targets=1)
        assert one.shape == (2, size, size) and np.isfinite(one).all() and one.max() > 0
        np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


# ---------------------------------------------------------------------------------------------
# The result contract: explain_full, no state kept, the ReLU-rule surgery of kerasviz.inspect
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls,name,reduce",
    [
        (Saliency, "saliency", "max_abs"),
        (GradientInput, "gradient_input", "sum"),
        (SmoothGrad, "smoothgrad", "max_abs"),
        (IntegratedGradients, "integrated_gradients", "sum"),
        (GuidedBackprop, "guided_backprop", "max_abs"),
        (Deconvnet, "deconvnet", "max_abs"),
    ],
)
def test_explain_full_holds_maps_targets_and_signed_attributions(
    functional_model, cls, name, reduce
):
    x = _images(2)
    explainer = cls(functional_model)
    result = explainer.explain_full(x, progress=True)
    top = functional_model.predict(x, verbose=0).argmax(-1)
    assert result.method == name
    np.testing.assert_array_equal(result.targets, top)
    assert result.attributions.shape == (2, 16, 16, 3)
    assert result.attributions.dtype == result.explanations.dtype == np.float32
    attr = result.attributions
    expected = np.abs(attr).max(axis=-1) if reduce == "max_abs" else attr.sum(axis=-1)
    np.testing.assert_allclose(result.explanations, expected, rtol=1e-6, atol=1e-9)
    assert (result.attributions < 0).any()  # signed, before the channel reduction
    np.testing.assert_allclose(explainer.explain(x, progress=True), result.explanations, rtol=1e-6)
    assert explainer.explain(x[0]).shape == (16, 16)
    assert (result.completeness is not None) == (cls is IntegratedGradients)
    assert not [k for k in vars(explainer) if k.startswith("last_")]  # nothing of a call kept


def test_public_helpers_match_explain_full(functional_model):
    x = _images(2)
    sal = Saliency(functional_model)
    np.testing.assert_array_equal(sal.gradients(x, 1), sal.explain_full(x, 1).attributions)
    gi = GradientInput(functional_model).explain_full(x, 1)
    np.testing.assert_allclose(gi.attributions, sal.gradients(x, 1) * x, rtol=1e-6)
    sg = SmoothGrad(functional_model, samples=3)
    np.testing.assert_array_equal(sg.mean_gradients(x, 1), sg.explain_full(x, 1).attributions)
    ig = IntegratedGradients(functional_model, steps=4)
    np.testing.assert_array_equal(ig.attributions(x, 1), ig.explain_full(x, 1).attributions)
    assert ig.attributions(x[0], 1).shape == (16, 16, 3)


def test_integrated_gradients_baselines_are_references(functional_model):
    from scipy.ndimage import gaussian_filter

    x = _images(2)
    blur = IntegratedGradients(functional_model, baseline="blur").baselines(x)
    sigma = 16 / 16  # the one rule: max(H, W) / 16
    np.testing.assert_allclose(
        blur, gaussian_filter(x, (0, sigma, sigma, 0), mode="reflect"), atol=1e-6
    )
    mean = IntegratedGradients(functional_model, baseline="mean").baselines(x)
    np.testing.assert_allclose(
        mean, np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape), rtol=1e-6
    )
    colour = np.array([0.1, 0.2, 0.3], np.float32)  # a (C,) colour
    got = IntegratedGradients(functional_model, baseline=colour).baselines(x)
    np.testing.assert_array_equal(got, np.broadcast_to(colour, x.shape))
    with pytest.raises(TypeError, match="baseline"):
        IntegratedGradients(functional_model, baseline=True)


def test_rule_twins_follow_the_users_weights(keras):
    model = _two_layer(keras, fused=True)
    x = np.array([[[0.5], [1.0]], [[0.2], [0.3]]], np.float32)[None]
    guided = GuidedBackprop(model)
    before = guided.gradients(x, 0).reshape(4)
    hidden = model.get_layer("hidden")
    w1 = W1 * np.array([1.0, 2.0, -1.0], np.float32)  # hidden unit 2 turns on, unit 1 doubles
    hidden.set_weights([w1, B1])
    try:
        active = (x.reshape(4) @ w1 + B1) > 0
        want = w1 @ (np.maximum(W2[:, 0], 0) * active)
        got = guided.gradients(x, 0).reshape(4)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, before)
    finally:
        hidden.set_weights([W1, B1])
