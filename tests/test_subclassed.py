"""Subclassed models (a custom ``call``): every method runs on them and equals their Functional
twin built from the same layer objects, inner layers included (reached by tapping their calls
during a traced pass, the model left as it was)."""

import warnings

import numpy as np
import pytest

from kerasviz import activations, attribution, inspect
from kerasviz.attribution.incremental import IncrementalFallbackWarning


@pytest.fixture(scope="module")
def pair(keras):
    class Block(keras.layers.Layer):  # a custom layer holding layers: tracked, nested
        def __init__(self, name):
            super().__init__(name=name)
            self.conv1 = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")
            self.conv2 = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")

        def call(self, x):
            return self.conv2(self.conv1(x))

    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.block = Block("block")
            self.pool = keras.layers.GlobalAveragePooling2D(name="gap")
            self.fc = keras.layers.Dense(3, activation="softmax", name="fc")
            self.fail = False

        def call(self, x):
            if self.fail:
                raise RuntimeError("the user's call failed")
            return self.fc(self.pool(self.block(x)))

    keras.utils.set_random_seed(3)
    net = Net()
    net(np.zeros((1, 12, 12, 3), "float32"))
    inputs = keras.Input((12, 12, 3))
    b = net.block
    twin = keras.Model(inputs, net.fc(net.pool(b.conv2(b.conv1(inputs)))), name="twin")
    return net, twin


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((2, 12, 12, 3)).astype("float32")


def test_layer_table_lists_the_tracked_layers_in_call_order(pair):
    net, _ = pair
    rows = inspect.layer_table(net)
    assert [(r.path, r.output_shape) for r in rows] == [
        ("block/c1", (None, 12, 12, 4)),
        ("block/c2", (None, 12, 12, 6)),
        ("block", (None, 12, 12, 6)),
        ("gap", (None, 6)),
        ("fc", (None, 3)),
    ]
    assert inspect.find_layer(net, "c2") is net.block.conv2
    assert inspect.find_layer(net, "block/c1") is net.block.conv1
    assert all("call" not in vars(layer) for _, layer in inspect.iter_layers(net))


@pytest.mark.parametrize(
    "name,settings",
    [
        ("occlusion", {"patch": 4, "stride": 2}),
        ("saliency", {}),
        ("integrated_gradients", {"steps": 4}),
        ("guided_backprop", {}),
        ("lime", {"num_samples": 16, "segmentation": "grid", "seed": 0}),
        ("gradcam", {"layer": "c1"}),
        ("scorecam", {"layer": "c2"}),
        ("occlusion", {"patch": 4, "stride": 2, "layer": "c1", "unit": 2}),
        ("gradient_input", {}),
        ("smoothgrad", {"samples": 4, "seed": 0}),
        ("deconvnet", {}),
        ("gradcam++", {}),
        ("layercam", {"layer": "c1"}),
    ],
)
def test_equals_the_functional_twin(pair, images, name, settings):
    """Every method (incremental occlusion: below)."""
    net, twin = pair
    settings = {**settings, "output": "probability"}
    got = attribution.create(name, net, **settings).explain(images, [0, 2])
    want = attribution.create(name, twin, **settings).explain(images, [0, 2])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_defaults_and_activations_reach_inner_layers(pair, images):
    net, twin = pair
    cam = attribution.GradCAM(net, output="probability")
    assert cam.layer is net.block.conv2  # the last spatial layer inside the block
    got = activations.activations(net, images, ["c1", "block/c2"])
    want = activations.activations(twin, images, ["c1", "c2"])
    np.testing.assert_allclose(got["c1"], want["c1"], rtol=1e-6)
    np.testing.assert_allclose(got["block/c2"], want["c2"], rtol=1e-6)


def test_incremental_occlusion_falls_back_and_says_so(pair, images):
    net, _ = pair
    with pytest.warns(IncrementalFallbackWarning):
        got = attribution.IncrementalOcclusion(net, patch=4, stride=2).explain(images, 1)
    want = attribution.Occlusion(net, patch=4, stride=2).explain(images, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_wrappers_are_removed_even_when_the_call_fails(pair):
    net, _ = pair
    net.fail = True
    try:
        with pytest.raises(Exception, match="the user's call failed"):
            inspect.submodel(net, ["c1"])
    finally:
        net.fail = False
    assert all("call" not in vars(layer) for _, layer in inspect.iter_layers(net))


def test_what_cannot_be_done_is_said(pair, keras):
    net, _ = pair
    with pytest.warns(UserWarning, match="softmax inside its call"):
        attribution.Occlusion(net, patch=4, output="logit")
    with pytest.raises(KeyError, match="No layer 'c3'"):
        attribution.GradCAM(net, layer="c3", output="probability")
    assert inspect.input_shape(net) == (12, 12, 3) and inspect.num_outputs(net) == 3
    fresh = type(net)()  # never called: no input shape
    with pytest.raises(ValueError, match=r"call it once on a batch"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            attribution.Occlusion(fresh)


def test_a_function_is_a_model_through_callable_model(images):
    """A TensorFlow function gets every method; a numpy one the forward-only methods."""
    from keras import ops

    weights = np.linspace(-1, 1, 12 * 12 * 3, dtype="float32").reshape(12, 12, 3)

    def linear(x):  # two scores: x.w and -x.w
        s = ops.sum(x * weights, axis=(1, 2, 3))
        return ops.stack([s, -s], axis=1)

    model = inspect.callable_model(linear, (12, 12, 3))
    grads = attribution.Saliency(model, output="probability").gradients(images, 0)
    np.testing.assert_allclose(grads, np.broadcast_to(weights, grads.shape), rtol=1e-6)

    def numpy_linear(x):
        s = (x * weights).sum(axis=(1, 2, 3))
        return np.stack([s, -s], axis=1)

    slow = inspect.callable_model(numpy_linear, (12, 12, 3), numpy=True)
    got = attribution.Occlusion(slow, patch=4, stride=4, fill=0.0).explain(images, 0)
    want = attribution.Occlusion(model, patch=4, stride=4, fill=0.0).explain(images, 0)
    np.testing.assert_allclose(got, want, atol=1e-4)  # float32 sums in another order
    with pytest.raises(TypeError, match="callable_model"):
        attribution.Occlusion(numpy_linear)


def test_receptive_fields_and_top_patches_follow_the_traced_call(pair, images):
    """The layer calls a subclassed model's call made are its call graph: fields equal the
    twin's, so the top patches (Zeiler and Fergus) are the same crops."""
    net, twin = pair
    for name in ("c1", "c2"):
        got, want = inspect.receptive_field(net, name), inspect.receptive_field(twin, name)
        assert got.size == want.size == ((3, 3) if name == "c1" else (5, 5))
        np.testing.assert_array_equal(got.rows, want.rows)
    data = np.concatenate([images, images[:, ::-1]])
    got = activations.top_patches(net, "c2", data, k=2)
    want = activations.top_patches(twin, "c2", data, k=2)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.patches, want.patches)
