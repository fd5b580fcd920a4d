"""The three Keras applications conventions, checked against Keras' own preprocess_input."""

import numpy as np
import pytest
from keras.applications import imagenet_utils

from kerasviz._preprocess import MODES, Preprocessing


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype(np.float32)


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_apply_equals_keras_and_inverts(pixels, mode):
    ours = Preprocessing(mode).apply(pixels)
    np.testing.assert_array_equal(ours, imagenet_utils.preprocess_input(pixels.copy(), mode=mode))
    np.testing.assert_allclose(Preprocessing(mode).invert(ours), pixels, atol=1e-3)


def test_scale_mode_and_display(pixels):
    prep = Preprocessing("scale", 2 / 255, -1.0)
    np.testing.assert_allclose(prep.apply(pixels), pixels / 127.5 - 1, atol=1e-6)
    shown = Preprocessing("caffe").display(Preprocessing("caffe").apply(pixels))
    np.testing.assert_allclose(shown, pixels / 255, atol=1e-5)  # RGB again, in [0, 1]
    assert Preprocessing("caffe").channel_order == "BGR"
    assert Preprocessing("tf").channel_order == "RGB"


def test_from_card():
    shipped = {"preprocessing": {"scale": 1 / 255, "offset": 0.0, "note": "..."}}
    assert Preprocessing.from_card(shipped) == Preprocessing("scale", 1 / 255, 0.0)
    assert Preprocessing.from_card({}) == Preprocessing()
    assert Preprocessing.from_card({"preprocessing": {"mode": "caffe"}}).mode == "caffe"
    # A given scale or offset is an explicit "scale" mode, whatever the card says.
    assert Preprocessing.from_card({"preprocessing": {"mode": "caffe"}}, scale=1.0) == (
        Preprocessing("scale", 1.0, 0.0)
    )
    for mode in MODES:
        card = {"preprocessing": Preprocessing(mode).to_dict()}
        assert Preprocessing.from_card(card).mode == mode


def test_bad_input():
    with pytest.raises(ValueError, match="preprocessing mode.*Did you mean 'caffe'"):
        Preprocessing("cafe")
    with pytest.raises(ValueError, match="3-channel"):
        Preprocessing("torch").apply(np.zeros((4, 4, 1)))
    with pytest.raises(ValueError, match="scale"):
        Preprocessing("scale", 0.0)
