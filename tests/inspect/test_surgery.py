"""kerasviz.inspect._surgery: the ReLU-rule copy of a model."""

import numpy as np
import pytest


def _images(n, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).random((n, size, size, channels)).astype(np.float32)


def test_relu_rule_model_rewires_a_copy(keras, functional_model):
    from kerasviz import inspect

    rules = inspect.relu_rule_model(functional_model, "deconvnet")
    assert rules.units == 3 and rules.layer is None
    assert len(rules.twins) == 2  # conv1 and conv2 have fused ReLUs
    x = _images(2)
    np.testing.assert_allclose(
        rules.network.predict(x, verbose=0),
        functional_model.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-7,
    )
    unit = inspect.relu_rule_model(functional_model, "guided", layer="conv2")
    assert unit.units == 6 and unit.layer is functional_model.get_layer("conv2")
    assert tuple(unit.network.outputs[0].shape) == (None, 8, 8, 6)
    assert functional_model.get_layer("conv1").activation.__name__ == "relu"
    with pytest.raises(ValueError, match="rule"):
        inspect.relu_rule_model(functional_model, "zeiler")
    with pytest.raises(ValueError, match="spatial"):
        inspect.relu_rule_model(functional_model, "guided", layer="gap")
