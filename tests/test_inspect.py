"""The inspection core on the three model kinds: Functional, Sequential (two ways), nested."""

import numpy as np
import pytest

from kerasviz import _checks, inspect

MODEL_KINDS = ["functional_model", "sequential_model", "sequential_no_input"]


@pytest.fixture
def x16():
    return np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)


@pytest.fixture
def x32():
    return np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)


class TestFindLayer:
    def test_by_name_index_object(self, functional_model):
        conv2 = functional_model.get_layer("conv2")
        assert inspect.find_layer(functional_model, "conv2") is conv2
        assert inspect.find_layer(functional_model, conv2) is conv2
        assert inspect.find_layer(functional_model, -1).name == "predictions"
        assert inspect.find_layer(functional_model, np.int64(1)).name == "conv1"

    def test_path_and_unique_inner_name(self, nested_model):
        base = nested_model.layers[1]
        layer = inspect.find_layer(nested_model, f"{base.name}/block_3_expand")
        assert layer is base.get_layer("block_3_expand")
        assert inspect.find_layer(nested_model, "block_3_expand") is layer
        assert inspect.layer_path(nested_model, layer) == f"{base.name}/block_3_expand"

    def test_unknown_name_lists_closest(self, nested_model):
        with pytest.raises(KeyError, match="block_3_expand"):
            inspect.find_layer(nested_model, "block_3_expnd")

    def test_bad_refs(self, functional_model, keras):
        with pytest.raises(KeyError, match="out of range"):
            inspect.find_layer(functional_model, 99)
        with pytest.raises(TypeError, match="layer"):
            inspect.find_layer(functional_model, 1.5)
        with pytest.raises(KeyError, match="not part of model"):
            inspect.find_layer(functional_model, keras.layers.Dense(2))
        with pytest.raises(TypeError, match="keras.Model"):
            inspect.find_layer("not a model", "conv1")


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
        np.testing.assert_allclose(pred, np.asarray(nested_model(x32, training=False)),
                                   atol=1e-5)
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

    def test_subclassed_model_refused(self, keras):
        class Custom(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        model = Custom()
        model(np.zeros((1, 4), np.float32))
        with pytest.raises(TypeError, match="subclassed"):
            inspect.flat_model(model)


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
        np.testing.assert_allclose(np.asarray(inspect.logits_model(linear)(x)),
                                   np.asarray(direct), atol=1e-6)

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


class TestCheckInputs:
    def test_single_and_batch(self, functional_model):
        img = np.zeros((16, 16, 3), np.uint8)
        batch, single = inspect.check_inputs(functional_model, img)
        assert batch.shape == (1, 16, 16, 3) and batch.dtype == np.float32 and single
        assert _checks.restore_single(batch, single).shape == (16, 16, 3)
        batch, single = inspect.check_inputs(functional_model, np.zeros((2, 16, 16, 3)))
        assert batch.shape == (2, 16, 16, 3) and not single

    @pytest.mark.parametrize(
        "value, error, match",
        [
            (np.zeros((16, 16)), ValueError, r"rank 3 .* Received: inputs.shape=\(16, 16\)"),
            (np.zeros((1, 1, 16, 16, 3)), ValueError, "rank 3"),
            (np.zeros((0, 16, 16, 3)), ValueError, "empty batch"),
            (np.zeros((2, 16, 16, 1)), ValueError, r"shape \(N, 16, 16, 3\)"),
            (np.zeros((2, 8, 8, 3)), ValueError, "Received: inputs.shape=\\(2, 8, 8, 3\\)"),
            (np.full((16, 16, 3), np.nan), ValueError, "NaN"),
            (np.full((16, 16, 3), np.inf), ValueError, "infinite"),
            (np.full((16, 16, 3), 1e300), ValueError, "too large for float32"),
            (np.array([["a"]]), TypeError, "dtype"),
            (np.zeros((16, 16, 3), bool), TypeError, "dtype"),
            (np.zeros((16, 16, 3), complex), TypeError, "dtype"),
        ],
    )
    def test_bad_images(self, functional_model, value, error, match):
        with pytest.raises(error, match=match):
            inspect.check_inputs(functional_model, value)


class TestReplayHook:
    def test_on_call_sees_every_call_in_order(self, nested_model):
        calls = []
        inputs, prediction, walk = inspect.replay(nested_model, on_call=calls.append)
        leaves = [c for c in calls if not c.nested]
        nested = [c for c in calls if c.nested]
        # Every leaf layer of the backbone and the outer model, then the backbone itself once.
        assert len(nested) == 1 and nested[0].path == nested_model.layers[1].name
        assert [c.path for c in leaves] == [t.path for t in walk.taps
                                            if not inspect.is_graph_model(t.layer)]
        assert leaves[-1].output is prediction
        first = leaves[0]
        assert first.args[0] is inputs and first.path.startswith(nested[0].path + "/")

    def test_overrides_are_reported(self, functional_model):
        head = functional_model.get_layer("predictions")
        seen = []
        inspect.replay(functional_model, overrides={id(head): lambda x, *a, **k: x},
                       on_call=lambda c: seen.append((c.layer.name, tuple(c.output.shape))))
        assert seen[-1] == ("predictions", (None, 6))  # the override's output (gap's)


class TestDeprecatedChecks:
    def test_old_names_warn_and_still_work(self, functional_model):
        with pytest.warns(DeprecationWarning, match="check_inputs"):
            batch, single = inspect.check_images(np.zeros((16, 16, 3)), functional_model)
        assert batch.shape == (1, 16, 16, 3) and single
        with pytest.warns(DeprecationWarning, match="_checks.pair"):
            assert inspect.pair(2, "patch") == (2, 2)
        with pytest.raises(AttributeError):
            inspect.no_such_name  # noqa: B018
