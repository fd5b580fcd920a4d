"""kerasviz.inspect._replay: sub-models through nested graphs and the on_call hook."""

import numpy as np
import pytest

from kerasviz import inspect

MODEL_KINDS = ["functional_model", "sequential_model", "sequential_no_input"]


@pytest.fixture
def x16():
    return np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)


@pytest.fixture
def x32():
    return np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)


class TestSubmodel:
    @pytest.mark.parametrize("kind", MODEL_KINDS)
    def test_outputs_equal_direct_calls(self, kind, request, x16, keras):
        model = request.getfixturevalue(kind)
        sub = inspect.submodel(model, ["conv1", "conv2"])
        conv1, conv2, pred = (np.asarray(t) for t in sub(x16, training=False))
        np.testing.assert_allclose(pred, np.asarray(model(x16, training=False)), atol=1e-5)
        # Reference: apply the layers by hand, one after the other.
        h = x16
        expected = {}
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            h = layer(h)
            expected[layer.name] = np.asarray(h)
        np.testing.assert_allclose(conv1, expected["conv1"], atol=1e-5)
        np.testing.assert_allclose(conv2, expected["conv2"], atol=1e-5)

    def test_nested_backbone(self, nested_model, x32):
        base = nested_model.layers[1]
        sub = inspect.submodel(nested_model, [f"{base.name}/block_3_expand", "gap"])
        inner, gap, pred = (np.asarray(t) for t in sub(x32, training=False))
        np.testing.assert_allclose(pred, np.asarray(nested_model(x32, training=False)), atol=1e-5)
        # Reference: the backbone's own sub-model applied to the same images.
        import keras

        ref = keras.Model(base.inputs[0], base.get_layer("block_3_expand").output)
        np.testing.assert_allclose(inner, np.asarray(ref(x32, training=False)), atol=1e-5)
        assert gap.shape == (2, base.outputs[0].shape[-1])

    def test_weights_are_shared_not_copied(self, functional_model):
        sub = inspect.submodel(functional_model, "conv1")
        assert sub.get_layer("conv1") is functional_model.get_layer("conv1")

    def test_sequential_without_shape(self, keras):
        model = keras.Sequential([keras.layers.Conv2D(2, 3), keras.layers.Flatten()])
        with pytest.raises(ValueError, match="no input shape"):
            inspect.submodel(model, 0)

    def test_input_layer_and_empty(self, functional_model, x16):
        outs = inspect.submodel(functional_model, "image")(x16)
        np.testing.assert_allclose(np.asarray(outs[0]), x16)
        assert len(inspect.submodel(functional_model).outputs) == 1

    def test_subclassed_model_is_tapped(self, keras):
        class Custom(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        model = Custom()
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        model(x)
        np.testing.assert_allclose(inspect.flat_model(model)(x), model(x), rtol=1e-6)
        sub = inspect.submodel(model, [model.dense])
        np.testing.assert_allclose(sub(x)[0], model.dense(x), rtol=1e-6)


class TestReplayHook:
    def test_on_call_sees_every_call_in_order(self, nested_model):
        calls = []
        inputs, prediction, walk = inspect.replay(nested_model, on_call=calls.append)
        leaves = [c for c in calls if not c.nested]
        nested = [c for c in calls if c.nested]
        # Every leaf layer of the backbone and the outer model, then the backbone itself once.
        assert len(nested) == 1 and nested[0].path == nested_model.layers[1].name
        assert [c.path for c in leaves] == [
            t.path for t in walk.taps if not inspect.is_graph_model(t.layer)
        ]
        assert leaves[-1].output is prediction
        first = leaves[0]
        assert first.args[0] is inputs and first.path.startswith(nested[0].path + "/")

    def test_overrides_are_reported(self, functional_model):
        head = functional_model.get_layer("predictions")
        seen = []
        inspect.replay(
            functional_model,
            overrides={id(head): lambda x, *a, **k: x},
            on_call=lambda c: seen.append((c.layer.name, tuple(c.output.shape))),
        )
        assert seen[-1] == ("predictions", (None, 6))  # the override's output (gap's)
