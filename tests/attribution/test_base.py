"""kerasviz.attribution.Scorer: the scored view, compiled batched predict and targets."""

import numpy as np
import pytest

from kerasviz import attribution
from kerasviz.attribution._base import Scorer


def _x(n=5, seed=0):
    return np.random.default_rng(seed).random((n, 16, 16, 3)).astype(np.float32)


def test_predict_matches_model_for_every_batch_size(functional_model):
    x = _x()
    want = np.asarray(functional_model(x, training=False))
    for batch_size in (1, 2, 5, 64):
        got = Scorer(functional_model, batch_size=batch_size).predict(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_logit_view_and_targets(functional_model, sequential_model):
    x = _x()
    scorer = Scorer(functional_model, output="logit")
    logits = scorer.predict(x)
    probs = np.asarray(functional_model(x, training=False))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probs, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(scorer.targets(x, None), probs.argmax(axis=1))
    np.testing.assert_array_equal(scorer.targets(x, 2), [2] * 5)
    np.testing.assert_allclose(
        scorer.score(x, [0, 1, 2, 0, 1]), logits[np.arange(5), [0, 1, 2, 0, 1]], rtol=1e-6
    )
    assert Scorer(sequential_model).num_classes == 3


def test_compiled_once(functional_model):
    scorer = Scorer(functional_model, batch_size=4)
    scorer.predict(_x(5))  # 4 + 1 padded to 4
    scorer.predict(_x(9))
    assert scorer._forward.experimental_get_tracing_count() == 1


def test_errors(functional_model):
    with pytest.raises(ValueError, match="Expected `output` in"):
        Scorer(functional_model, output="logits")
    with pytest.raises(TypeError, match="keras.Model"):
        Scorer("model.keras")
    scorer = Scorer(functional_model)
    with pytest.raises(ValueError, match="out of range"):
        scorer.targets(_x(2), 3)
    with pytest.raises(ValueError, match=r"shape \(N, 16, 16, 3\)"):
        scorer.check_inputs(np.zeros((2, 8, 8, 3)))


@pytest.mark.parametrize("name", ["occlusion", "saliency", "lime", "gradcam"])
def test_dense_outputs_are_refused_not_flattened(keras, name):
    """A per-pixel output (segmentation, edges) has no one class per image: every explainer
    says so in one line instead of explaining a flattened pixel-class."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax", name="seg")(x))
    with pytest.raises(ValueError, match=r"output of shape \(None, 12, 12, 2\).*Region\(mask"):
        attribution.create(name, model)
