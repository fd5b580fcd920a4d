"""explanation_grid: layout, the drawn data, colour scales and bad input."""

import numpy as np
import pytest

from kerasviz import plot


def _data(n=2, size=8, methods=2, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (n, size, size, 3)).astype(np.float32)
    maps = {f"m{k}": rng.normal(size=(n, size, size)).astype(np.float32) for k in range(methods)}
    return images, maps


def _map_artist(ax):
    return ax.images[-1]  # the image first, then the map on top


def test_grid_layout_and_drawn_maps():
    images, maps = _data(n=3, methods=2)
    maps["positive"] = np.abs(maps["m0"]) + 1.0
    fig = plot.explanation_grid(images, maps, titles=["a", "b", "c"])
    axes = np.array(fig.axes).reshape(3, 4)  # rows = images, cols = image + 3 methods
    for row in range(3):
        np.testing.assert_allclose(axes[row, 0].images[0].get_array(), images[row])
        for col, (name, arr) in enumerate(maps.items(), start=1):
            artist = _map_artist(axes[row, col])
            np.testing.assert_array_equal(np.asarray(artist.get_array()), arr[row])
            vmin, vmax = artist.get_clim()
            if name == "positive":  # one sign: its own range, sequential colour map
                assert (vmin, vmax) == pytest.approx((arr[row].min(), arr[row].max()))
                assert artist.get_cmap().name == "jet"
            else:  # signed: centred on zero
                bound = np.abs(arr[row]).max()
                assert (vmin, vmax) == pytest.approx((-bound, bound))
                assert artist.get_cmap().name == "bwr"
    assert [axes[0, c].get_title() for c in range(4)] == ["a", "m0", "m1", "positive"]
    assert axes[2, 0].get_title() == "c"


def test_scale_per_method_is_shared_across_images():
    images, maps = _data(n=3, methods=1)
    maps["m0"][1] *= 10  # one image with a much larger map
    fig = plot.explanation_grid(images, maps, scale="method", show_images=False, alpha=0.7)
    bound = float(np.abs(maps["m0"]).max())
    for ax in fig.axes:
        assert _map_artist(ax).get_clim() == pytest.approx((-bound, bound))
        assert _map_artist(ax).get_alpha() == 0.7
    each = plot.explanation_grid(images, maps, scale="each", show_images=False)
    assert each.axes[0].images[-1].get_clim()[1] < bound / 2


def test_single_image_and_colorbar_and_save(tmp_path):
    images, maps = _data(n=1, methods=2)
    fig = plot.explanation_grid(
        images[0], {k: v[0] for k, v in maps.items()}, colorbar=True, cmap="viridis"
    )
    assert len([ax for ax in fig.axes if ax.images]) == 3
    assert fig.axes[1].images[-1].get_cmap().name == "viridis"
    path = plot.save(fig, tmp_path / "grid.png")
    assert path.stat().st_size > 1000


def test_occlusion_maps_plot(functional_model):
    from kerasviz.attribution import Occlusion

    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    maps = Occlusion(functional_model, patch=4, stride=2).explain(images)
    fig = plot.explanation_grid(images, {"occlusion": maps})
    np.testing.assert_array_equal(np.asarray(fig.axes[3].images[-1].get_array()), maps[1])


def test_bad_input():
    images, maps = _data(n=2)
    with pytest.raises(ValueError, match="explanations"):
        plot.explanation_grid(images, {})
    with pytest.raises(ValueError, match="explanations"):
        plot.explanation_grid(images, [maps["m0"]])
    with pytest.raises(ValueError, match=r"explanations\['m0'\]"):
        plot.explanation_grid(images, {"m0": maps["m0"][:, :4]})
    bad = maps["m0"].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        plot.explanation_grid(images, {"m0": bad})
    with pytest.raises(ValueError, match="`titles`"):
        plot.explanation_grid(images, maps, titles=["only one"])
    with pytest.raises(ValueError, match="`scale`"):
        plot.explanation_grid(images, maps, scale="global")
    with pytest.raises(ValueError, match="`images`"):
        plot.explanation_grid(images[0, 0], maps)


def test_greyed_cells_show_the_reason_not_the_map():
    images, maps = _data(n=2, methods=2)
    maps["m0"][1] *= 1e-12  # noise that full contrast would hide
    reasons = {"m0": [None, "map range 1e-12 is at float noise"]}
    fig = plot.explanation_grid(images, maps, reasons=reasons, scale="method")
    axes = np.array(fig.axes).reshape(2, 3)
    grey = axes[1, 1]
    assert len(grey.images) == 1 and grey.images[0].get_cmap().name == "gray"
    assert "float noise" in grey.texts[0].get_text().replace("\n", " ")
    # The greyed map is left out of its method's shared range; the other cells draw as before.
    bound = float(np.abs(maps["m0"][0]).max())
    assert _map_artist(axes[0, 1]).get_clim() == pytest.approx((-bound, bound))
    assert len(axes[1, 2].images) == 2 and not axes[1, 2].texts
    with pytest.raises(ValueError, match="reasons"):
        plot.explanation_grid(images, maps, reasons={"m0": [None]})
    with pytest.raises(ValueError, match="reasons"):
        plot.explanation_grid(images, maps, reasons={"nope": [None, None]})
