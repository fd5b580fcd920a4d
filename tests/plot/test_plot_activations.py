"""activation_rows: one layer's strongest channels for several images, legible tiles, one
colour scale with its bar, constant tiles greyed."""

import numpy as np
import pytest

from kerasviz import plot


def _maps(n=3, size=10, channels=6, seed=0):
    return np.random.default_rng(seed).uniform(0, 2, (n, size, size, channels)).astype(np.float32)


def test_rows_columns_data_and_one_scale():
    maps = _maps()
    maps[0, :, :, 4] *= 5  # one strong channel sets the scale of every tile
    channels = [4, 1, 2]
    fig = plot.activation_rows(maps, channels, row_labels=["a", "b", "c"], title="conv")
    tiles = np.array(fig.axes[:9]).reshape(3, 3)
    bar = fig.axes[9]
    assert len(fig.axes) == 10
    for r in range(3):
        assert tiles[r, 0].get_ylabel() == "abc"[r]
        for j, ch in enumerate(channels):
            artist = tiles[r, j].images[0]
            np.testing.assert_array_equal(np.asarray(artist.get_array()), maps[r, :, :, ch])
            lo, hi = artist.get_clim()
            assert (lo, hi) == pytest.approx((maps[..., channels].min(), maps[..., channels].max()))
    assert [ax.get_title() for ax in tiles[0]] == ["ch 4", "ch 1", "ch 2"]
    assert bar.get_ylim() == pytest.approx(tiles[0, 0].images[0].get_clim())  # the colour bar
    assert fig._suptitle.get_text() == "conv"


@pytest.mark.parametrize("tile_px", [48, 72])
def test_tiles_are_at_least_tile_px_wide(tmp_path, tile_px):
    fig = plot.activation_rows(_maps(n=8, channels=8), range(8), tile_px=tile_px)
    fig.canvas.draw()
    sides = np.array([ax.get_window_extent().size for ax in fig.axes[:64]])
    np.testing.assert_allclose(sides, tile_px, atol=1)  # exactly, whatever the labels
    from PIL import Image

    path = plot.save(fig, tmp_path / "rows.png")  # saved at the same dpi: same pixels
    with Image.open(path) as png:
        assert 8 * tile_px < png.size[0] < 8 * tile_px + 200


def test_constant_tile_is_grey_with_its_value():
    maps = _maps(n=2, channels=3)
    maps[1, :, :, 2] = 0.0  # a channel silent on image 1
    fig = plot.activation_rows(maps, [0, 2])
    silent = fig.axes[3]
    assert silent.images[0].get_cmap().name == "gray"
    assert [t.get_text() for t in silent.texts] == ["constant\n0"]
    assert fig.axes[1].images[0].get_cmap().name == "viridis" and not fig.axes[1].texts
    flat = plot.activation_rows(np.zeros((1, 4, 4, 2), np.float32), [0, 1])
    assert all(ax.texts for ax in flat.axes[:2])  # nothing to show, and it says so


def test_bad_input():
    maps = _maps()
    with pytest.raises(ValueError, match="rank 4"):
        plot.activation_rows(maps[0], [0])
    with pytest.raises(ValueError, match="channels"):
        plot.activation_rows(maps, [6])
    with pytest.raises(ValueError, match="row_labels"):
        plot.activation_rows(maps, [0], row_labels=["a"])
    with pytest.raises(ValueError, match="tile_px"):
        plot.activation_rows(maps, [0], tile_px=20)
