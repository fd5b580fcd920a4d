"""Generated data: shapes, ranges, masks that match the drawn objects, seeds."""

import numpy as np
import pytest

from kerasviz import datasets


def test_shapes_arrays_and_masks():
    images, labels, masks = datasets.shapes(30, size=48, seed=3)
    assert images.shape == (30, 48, 48, 3) and images.dtype == np.float32
    assert labels.shape == (30,) and set(labels) <= {0, 1, 2}
    assert masks.shape == (30, 48, 48) and masks.dtype == bool
    assert 0.0 <= images.min() and images.max() <= 1.0
    area = masks.mean(axis=(1, 2))
    assert np.all(area > 0.02) and np.all(area < 0.4)
    # The object's colour is flat: inside the mask pixels vary far less than the background.
    for img, m in zip(images[:10], masks[:10], strict=True):
        assert img[m].std(axis=0).mean() < img[~m].std(axis=0).mean()


def test_shape_classes_by_geometry():
    images, labels, masks = datasets.shapes(60, seed=5)
    # A circle fills pi/4 of its bounding box, a square (any rotation) at most 1 and at least
    # 1/2, a triangle at most 1/2 of its axis-aligned box.
    for label, mask in zip(labels, masks, strict=True):
        ys, xs = np.nonzero(mask)
        fill = mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
        if label == 0:
            assert 0.7 < fill < 0.9
        elif label == 2:
            assert fill < 0.62


def test_seeds():
    a = datasets.shapes(5, seed=1)
    b = datasets.shapes(5, seed=1)
    c = datasets.shapes(5, seed=2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def _is_snow(images, masks):
    """Mean background brightness: snow is bright, grass is dark green."""
    bg = np.where(masks[..., None], np.nan, images)
    return np.nanmean(bg, axis=(1, 2, 3)) > 0.6


@pytest.mark.parametrize(
    "split, bias, wolves_on_snow", [("train", 1.0, 1.0), ("test", 1.0, 1.0), ("swapped", 1.0, 0.0)]
)
def test_snow_backgrounds(split, bias, wolves_on_snow):
    images, labels, masks = datasets.snow(40, split, seed=0, bias=bias)
    on_snow = _is_snow(images, masks)
    assert np.mean(on_snow[labels == 1]) == wolves_on_snow
    assert np.mean(on_snow[labels == 0]) == 1.0 - wolves_on_snow


def test_snow_fair_bias_and_masks():
    images, labels, masks = datasets.snow(200, "train", seed=0, bias=0.5)
    on_snow = _is_snow(images, masks)
    assert 0.35 < np.mean(on_snow[labels == 1]) < 0.65
    assert images.shape == (200, 64, 64, 3) and masks.any(axis=(1, 2)).all()
    # Splits with the same seed differ.
    assert not np.array_equal(datasets.snow(2, "train")[0], datasets.snow(2, "test")[0])


def test_digits():
    images, labels = datasets.digits(24)
    assert images.shape == (1797, 24, 24, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and set(labels) == set(range(10))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: datasets.shapes(0), "`n`"),
        (lambda: datasets.shapes(2, size=8), "`size`"),
        (lambda: datasets.snow(2, split="val"), "`split`"),
        (lambda: datasets.snow(2, bias=1.5), "`bias`"),
        (lambda: datasets.digits(4), "`size`"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_integer_sizes_are_type_errors():
    with pytest.raises(TypeError, match="Expected `n` to be an int"):
        datasets.shapes(2.5)
    with pytest.raises(TypeError, match="Expected `size` to be an int"):
        datasets.digits(16.0)
