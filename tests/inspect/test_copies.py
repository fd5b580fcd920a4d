"""kerasviz.inspect._copies: standalone copies, weighted layers and re-initialisation."""

import numpy as np
import pytest

from kerasviz import inspect

H, W, C = 8, 8, 2


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
