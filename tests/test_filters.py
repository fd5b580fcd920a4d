"""kerasviz.filters and its plots: kernels against the layers' own arithmetic."""

import numpy as np
import pytest

from kerasviz import filters as kf


def _patch_response(layer, patch):
    """The layer's output at the single position where a valid conv sees exactly ``patch``."""
    return np.asarray(layer(patch[None]))[0, 0, 0]


@pytest.fixture(scope="module")
def model(keras):
    keras.utils.set_random_seed(7)
    layers = keras.layers
    inputs = keras.Input((5, 5, 3))
    a = layers.Conv2D(4, (3, 2), name="conv")(inputs)
    b = layers.DepthwiseConv2D((3, 2), depth_multiplier=2, name="depth")(inputs)
    c = layers.SeparableConv2D(5, (3, 2), depth_multiplier=2, name="sep")(inputs)
    d = layers.Conv2DTranspose(4, (3, 2), name="tconv")(inputs)
    e = layers.MaxPooling2D(name="pool")(a)
    parts = [layers.GlobalAveragePooling2D()(t) for t in (b, c, d, e)]
    x = layers.Concatenate()(parts)
    out = layers.Dense(6, name="dense")(x)
    return keras.Model(inputs, out, name="kinds")


def test_conv2d_equals_kernel_reordered_and_layer_arithmetic(model):
    layer = model.get_layer("conv")
    k = kf.filters(model, "conv")
    assert k.shape == (4, 3, 2, 3) and k.dtype == np.float32
    np.testing.assert_array_equal(k, np.asarray(layer.kernel).transpose(3, 0, 1, 2))
    patch = np.random.default_rng(0).normal(size=(3, 2, 3)).astype(np.float32)
    bias = np.asarray(layer.bias)
    expected = np.einsum("nhwc,hwc->n", k, patch) + bias
    np.testing.assert_allclose(_patch_response(layer, patch), expected, rtol=1e-5, atol=1e-5)


def test_depthwise_order_matches_output_channels(model):
    layer = model.get_layer("depth")
    k = kf.filters(model, "depth")
    assert k.shape == (6, 3, 2, 1)  # 3 inputs x multiplier 2
    patch = np.random.default_rng(1).normal(size=(3, 2, 3)).astype(np.float32)
    out = _patch_response(layer, patch) - np.asarray(layer.bias)
    for j in range(6):  # output channel j = c * mult + m reads input channel c = j // 2
        np.testing.assert_allclose(
            out[j], np.sum(k[j, :, :, 0] * patch[:, :, j // 2]), rtol=1e-5, atol=1e-5
        )


def test_separable_parts(model):
    layer = model.get_layer("sep")
    dw = kf.filters(model, "sep")
    np.testing.assert_array_equal(dw, kf.filters(model, "sep", part="depthwise"))
    pw = kf.filters(model, "sep", part="pointwise")
    assert dw.shape == (6, 3, 2, 1) and pw.shape == (5, 1, 1, 6)
    np.testing.assert_array_equal(pw[:, 0, 0, :], np.asarray(layer.pointwise_kernel)[0, 0].T)
    patch = np.random.default_rng(2).normal(size=(3, 2, 3)).astype(np.float32)
    depth_out = np.array([np.sum(dw[j, :, :, 0] * patch[:, :, j // 2]) for j in range(6)])
    expected = pw[:, 0, 0, :] @ depth_out + np.asarray(layer.bias)
    np.testing.assert_allclose(_patch_response(layer, patch), expected, rtol=1e-4, atol=1e-5)


def test_conv2d_transpose_filter_is_stamp_of_one_input_channel(model):
    layer = model.get_layer("tconv")
    k = kf.filters(model, "tconv")
    assert k.shape == (4, 3, 2, 3)
    np.testing.assert_array_equal(k, np.asarray(layer.kernel).transpose(2, 0, 1, 3))
    for j in range(3):  # a one-pixel impulse on input channel j stamps k[:, :, :, j]
        x = np.zeros((1, 1, 1, 3), np.float32)
        x[0, 0, 0, j] = 1.0
        out = np.asarray(layer(x))[0] - np.asarray(layer.bias)  # (3, 2, 4)
        np.testing.assert_allclose(out.transpose(2, 0, 1), k[:, :, :, j], atol=1e-6)


def test_dense_is_a_1x1_convolution(model):
    k = kf.filters(model, "dense")
    assert k.shape == (6, 1, 1, model.get_layer("dense").kernel.shape[0])
    np.testing.assert_array_equal(k[:, 0, 0, :], np.asarray(model.get_layer("dense").kernel).T)


def test_nested_layer_by_path(nested_model):
    from kerasviz import inspect

    path = next(
        p
        for p, layer in inspect.iter_layers(nested_model)
        if type(layer).__name__ == "DepthwiseConv2D"
    )
    layer = inspect.find_layer(nested_model, path)
    k = kf.filters(nested_model, path)
    kernel = np.asarray(layer.kernel)
    assert "/" in path and k.shape == (kernel.shape[2] * kernel.shape[3], *kernel.shape[:2], 1)
    np.testing.assert_array_equal(k[:, :, :, 0], kernel[:, :, :, 0].transpose(2, 0, 1))


def test_refusals(model, functional_model):
    with pytest.raises(ValueError, match=r"'pool1' \(MaxPooling2D\) has no convolution kernel"):
        kf.filters(functional_model, "pool1")
    with pytest.raises(ValueError, match="SeparableConv2D only"):
        kf.filters(model, "conv", part="pointwise")
    with pytest.raises(ValueError, match="part"):
        kf.filters(model, "sep", part="both")
    with pytest.raises(KeyError, match="conv"):
        kf.filters(model, "conv9")


def test_norms_order_page():
    k = np.zeros((3, 2, 2, 1), np.float32)
    k[0] += 1.0  # norm 2
    k[1, 0, 0, 0] = -5.0  # norm 5
    k[2, :, 0, 0] = 3.0  # norm sqrt(18)
    np.testing.assert_allclose(kf.norms(k), [2.0, 5.0, np.sqrt(18.0)], rtol=1e-6)
    np.testing.assert_array_equal(kf.order(k), [1, 2, 0])
    np.testing.assert_array_equal(kf.order(k, by=None), [0, 1, 2])
    np.testing.assert_array_equal(kf.page(kf.order(k), page=1, per_page=2), [0])
    with pytest.raises(ValueError, match="page"):
        kf.page(kf.order(k), page=2, per_page=2)
    with pytest.raises(ValueError, match="kernels"):
        kf.norms(np.zeros((3, 3)))


def test_normalize_modes():
    k = np.array([[[[-2.0]], [[1.0]]], [[[0.0]], [[0.5]]]], np.float32)  # (2, 2, 1, 1)
    sym = kf.normalize(k)  # layer scale, zero at 0.5, max |w| = 2
    np.testing.assert_allclose(sym.ravel(), [0.0, 0.75, 0.5, 0.625])
    per = kf.normalize(k, scale="filter")  # second filter: max |w| = 0.5
    np.testing.assert_allclose(per.ravel(), [0.0, 0.75, 0.5, 1.0])
    mm = kf.normalize(k, symmetric=False)
    np.testing.assert_allclose(mm.ravel(), [0.0, 1.0, 2 / 3, 2.5 / 3], rtol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        kf.normalize(k, scale="channel")


def test_plots(model, tmp_path):
    from kerasviz import plot

    k = kf.filters(model, "conv")  # 3 input channels: colour tiles
    fig = plot.filter_tiles(k, indices=kf.order(k))
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4 and shown[0].images[0].get_array().shape == (3, 2, 3)
    assert shown[0].get_title().startswith(f"{kf.order(k)[0]} ")
    plot.save(fig, tmp_path / "tiles.png")
    assert (tmp_path / "tiles.png").stat().st_size > 0
    deep = np.random.default_rng(0).normal(size=(40, 3, 3, 20)).astype(np.float32)
    fig = plot.filter_grid(deep, sort="norm", page=1, per_page=8, max_channels=5)
    assert sum(1 for ax in fig.axes if ax.images) == 8 * 5
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels[0].startswith(f"f{kf.order(deep)[8]}\n")
    with pytest.raises(ValueError, match="filter_grid"):
        plot.filter_tiles(deep)
    with pytest.raises(ValueError, match="channels"):
        plot.filter_grid(deep, channels=[25])


def test_bgr_models_are_drawn_in_rgb(keras):
    """A Caffe-style model reads BGR: its kernel's channel 0 is blue. A filter that responds
    only to red comes back with red in channel 0, as colour tiles draw it."""
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    kernel = np.zeros((3, 3, 3, 2), "float32")
    kernel[:, :, 2, 0] = 1.0  # filter 0 reads BGR channel 2: red
    kernel[:, :, 0, 1] = 1.0  # filter 1 reads BGR channel 0: blue
    model.get_layer("conv").set_weights([kernel, np.zeros(2, "float32")])
    rgb = kf.filters(model, "conv", channel_order="BGR")
    assert rgb[0, :, :, 0].min() == 1 and rgb[0, :, :, 1:].max() == 0  # red
    assert rgb[1, :, :, 2].min() == 1 and rgb[1, :, :, :2].max() == 0  # blue
    np.testing.assert_array_equal(kf.filters(model, "conv")[..., ::-1], rgb)
    with pytest.raises(ValueError, match="channel_order"):
        kf.filters(model, "conv", channel_order="GBR")
