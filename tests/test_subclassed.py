"""Subclassed models (a custom ``call``): the methods that need only forward passes and input
gradients run on them and equal their Functional twin built from the same layer objects; the
methods that reach inner layers say so in one line."""

import warnings

import numpy as np
import pytest

from kerasviz import attribution, inspect


@pytest.fixture(scope="module")
def pair(keras):
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.fc = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.fc(self.pool(self.conv(x)))

    keras.utils.set_random_seed(3)
    net = Net()
    net(np.zeros((1, 12, 12, 3), "float32"))
    inputs = keras.Input((12, 12, 3))
    twin = keras.Model(inputs, net.fc(net.pool(net.conv(inputs))))
    return net, twin


@pytest.mark.parametrize(
    "name,settings",
    [
        ("occlusion", {"patch": 4, "stride": 2}),
        ("saliency", {}),
        ("integrated_gradients", {"steps": 4}),
        ("lime", {"num_samples": 16, "segmentation": "grid", "seed": 0}),
    ],
)
def test_equals_the_functional_twin(pair, name, settings):
    net, twin = pair
    x = np.random.default_rng(0).random((2, 12, 12, 3)).astype("float32")
    settings = {**settings, "output": "probability"}
    got = attribution.create(name, net, **settings).explain(x, [0, 2])
    want = attribution.create(name, twin, **settings).explain(x, [0, 2])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_what_cannot_be_done_is_said(pair, keras):
    net, _ = pair
    with pytest.warns(UserWarning, match="softmax inside its call"):
        attribution.Occlusion(net, patch=4, output="logit")
    with pytest.raises(TypeError, match="its layers cannot be reached"):
        attribution.GradCAM(net, output="probability")
    assert inspect.input_shape(net) == (12, 12, 3) and inspect.num_outputs(net) == 3
    fresh = type(net)()  # never called: no input shape
    with pytest.raises(ValueError, match=r"call it once on a batch"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            attribution.Occlusion(fresh)
