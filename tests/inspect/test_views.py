"""kerasviz.inspect._views: the logits view and the layer table."""

import numpy as np
import pytest

from kerasviz import inspect

MODEL_KINDS = ["functional_model", "sequential_model", "sequential_no_input"]


class TestLogits:
    @pytest.mark.parametrize("kind", [*MODEL_KINDS, "nested_model"])
    def test_softmax_of_logits_is_prediction(self, kind, request, keras):
        model = request.getfixturevalue(kind)
        shape = (2, *inspect.input_shape(model))
        x = np.random.default_rng(5).uniform(0, 1, shape).astype(np.float32)
        before = [w.copy() for w in model.get_weights()]
        logits = np.asarray(inspect.logits_model(model)(x, training=False))
        prob = np.asarray(model(x, training=False))
        np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits)), prob, atol=1e-5)
        assert not np.allclose(logits.sum(-1), 1.0)
        assert inspect.head_activation(model) == "softmax"
        for a, b in zip(before, model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(np.asarray(model(x, training=False)), prob)

    def test_separate_softmax_layer_and_linear_head(self, keras):
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Flatten()(inputs)
        h = keras.layers.Dense(3, name="logits")(h)
        out = keras.layers.Softmax(name="probs")(h)
        model = keras.Model(inputs, out)
        x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)
        logits = inspect.logits_model(model)(x)
        direct = keras.Model(inputs, h)(x)
        np.testing.assert_allclose(np.asarray(logits), np.asarray(direct), atol=1e-6)
        linear = keras.Model(inputs, h)
        assert inspect.head_activation(linear) is None
        np.testing.assert_allclose(
            np.asarray(inspect.logits_model(linear)(x)), np.asarray(direct), atol=1e-6
        )

    def test_logits_view_follows_weight_updates(self, keras):
        inputs = keras.Input((4, 4, 1))
        h = keras.layers.Flatten()(inputs)
        out = keras.layers.Dense(2, activation="softmax", name="head")(h)
        model = keras.Model(inputs, out)
        view = inspect.logits_model(model)
        x = np.ones((1, 4, 4, 1), np.float32)
        head = model.get_layer("head")
        head.kernel.assign(np.zeros((16, 2), np.float32))
        head.bias.assign(np.array([1.0, -1.0], np.float32))
        np.testing.assert_allclose(np.asarray(view(x)), [[1.0, -1.0]], atol=1e-6)


class TestDescribe:
    def test_layer_table_and_last_spatial(self, functional_model, nested_model):
        rows = inspect.layer_table(functional_model)
        assert [r.name for r in rows] == ["conv1", "pool1", "conv2", "gap", "predictions"]
        assert [r.name for r in rows if r.filters] == ["conv1", "conv2"]
        assert rows[0].output_shape == (None, 16, 16, 4)
        assert rows[0].params == 3 * 3 * 3 * 4 + 4
        assert inspect.last_spatial_layer(functional_model) == "conv2"
        base = nested_model.layers[1]
        # At 32 px out_relu is 1x1; the last 2x2 map is the expansion before the stride-2 block.
        assert inspect.last_spatial_layer(nested_model) == f"{base.name}/block_13_expand_relu"

    def test_no_spatial_layer(self, keras):
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
        with pytest.raises(ValueError, match="spatial"):
            inspect.last_spatial_layer(model)
