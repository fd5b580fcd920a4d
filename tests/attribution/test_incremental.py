"""Incremental occlusion (Krypton): exact equality with full re-inference, and its options."""

import numpy as np
import pytest

from kerasviz import attribution, inspect
from kerasviz.attribution.incremental import (
    IncrementalFallbackWarning,
    IncrementalOcclusion,
    flops,
)
from kerasviz.attribution.occlusion import Occlusion


def _images(n, height, width, channels=3, seed=0):
    return np.random.default_rng(seed).random((n, height, width, channels)).astype(np.float32)


def _exact(model, images, batch_sizes=(1, 3, 64), output="logit", **settings):
    """Incremental grids and maps equal full re-inference (1e-4) for every batch size."""
    ref = Occlusion(
        model,
        output=output,
        **{k: v for k, v in settings.items() if k in ("patch", "stride", "fill")},
    ).explain_full(images)
    ref_maps, ref_grid = ref.explanations, ref.grid
    assert np.abs(ref_grid).max() > 1e-3  # the patches change the score: the test can fail
    explainer = None
    for batch_size in batch_sizes:
        explainer = IncrementalOcclusion(model, output=output, batch_size=batch_size, **settings)
        result = explainer.explain_full(images)
        maps, grid = result.explanations, result.grid
        assert result.method == "occlusion_incremental"
        np.testing.assert_array_equal(result.targets, ref.targets)
        for got, want in zip(result.positions, ref.positions, strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(grid, ref_grid, atol=1e-4, rtol=0)
        np.testing.assert_allclose(maps, ref_maps, atol=1e-4, rtol=0)
    return explainer


@pytest.fixture(scope="module")
def plain_model(keras):
    """Odd, non-square maps; 'same' and 'valid' padding; strides 1 and 2; dilation; pooling."""
    keras.utils.set_random_seed(11)
    layers = keras.layers
    inputs = keras.Input((39, 35, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="same_s1")(inputs)
    x = layers.Conv2D(4, (3, 2), strides=2, padding="same", activation="tanh", name="same_s2")(x)
    x = layers.AveragePooling2D(2, strides=1, name="avg_valid")(x)  # 20x18 -> 19x17
    x = layers.Conv2D(4, 3, dilation_rate=2, padding="same", name="dilated")(x)
    x = layers.Conv2D(5, 3, strides=2, padding="valid", activation="relu", name="valid_s2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="max_same")(x)  # 9x8 -> 5x4
    x = layers.Flatten()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="plain")


@pytest.fixture(scope="module")
def residual_model(keras):
    """Residual and MobileNet-style blocks: BN, ReLU6, depthwise, padding, merges, dropout."""
    keras.utils.set_random_seed(12)
    layers = keras.layers
    inputs = keras.Input((30, 30, 3))
    x = layers.Conv2D(6, 3, strides=2, padding="same", use_bias=False)(inputs)  # 15x15
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(6, 1)(y)
    x = layers.Add()([x, y])
    x = layers.ZeroPadding2D(((1, 0), (0, 1)))(x)  # 16x16
    x = layers.DepthwiseConv2D(3, strides=2, padding="valid")(x)  # 7x7
    s = layers.SeparableConv2D(4, 3, padding="same", activation="relu")(x)
    c = layers.Conv2D(4, 1)(x)
    x = layers.Concatenate()([s, c])
    gate = layers.Activation("sigmoid")(layers.Conv2D(8, 1)(x))
    x = layers.Multiply()([x, gate])
    x = layers.Dropout(0.5)(x)
    x = layers.GlobalMaxPooling2D()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="residual")
    _calibrate_batchnorm(keras, model, _images(8, 30, 30, seed=9))
    return model


def test_plain_stack_exact_every_batch_size_and_border(plain_model):
    images = _images(2, 39, 35)
    explainer = _exact(
        plain_model, images, batch_sizes=(5, 64), patch=(4, 3), stride=(4, 3), full_threshold=1.0
    )
    plan = explainer.plan(39, 35)
    windowed = [node.path for node in plan.nodes if plan.mode[node.index] == "win"]
    assert {"same_s1", "same_s2", "avg_valid", "dilated", "valid_s2", "max_same"} <= set(windowed)
    assert explainer.traces == 1


@pytest.mark.parametrize("fill,batch_sizes", [("mean", (4, 50)), ("blur", (50,)), (0.25, (50,))])
def test_residual_network_exact_for_each_fill(residual_model, fill, batch_sizes):
    explainer = _exact(
        residual_model,
        _images(2, 30, 30, seed=1),
        batch_sizes=batch_sizes,
        output="probability",
        patch=6,
        stride=4,
        fill=fill,
        full_threshold=0.9,
    )
    plan = explainer.plan(30, 30)
    merges = [n for n in plan.nodes if n.kind == "merge" and plan.mode[n.index] == "win"]
    assert len(merges) == 3  # Add, Concatenate and Multiply ran on windows


def _calibrate_batchnorm(keras, model, images):
    """Moving statistics set to the batch statistics of ``images`` (one training-mode call), so
    a random-weight net keeps unit-scale activations and responds to patches."""
    norms = [
        layer
        for _, layer in inspect.iter_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)


def test_mobilenetv2_nested_backbone_exact(keras):
    keras.utils.set_random_seed(15)
    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35
    )
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4)(x), name="nested_mobilenet")
    _calibrate_batchnorm(keras, model, _images(8, 32, 32, seed=9))
    explainer = _exact(model, _images(1, 32, 32, seed=2), batch_sizes=(24,), patch=4, stride=4)
    plan = explainer.plan(32, 32)
    assert plan.mode[1] == "win" and "full" in plan.mode
    kinds = {type(n.layer).__name__ for n in plan.nodes[1:] if plan.mode[n.index] == "win"}
    assert {"Conv2D", "BatchNormalization", "ReLU", "DepthwiseConv2D", "ZeroPadding2D"} <= kinds


def test_sequential_models_exact(sequential_model, sequential_no_input):
    images = _images(2, 16, 16, seed=3)
    for model in (sequential_model, sequential_no_input):
        _exact(model, images, batch_sizes=(1, 5), patch=3, stride=2)


def test_nested_functional_and_sequential_blocks_exact(keras):
    keras.utils.set_random_seed(13)
    layers = keras.layers
    inner_in = keras.Input((20, 20, 3))
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inner_in)
    h = layers.Conv2D(4, 3, strides=2, padding="same")(h)
    inner = keras.Model(inner_in, h, name="backbone")
    block = keras.Sequential([layers.Conv2D(5, 3, padding="valid"), layers.ReLU()], name="block")
    inputs = keras.Input((20, 20, 3))
    x = block(inner(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3)(x), name="outer")
    explainer = _exact(
        model, _images(2, 20, 20, seed=4), batch_sizes=(2, 9), patch=4, stride=3, full_threshold=1.0
    )
    plan = explainer.plan(20, 20)
    windowed = [type(n.layer).__name__ for n in plan.nodes[1:] if plan.mode[n.index] == "win"]
    assert windowed == ["Conv2D", "Conv2D", "Conv2D", "ReLU"]  # both nested models' layers


def test_unknown_layer_falls_back_with_a_notice_and_stays_exact(keras):
    keras.utils.set_random_seed(14)
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = layers.UpSampling2D(name="upsample")(x)
    x = layers.Conv2D(4, 3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3)(x))
    with pytest.warns(IncrementalFallbackWarning, match="'upsample' .*UpSampling2D"):
        explainer = _exact(model, _images(1, 16, 16, seed=5), batch_sizes=(8,), patch=4, stride=4)
    plan = explainer.plan(16, 16)  # cached: no second warning
    assert len(plan.notices) == 1 and "upsample" in plan.notices[0]
    assert plan.mode[1] == "win" and plan.mode[2] == "full"


def test_projective_threshold_is_exact_at_one_and_approximate_below(plain_model):
    images = _images(1, 39, 35, seed=6)
    exact = Occlusion(plain_model, patch=5, stride=3, output="logit").explain_full(images).grid
    wide = IncrementalOcclusion(
        plain_model, patch=5, stride=3, output="logit", full_threshold=1.0, projective_threshold=1.0
    )
    np.testing.assert_allclose(wide.explain_full(images).grid, exact, atol=1e-4)
    narrow = IncrementalOcclusion(
        plain_model, patch=5, stride=3, output="logit", full_threshold=1.0, projective_threshold=0.2
    )
    approx = narrow.explain_full(images).grid
    error = np.abs(approx - exact).max()
    assert 1e-4 < error < np.abs(exact).max() * 2
    sizes = [a[0].size for a in narrow.plan(39, 35).axes if a is not None]
    assert max(sizes[1:]) <= max(5, int(np.ceil(0.2 * 39)))


def test_adaptive_scores_the_chosen_positions_exactly(residual_model):
    images = _images(2, 30, 30, seed=7)
    exact = Occlusion(residual_model, patch=6, stride=3, output="logit").explain_full(images).grid
    full = IncrementalOcclusion(residual_model, patch=6, stride=3, output="logit", adaptive=1.0)
    everything = full.explain_full(images)
    np.testing.assert_allclose(everything.grid, exact, atol=1e-4)
    assert everything.exact.all()
    half = IncrementalOcclusion(residual_model, patch=6, stride=3, output="logit", adaptive=0.5)
    result = half.explain_full(images)
    grid, mask = result.grid, result.exact
    np.testing.assert_array_equal(half.explain(images), result.explanations)
    rows, cols = exact.shape[1:]
    coarse = len(range(0, rows, 2)) * len(range(0, cols, 2))  # odd counts: the edge is included
    rest = rows * cols - coarse
    assert mask.sum(axis=(1, 2)).tolist() == [coarse + int(np.ceil(rest / 2))] * 2
    np.testing.assert_allclose(grid[mask], exact[mask], atol=1e-4)
    assert not np.allclose(grid[~mask], exact[~mask], atol=1e-6)


def test_flops_closed_form(keras):
    inputs = keras.Input((16, 16, 2))
    x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    explainer = IncrementalOcclusion(model, patch=4, stride=4, full_threshold=1.0)
    incremental, full = flops(explainer.plan(16, 16))
    conv, dense = 2 * 9 * 2 * 3, 2 * 16 * 16 * 3 * 2
    assert full == conv * 256 + dense
    assert incremental == conv * 6 * 6 + dense  # window: the 4x4 patch grown by 1 each side


def test_layer_times_cover_every_layer(sequential_model):
    rows = IncrementalOcclusion(sequential_model, patch=4, stride=4, batch_size=4).layer_times(
        _images(1, 16, 16), repeats=1
    )
    assert [r[0] for r in rows] == ["conv1", "pool1", "conv2", "gap", "predictions"]
    assert all(r[2] >= 0 and r[3] >= 0 for r in rows)


@pytest.mark.parametrize(
    "name,value",
    [
        ("full_threshold", 0.0),
        ("full_threshold", 1.5),
        ("projective_threshold", -0.1),
        ("adaptive", True),
    ],
)
def test_bad_settings(sequential_model, name, value):
    with pytest.raises(ValueError, match=name):
        IncrementalOcclusion(sequential_model, **{name: value})


def test_mode_other_than_incremental_is_refused(sequential_model):
    with pytest.raises(ValueError, match="mode.*Occlusion"):
        IncrementalOcclusion(sequential_model, mode="full")
    with pytest.warns(DeprecationWarning, match="mode"):
        IncrementalOcclusion(sequential_model, patch=4, mode="incremental")


def test_score_of_arbitrary_positions_matches_full_kernel(residual_model):
    images = _images(2, 30, 30, seed=8)
    full = Occlusion(residual_model, patch=5, stride=5, output="logit")
    inc = IncrementalOcclusion(residual_model, patch=5, stride=5, output="logit", batch_size=4)
    tasks = np.array(
        [[1, 0, 0], [0, 25, 3], [1, 7, 25], [0, -(2**30), 0], [0, 11, 13], [1, 25, 25]], np.int32
    )  # off the stride grid, borders, a reference row
    fills = full.fills(images)
    np.testing.assert_allclose(
        inc.score(images, tasks, fills), full.score(images, tasks, fills), atol=1e-4, rtol=0
    )
    with pytest.raises(ValueError, match="inside"):
        inc.score(images, np.array([[0, 26, 0]], np.int32))


def test_occlusion_mode_switch(residual_model):
    """The registry replaces ``Occlusion(..., mode="incremental")``, which now names it."""
    images = _images(1, 30, 30, seed=10)
    full = Occlusion(residual_model, patch=6, stride=6)
    inc = attribution.create(
        "occlusion_incremental",
        residual_model,
        patch=6,
        stride=6,
        output="probability",
        full_threshold=0.9,
    )
    assert type(full) is Occlusion and not isinstance(full, IncrementalOcclusion)
    assert type(inc) is IncrementalOcclusion and not isinstance(inc, Occlusion)
    assert inc.full_threshold == 0.9
    np.testing.assert_allclose(inc.explain(images), full.explain(images), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="IncrementalOcclusion"):
        Occlusion(residual_model, patch=6, mode="incremental")
    with pytest.raises(ValueError, match="mode"):
        Occlusion(residual_model, mode="fast")
    with pytest.raises(TypeError):
        Occlusion(residual_model, full_threshold=0.9)


def test_packages_do_not_import_each_other():
    """Patch geometry lives in `_patches`: neither occlusion module imports the other."""
    import ast
    from pathlib import Path

    root = Path(attribution.__file__).parent
    sources = {
        "occlusion": [root / "occlusion.py"],
        "incremental": sorted((root / "incremental").glob("*.py")),
    }
    for name, other in (("occlusion", "incremental"), ("incremental", "occlusion")):
        for path in sources[name]:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    assert node.module != f"kerasviz.attribution.{other}", path
                    assert not (node.module or "").startswith(f"kerasviz.attribution.{other}."), (
                        path
                    )
                if isinstance(node, ast.ImportFrom) and node.module == "kerasviz.attribution":
                    assert other not in {a.name for a in node.names}, path
    for path in sources["incremental"]:
        assert len(path.read_text().splitlines()) < 600, path


def test_recorder_uses_the_public_replay_hook():
    """The call graph is recorded through ``on_call``, not by overriding ``Replay._call``."""
    from kerasviz.attribution.incremental import _graph

    assert not any(
        isinstance(v, type) and issubclass(v, inspect.Replay) for v in vars(_graph).values()
    )
