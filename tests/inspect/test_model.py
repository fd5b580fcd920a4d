"""kerasviz.inspect._model: finding layers (names, paths, indices, objects), images checked
against a model, and the deprecated check aliases."""

import numpy as np
import pytest

from kerasviz import _checks, inspect

MODEL_KINDS = ["functional_model", "sequential_model", "sequential_no_input"]


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


class TestDeprecatedChecks:
    def test_old_names_warn_and_still_work(self, functional_model):
        with pytest.warns(DeprecationWarning, match="check_inputs"):
            batch, single = inspect.check_images(np.zeros((16, 16, 3)), functional_model)
        assert batch.shape == (1, 16, 16, 3) and single
        with pytest.warns(DeprecationWarning, match="_checks.pair"):
            assert inspect.pair(2, "patch") == (2, 2)
        with pytest.raises(AttributeError):
            inspect.no_such_name  # noqa: B018
