"""Occlusion: closed forms, an independent naive loop, model kinds, tracing and bad input."""

import numpy as np
import pytest

from kerasviz import attribution
from kerasviz.activations import activations
from kerasviz.attribution import Occlusion
from kerasviz.attribution._patches import grid_to_map, patch_starts

# --------------------------------------------------------------------------------------------
# An independent reference: one eager model call per position, occluded copies built in numpy.
# --------------------------------------------------------------------------------------------


def _starts(length, patch, stride):
    out = []
    pos = 0
    while pos + patch <= length:
        out.append(pos)
        pos += stride
    if out[-1] + patch != length:
        out.append(length - patch)
    return out


def _naive(model, images, targets, patch, stride, fill):
    """Grid and map by brute force; ``fill`` is an array broadcastable to one image."""
    n, h, w, _ = images.shape
    (ph, pw), (sh, sw) = patch, stride
    tops, lefts = _starts(h, ph, sh), _starts(w, pw, sw)
    grid = np.zeros((n, len(tops), len(lefts)), np.float64)
    maps = np.zeros((n, h, w), np.float64)
    for k in range(n):
        image = images[k]
        base = float(np.asarray(model(image[None]))[0, targets[k]])
        total, count = np.zeros((h, w)), np.zeros((h, w))
        for i, top in enumerate(tops):
            for j, left in enumerate(lefts):
                occluded = image.copy()
                patch_fill = np.broadcast_to(fill[k], image.shape)
                occluded[top : top + ph, left : left + pw] = patch_fill[
                    top : top + ph, left : left + pw
                ]
                drop = base - float(np.asarray(model(occluded[None]))[0, targets[k]])
                grid[k, i, j] = drop
                total[top : top + ph, left : left + pw] += drop
                count[top : top + ph, left : left + pw] += 1
        maps[k] = total / count
    return grid, maps


def _images(n, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Positions and aggregation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "length,patch,stride",
    [(16, 4, 3), (16, 5, 3), (224, 32, 16), (64, 8, 4), (7, 7, 1), (10, 3, 3)],
)
def test_border_rule(length, patch, stride):
    starts = patch_starts(length, patch, stride)
    assert starts.tolist() == _starts(length, patch, stride)
    assert starts[0] == 0 and starts[-1] + patch == length  # last patch reaches the edge
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + patch] = True
    assert covered.all()


def test_grid_to_map_is_mean_of_covering_patches():
    rng = np.random.default_rng(0)
    grid = rng.normal(size=(2, 3, 4))
    tops, lefts = np.array([0, 3, 5]), np.array([0, 2, 4, 6])
    out = grid_to_map(grid, tops, lefts, (4, 3), (9, 9))
    total, count = np.zeros((2, 9, 9)), np.zeros((9, 9))
    for i, t in enumerate(tops):
        for j, left in enumerate(lefts):
            total[:, t : t + 4, left : left + 3] += grid[:, i, j, None, None]
            count[t : t + 4, left : left + 3] += 1
    np.testing.assert_allclose(out, total / count, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Closed form: f(x) = 3 * sum(x over a region)
# --------------------------------------------------------------------------------------------


def _region_model(keras, size, regions):
    """Linear model: output k is 3 * sum of x over regions[k] = (top, bottom, left, right)."""
    kernel = np.zeros((size, size, 3, len(regions)), np.float32)
    for k, (t, b, left, r) in enumerate(regions):
        kernel[t:b, left:r, :, k] = 3.0
    inputs = keras.Input((size, size, 3))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(len(regions), use_bias=False)
    outputs = dense(flat)
    dense.set_weights([kernel.reshape(-1, len(regions))])
    return keras.Model(inputs, outputs)


def _overlap(a0, a1, b0, b1):
    return max(0, min(a1, b1) - max(a0, b0))


@pytest.mark.parametrize("fill", [0.25, "mean"])
def test_closed_form_region_sum(keras, fill):
    size, region = 20, (5, 12, 3, 9)  # rows 5..11, cols 3..8
    model = _region_model(keras, size, [region])
    value = 0.75
    images = np.full((1, size, size, 3), value, np.float32)
    occ = Occlusion(model, patch=(6, 4), stride=(3, 2), fill=fill, batch_size=5)
    result = occ.explain_full(images, 0)
    maps, grid = result.explanations, result.grid
    fill_value = value if fill == "mean" else fill
    tops, lefts = _starts(size, 6, 3), _starts(size, 4, 2)
    expected = np.array(
        [
            [
                _overlap(t, t + 6, region[0], region[1])
                * _overlap(left, left + 4, region[2], region[3])
                for left in lefts
            ]
            for t in tops
        ],
        np.float64,
    )
    expected *= 3 * 3 * (value - fill_value)  # 3 channels, times 3, times the fill difference
    np.testing.assert_allclose(grid[0], expected, rtol=1e-5, atol=1e-4)
    if fill == 0.25:
        assert grid.max() > 0  # a non-trivial case: some patches overlap the region
    np.testing.assert_allclose(
        maps, grid_to_map(grid, np.array(tops), np.array(lefts), (6, 4), (size, size)), rtol=1e-6
    )


def test_mixed_targets_pick_each_images_region(keras):
    size = 16
    regions = [(0, 4, 0, 4), (10, 16, 8, 16)]
    model = _region_model(keras, size, regions)
    images = _images(2, size, seed=3)
    occ = Occlusion(model, patch=4, stride=2, fill=0.0, batch_size=7)
    result = occ.explain_full(images, [0, 1])
    maps = result.explanations
    for k, (t, b, left, r) in enumerate(regions):
        outside = np.ones((size, size), bool)
        # any pixel whose covering patches all miss the region has a zero map
        outside[max(0, t - 3) : b + 3, max(0, left - 3) : r + 3] = False
        assert np.all(maps[k][outside] == 0)
        assert maps[k][t:b, left:r].min() > 0
    np.testing.assert_array_equal(result.targets, [0, 1])


# --------------------------------------------------------------------------------------------
# Against the naive loop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_equals_naive_loop_for_any_batch_size(functional_model, batch_size):
    images = _images(2, seed=1)
    patch, stride = (5, 4), (3, 2)
    occ = Occlusion(functional_model, patch=patch, stride=stride, fill=0.5, batch_size=batch_size)
    result = occ.explain_full(images, [2, 0])
    maps, grid = result.explanations, result.grid
    fill = np.full((2, 1, 1, 3), 0.5, np.float32)
    ref_grid, ref_maps = _naive(functional_model, images, [2, 0], patch, stride, fill)
    np.testing.assert_allclose(grid, ref_grid, atol=1e-5)
    np.testing.assert_allclose(maps, ref_maps, atol=1e-5)
    assert maps.dtype == np.float32 and grid.dtype == np.float32


@pytest.mark.parametrize("fill", ["mean", "blur"])
def test_image_dependent_fills_match_naive(functional_model, fill):
    from scipy.ndimage import gaussian_filter

    images = _images(2, seed=2)
    occ = Occlusion(functional_model, patch=4, stride=4, fill=fill, batch_size=6, blur_sigma=1.5)
    result = occ.explain_full(images)  # top class
    maps = result.explanations
    top = np.argmax(np.asarray(functional_model(images)), axis=-1)
    if fill == "mean":
        ref_fill = images.mean(axis=(1, 2), keepdims=True)
    else:
        ref_fill = gaussian_filter(images, sigma=(0, 1.5, 1.5, 0), mode="reflect")
    _, ref_maps = _naive(functional_model, images, top, (4, 4), (4, 4), ref_fill)
    np.testing.assert_allclose(maps, ref_maps, atol=1e-5)
    np.testing.assert_array_equal(result.targets, top)


def test_logit_output_matches_naive_on_logits(functional_model):
    from kerasviz import inspect

    images = _images(1, seed=4)
    occ = Occlusion(functional_model, patch=6, stride=5, fill=0.0, output="logit", batch_size=8)
    grid = occ.explain_full(images, 1).grid
    logits = inspect.logits_model(functional_model)
    ref_grid, _ = _naive(logits, images, [1], (6, 6), (5, 5), np.zeros((1, 1, 1, 3)))
    np.testing.assert_allclose(grid, ref_grid, atol=1e-5)


@pytest.mark.parametrize("name", ["sequential_model", "sequential_no_input", "nested_model"])
def test_model_kinds_one_image_and_batch(request, name):
    model = request.getfixturevalue(name)
    size = model.inputs[0].shape[1]
    images = _images(2, size, seed=5)
    patch = 16 if size == 32 else 4
    occ = Occlusion(model, patch=patch, stride=patch, fill=0.5, batch_size=5)
    result = occ.explain_full(images, [1, 2])
    maps, grid = result.explanations, result.grid
    fill = np.full((2, 1, 1, 3), 0.5, np.float32)
    ref_grid, ref_maps = _naive(model, images, [1, 2], (patch, patch), (patch, patch), fill)
    np.testing.assert_allclose(grid, ref_grid, atol=1e-5)
    np.testing.assert_allclose(maps, ref_maps, atol=1e-5)
    with pytest.warns(DeprecationWarning, match="explain_full"):  # the deprecated alias
        one_map, one_grid = occ.explain(images[1], 2, return_grid=True)  # a single image
    assert one_map.shape == (size, size) and one_grid.shape == ref_grid.shape[1:]
    np.testing.assert_allclose(one_grid, ref_grid[1], atol=1e-5)
    np.testing.assert_allclose(one_map, ref_maps[1], atol=1e-5)


# --------------------------------------------------------------------------------------------
# The result contract
# --------------------------------------------------------------------------------------------


def test_explain_full_is_batch_first_with_grid_and_positions(functional_model):
    occ = Occlusion(functional_model, patch=5, stride=3, fill=0.5, batch_size=9)
    images = _images(2, seed=11)
    result = occ.explain_full(images)
    tops, lefts = result.positions
    assert result.method == "occlusion"
    assert tops.tolist() == _starts(16, 5, 3) and lefts.tolist() == _starts(16, 5, 3)
    assert result.grid.shape == (2, len(tops), len(lefts)) and result.grid.dtype == np.float32
    assert result.targets.dtype == np.int32 and result.exact is None
    np.testing.assert_array_equal(result.targets, np.argmax(functional_model(images), -1))
    np.testing.assert_array_equal(occ.explain(images), result.explanations)
    one = occ.explain_full(images[1], 2)  # one image: still batch first
    assert one.explanations.shape == (1, 16, 16) and one.grid.shape == (1, *result.grid.shape[1:])
    assert occ.explain(images[1], 2).shape == (16, 16)
    assert not any(name.startswith("last_") for name in vars(occ))  # nothing kept per call


def test_default_blur_sigma_is_the_one_rule(functional_model):
    """``blur_sigma=None`` means ``max(H, W) / 16`` (1 px here), not half the patch."""
    from scipy.ndimage import gaussian_filter

    images = _images(1, seed=12)
    occ = Occlusion(functional_model, patch=4, stride=4, fill="blur", output="logit")
    assert occ.blur_sigma is None
    expected = gaussian_filter(images, sigma=(0, 1.0, 1.0, 0), mode="reflect")
    np.testing.assert_allclose(occ.fills(images), expected, atol=1e-6)
    same = Occlusion(
        functional_model, patch=4, stride=4, fill="blur", output="logit", blur_sigma=1.0
    )
    np.testing.assert_array_equal(occ.explain(images, 0), same.explain(images, 0))


def test_mode_is_gone_with_a_named_replacement(functional_model):
    with pytest.raises(ValueError, match="IncrementalOcclusion.*occlusion_incremental"):
        Occlusion(functional_model, patch=4, mode="incremental")
    with pytest.raises(ValueError, match="mode"):
        Occlusion(functional_model, patch=4, mode="fast")
    with pytest.warns(DeprecationWarning, match="mode"):
        old = Occlusion(functional_model, patch=4, stride=4, mode="full")
    assert type(old) is Occlusion
    images = _images(1, seed=13)
    np.testing.assert_array_equal(
        old.explain(images, 0), Occlusion(functional_model, patch=4, stride=4).explain(images, 0)
    )
    assert type(attribution.create("occlusion", functional_model)) is Occlusion


# --------------------------------------------------------------------------------------------
# Cost: N * (P + 1) forward rows, counted by the model itself
# --------------------------------------------------------------------------------------------


def _counting_model(keras):
    """A CNN whose first layer adds the rows of every batch it sees to a variable."""
    import tensorflow as tf

    class CountRows(keras.layers.Layer):
        def build(self, input_shape):
            self.rows = self.add_weight(
                shape=(), initializer="zeros", dtype="int64", trainable=False, name="rows"
            )

        def call(self, x):
            self.rows.assign_add(tf.cast(tf.shape(x)[0], tf.int64))
            return x

    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 10, 3))
    counter = CountRows(name="count_rows")
    x = keras.layers.Conv2D(4, 3, activation="relu")(counter(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    return model, counter


@pytest.mark.parametrize("batch_size", [1, 7, 10_000])
@pytest.mark.parametrize("targets", [None, 1])
def test_forward_rows_are_n_times_positions_plus_one(keras, batch_size, targets):
    model, counter = _counting_model(keras)
    occ = Occlusion(model, patch=(4, 3), stride=(3, 2), fill=0.0, batch_size=batch_size)
    tops, lefts = occ.positions(12, 10)
    positions = len(tops) * len(lefts)  # P = 4 * 5
    for n in (1, 3):
        counter.rows.assign(0)
        result = occ.explain_full(_images(n, seed=14)[:, :12, :10], targets)
        assert result.grid.shape == (n, len(tops), len(lefts))
        assert int(counter.rows.numpy()) == n * (positions + 1)


# --------------------------------------------------------------------------------------------
# Tracing
# --------------------------------------------------------------------------------------------


def test_traced_once_per_image_shape(functional_model):
    occ = Occlusion(functional_model, patch=4, stride=2, batch_size=16)
    first = occ.explain(_images(3, seed=6))
    assert occ.traces == 1
    again = occ.explain(_images(3, seed=6))
    assert occ.traces == 1  # same input shape: no retrace
    np.testing.assert_array_equal(first, again)
    occ.explain(_images(1, seed=7))  # another number of images, another last chunk
    occ.explain(_images(5, seed=8), targets=0)
    assert occ.traces == 1


def test_jit_compile_gives_the_same_maps(functional_model):
    images = _images(1, seed=9)
    plain = Occlusion(functional_model, patch=8, stride=4, batch_size=4).explain(images, 0)
    xla = Occlusion(functional_model, patch=8, stride=4, batch_size=4, jit_compile=True)
    np.testing.assert_allclose(xla.explain(images, 0), plain, atol=1e-5)


# --------------------------------------------------------------------------------------------
# A trained model: pointing game on the shapes data
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pointing_game_shapes_cnn(shipped):
    """The map's maximum lies on the object for >= 90% of 200 unseen images.

    Pointing game as in Zhang et al. (2016), which counts a maximum within 15 px of the object
    at about 224 px as a hit; we allow 2 px at 64 px (stricter), and ties at the maximum count
    by the share of them on the object (`kerasviz.metrics.pointing_game`). Patch 8, stride 4,
    the benchmark's setting. Measured: 0.924 (0.797 with no tolerance: shape evidence sits on
    the object's edges, and a patch just outside an edge hides part of the object too).
    """
    from kerasviz import datasets, metrics

    model = shipped("shapes_cnn")
    images, labels, masks = datasets.shapes(200, seed=12345)
    maps = Occlusion(model, patch=8, stride=4, fill="mean", batch_size=256).explain(images, labels)
    hits = metrics.pointing_game(maps, masks, tolerance=2)
    assert hits.mean() >= 0.9, hits.mean()


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_settings(functional_model):
    occ = Occlusion(functional_model, patch=32, stride=4)
    with pytest.raises(ValueError, match="`patch`"):
        occ.explain(_images(1))  # 32 > 16
    for stride in (0, -2, (2, 0)):
        with pytest.raises(ValueError, match="`stride`"):
            Occlusion(functional_model, patch=4, stride=stride)
    with pytest.raises(ValueError, match="`stride`"):
        Occlusion(functional_model, patch=4, stride=5)  # would leave pixels uncovered
    with pytest.raises(ValueError, match="`patch`"):
        Occlusion(functional_model, patch=0)
    for fill in ("zeros", float("nan"), None):
        with pytest.raises(ValueError, match="`fill`"):
            Occlusion(functional_model, patch=4, fill=fill)
    with pytest.raises(ValueError, match="`output`"):
        Occlusion(functional_model, patch=4, output="loss")
    with pytest.raises(ValueError, match="`blur_sigma`"):
        Occlusion(functional_model, patch=4, fill="blur", blur_sigma=0)


def test_bad_inputs_and_targets(functional_model):
    occ = Occlusion(functional_model, patch=4, stride=4)
    with pytest.raises(ValueError, match="`targets`"):
        occ.explain(_images(1), 3)  # 3 classes: 0..2
    with pytest.raises(ValueError, match="`targets`"):
        occ.explain(_images(2), [0, -1])
    with pytest.raises(ValueError, match="`targets`"):
        occ.explain(_images(2), [0, 1, 2])
    with pytest.raises(ValueError, match="`inputs`"):
        occ.explain(np.zeros((16, 16), np.float32))  # rank 2
    with pytest.raises(ValueError, match="`inputs`"):
        occ.explain(np.zeros((1, 1, 16, 16, 3), np.float32))  # rank 5
    bad = _images(2)
    bad[1, 3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="`inputs`"):
        occ.explain(bad)
    with pytest.raises(ValueError, match="`inputs`"):
        occ.explain(_images(1, size=20))  # not the model's input size


# --------------------------------------------------------------------------------------------
# A unit instead of a class (ZF Fig. 7b) and the label map (Fig. 7e), from the same passes
# --------------------------------------------------------------------------------------------


def _naive_unit_and_labels(model, layer, images, unit, patch, stride, fill):
    """Unit-sum drops, labels and class scores per position: one eager call per position."""
    from kerasviz import inspect

    sub = inspect.submodel(model, [layer])
    n, h, w, _ = images.shape
    tops, lefts = _starts(h, patch, stride), _starts(w, patch, stride)
    grid = np.zeros((n, len(tops), len(lefts)))
    labels = np.zeros((n, len(tops), len(lefts)), int)
    scores = np.zeros((n, len(tops), len(lefts), 3))
    for k in range(n):
        clean = np.asarray(sub(images[k : k + 1])[0])[0, ..., unit[k]].sum()
        for i, top in enumerate(tops):
            for j, left in enumerate(lefts):
                occluded = images[k].copy()
                occluded[top : top + patch, left : left + patch] = fill
                maps, probs = (np.asarray(o)[0] for o in sub(occluded[None]))
                grid[k, i, j] = clean - maps[..., unit[k]].sum()
                labels[k, i, j] = probs.argmax()
                scores[k, i, j] = probs
    return grid, labels, scores


@pytest.mark.parametrize("batch_size", [1, 64])
def test_unit_occlusion_and_labels_equal_naive_loops(functional_model, batch_size):
    images = _images(2, seed=21)
    occ = Occlusion(
        functional_model, patch=6, stride=4, fill=0.0, layer="conv2", batch_size=batch_size
    )
    result = occ.explain_full(images)
    maps = activations(functional_model, images, "conv2")["conv2"]
    strongest = maps.sum(axis=(1, 2)).argmax(axis=-1)  # the strongest feature map per image
    np.testing.assert_array_equal(result.targets, strongest)
    grid, labels, scores = _naive_unit_and_labels(
        functional_model, "conv2", images, strongest, 6, 4, 0.0
    )
    np.testing.assert_allclose(result.grid, grid, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_allclose(result.position_scores, scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        result.reference, maps.sum(axis=(1, 2))[[0, 1], strongest], rtol=1e-5
    )
    assert result.layer == "conv2" and np.abs(result.grid).max() > 0
    # a fixed unit, and the class mode's label map, from the same kind of pass
    fixed = Occlusion(functional_model, patch=6, stride=4, fill=0.0, layer="conv2", unit=1)
    grid1, _, _ = _naive_unit_and_labels(functional_model, "conv2", images, [1, 1], 6, 4, 0.0)
    np.testing.assert_allclose(fixed.explain_full(images).grid, grid1, rtol=1e-4, atol=1e-4)
    classes = Occlusion(functional_model, patch=6, stride=4, fill=0.0).explain_full(images)
    np.testing.assert_array_equal(classes.labels, labels)


@pytest.mark.parametrize("targets", [None, 2])
def test_unit_occlusion_and_labels_cost_no_extra_rows(keras, targets):
    model, counter = _counting_model(keras)
    occ = Occlusion(model, patch=(4, 3), stride=(3, 2), fill=0.0, layer=2, batch_size=7)
    tops, lefts = occ.positions(12, 10)
    counter.rows.assign(0)
    result = occ.explain_full(_images(3, seed=15)[:, :12, :10], targets)
    assert int(counter.rows.numpy()) == 3 * (len(tops) * len(lefts) + 1)
    assert result.labels.shape == result.grid.shape == (3, len(tops), len(lefts))
    assert result.position_scores.shape == (3, len(tops), len(lefts), 3)


def test_unit_occlusion_bad_settings(functional_model):
    with pytest.raises(ValueError, match="spatial"):
        Occlusion(functional_model, layer="predictions")
    with pytest.raises(ValueError, match="unit"):
        Occlusion(functional_model, layer="conv2", unit=6)
    with pytest.raises(ValueError, match="layer"):
        Occlusion(functional_model, unit=0)
    occ = Occlusion(functional_model, patch=6, layer="conv2")
    with pytest.raises(ValueError, match="targets"):
        occ.explain_full(_images(1), targets=9)
