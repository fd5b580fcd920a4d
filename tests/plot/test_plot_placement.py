"""place_grid: a grid placed on the input at its cells' receptive-field centres, checked on
models whose windows are known by hand (valid padding, strides)."""

import numpy as np
import pytest

from kerasviz import inspect, plot


def _valid_model(keras):
    """32 px -> conv 3x3 valid (30) -> conv 3x3 stride 2 valid (14): cell (i, j) of the second
    layer sees input rows [2i, 2i + 5), centre 2i + 2."""
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(2, 3, name="c1")(inputs)
    x = keras.layers.Conv2D(2, 3, strides=2, name="c2")(x)
    return keras.Model(inputs, x)


def test_each_cell_sits_at_its_field_centre(keras):
    field = inspect.receptive_field(_valid_model(keras), "c2")
    assert field.output_size == (14, 14)
    from kerasviz.plot.placement import field_centres

    rows, cols = field_centres(field)
    np.testing.assert_array_equal(rows, 2 + 2 * np.arange(14))
    np.testing.assert_array_equal(cols, rows)
    for i, j in [(3, 9), (7, 1), (12, 6)]:  # inner cells: a single peak at the centre
        grid = np.zeros((14, 14))
        grid[i, j] = 1.0
        placed = plot.place_grid(grid, field)
        assert placed.shape == (32, 32)
        assert np.unravel_index(np.argmax(placed), placed.shape) == (2 + 2 * i, 2 + 2 * j)
        assert placed[2 + 2 * i, 2 + 2 * j] == 1.0 and placed.sum() == pytest.approx(4.0)
    # Between centres: linear; beyond the outermost centres: the edge cell's value held, so a
    # corner cell does not spread over pixels its window never saw on the other side.
    ramp = np.tile(np.arange(14, dtype=np.float64), (14, 1))  # value = column index
    placed = plot.place_grid(ramp[None], field)[0]
    np.testing.assert_allclose(placed[10, 3], 0.5)  # halfway between centres 2 and 4
    np.testing.assert_allclose(placed[10, :3], 0.0)
    np.testing.assert_allclose(placed[10, 28:], 13.0)


def test_stretching_would_be_wrong_here(keras):
    """The hot top-left cell of a valid-padding grid: stretched over the image it lands on the
    corner pixel; placed by its field it lands where its window is centred."""
    field = inspect.receptive_field(_valid_model(keras), "c2")
    grid = np.zeros((1, 14, 14))
    grid[0, 0, 0] = 1.0
    placed = plot.place_grid(grid, field)[0]
    assert placed[0, 0] == 1.0 and placed[2, 2] == 1.0  # held up to the first centre
    assert placed[4, 4] == 0.0  # the next centre, where cell (1, 1) has 0
    # Stretched (tf.image.resize), cell 12 of 14 would be centred on pixel 12.5 * 32/14 - 0.5
    # = 28.1; its window [24, 29) is centred on 26.
    grid = np.zeros((1, 14, 14))
    grid[0, 12, 12] = 1.0
    placed = plot.place_grid(grid, field)[0]
    assert placed[26, 26] == 1.0 and placed[28, 28] == 0.0
    assert placed[27, 27] == pytest.approx(0.25)  # halfway to the next centre on both axes


def test_same_padding_centres_and_bad_grid(keras):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(1, 3, padding="same", name="s")(inputs)
    field = inspect.receptive_field(keras.Model(inputs, x), "s")
    grid = np.random.default_rng(0).normal(size=(2, 8, 8))
    np.testing.assert_allclose(plot.place_grid(grid, field), grid, rtol=1e-6)  # identity
    with pytest.raises(ValueError, match=r"grid.*\(N, 8, 8\)"):
        plot.place_grid(grid[:, :4], field)
