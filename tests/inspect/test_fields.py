"""Receptive fields against brute force: perturb one input pixel, see which outputs change."""

import numpy as np
import pytest

from kerasviz import inspect
from kerasviz.inspect._fields import receptive_field


def _brute_force(model, layer, size, seed=0):
    """``(h, w, 4)`` bounding box (top, bottom, left, right) of the pixels that move each output
    position (``-1`` where none does), from one forward pass over every perturbed copy."""
    rng = np.random.default_rng(seed)
    channels = inspect.input_shape(model)[-1]
    base = rng.normal(size=(1, size, size, channels)).astype(np.float32)
    copies = []
    for sign in (1.0, -1.0):
        for y in range(size):
            for x in range(size):
                c = base.copy()
                c[0, y, x, :] += sign * 50.0
                copies.append(c)
    sub = inspect.submodel(model, [layer])
    out = np.asarray(sub(np.concatenate([base, *copies]), training=False)[0])
    moved = np.abs(out[1:] - out[:1]).max(axis=-1) > 1e-4  # (2 * P, h, w)
    moved = moved.reshape(2, size, size, *out.shape[1:3]).any(axis=0)  # (y, x, h, w)
    h, w = out.shape[1:3]
    box = np.full((h, w, 4), -1)
    for i in range(h):
        for j in range(w):
            ys, xs = np.nonzero(moved[:, :, i, j])
            if len(ys):
                box[i, j] = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return box


def _check_every_layer(model, size, layers):
    for name in layers:
        field = receptive_field(model, name)
        box = _brute_force(model, name, size)
        h, w = box.shape[:2]
        assert field.output_size == (h, w), name
        want = np.concatenate(
            [
                np.broadcast_to(field.rows[:, None, :], (h, w, 2)),
                np.broadcast_to(field.cols[None, :, :], (h, w, 2)),
            ],
            axis=-1,
        ).copy()
        empty = (want[..., 1] <= want[..., 0]) | (want[..., 3] <= want[..., 2])
        want[empty] = -1  # reads only padding: nothing moves it
        np.testing.assert_array_equal(want, box, err_msg=name)
        # the full window contains the clipped one and has the common size
        for full, clipped, longest in zip(
            (field.full_rows, field.full_cols), (field.rows, field.cols), field.size, strict=True
        ):
            real = clipped[:, 1] > clipped[:, 0]
            assert np.all(full[real, 0] <= clipped[real, 0]), name
            assert np.all(full[real, 1] >= clipped[real, 1]), name
            assert np.all(full[:, 1] - full[:, 0] <= longest), name


def _init(keras, seed):
    keras.utils.set_random_seed(seed)
    return keras.layers


def test_strides_dilation_padding_and_pooling(keras):
    layers = _init(keras, 1)
    inputs = keras.Input((15, 15, 2))
    x = layers.Conv2D(3, 3, name="valid")(inputs)
    x = layers.Conv2D(3, 3, strides=2, padding="same", name="strided")(x)
    x = layers.Conv2D(3, 3, dilation_rate=2, padding="same", name="dilated")(x)
    x = layers.MaxPooling2D(2, padding="same", name="pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(2)(x))
    _check_every_layer(model, 15, ["valid", "strided", "dilated", "pool"])
    field = receptive_field(model, "strided")
    assert field.size == (5, 5) and field.stride == (2.0, 2.0)
    assert field.window(0, 0) == (0, 0, 4, 4)  # 'same' padding clips the first window


def test_residual_branch_takes_the_union(keras):
    layers = _init(keras, 2)
    inputs = keras.Input((12, 12, 2))
    stem = layers.Conv2D(3, 3, padding="same", name="stem")(inputs)
    branch = layers.Conv2D(3, 3, padding="same", name="b1")(stem)
    branch = layers.Conv2D(3, 5, padding="same", name="b2")(branch)
    x = layers.Add(name="add")([stem, branch])
    x = layers.Activation("tanh", name="act")(x)
    pooled = layers.AveragePooling2D(2, name="avg")(x)
    side = layers.DepthwiseConv2D(3, padding="same", name="dw")(pooled)
    x = layers.Concatenate(name="cat")([pooled, side])
    x = layers.SeparableConv2D(2, 3, name="sep")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))
    _check_every_layer(model, 12, ["stem", "add", "act", "avg", "cat", "sep"])
    assert receptive_field(model, "add").size == (9, 9)  # the longer branch wins


def test_padding_cropping_transpose_and_upsampling(keras):
    layers = _init(keras, 3)
    inputs = keras.Input((10, 10, 2))
    x = layers.ZeroPadding2D(((2, 1), (1, 3)), name="zpad")(inputs)
    x = layers.Conv2D(3, 3, strides=2, name="down")(x)
    x = layers.Cropping2D(((1, 0), (0, 1)), name="crop")(x)
    x = layers.Conv2DTranspose(3, 3, strides=2, name="up_valid")(x)
    x = layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="up_same")(x)
    x = layers.UpSampling2D(2, name="nearest")(x)
    x = layers.Conv2D(2, 3, padding="same", name="last")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalMaxPooling2D()(x)))
    _check_every_layer(model, 10, ["zpad", "down", "crop", "up_valid", "up_same", "last"])
    # positions that read only the zero padding have an empty window
    field = receptive_field(model, "zpad")
    assert field.window(0, 0)[2] == 0 and field.window(2, 1) == (0, 0, 1, 1)


def test_nested_and_sequential_models(keras):
    layers = _init(keras, 4)
    inner = keras.Sequential(
        [keras.Input((12, 12, 2)), layers.Conv2D(3, 3, name="c1"), layers.MaxPooling2D(name="p1")],
        name="inner",
    )
    inputs = keras.Input((12, 12, 2))
    x = layers.Conv2D(2, 3, padding="same", name="c2")(inner(inputs))
    model = keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))
    _check_every_layer(model, 12, ["inner/c1", "p1", "c2"])
    assert receptive_field(model, "c2").size == (8, 8)


def test_crops_pad_and_mark_the_border(keras):
    layers = _init(keras, 5)
    inputs = keras.Input((6, 6, 1))
    x = layers.Conv2D(1, 3, padding="same", name="conv")(inputs)
    model = keras.Model(inputs, layers.Flatten()(x))
    field = receptive_field(model, "conv")
    images = np.arange(2 * 36, dtype=np.float32).reshape(2, 6, 6, 1)
    patches, valid = field.crops(images, [0, 3], [0, 5], fill=-1.0)
    assert patches.shape == (2, 3, 3, 1) and valid.shape == (2, 3, 3)
    np.testing.assert_array_equal(patches[0, 1:, 1:, 0], images[0, :2, :2, 0])
    assert (patches[0, 0, :, 0] == -1).all() and not valid[0, 0].any() and valid[0, 1:, 1:].all()
    np.testing.assert_array_equal(patches[1, :, :2, 0], images[1, 2:5, 4:6, 0])
    assert valid[1, :, :2].all() and not valid[1, :, 2].any()


def test_bad_layers(keras, functional_model):
    layers = _init(keras, 6)
    with pytest.raises(ValueError, match="spatial"):
        receptive_field(functional_model, -1)
    with pytest.raises(KeyError, match="conv"):
        receptive_field(functional_model, "convv")
    inputs = keras.Input((8, 8, 1))
    x = layers.Resizing(4, 4, name="resize")(inputs)
    x = layers.Conv2D(1, 3, name="after")(x)
    model = keras.Model(inputs, layers.Flatten()(x))
    with pytest.raises(ValueError, match="'resize'.*Resizing"):
        receptive_field(model, "after")
    open_size = keras.Sequential([keras.Input((None, None, 1)), layers.Conv2D(1, 3, name="c")])
    with pytest.raises(ValueError, match="input_size"):
        receptive_field(open_size, "c")
    assert receptive_field(open_size, "c", input_size=(9, 7)).output_size == (7, 5)
