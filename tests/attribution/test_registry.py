"""The registry of explanation methods: names, defaults, lazy classes and `create`."""

import numpy as np
import pytest

from kerasviz import attribution, inspect

# Small settings so that every method runs in a moment; the registry defaults fill the rest.
FAST = {
    "smoothgrad": {"samples": 3},
    "integrated_gradients": {"steps": 4},
    "lime": {"num_samples": 40},
    "occlusion": {"batch_size": 64},
    "occlusion_incremental": {"batch_size": 64},
}


def test_table_names_and_lazy_classes():
    assert {"occlusion", "occlusion_incremental", "gradcam", "lime"} <= set(attribution.REGISTRY)
    assert attribution.METHODS == {n: e.cls for n, e in attribution.REGISTRY.items()}
    for name, entry in attribution.REGISTRY.items():
        cls = attribution.explainer_class(name)
        assert cls.__name__ == entry.cls and getattr(attribution, entry.cls) is cls
    from kerasviz.attribution._base import Scorer
    from kerasviz.attribution._result import Completeness, Explanation

    assert attribution.Explanation is Explanation and attribution.Completeness is Completeness
    assert attribution.Scorer is Scorer
    with pytest.raises(KeyError, match="Did you mean.*occlusion"):
        attribution.check_method("oclusion")
    with pytest.raises(KeyError, match="Known methods"):
        attribution.create("telepathy", None)
    with pytest.raises(AttributeError, match="Nothing"):
        attribution.Nothing  # noqa: B018


def test_default_settings():
    assert attribution.default_settings("occlusion", (64, 64, 3)) == {
        "patch": 11,
        "stride": 2,
        "output": "logit",
    }
    assert attribution.default_settings("occlusion_incremental", (224, 224, 3)) == {
        "patch": 37,
        "stride": 9,
        "output": "logit",
    }
    assert attribution.default_settings("lime", (32, 32, 3))["segmentation"] == "grid"
    assert attribution.default_settings("lime", (224, 224, 3))["segmentation"] == "slic"
    assert attribution.default_settings("gradcam", (64, 64, 3)) == {}


@pytest.mark.parametrize("name", sorted(attribution.REGISTRY))
def test_create_equals_the_class_with_the_registry_defaults(functional_model, name):
    images = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    settings = FAST.get(name, {})
    made = attribution.create(name, functional_model, **settings)
    defaults = attribution.default_settings(name, inspect.input_shape(functional_model))
    cls = attribution.explainer_class(name)
    by_hand = cls(functional_model, **{**defaults, **settings})
    assert type(made) is cls
    np.testing.assert_array_equal(made.explain(images, [0, 2]), by_hand.explain(images, [0, 2]))


def test_open_size_defaults_come_from_the_images(keras):
    from kerasviz import attribution

    assert attribution.default_settings("occlusion", (None, None, 3)) == {"output": "logit"}
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    explainer = attribution.create("occlusion", model)
    images = np.random.default_rng(0).random((1, 36, 24, 3)).astype("float32")
    assert explainer.explain(images, [0]).shape == (1, 36, 24)
    assert tuple(explainer.for_size(36, 24).patch) == (4, 4)  # a sixth of the smaller side
    assert explainer.output == "logit"
