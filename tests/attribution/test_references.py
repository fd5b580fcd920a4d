"""kerasviz.attribution._references: every reference form, and the one blur rule."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from kerasviz.attribution import _references as refs


def _batch(n=2, h=8, w=12, c=3, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c)).astype(np.float32)


def test_one_sigma_rule():
    assert refs.default_sigma(64, 48) == 4.0
    assert refs.default_sigma(224, 224) == 14.0
    batch = _batch()
    expected = gaussian_filter(batch, sigma=(0, 12 / 16, 12 / 16, 0), mode="reflect")
    np.testing.assert_allclose(refs.blur(batch), expected, rtol=1e-6)
    np.testing.assert_allclose(refs.reference("blur", batch, "fill"), expected, rtol=1e-6)
    np.testing.assert_allclose(
        refs.blur(batch, 2.0), gaussian_filter(batch, (0, 2, 2, 0), mode="reflect"), rtol=1e-6
    )


def test_blur_never_mixes_images_or_channels():
    batch = np.zeros((2, 8, 8, 2), np.float32)
    batch[0, 4, 4, 0] = 1.0
    out = refs.blur(batch, 1.0)
    assert out[1].max() == 0 and out[0, ..., 1].max() == 0 and out[0, ..., 0].sum() > 0.99


@pytest.mark.parametrize(
    "value, expected",
    [
        ("zeros", lambda b: np.zeros_like(b)),
        ("mean", lambda b: np.broadcast_to(b.mean(axis=(1, 2), keepdims=True), b.shape)),
        (0.5, lambda b: np.full_like(b, 0.5)),
        (
            [0.1, 0.2, 0.3],
            lambda b: np.broadcast_to(np.array([0.1, 0.2, 0.3], np.float32), b.shape),
        ),
        ("image", lambda b: np.broadcast_to(b[1], b.shape)),
        ("batch", lambda b: b[::-1]),
    ],
)
def test_forms(value, expected):
    batch = _batch()
    value = (
        {"image": batch[1], "batch": batch[::-1]}.get(value, value)
        if isinstance(value, str)
        else value
    )
    out = refs.reference(value, batch, "fill")
    assert out.shape == batch.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected(batch), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "value, error, match",
    [
        ("black", ValueError, r"Expected `fill` in \('zeros', 'mean', 'blur'\)"),
        (True, TypeError, "fill"),
        (np.nan, ValueError, "NaN"),
        (np.zeros((5,)), ValueError, r"Received: fill.shape=\(5,\)"),
    ],
)
def test_bad_references(value, error, match):
    with pytest.raises(error, match=match):
        refs.reference(value, _batch(), "fill")


def test_check_sigma():
    assert refs.check_sigma(None) is None and refs.check_sigma(3) == 3.0
    with pytest.raises(ValueError, match="blur_sigma"):
        refs.check_sigma(0)
