"""kerasviz.activations: feature maps against direct calls, maximization against closed forms."""

import numpy as np
import pytest

from kerasviz import activations as ka

QUIET = {"progress": False}
NO_TRANSFORMS = {"jitter": 0, "rotate": 0, "scale": None, "tv": 0.0}


def _images(shape, n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


# ------------------------------------------------------------------ feature maps


def test_functional_equals_direct_submodel(keras, functional_model):
    x = _images((16, 16, 3))
    maps = ka.activations(functional_model, x, ["conv1", "conv2"], batch_size=2)
    assert list(maps) == ["conv1", "conv2"]
    for name in ("conv1", "conv2"):
        direct = keras.Model(functional_model.input, functional_model.get_layer(name).output)(x)
        np.testing.assert_allclose(maps[name], np.asarray(direct), rtol=1e-5, atol=1e-5)
        assert maps[name].dtype == np.float32


@pytest.mark.parametrize("fixture", ["sequential_model", "sequential_no_input"])
def test_sequential_equals_layer_by_layer(request, fixture):
    model = request.getfixturevalue(fixture)
    x = _images((16, 16, 3), n=2)
    maps = ka.activations(model, x, ["conv1", "pool1", "conv2"])
    h = x
    expected = {}
    for layer in model.layers:
        h = layer(h)
        expected[layer.name] = np.asarray(h)
    for name in ("conv1", "pool1", "conv2"):
        np.testing.assert_allclose(maps[name], expected[name], rtol=1e-5, atol=1e-5)


def test_nested_backbone_equals_inner_model(keras, nested_model):
    from kerasviz import inspect

    base = nested_model.layers[1]
    path = f"{base.name}/block_1_expand_relu"
    x = _images((32, 32, 3), n=2)
    maps = ka.activations(nested_model, x, [path, "gap"])
    inner = keras.Model(base.input, base.get_layer("block_1_expand_relu").output)
    np.testing.assert_allclose(maps[path], np.asarray(inner(x)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        maps["gap"], np.asarray(base(x)).mean(axis=(1, 2)), rtol=1e-4, atol=1e-4
    )
    assert inspect.find_layer(nested_model, path).name == "block_1_expand_relu"


def test_keys_batches_and_single_image(functional_model):
    x = _images((16, 16, 3), n=5)
    by_index = ka.activations(functional_model, x, [1, "conv2"], batch_size=2)
    assert list(by_index) == ["conv1", "conv2"]  # an index is keyed by the layer's path
    whole = ka.activations(functional_model, x, "conv2", batch_size=5)["conv2"]
    np.testing.assert_allclose(by_index["conv2"], whole, rtol=1e-5, atol=1e-6)
    one = ka.activations(functional_model, x[0], "conv2")["conv2"]
    assert one.shape == whole.shape[1:]
    np.testing.assert_allclose(one, whole[0], rtol=1e-5, atol=1e-6)


def test_activation_errors(functional_model):
    x = _images((16, 16, 3))
    with pytest.raises(KeyError, match="conv1"):
        ka.activations(functional_model, x, "conv9")
    with pytest.raises(ValueError, match="at least one"):
        ka.activations(functional_model, x, [])
    with pytest.raises(ValueError, match="shape"):
        ka.activations(functional_model, _images((8, 8, 3)), "conv1")


def test_top_channels():
    maps = np.zeros((2, 2, 2, 4), np.float32)
    maps[0, ..., 2] = 3.0
    maps[0, 0, 0, 1] = 4.0  # mean 1
    maps[1, ..., 0] = 2.0
    idx, val = ka.top_channels(maps, k=2)
    np.testing.assert_array_equal(idx, [[2, 1], [0, 1]])  # ties keep channel order
    np.testing.assert_allclose(val, [[3.0, 1.0], [2.0, 0.0]])
    idx1, _ = ka.top_channels(maps[0], k=1)
    np.testing.assert_array_equal(idx1, [2])
    with pytest.raises(ValueError, match="k"):
        ka.top_channels(maps, k=5)


# ------------------------------------------------------------------ maximization


@pytest.fixture(scope="module")
def linear_model(keras):
    """x (8, 8, 1) -> one 8x8 linear filter (a single number) and a 3x3 conv map."""
    rng = np.random.default_rng(3)
    inputs = keras.Input((8, 8, 1))
    whole = keras.layers.Conv2D(1, 8, use_bias=False, name="whole")(inputs)
    local = keras.layers.Conv2D(2, 3, use_bias=False, name="local")(inputs)
    out = keras.layers.Concatenate()([keras.layers.Flatten()(whole), keras.layers.Flatten()(local)])
    model = keras.Model(inputs, out, name="linear")
    w = rng.choice([-1.0, 1.0], size=(8, 8, 1, 1)) * rng.uniform(0.5, 1.0, (8, 8, 1, 1))
    model.get_layer("whole").set_weights([w.astype(np.float32)])
    model.get_layer("local").set_weights([rng.normal(size=(3, 3, 1, 2)).astype(np.float32)])
    return model, w[..., 0, 0]


def test_linear_unit_moves_towards_sign_of_weights(linear_model):
    model, w = linear_model
    am = ka.ActivationMaximization(model, "whole", steps=60, **NO_TRANSFORMS)
    img = am.maximize([0], **QUIET)
    np.testing.assert_array_equal(np.sign(img[0, :, :, 0] - 0.5), np.sign(w))
    best = float(np.sum(np.maximum(w, 0)))  # the maximum over [0, 1] images
    start = float(np.sum(w * 0.5))
    value = float(am.unit_values(img, [0])[0])
    assert value >= start + 0.8 * (best - start)  # at least 80 % of the way to the optimum


def test_neuron_changes_only_its_receptive_field(linear_model):
    model, _ = linear_model
    am = ka.ActivationMaximization(model, "local", steps=30, **NO_TRANSFORMS)
    grey = np.full((1, 8, 8, 1), 0.5, np.float32)
    img = am.maximize([(2, 4, 1)], start=grey, **QUIET)[0, :, :, 0]  # sees rows 2-4, columns 4-6
    k = np.asarray(model.get_layer("local").kernel)[:, :, 0, 1]
    field = np.zeros((8, 8), bool)
    field[2:5, 4:7] = True
    assert np.all(img[~field] == 0.5)  # the start, untouched
    np.testing.assert_array_equal(np.sign(img[field] - 0.5), np.sign(k).ravel())


def test_fourier_parameterization_reaches_the_optimum(linear_model):
    model, w = linear_model
    start, best = float(np.sum(w * 0.5)), float(np.sum(np.maximum(w, 0)))
    for parameterization in ("pixel", "fourier"):
        am = ka.ActivationMaximization(
            model, "whole", steps=40, **NO_TRANSFORMS, parameterization=parameterization
        )
        value = float(am.unit_values(am.maximize(0, **QUIET), [0])[0])
        assert value >= start + 0.75 * (best - start), parameterization


def test_default_transforms_on_a_smooth_unit(keras):
    """Jitter, scale, rotation and TV keep a smooth pattern: left half bright, right half dark."""
    inputs = keras.Input((16, 16, 1))
    out = keras.layers.Conv2D(1, 16, use_bias=False, name="halves")(inputs)
    model = keras.Model(inputs, out)
    w = np.ones((16, 16), np.float32)
    w[:, 8:] = -1.0
    model.get_layer("halves").set_weights([w[:, :, None, None]])
    for parameterization in ("pixel", "fourier"):
        am = ka.ActivationMaximization(model, "halves", steps=40, parameterization=parameterization)
        img = am.maximize(0, **QUIET)[0, :, :, 0]
        assert img[:, :6].mean() > 0.75 and img[:, 10:].mean() < 0.25, parameterization


def test_batched_equals_unbatched_and_seeded(functional_model):
    units = [0, 3, (2, 2, 1), 5]
    settings = dict(steps=8, blur_sigma=0.5, blur_every=2)
    together = ka.ActivationMaximization(functional_model, "conv2", batch_size=4, **settings)
    one_by_one = ka.ActivationMaximization(functional_model, "conv2", batch_size=1, **settings)
    a = together.maximize(units, **QUIET)
    b = one_by_one.maximize(units, **QUIET)
    np.testing.assert_allclose(a, b, atol=1e-5)
    again = together.maximize(units, **QUIET)
    np.testing.assert_array_equal(a, again)
    other = ka.ActivationMaximization(functional_model, "conv2", seed=1, **settings)
    assert np.abs(other.maximize(units, **QUIET) - a).max() > 1e-3


def test_progress_is_a_call_argument(functional_model, monkeypatch, capsys):
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    am = ka.ActivationMaximization(functional_model, "conv2", steps=2, batch_size=1)
    am.maximize([0, 1], **QUIET)
    assert capsys.readouterr().err == ""
    am.maximize([0, 1], progress=True)
    err = capsys.readouterr().err
    assert "activation maximization: 2 units, 2 steps" in err and "4/4" in err, err
    assert "step/s" in err
    with pytest.warns(DeprecationWarning, match="maximize"):
        old = ka.ActivationMaximization(functional_model, "conv2", steps=2, progress=False)
    old.maximize([0])  # the deprecated setting still silences the call
    assert capsys.readouterr().err == ""


def test_class_logit_through_logits_view(keras):
    """A softmax head: the logit (not the probability) of class 1 is maximised."""
    rng = np.random.default_rng(5)
    inputs = keras.Input((6, 6, 1))
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(
        keras.layers.Flatten()(inputs)
    )
    model = keras.Model(inputs, out)
    w = rng.normal(size=(36, 2)).astype(np.float32)
    model.get_layer("predictions").set_weights([w, np.zeros(2, np.float32)])
    am = ka.ActivationMaximization(model, None, steps=40, **NO_TRANSFORMS)
    img = am.maximize([1], **QUIET)
    np.testing.assert_array_equal(np.sign(img.ravel() - 0.5), np.sign(w[:, 1]))
    logit = am.unit_values(img, [1])[0]
    np.testing.assert_allclose(logit, img.reshape(1, -1) @ w[:, 1], rtol=1e-5)
    best, start = np.maximum(w[:, 1], 0).sum(), 0.5 * w[:, 1].sum()
    assert logit >= start + 0.75 * (best - start)
    assert model.get_layer("predictions").activation.__name__ == "softmax"  # model untouched
    with pytest.raises(ValueError, match="2 channels"):
        am.maximize([2])


def test_step_cap_from_environment(monkeypatch, linear_model):
    model, _ = linear_model
    one = ka.ActivationMaximization(model, "whole", steps=1).maximize([0], **QUIET)
    monkeypatch.setenv(ka.MAX_STEPS_ENV, "1")
    capped = ka.ActivationMaximization(model, "whole", steps=500).maximize([0], **QUIET)
    np.testing.assert_array_equal(one, capped)


def test_bad_units_and_settings(functional_model):
    am = ka.ActivationMaximization(functional_model, "conv2", steps=2)
    with pytest.raises(ValueError, match="Unit 6 is out of range.*6 channels"):
        am.maximize([6])
    with pytest.raises(ValueError, match="Neuron"):
        am.maximize([(8, 0, 0)])
    with pytest.raises(TypeError, match="unit"):
        am.maximize([True])
    with pytest.raises(TypeError, match="int"):
        am.maximize(["a"])
    with pytest.raises(ValueError, match="parameterization"):
        ka.ActivationMaximization(functional_model, "conv2", parameterization="cppn")
    with pytest.raises(ValueError, match="value_range"):
        ka.ActivationMaximization(functional_model, "conv2", value_range=(1, 0))
    with pytest.raises(KeyError):
        ka.ActivationMaximization(functional_model, "conv7")
    with pytest.raises(ValueError, match="one `start` image per unit"):
        am.maximize([0, 1], start=np.full((1, 16, 16, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"values in \[0.0, 1.0\]"):
        am.maximize([0], start=np.full((1, 16, 16, 3), 2.0, np.float32))
    fourier = ka.ActivationMaximization(functional_model, "conv2", parameterization="fourier")
    with pytest.raises(ValueError, match="pixel"):
        fourier.maximize([0], start=np.full((1, 16, 16, 3), 0.5, np.float32))


@pytest.mark.slow
def test_reaches_tf_keras_vis_activation_in_same_steps(keras, functional_model):
    """Same units, start images and steps, no regularisers or transforms on either side."""
    pytest.importorskip("tf_keras_vis", reason="tf-keras-vis is the independent reference")
    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization as Reference
    from tf_keras_vis.utils.scores import CategoricalScore

    steps, units = 32, [0, 1, 2, 3]
    ours = ka.ActivationMaximization(
        functional_model, "conv2", steps=steps, learning_rate=0.25, **NO_TRANSFORMS
    )
    seeds = np.concatenate(
        [np.asarray(tf.random.stateless_uniform((1, 16, 16, 3), (0, u))) for u in units]
    )
    mine = ours.unit_values(ours.maximize(units, start=seeds, **QUIET), units)
    conv2 = functional_model.get_layer("conv2").output
    scored = keras.Model(functional_model.inputs, keras.layers.GlobalAveragePooling2D()(conv2))
    reference = Reference(scored, clone=False)
    theirs = []
    for unit in units:
        img = reference(
            CategoricalScore(unit),
            seed_input=tf.constant(seeds[unit : unit + 1]),
            input_range=(0.0, 1.0),
            steps=steps,
            input_modifiers=[],
            regularizers=[],
        )
        theirs.append(float(ours.unit_values(np.asarray(img, np.float32), [unit])[0]))
    assert np.all(mine >= np.asarray(theirs)), (mine, theirs)


def test_plots(functional_model, tmp_path):
    from kerasviz import plot

    x = _images((16, 16, 3), n=1)
    maps = ka.activations(functional_model, x, "conv1")["conv1"][0]
    fig = plot.activation_grid(maps, channels=[2, 0], shared_scale=True, title="conv1")
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 2
    np.testing.assert_array_equal(tiles[0].images[0].get_array(), maps[..., 2])
    lo, hi = tiles[1].images[0].get_clim()
    assert (lo, hi) == (float(maps[..., [2, 0]].min()), float(maps[..., [2, 0]].max()))
    fig2 = plot.activation_grid(maps, shared_scale=False)
    assert fig2.axes[0].images[0].get_clim() == (
        float(maps[..., 0].min()),
        float(maps[..., 0].max()),
    )
    fig3, ax = plot.activation_overlay(x[0], maps[..., 0])
    assert len(ax.images) == 2
    gallery = plot.maximization_gallery(np.repeat(x, 3, axis=0), ["a", "b", "c"])
    assert [ax.get_xlabel() for ax in gallery.axes if ax.images] == ["a", "b", "c"]
    plot.save(gallery, tmp_path / "g.png")
    with pytest.raises(ValueError, match="labels"):
        plot.maximization_gallery(np.repeat(x, 3, axis=0), ["a"])
    with pytest.raises(ValueError, match="channels"):
        plot.activation_grid(maps, channels=[9])


# ------------------------------------------------------------------ top patches (Zeiler & Fergus)


def _pixel_model(keras, padding):
    """Unit 0 reads the pixel under its centre (weight 1), unit 1 the same pixel negated."""
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(2, 3, padding=padding, use_bias=False, name="pixel")
    x = conv(inputs)
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[1, 1, 0] = [1.0, -1.0]
    conv.set_weights([kernel])
    return keras.Model(inputs, keras.layers.Flatten()(x))


def _naive_top(images, unit_sign, k, distinct, border):
    """The k brightest (or darkest) reachable pixels, by brute force over the whole set."""
    x = unit_sign * images[..., 0]
    if border == "valid":
        x = x[:, 1:-1, 1:-1]
    n, h, w = x.shape
    if distinct:
        flat = x.reshape(n, -1)
        best = flat.argmax(axis=1)
        order = np.argsort(-flat.max(axis=1), kind="stable")[:k]
        return order, np.stack(np.divmod(best[order], w), axis=-1), flat.max(axis=1)[order]
    flat = x.ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    image, rest = np.divmod(order, h * w)
    return image, np.stack(np.divmod(rest, w), axis=-1), flat[order]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("distinct", [True, False])
def test_one_pixel_unit_gets_the_brightest_pixels_on_its_field(keras, padding, distinct):
    model = _pixel_model(keras, padding)
    images = _images((8, 8, 1), n=20, seed=3)
    images[4, 0, 0, 0] = 2.0  # a corner maximum: a clipped field under "same"
    top = ka.top_patches(
        model, "pixel", images, k=5, batch_size=6, distinct_images=distinct, fill=-9
    )
    assert top.patches.shape == (2, 5, 3, 3, 1) and top.units.tolist() == [0, 1]
    shift = 1 if padding == "valid" else 0
    for u, sign in enumerate((1.0, -1.0)):
        index, where, value = _naive_top(images, sign, 5, distinct, padding)
        np.testing.assert_array_equal(top.indices[u], index)
        np.testing.assert_array_equal(top.positions[u], where)
        np.testing.assert_allclose(top.values[u], value, rtol=1e-6)
        for j in range(5):
            r, c = where[j] + shift  # the pixel in the image
            padded = np.pad(images[index[j], ..., 0], 1, constant_values=-9)
            np.testing.assert_array_equal(top.patches[u, j, ..., 0], padded[r : r + 3, c : c + 3])
            np.testing.assert_array_equal(top.valid[u, j], padded[r : r + 3, c : c + 3] != -9)
            top_, left, h, w = top.boxes[u, j]
            assert (top_, left) == (max(r - 1, 0), max(c - 1, 0)) and h * w == top.valid[u, j].sum()
    if padding == "same":
        assert top.indices[0, 0] == 4 and not top.valid[0, 0, 0].any()


def test_batch_sizes_and_datasets_agree(keras, functional_model):
    import tensorflow as tf

    images = _images((16, 16, 3), n=11, seed=4)
    want = ka.top_patches(functional_model, "conv2", images, units=[1, 3], k=4, batch_size=11)
    for data, batch_size in (
        (images, 1),
        (images, 4),
        (tf.data.Dataset.from_tensor_slices(images), 3),
        (tf.data.Dataset.from_tensor_slices((images, np.arange(11))).batch(5), 64),
    ):
        got = ka.top_patches(
            functional_model, "conv2", data, units=[1, 3], k=4, batch_size=batch_size
        )
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.positions, want.positions)
        np.testing.assert_allclose(got.values, want.values, rtol=1e-5)
        np.testing.assert_array_equal(got.patches, want.patches)
    assert want.images_seen == 11
    few = ka.top_patches(functional_model, "conv2", images[:2], units=0, k=9)
    assert few.values.shape == (1, 2)  # fewer images than k


def test_projections_equal_the_deconvnet_on_the_whole_image(keras, functional_model):
    from kerasviz.attribution import Deconvnet, GuidedBackprop

    images = _images((16, 16, 3), n=6, seed=5)
    top = ka.top_patches(
        functional_model, "conv2", images, units=[0, 2], k=3, projection="deconvnet"
    )
    assert top.projections.shape == top.patches.shape and top.rule == "deconvnet"
    for rule, cls in (("deconvnet", Deconvnet), ("guided", GuidedBackprop)):
        mine = ka.project_patches(functional_model, top, rule=rule)
        explainer = cls(functional_model, layer="conv2")
        for u, unit in enumerate(top.units):
            grads = explainer.gradients(images[top.indices[u]], targets=int(unit))  # (k, H, W, C)
            want, inside = top.field.crops(grads, top.positions[u, :, 0], top.positions[u, :, 1])
            want = np.where(inside[..., None], want, 0.0)
            assert np.abs(want).max() > 0
            np.testing.assert_allclose(mine[u], want, rtol=1e-4, atol=1e-6)


def test_memory_is_flat_in_the_data_size(keras, functional_model):
    import tracemalloc

    import tensorflow as tf

    def data(n):
        return tf.data.Dataset.range(n).map(
            lambda i: tf.random.stateless_uniform((16, 16, 3), tf.stack([i, i]))
        )

    ka.top_patches(functional_model, "conv2", data(8), k=9, batch_size=16)  # trace, warm up
    peaks = []
    for n in (32, 512):
        tracemalloc.start()
        top = ka.top_patches(functional_model, "conv2", data(n), k=9, batch_size=16)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert top.images_seen == n
    kept_maps = 480 * 8 * 8 * 6 * 4  # bytes of the extra images' conv2 maps (8 x 8 x 6)
    assert peaks[1] - peaks[0] < kept_maps / 10, peaks


def test_top_patches_bad_input(keras, functional_model):
    import tensorflow as tf

    images = _images((16, 16, 3), n=2)
    with pytest.raises(ValueError, match="spatial"):
        ka.top_patches(functional_model, -1, images)
    with pytest.raises(ValueError, match="units"):
        ka.top_patches(functional_model, "conv2", images, units=[0, 99])
    with pytest.raises(ValueError, match="`k`"):
        ka.top_patches(functional_model, "conv2", images, k=0)
    with pytest.raises(ValueError, match="empty"):
        ka.top_patches(functional_model, "conv2", images[:0])
    with pytest.raises(ValueError, match="empty"):
        ka.top_patches(functional_model, "conv2", tf.data.Dataset.from_tensor_slices(images[:0]))
    with pytest.raises(ValueError, match="projection"):
        ka.top_patches(functional_model, "conv2", images, projection="gradcam")
    with pytest.raises(ValueError, match="data"):
        ka.top_patches(functional_model, "conv2", images[..., :1])
