"""CAM methods against a one-channel model, direct tape computations and tf-keras-vis."""

import warnings

import numpy as np
import pytest
from _tfkv import tf_keras_vis_model

from kerasviz import inspect
from kerasviz.attribution import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM

GRADIENT_CAMS = (GradCAM, GradCAMPlusPlus, LayerCAM)


def _images(n, size=16, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def one_channel(keras):
    """Conv2D(1, relu, 'same') -> GAP -> Dense(2) with a positive weight for class 0."""
    keras.utils.set_random_seed(21)
    inputs = keras.Input((12, 12, 3))
    conv = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="conv")
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.array([[1.5, -0.5]], np.float32), np.zeros(2, np.float32)])
    return model, keras.Model(inputs, conv.output)


@pytest.mark.parametrize("cls", [*GRADIENT_CAMS, ScoreCAM])
def test_one_channel_model_gives_its_relu_map(one_channel, cls):
    model, feature = one_channel
    x = _images(3, size=12)
    acts = feature.predict(x, verbose=0)[..., 0]  # (3, 12, 12), already ReLU'd
    result = cls(model).explain_full(x, targets=0)
    maps, grids = result.explanations, result.grid
    np.testing.assert_allclose(maps, grids, rtol=1e-5, atol=1e-7)  # 12 -> 12: no resampling
    for grid, act in zip(grids, acts, strict=True):
        scale = grid.max() / act.max()
        assert scale > 0
        np.testing.assert_allclose(grid, scale * act, rtol=1e-4, atol=1e-6 * grid.max())


def _direct_gradcam(model, layer_name, x, targets):
    """Grad-CAM grids with a tape on the user's Functional model (logits of a Dense head)."""
    import keras
    import tensorflow as tf

    head = model.get_layer("predictions")
    tap = keras.Model(model.inputs[0], [model.get_layer(layer_name).output, head.input])
    with tf.GradientTape() as tape:
        acts, feats = tap(x, training=False)
        logits = tf.matmul(feats, head.kernel) + head.bias
        score = tf.gather(logits, targets, axis=1, batch_dims=1)
    grads = tape.gradient(score, acts)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1)).numpy()


@pytest.mark.parametrize("kind", ["functional_model", "sequential_model", "sequential_no_input"])
def test_gradcam_equals_direct_tape_on_model_kinds(kind, request, functional_model):
    model = request.getfixturevalue(kind)
    x = _images(3)
    targets = np.array([0, 1, 2], np.int32)
    explainer = GradCAM(model)
    assert explainer.layer_path == "conv2"
    grids = explainer.explain_full(x, targets).grid
    if kind == "functional_model":
        expected = _direct_gradcam(model, "conv2", x, targets)
        np.testing.assert_allclose(grids, expected, rtol=1e-4, atol=1e-6)
    else:  # an independent implementation on a standalone Functional copy of the model
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.scores import CategoricalScore

        ref = Gradcam(tf_keras_vis_model(model))(
            CategoricalScore(list(targets)),
            x,
            penultimate_layer="conv2",
            seek_penultimate_conv_layer=False,
            expand_cam=False,
            normalize_cam=False,
        )
        np.testing.assert_allclose(grids, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_nested_backbone_default_layer_and_batch_invariance(nested_model):
    x = _images(3, size=32)
    explainer = GradCAM(nested_model, batch_size=1)
    # 32 px: out_relu is 1x1, so the last spatial layer is deeper inside the backbone.
    assert explainer.layer_path == inspect.last_spatial_layer(nested_model)
    assert explainer.layer_path.startswith("mobilenetv2") and "/" in explainer.layer_path
    one = explainer.explain(x, targets=[0, 1, 3])
    explainer.batch_size = 3
    np.testing.assert_allclose(explainer.explain(x, [0, 1, 3]), one, rtol=1e-4, atol=1e-7)
    # An earlier layer inside the backbone, by path.
    early = LayerCAM(nested_model, layer=explainer.layer_path.split("/")[0] + "/block_1_expand")
    assert early.grid_shape == (16, 16)
    assert np.isfinite(early.explain(x)).all()


@pytest.mark.parametrize(
    "cls,kwargs", [(GradCAM, {}), (LayerCAM, {}), (ScoreCAM, {"max_channels": 4})]
)
def test_batch_size_invariance(functional_model, cls, kwargs):
    x = _images(3)
    runs = [
        cls(functional_model, batch_size=b, **kwargs).explain(x, targets=[2, 0, 1])
        for b in (1, 3, 32)
    ]
    for other in runs[1:]:
        np.testing.assert_allclose(other, runs[0], rtol=1e-4, atol=1e-7)


def test_scorecam_all_channels_and_weights_by_hand(functional_model):
    x = _images(2)
    full = ScoreCAM(functional_model).explain(x, targets=1)
    same = ScoreCAM(functional_model, max_channels=6).explain(x, targets=1)
    np.testing.assert_allclose(full, same, rtol=1e-5, atol=1e-7)
    wide = ScoreCAM(functional_model, max_channels=100)  # an upper bound: conv2 has 6
    assert wide.max_channels == 6
    np.testing.assert_allclose(wide.explain(x, targets=1), full, rtol=1e-5, atol=1e-7)
    # Weights by hand: mask each channel, score class 1's probability.
    import tensorflow as tf

    feature = inspect.submodel(functional_model, ["conv2"])
    acts = feature.predict(x, verbose=0)[0]  # (2, 8, 8, 6)
    grids = ScoreCAM(functional_model).explain_full(x, targets=1).grid
    for i in range(2):
        up = tf.image.resize(np.moveaxis(acts[i], -1, 0)[..., None], (16, 16)).numpy()[..., 0]
        lo = up.min(axis=(1, 2), keepdims=True)
        hi = up.max(axis=(1, 2), keepdims=True)
        masks = (up - lo) / (hi - lo + 1e-7)
        w = functional_model.predict(x[i] * masks[..., None], verbose=0)[:, 1]
        expected = np.maximum((acts[i] * w).sum(axis=-1), 0)
        np.testing.assert_allclose(grids[i], expected, rtol=1e-4, atol=1e-7)


def _tf_keras_vis(name):
    pytest.importorskip("tf_keras_vis", reason="tf-keras-vis is the independent reference")
    import importlib

    module, cls = {
        "GradCAM": ("gradcam", "Gradcam"),
        "GradCAMPlusPlus": ("gradcam_plus_plus", "GradcamPlusPlus"),
        "LayerCAM": ("layercam", "Layercam"),
        "ScoreCAM": ("scorecam", "Scorecam"),
    }[name]
    return getattr(importlib.import_module(f"tf_keras_vis.{module}"), cls)


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (GradCAM, {}),
        (GradCAMPlusPlus, {}),
        (LayerCAM, {}),
        (ScoreCAM, {}),
        (ScoreCAM, {"max_N": 12}),
    ],
)
def test_agrees_with_tf_keras_vis_on_shipped_model(shipped, cls, kwargs):
    from kerasviz import datasets

    model = shipped("shapes_cnn")
    images, labels, _ = datasets.shapes(3, seed=4)
    if "max_N" in kwargs:  # tf-keras-vis picks the channels over the whole batch; one image
        images, labels = images[:1], labels[:1]
    ours_kwargs = {"max_channels": kwargs["max_N"]} if kwargs else {}
    explainer = cls(model, align_corners=True, **ours_kwargs)
    result = explainer.explain_full(images, labels)
    maps, grids = result.explanations, result.grid
    from tf_keras_vis.utils.scores import CategoricalScore

    reference = _tf_keras_vis(cls.__name__)(tf_keras_vis_model(model, "logit"))
    args = dict(
        penultimate_layer=explainer.layer.name,
        seek_penultimate_conv_layer=False,
        normalize_cam=False,
        **kwargs,
    )
    with warnings.catch_warnings():
        # tf-keras-vis' Scorecam hands Keras' predict a list for a single-input model.
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        ref_grids = reference(CategoricalScore(list(labels)), images, expand_cam=False, **args)
        ref_maps = reference(CategoricalScore(list(labels)), images, **args)
    for i in range(len(images)):
        assert _corr(grids[i], ref_grids[i]) >= 0.999
        assert _corr(maps[i], ref_maps[i]) >= 0.99
    if cls is not GradCAMPlusPlus:  # ours omits the paper's exp(score) factor
        np.testing.assert_allclose(grids, ref_grids, rtol=1e-3, atol=1e-5 * grids.max())
    if cls is ScoreCAM:  # its masks, hence its grid, depend on the upsampling
        return
    # Half-pixel upsampling (our default) changes only the maps, not the grid.
    default = cls(model, **ours_kwargs).explain_full(images, labels).grid
    np.testing.assert_allclose(default, grids, rtol=1e-5, atol=1e-7)


def test_bad_input(functional_model):
    with pytest.raises(ValueError, match="spatial"):
        GradCAM(functional_model, layer="gap")
    with pytest.raises(ValueError, match="spatial"):
        GradCAM(functional_model, layer="predictions")
    with pytest.raises(KeyError, match="conv"):
        GradCAM(functional_model, layer="conv7")
    cam = GradCAM(functional_model)
    with pytest.raises(ValueError, match="out of range"):
        cam.explain(_images(2), targets=[0, 3])
    with pytest.raises(ValueError, match="rank"):
        cam.explain(np.zeros((2, 1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="max_channels"):
        ScoreCAM(functional_model, max_channels=0)
    assert cam.explain(_images(1)[0]).shape == (16, 16)


@pytest.mark.parametrize(
    "cls,name",
    [
        (GradCAM, "gradcam"),
        (GradCAMPlusPlus, "gradcam++"),
        (LayerCAM, "layercam"),
        (ScoreCAM, "scorecam"),
    ],
)
def test_explain_full_holds_maps_grid_layer_and_targets(functional_model, cls, name):
    x = _images(2)
    explainer = cls(functional_model)
    result = explainer.explain_full(x, progress=True)
    top = functional_model.predict(x, verbose=0).argmax(-1)
    assert result.method == name and result.layer == "conv2"
    np.testing.assert_array_equal(result.targets, top)
    assert result.targets.dtype == np.int32
    assert result.explanations.dtype == np.float32 and result.explanations.shape == (2, 16, 16)
    assert result.grid.dtype == np.float32 and result.grid.shape == (2, *explainer.grid_shape)
    np.testing.assert_allclose(explainer.explain(x), result.explanations, rtol=1e-6)
    one = explainer.explain_full(x[0], targets=int(top[0]))  # batch first for one image too
    assert one.explanations.shape == (1, 16, 16) and one.grid.shape == (1, 8, 8)
    np.testing.assert_allclose(one.grid[0], result.grid[0], rtol=1e-5, atol=1e-7)
    assert not [k for k in vars(explainer) if k.startswith("last_")]  # nothing of a call kept


def test_explain_with_grid_is_a_deprecated_alias(functional_model):
    x = _images(2)
    cam = GradCAM(functional_model)
    result = cam.explain_full(x, targets=1)
    with pytest.warns(DeprecationWarning, match="explain_full"):
        maps, grids = cam.explain_with_grid(x, targets=1)
    np.testing.assert_array_equal(maps, result.explanations)
    np.testing.assert_array_equal(grids, result.grid)
    with pytest.warns(DeprecationWarning):
        maps, grids = cam.explain_with_grid(x[0], targets=1)
    assert maps.shape == (16, 16) and grids.shape == (8, 8)


def test_valid_padding_grid_placed_on_its_receptive_fields(keras):
    """A 5 x 5 'valid' convolution that copies its centre pixel: cell (i, j) of its 12 x 12 grid
    is pixel (i + 2, j + 2) of the 16 x 16 image. Placed by receptive fields, Grad-CAM of the
    linear head is the image itself inside the band the grid sees (edges held outside);
    stretched over the image (tf-keras-vis, ``placement="stretch"``) it is shifted."""
    inputs = keras.Input((16, 16, 1))
    copy = keras.layers.Conv2D(1, 5, padding="valid", use_bias=False, name="copy")
    x = keras.layers.GlobalAveragePooling2D()(copy(inputs))
    head = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, head(x))
    kernel = np.zeros((5, 5, 1, 1), np.float32)
    kernel[2, 2] = 1.0
    copy.set_weights([kernel])
    head.set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    images = np.zeros((3, 16, 16, 1), np.float32)
    spots = [(5, 9), (2, 2), (13, 11)]  # the last two on the band's edge
    for n, (r, c) in enumerate(spots):
        images[n, r, c] = 1.0
    placed = GradCAM(model, layer="copy").explain(images, 0)
    stretched = GradCAM(model, layer="copy", placement="stretch").explain(images, 0)
    for n, (r, c) in enumerate(spots):
        scale = placed[n].max()
        np.testing.assert_allclose(
            placed[n, 2:14, 2:14] / scale, images[n, 2:14, 2:14, 0], atol=1e-6
        )
        assert placed[n, r, c] == scale  # (the edge spots' value is held out to the border)
    assert np.unravel_index(placed[0].argmax(), (16, 16)) == spots[0]
    assert np.unravel_index(stretched[0].argmax(), (16, 16)) != spots[0]
    with pytest.raises(ValueError, match="placement"):
        GradCAM(model, placement="centre")
