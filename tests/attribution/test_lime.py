"""LIME: known answers on hand-weighted models, reproducibility, batching, and the lime package."""

import numpy as np
import pytest

from kerasviz.attribution import Explanation
from kerasviz.attribution.lime import (
    Lime,
    check_segments,
    cosine_kernel,
    grid_segments,
    segment,
    unit_range,
)

SIZE, CELLS, REGION = 16, 4, 5  # 16x16 images cut into a 4x4 grid; the model reads cell 5


@pytest.fixture(scope="module")
def region_model(keras):
    """Linear 2-class model: logit 0 = sum of the pixels of grid cell 5, logit 1 = 0."""
    mask = grid_segments(SIZE, SIZE, CELLS) == REGION  # (H, W)
    kernel = np.zeros((SIZE * SIZE * 3, 2), np.float32)
    kernel[:, 0] = np.repeat(mask.ravel(), 3).astype(np.float32)  # (H*W*C,) in flatten order
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(2, name="predictions")
    outputs = dense(x)
    dense.set_weights([kernel, np.zeros(2, np.float32)])
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def conv_model(keras):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 1.0, (3, SIZE, SIZE, 3)).astype(np.float32)


def _grid(n):
    return np.broadcast_to(grid_segments(SIZE, SIZE, CELLS), (n, SIZE, SIZE))


class TestKnownAnswer:
    def test_only_the_read_region_gets_weight(self, region_model, images):
        lime = Lime(region_model, num_samples=400, fill=0.0, output="logit", seed=3)
        result = lime.explain_full(images, targets=0, segments=_grid(3))
        seg = grid_segments(SIZE, SIZE, CELLS)
        for i in range(3):
            w = result.weights[i]
            true = float(images[i][seg == REGION].sum())  # hiding the cell with 0 removes it all
            assert int(np.argmax(w)) == REGION
            np.testing.assert_allclose(w[REGION], true, rtol=0.03)  # ridge shrinks a little
            assert np.abs(np.delete(w, REGION)).max() < 0.02 * true
            # the map gives every pixel its superpixel's weight
            np.testing.assert_array_equal(result.explanations[i], w[seg])
            assert result.fit_r2[i] > 0.99  # the model is linear in the on/off rows
        assert result.top(0, k=3).tolist()[0] == REGION

    def test_fill_is_what_hidden_pixels_show(self, region_model, images):
        # with a constant fill c the cell's weight is sum(image - c) over the cell
        seg = grid_segments(SIZE, SIZE, CELLS)
        lime = Lime(region_model, num_samples=400, fill=0.2, output="logit", seed=3)
        w = lime.explain_full(images[:1], targets=0, segments=_grid(1)).weights[0]
        np.testing.assert_allclose(w[REGION], (images[0][seg == REGION] - 0.2).sum(), rtol=0.03)
        # the mean fill of a cell is its own mean colour, which a sum cannot tell apart
        lime = Lime(region_model, num_samples=400, fill="mean", output="logit", seed=3)
        w = lime.explain_full(images[:1], targets=0, segments=_grid(1)).weights[0]
        assert np.abs(w).max() < 1e-3

    def test_kernel_is_lime_cosine_kernel(self):
        from sklearn.metrics import pairwise_distances

        rows = np.random.default_rng(1).integers(0, 2, (50, 7))
        rows[0] = 1
        rows[1] = 0
        d = pairwise_distances(rows, rows[:1], metric="cosine").ravel()
        np.testing.assert_allclose(
            cosine_kernel(rows.sum(1), 7, 0.25), np.sqrt(np.exp(-(d**2) / 0.25**2)), atol=1e-12
        )


class TestReproducible:
    def test_same_seed_same_result_other_seed_differs(self, conv_model, images):
        kwargs = {
            "segmentation": "grid",
            "segmentation_args": {"cells": 4},
            "num_samples": 64,
            "output": "logit",
        }
        a = Lime(conv_model, seed=5, **kwargs).explain_full(images)
        b = Lime(conv_model, seed=5, **kwargs).explain_full(images)
        c = Lime(conv_model, seed=6, **kwargs).explain_full(images)
        np.testing.assert_array_equal(a.explanations, b.explanations)
        np.testing.assert_array_equal(a.segments, b.segments)
        assert not np.array_equal(a.explanations, c.explanations)

    @pytest.mark.parametrize("batch_size", [1, 7, 200])
    def test_batch_size_does_not_change_result(self, conv_model, images, batch_size):
        kwargs = {
            "segmentation": "grid",
            "segmentation_args": {"cells": 4},
            "num_samples": 50,
            "output": "logit",
            "seed": 2,
        }
        ref = Lime(conv_model, batch_size=32, **kwargs).explain(images, targets=1)
        got = Lime(conv_model, batch_size=batch_size, **kwargs).explain(images, targets=1)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)

    def test_image_alone_or_in_a_batch(self, conv_model, images):
        lime = Lime(conv_model, segmentation="grid", num_samples=40, seed=4)
        together = lime.explain(images, targets=[0, 1, 2])
        alone = lime.explain(images[1], targets=1)
        assert alone.shape == (SIZE, SIZE)
        np.testing.assert_allclose(alone, together[1], rtol=1e-5, atol=1e-6)

    def test_step_traced_once(self, conv_model, images):
        lime = Lime(conv_model, segmentation="grid", num_samples=20, batch_size=16)
        lime.explain(images)
        lime.explain(images[:2], segments=_grid(2))  # other count of superpixels, same trace
        lime.explain(images[:1], segments=np.arange(SIZE * SIZE).reshape(1, SIZE, SIZE))
        step = lime._step((SIZE, SIZE, 3))
        assert step.experimental_get_tracing_count() == 1


class TestSegmentation:
    def test_grid_cells(self):
        seg = grid_segments(6, 4, (3, 2))
        assert seg.tolist() == [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2 + [[4, 4, 5, 5]] * 2

    @pytest.mark.parametrize("method", ["quickshift", "slic", "felzenszwalb"])
    def test_range_does_not_change_segments(self, method):
        from kerasviz import datasets

        image = datasets.shapes(1, size=32)[0][0]
        unit = segment(image, method)
        assert 2 <= unit.max() + 1 < 200
        # 0-255 input is min-max scaled to [0, 1]: about the same superpixels, not hundreds of
        # tiny ones (the image's own range is a bit narrower than [0, 1], hence "about")
        scaled = segment(image * 255.0, method)
        assert abs(int(scaled.max()) - int(unit.max())) <= 0.3 * unit.max() + 1
        assert np.mean(scaled == unit) > 0.9

    def test_unit_range(self):
        img = np.array([[[-1.0], [1.0]]])
        np.testing.assert_array_equal(unit_range(img), [[[0, 0, 0], [1, 1, 1]]])

    def test_callable_and_relabel(self, conv_model, images):
        def halves(image):
            seg = np.full(image.shape[:2], 7)
            seg[:, SIZE // 2 :] = 42
            return seg

        result = Lime(conv_model, segmentation=halves, num_samples=30).explain_full(images[:1])
        assert sorted(np.unique(result.segments).tolist()) == [0, 1]
        assert result.weights[0].shape == (2,)
        assert isinstance(result, Explanation) and result.method == "lime"
        assert set(result.timings) == {"segmentation", "sampling", "model", "fit"}

    def test_grayscale_images(self, keras):
        inputs = keras.Input((SIZE, SIZE, 1))
        x = keras.layers.Flatten()(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2)(x))
        imgs = np.random.default_rng(0).uniform(0, 1, (2, SIZE, SIZE, 1)).astype(np.float32)
        maps = Lime(model, segmentation="slic", num_samples=20).explain(imgs)
        assert maps.shape == (2, SIZE, SIZE) and np.all(np.isfinite(maps))


class TestBadInput:
    def test_num_samples(self, conv_model):
        with pytest.raises(ValueError, match="num_samples"):
            Lime(conv_model, num_samples=1)
        with pytest.raises(TypeError, match="num_samples"):
            Lime(conv_model, num_samples=10.5)

    def test_one_segment(self, conv_model, images):
        lime = Lime(conv_model, num_samples=10)
        with pytest.raises(ValueError, match="single segment"):
            lime.explain(images[:1], segments=np.zeros((1, SIZE, SIZE), int))
        lime = Lime(conv_model, segmentation=lambda im: np.zeros(im.shape[:2], int))
        with pytest.raises(ValueError, match="single segment"):
            lime.explain(images[:1])

    def test_segments_shape_and_dtype(self, conv_model, images):
        lime = Lime(conv_model, num_samples=10)
        with pytest.raises(ValueError, match="segments"):
            lime.explain(images[:2], segments=_grid(3))
        with pytest.raises(ValueError, match="segments"):
            lime.explain(images[:1], segments=np.zeros((1, 8, 8), int))
        with pytest.raises(TypeError, match="segments"):
            check_segments(np.zeros((4, 4)), (4, 4))

    def test_settings(self, conv_model, images):
        with pytest.raises(ValueError, match="segmentation"):
            Lime(conv_model, segmentation="watershed")
        with pytest.raises(ValueError, match="fill"):
            Lime(conv_model, fill="noise")
        with pytest.raises(ValueError, match="kernel_width"):
            Lime(conv_model, kernel_width=0)
        with pytest.raises(ValueError, match="fill"):
            Lime(conv_model, fill=[0.1, 0.2], segmentation="grid").explain(images[:1])
        with pytest.raises(ValueError, match="cells"):
            grid_segments(4, 4, cells=5)
        with pytest.raises(ValueError, match=r"inputs"):
            Lime(conv_model, num_samples=10).explain(np.zeros((1, 8, 8, 3)))


class TestContract:
    def test_explain_full_fields(self, conv_model, images):
        lime = Lime(
            conv_model,
            segmentation="grid",
            segmentation_args={"cells": 4},
            num_samples=30,
            output="logit",
            seed=1,
        )
        result = lime.explain_full(images, progress=True)
        top = conv_model.predict(images, verbose=0).argmax(-1)
        assert result.method == "lime"
        np.testing.assert_array_equal(result.targets, top)
        assert result.segments.shape == (3, SIZE, SIZE) and result.segments.dtype == np.int32
        assert [w.shape for w in result.weights] == [(16,)] * 3
        assert result.intercepts.shape == result.fit_r2.shape == (3,)
        assert result.grid is None and result.attributions is None
        np.testing.assert_array_equal(lime.explain(images, progress=True), result.explanations)
        assert not [k for k in vars(lime) if k.startswith("last_")]

    def test_lime_result_is_a_deprecated_alias_of_explanation(self):
        from kerasviz.attribution import lime as lime_module

        with pytest.warns(DeprecationWarning, match="LimeResult"):
            alias = lime_module.LimeResult
        assert alias is Explanation

    def test_progress_in_init_is_deprecated(self, conv_model, images):
        with pytest.warns(DeprecationWarning, match="progress"):
            lime = Lime(conv_model, segmentation="grid", num_samples=10, progress=False)
        quiet = Lime(conv_model, segmentation="grid", num_samples=10)
        np.testing.assert_array_equal(lime.explain(images[:1]), quiet.explain(images[:1]))

    def test_segments_are_a_keyword(self, conv_model, images):
        lime = Lime(conv_model, num_samples=10)
        with pytest.raises(TypeError, match="segments="):
            lime.explain(images[:1], 0, _grid(1))

    def test_blur_fill_follows_the_one_sigma_rule(self, conv_model, images):
        from scipy.ndimage import gaussian_filter

        seg = _grid(3)
        blurred = Lime(conv_model, fill="blur").fills(images, seg)
        sigma = SIZE / 16  # max(H, W) / 16, reflected at the border
        np.testing.assert_allclose(
            blurred, gaussian_filter(images, (0, sigma, sigma, 0), mode="reflect"), atol=1e-6
        )
        wide = Lime(conv_model, fill="blur", blur_sigma=3).fills(images, seg)
        np.testing.assert_allclose(
            wide, gaussian_filter(images, (0, 3, 3, 0), mode="reflect"), atol=1e-6
        )
        with pytest.raises(ValueError, match="blur_sigma"):
            Lime(conv_model, fill="blur", blur_sigma=0)

    def test_image_fill(self, region_model, images):
        # an (H, W, C) reference image as the fill: the cell's weight is sum(image - fill)
        seg = grid_segments(SIZE, SIZE, CELLS)
        canvas = np.random.default_rng(9).uniform(0, 0.2, (SIZE, SIZE, 3)).astype(np.float32)
        lime = Lime(region_model, num_samples=400, fill=canvas, output="logit", seed=3)
        w = lime.explain_full(images[:1], targets=0, segments=_grid(1)).weights[0]
        want = (images[0] - canvas)[seg == REGION].sum()
        np.testing.assert_allclose(w[REGION], want, rtol=0.03)
        np.testing.assert_array_equal(
            Lime(region_model, fill=[0.3]).fills(images, _grid(3)), np.full_like(images, 0.3)
        )


def test_agrees_with_lime_package(shipped):
    lime_image = pytest.importorskip(
        "lime.lime_image", reason="the `lime` package is needed to compare against it"
    )
    from kerasviz import _compute, datasets

    model = shipped("shapes_cnn")
    images = datasets.shapes(2, size=64, seed=3)[0]
    forward = _compute.compiled_forward(model)
    overlaps = []
    for i, image in enumerate(images):
        seg = segment(image, "slic", n_segments=20)
        target = int(np.argmax(np.asarray(forward(image[None]))))
        ours = Lime(model, num_samples=1000, seed=0).explain_full(
            image, targets=target, segments=seg
        )
        theirs = lime_image.LimeImageExplainer(random_state=0).explain_instance(
            image.astype(np.float64),
            lambda x: _compute.run_batched(forward, (x.astype(np.float32),), 64)[0],
            labels=(target,),
            top_labels=None,
            hide_color=None,
            num_samples=1000,
            batch_size=64,
            segmentation_fn=lambda _img, s=seg: s,
        )
        w = np.zeros(ours.weights[0].shape)
        for k, v in theirs.local_exp[target]:
            w[k] = v
        top_ours = set(np.argsort(-ours.weights[0])[:3].tolist())
        top_theirs = set(np.argsort(-w)[:3].tolist())
        overlaps.append(len(top_ours & top_theirs))
        assert np.corrcoef(ours.weights[0], w)[0, 1] > 0.9, i
    assert min(overlaps) >= 2 and sum(overlaps) >= 5, overlaps


class TestPlot:
    def test_lime_view_keeps_top_superpixels_and_greys_the_rest(self, images):
        from kerasviz.plot import lime as plot_lime

        seg = grid_segments(SIZE, SIZE, CELLS)
        weights = np.zeros(CELLS * CELLS, np.float32)
        weights[[3, 9]] = [2.0, 1.0]
        weights[5] = -4.0  # negative: never shown, however large
        assert plot_lime.top_segments(weights, k=5).tolist() == [3, 9]
        fig, ax = plot_lime.lime_view(images[0], seg, weights, k=1, grey=0.0)
        shown = np.asarray(ax.images[0].get_array())
        inner = np.zeros((SIZE, SIZE), bool)
        inner[1:3, 13:15] = True  # cell 3 without its boundary pixels
        np.testing.assert_allclose(shown[inner], images[0][inner], atol=1e-6)
        np.testing.assert_allclose(shown[seg != 3], 0.5)  # everything else flat grey
        fig, ax = plot_lime.lime_overlay(images[0], seg, weights)
        heat = np.asarray(ax.images[1].get_array())
        np.testing.assert_array_equal(heat, weights[seg])
        fig = plot_lime.lime_figure(images[:2], [seg, seg], [weights, weights], k=2)
        assert len(fig.axes) == 6
        with pytest.raises(ValueError, match="weights"):
            plot_lime.lime_view(images[0], seg, weights[:3])
        with pytest.raises(ValueError, match="segments"):
            plot_lime.lime_view(images[0], seg[:4], weights)
