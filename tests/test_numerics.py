"""Numerics: a ``mixed_float16`` model and float64 inputs give float32 maps without NaN, close
to those of the same weights computed in float32."""

import warnings

import keras
import numpy as np
import pytest

from kerasviz import attribution
from kerasviz.embedding import FeatureExtractor

SIZE = 12


def build(policy: str):
    keras.utils.set_random_seed(5)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        inputs = keras.Input((SIZE, SIZE, 3))
        x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = keras.layers.MaxPooling2D(name="pool1")(x)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        x = keras.layers.Dense(8, activation="relu", name="fc")(x)
        # The head in float32, as the Keras mixed-precision guide recommends for softmax.
        outputs = keras.layers.Dense(3, activation="softmax", dtype="float32", name="predictions")(
            x
        )
        return keras.Model(inputs, outputs, name=f"model_{policy}")
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def models():
    before = keras.config.dtype_policy().name
    mixed = build("mixed_float16")
    plain = build("float32")
    plain.set_weights(mixed.get_weights())  # variables are float32 in both
    assert keras.config.dtype_policy().name == before  # the global policy is restored
    assert mixed.get_layer("conv1").compute_dtype == "float16"
    return mixed, plain


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((3, SIZE, SIZE, 3))  # float64


METHODS = {
    "occlusion": lambda m: attribution.Occlusion(m, patch=4, stride=2, output="logit"),
    "saliency": lambda m: attribution.Saliency(m),
    "smoothgrad": lambda m: attribution.SmoothGrad(m, samples=4),
    "integrated_gradients": lambda m: attribution.IntegratedGradients(m, steps=8),
    "gradcam": lambda m: attribution.GradCAM(m, layer="conv2"),
    "gradcam++": lambda m: attribution.GradCAMPlusPlus(m, layer="conv2"),
    "lime": lambda m: attribution.Lime(
        m, segmentation="grid", segmentation_args={"cells": 3}, num_samples=64, output="logit"
    ),
}


@pytest.mark.parametrize("name", list(METHODS))
def test_mixed_precision_maps_are_float32_finite_and_close(models, images, name):
    mixed, plain = models
    assert images.dtype == np.float64
    got = METHODS[name](mixed).explain(images, targets=[0, 1, 2])
    want = METHODS[name](plain).explain(images.astype(np.float32), targets=[0, 1, 2])
    assert got.dtype == np.float32 and got.shape == (3, SIZE, SIZE)
    assert np.all(np.isfinite(got))
    assert float(np.abs(want).max()) > 0
    # float16 keeps about 3 decimal digits, and a ReLU whose input is near 0 can switch, so
    # single pixels of gradient maps may move; each map as a whole stays the same.
    for g, w in zip(got, want, strict=True):
        relative = np.linalg.norm(g - w) / np.linalg.norm(w)
        assert relative < 0.1, (name, relative)
        assert np.corrcoef(g.ravel(), w.ravel())[0, 1] > 0.99, name


def test_mixed_precision_features_float32(models, images):
    mixed, plain = models
    got = FeatureExtractor(mixed, layer="fc").extract(images)
    want = FeatureExtractor(plain, layer="fc").extract(images.astype(np.float32))
    assert got.dtype == np.float32 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, atol=0.02 * float(np.abs(want).max()))


def test_float64_inputs_equal_float32_inputs(models, images):
    _, plain = models
    explainer = attribution.IntegratedGradients(plain, steps=8)
    a = explainer.explain(images, targets=1)
    b = explainer.explain(images.astype(np.float32), targets=1)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_large_float64_values_are_rejected_not_nan(models):
    _, plain = models
    huge = np.full((1, SIZE, SIZE, 3), 1e300)  # inf once in float32
    # numpy warns about the overflowing cast before the check raises (reported to the lead:
    # `inspect.check_images` could cast under np.errstate(over="ignore")).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="too large for float32"):
            attribution.Saliency(plain).explain(huge)
