"""Every model a user brings: each keras.applications family (weights=None, small inputs) and
the model shapes that broke before (reloaded residual nets with Keras' default names, a
Rescaling/Normalization front end, nested backbones, legacy HDF5, open input sizes) run every
capability: layer table, filters, activations (raw ``keras.ops`` operations included),
``kerasviz info``, default features and the explainers of the registry.

Time: every explainer on every family costs about 30 s (MobileNetV3Small, 32 px) to 150 s
(InceptionResNetV2, 75 px) on 2 CPU cores, almost all of it graph tracing. By default each
family runs the capabilities above, Grad-CAM on its default layer and one more explainer,
rotated so that every method of ``attribution.METHODS`` runs on at least one family; the small
special models run every method (the nested MobileNetV3 backbone: four).
``KERASVIZ_ZOO=full`` runs every method everywhere.
"""

import os
import warnings

import numpy as np
import pytest

from kerasviz import activations, attribution, cli, filters, inspect
from kerasviz.attribution.incremental import IncrementalFallbackWarning
from kerasviz.embedding.extraction import FeatureExtractor

FULL = os.environ.get("KERASVIZ_ZOO") == "full"

# one entry per family (the builder that the family's other sizes share): size, knobs
FAMILIES = {
    "Xception": (71, {}),
    "VGG16": (32, {}),
    "VGG19": (32, {}),
    "ResNet50": (32, {}),
    "ResNet50V2": (32, {}),
    "InceptionV3": (75, {}),
    "InceptionResNetV2": (75, {}),
    "MobileNet": (32, {"alpha": 0.25}),
    "MobileNetV2": (32, {"alpha": 0.35}),
    "MobileNetV3Small": (32, {"alpha": 0.75}),
    "MobileNetV3Large": (32, {"alpha": 0.75}),
    "DenseNet121": (32, {}),
    "NASNetMobile": (32, {}),
    "EfficientNetB0": (32, {}),
    "EfficientNetV2B0": (32, {}),
    "ConvNeXtTiny": (32, {}),
}
# every other application is a size of one of the families above
VARIANTS = {
    "ConvNeXt": "ConvNeXtTiny",
    "DenseNet": "DenseNet121",
    "EfficientNetB": "EfficientNetB0",
    "EfficientNetV2": "EfficientNetV2B0",
    "NASNet": "NASNetMobile",
    "ResNet1": "ResNet50",
    "VGG": "VGG16",
}

_CHEAP = {
    "occlusion": lambda px: {"patch": px // 2, "stride": px // 2},
    "occlusion_incremental": lambda px: {"patch": px // 2, "stride": px // 2},
    "smoothgrad": lambda px: {"samples": 2},
    "integrated_gradients": lambda px: {"steps": 4},
    "scorecam": lambda px: {"max_channels": 2},
    "lime": lambda px: {
        "num_samples": 8,
        "segmentation": "grid",
        "segmentation_args": {"cells": 2},
    },
}
_CAM = ("gradcam", "gradcam++", "scorecam", "layercam")
METHODS = list(attribution.METHODS)


def _methods_for(index: int) -> list[str]:
    if FULL:
        return METHODS
    return sorted({METHODS[index % len(METHODS)], "gradcam"})


def test_every_application_family_is_in_the_zoo(keras):
    names = [n for n in dir(keras.applications) if n[:1].isupper()]
    missing = [
        n
        for n in names
        if n not in FAMILIES and not any(n.startswith(prefix) for prefix in VARIANTS)
    ]
    assert not missing, f"keras.applications families without a zoo entry: {missing}"
    assert all(name in names for name in FAMILIES)


def _images(px: int, n: int = 1) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, px, px, 3)).astype("float32")


def _check_capabilities(model, x, methods, raw_ops_expected: bool | None = None):
    """Run every capability on ``model`` and ``x``; assert what each must give."""
    px_h, px_w = x.shape[1:3]
    table = inspect.layer_table(model)
    assert table and all(isinstance(r.params, int) for r in table)
    raw = [r for r in table if inspect.is_raw_op(inspect.find_layer(model, r.path))]
    if raw_ops_expected is not None:
        assert bool(raw) == raw_ops_expected, [r.path for r in raw][:5]
    assert all(r.params == 0 for r in raw)
    cam = inspect.last_spatial_layer(model)
    conv = next(r.path for r in table if r.filters)
    kernels = filters.filters(model, conv)
    assert kernels.ndim == 4 and np.isfinite(kernels).all()
    taps = [conv, cam, *[r.path for r in raw[:1]]]
    maps = activations.activations(model, x, taps)
    assert list(maps) == taps
    for key, value in maps.items():
        assert value.shape[0] == len(x) and np.isfinite(value).all(), key
    text = cli.describe(model)
    assert f"default CAM layer: {cam}" in text
    for r in raw[:3]:
        assert r.path in text and r.type in text
    features = FeatureExtractor(model).extract(x)
    assert features.ndim == 2 and features.shape[0] == len(x)
    assert np.isfinite(features).all()
    for name in methods:
        size = min(px_h, px_w)
        settings = _CHEAP.get(name, lambda px: {})(size)
        with warnings.catch_warnings():  # layers without a window rule are recomputed in full
            warnings.simplefilter("ignore", IncrementalFallbackWarning)
            result = attribution.create(name, model, **settings).explain(x, [1] * len(x))
        assert result.shape == (len(x), px_h, px_w), name
        assert np.isfinite(result).all(), name
        if name not in _CAM:  # a CAM of random weights may be all zero after its ReLU
            assert np.ptp(result) > 0, name
    return table


@pytest.mark.parametrize("family", list(FAMILIES))
def test_application(keras, family):
    px, knobs = FAMILIES[family]
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, family)(
        weights=None, input_shape=(px, px, 3), classes=5, **knobs
    )
    raw = family.startswith(("MobileNetV3", "ConvNeXt")) or None
    _check_capabilities(model, _images(px), _methods_for(list(FAMILIES).index(family)), raw)


# --- the model shapes that broke before: tiny, every method ------------------------------------


def _residual(keras):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same")(x)
    # the names Keras gives the first two Add layers of a process (what a reloaded net has)
    x = keras.layers.Add(name="add")([x, y])
    y = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Add(name="add_1")([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _front_end(keras):
    norm = keras.layers.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.05, 0.06, 0.07])
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 255),
            norm,
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Conv2D(6, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def _backbone(keras):
    return keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), include_top=False, alpha=0.75
    )


def _nested_functional(keras):
    inputs = keras.Input((32, 32, 3))
    x = _backbone(keras)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _nested_sequential(keras):
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            _backbone(keras),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def _dynamic(keras):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_reloaded_residual_net(keras, tmp_path):
    from kerasviz import models

    keras.utils.set_random_seed(2)
    _residual(keras).save(tmp_path / "res.keras")
    model = models.load(str(tmp_path / "res.keras"))
    assert {"add", "add_1"} <= {layer.name for layer in model.layers}
    _check_capabilities(model, _images(16), METHODS)


def test_front_end(keras):
    keras.utils.set_random_seed(3)
    _check_capabilities(_front_end(keras), _images(16), METHODS)


def test_nested_functional(keras):
    keras.utils.set_random_seed(4)
    model = _nested_functional(keras)
    methods = METHODS if FULL else ["gradcam", "saliency", "guided_backprop", "lime"]
    table = _check_capabilities(model, _images(32), methods, raw_ops_expected=True)
    raw = next(r.path for r in table if r.type == "Add" and "/" in r.path)
    assert activations.activations(model, _images(32), [raw])[raw].ndim == 4


def test_nested_sequential(keras):
    keras.utils.set_random_seed(5)
    _check_capabilities(_nested_sequential(keras), _images(32), ["gradcam", "saliency", "lime"])


def test_legacy_hdf5(keras, tmp_path):
    from kerasviz import models

    keras.utils.set_random_seed(6)
    path = tmp_path / "legacy.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that HDF5 is legacy
        _residual(keras).save(path)
        model = models.load(str(path))
    _check_capabilities(model, _images(16), ["gradcam", "saliency", "occlusion"])


def test_dynamic_size(keras):
    keras.utils.set_random_seed(7)
    model = _dynamic(keras)
    table = _check_capabilities(model, _images(24, 2), METHODS)
    assert table[0].output_shape[1:3] == (None, None)
    with pytest.raises(ValueError, match="reduce"):
        FeatureExtractor(model, layer=table[0].path, reduce="flatten")


def test_dynamic_size_classes_used_directly(keras):
    """Without `create`, the CAM classes upsample to each batch's own size; incremental
    occlusion, which plans for one size, names the two ways to give it one."""
    from kerasviz.attribution import GradCAM, IncrementalOcclusion, ScoreCAM

    keras.utils.set_random_seed(8)
    model = _dynamic(keras)
    for size in ((24, 24), (20, 28)):
        x = np.random.default_rng(0).uniform(0, 255, (2, *size, 3)).astype("float32")
        for cls in (GradCAM, ScoreCAM):
            direct = cls(model).explain(x, [1, 1])
            built = attribution.create(cls.method, model).explain(x, [1, 1])
            np.testing.assert_allclose(direct, built, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sized_model"):
        IncrementalOcclusion(model, patch=8, stride=8).explain(x)
