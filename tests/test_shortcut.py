"""Shortcut finder: background reliance by hand, reports on hand-made models, the snow models."""

import numpy as np
import pytest

from kerasviz import shortcut


class TestBackgroundReliance:
    def test_by_hand(self):
        maps = np.zeros((2, 4, 4), np.float32)
        maps[0, 0, 0] = 3.0  # inside
        maps[0, 3, 3] = 1.0  # outside
        maps[0, 2, 2] = -5.0  # negative mass is not counted
        maps[1] = 1.0  # uniform: the background's share of the image
        masks = np.zeros((2, 4, 4), bool)
        masks[:, :2, :2] = True
        np.testing.assert_allclose(shortcut.background_reliance(maps, masks), [0.25, 0.75])

    def test_single_map_and_no_positive_mass(self):
        mask = np.eye(3, dtype=bool)
        assert shortcut.background_reliance(np.ones((3, 3)), mask) == pytest.approx(6 / 9)
        assert np.isnan(shortcut.background_reliance(-np.ones((3, 3)), mask))

    def test_margin_counts_nearby_pixels_as_object(self):
        maps = np.zeros((1, 7, 7))
        masks = np.zeros((1, 7, 7), bool)
        masks[0, 3, 3] = True
        maps[0, 3, 5] = 1.0  # two pixels right of the object
        maps[0, 3, 3] = 1.0
        assert shortcut.background_reliance(maps, masks, margin=0)[0] == pytest.approx(0.5)
        assert shortcut.background_reliance(maps, masks, margin=1)[0] == pytest.approx(0.5)
        assert shortcut.background_reliance(maps, masks, margin=2)[0] == pytest.approx(0.0)

    def test_bad_masks(self):
        with pytest.raises(ValueError, match="masks"):
            shortcut.background_reliance(np.ones((2, 4, 4)), np.ones((2, 4, 5), bool))
        with pytest.raises(ValueError, match="masks"):
            shortcut.background_reliance(np.ones((2, 4, 4)), np.ones((1, 4, 4), bool))
        with pytest.raises(TypeError, match="masks"):
            shortcut.background_reliance(np.ones((1, 2, 2)), np.full((1, 2, 2), 0.5))
        with pytest.raises(ValueError, match="margin"):
            shortcut.background_reliance(np.ones((1, 2, 2)), np.ones((1, 2, 2), bool), -1)


SIZE = 16


def _region_model(keras, inside: bool):
    """2 classes; logit 0 is the mean of the top-left 8x8 quarter (``inside``) or the rest."""
    region = np.zeros((SIZE, SIZE), bool)
    region[:8, :8] = True
    read = region if inside else ~region
    kernel = np.zeros((SIZE * SIZE * 3, 2), np.float32)
    kernel[:, 0] = np.repeat(read.ravel(), 3) / (3 * read.sum())
    inputs = keras.Input((SIZE, SIZE, 3))
    dense = keras.layers.Dense(2)
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([kernel, np.array([0.0, 0.5], np.float32)])  # logit 1 is constant 0.5
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.6, 1.0, (3, SIZE, SIZE, 3)).astype(np.float32)
    masks = np.zeros((3, SIZE, SIZE), bool)
    masks[:, :8, :8] = True  # the "object" is the top-left quarter
    labels = np.zeros(3, np.int64)
    return images, masks, labels


class TestReport:
    def test_object_model_vs_background_model(self, keras, data):
        images, masks, labels = data
        settings = {
            "segmentation": "grid",
            "segmentation_args": {"cells": 4},
            "fill": 0.0,
            "num_samples": 200,
        }
        swapped = (images * 0.3, labels)  # dimmer: the mean drops under the class-1 constant
        reports = shortcut.compare(
            {"object": _region_model(keras, True), "background": _region_model(keras, False)},
            images,
            masks,
            labels,
            methods=("lime",),
            swapped=swapped,
            settings={"lime": settings},
        )
        obj, bg = reports["object"]["lime"], reports["background"]["lime"]
        assert obj.mean_reliance < 0.02 and bg.mean_reliance > 0.98
        assert obj.background_share == pytest.approx(0.75)
        assert obj.accuracy == 1.0 and obj.swapped_accuracy == 0.0 and obj.accuracy_drop == 1.0
        table = shortcut.format_table(reports, margins=(0, 2))
        assert "background" in table and "rel@2px" in table
        assert obj.reliance_at(0) == pytest.approx(obj.mean_reliance)

    def test_explainer_object_and_names(self, keras, data):
        images, masks, labels = data
        model = _region_model(keras, True)

        class Uniform:  # any object with explain(inputs, targets)
            def explain(self, inputs, targets=None):
                return np.ones(np.shape(inputs)[:3], np.float32)

        report = shortcut.shortcut_report(model, images, masks, labels, Uniform())
        np.testing.assert_allclose(report.reliance, 0.75)
        assert report.method == "Uniform" and np.isnan(report.swapped_accuracy)
        assert shortcut.explainer(model, "lime", num_samples=7).num_samples == 7
        with pytest.raises(KeyError, match="Known"):
            shortcut.explainer(model, "telepathy")

    def test_explainers_come_from_the_registry(self, keras, data):
        from kerasviz import attribution
        from kerasviz.attribution import IncrementalOcclusion, Occlusion

        images, _, labels = data
        model = _region_model(keras, True)
        assert shortcut.available_methods() == ["lime", "occlusion", "gradcam"]
        occ = shortcut.explainer(model, "occlusion")
        assert type(occ) is Occlusion  # the finder's own defaults over the registry's
        assert (occ.patch, occ.stride, occ.fill, occ.output) == (
            (8, 8),
            (4, 4),
            "blur",
            "probability",
        )
        np.testing.assert_array_equal(
            occ.explain(images, 0),
            attribution.create(
                "occlusion", model, patch=8, stride=4, fill="blur", output="probability"
            ).explain(images, 0),
        )
        inc = shortcut.explainer(model, "occlusion_incremental", full_threshold=0.9)
        assert type(inc) is IncrementalOcclusion and inc.output == "logit"  # registry defaults
        assert shortcut.explainer(model, "Occlusion").patch == (8, 8)  # a friendly name
        assert shortcut.explainer(model, "IntegratedGradients").steps == 64  # class defaults
        assert shortcut.accuracy(model, images, labels) == 1.0
        assert shortcut.accuracy(model, images * 0.3, labels, batch_size=2) == 0.0

    def test_bad_input(self, keras, data):
        images, masks, labels = data
        model = _region_model(keras, True)
        with pytest.raises(ValueError, match="masks"):
            shortcut.shortcut_report(model, images, masks[:, :8], labels, "lime")
        with pytest.raises(ValueError, match="masks"):
            shortcut.shortcut_report(model, images, masks[:2], labels, "lime")
        with pytest.raises(ValueError, match="labels"):
            shortcut.shortcut_report(model, images, masks, labels[:2], "lime")
        with pytest.raises(ValueError, match="explain"):
            shortcut.shortcut_report(model, images, masks, labels, "lime", explain="truth")
        with pytest.raises(ValueError, match="swapped"):
            shortcut.shortcut_report(model, images, masks, labels, "lime", swapped=images)


@pytest.mark.slow
def test_snow_models_meet_targets(shipped):
    """The issue's targets, measured exactly (margin 0): every method finds the biased model's
    shortcut (reliance >= 0.6) and LIME and occlusion clear the fair one (<= 0.3).

    On 16 images (examples/snow_shortcut.py): biased 0.83 / 0.73 / 0.85 (LIME, occlusion,
    Grad-CAM), fair 0.10 / 0.25 / 0.42; the background covers 0.75 of the pixels.
    """
    from kerasviz import datasets

    images, labels, masks = datasets.snow(6, "test", seed=1)
    swapped = datasets.snow(60, "swapped", seed=1)[:2]
    nets = {"biased": shipped("snow_biased"), "fair": shipped("snow_fair")}
    reports = shortcut.compare(
        nets,
        images,
        masks,
        labels,
        methods=("lime", "occlusion", "gradcam"),
        swapped=swapped,
        settings={"lime": {"num_samples": 300}},
    )
    biased, fair = reports["biased"], reports["fair"]
    for method in ("lime", "occlusion", "gradcam"):
        assert biased[method].mean_reliance >= 0.6, method
    for method in ("lime", "occlusion"):
        assert fair[method].mean_reliance <= 0.3, method
        # The fair model's maps sit on the animal far more than a mask-blind map would.
        assert fair[method].mean_reliance < fair[method].background_share / 2, method
    assert biased["lime"].accuracy == 1.0 and biased["lime"].swapped_accuracy <= 0.1
    assert fair["lime"].swapped_accuracy >= 0.9
