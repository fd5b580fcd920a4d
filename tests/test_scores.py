"""Score functions: which number of a model's outputs an explanation explains.

Known answers on linear models (closed forms), equality with the classifier default, and one-line
errors for what cannot be scored."""

import numpy as np
import pytest
from scipy.signal import convolve2d

from kerasviz import scores
from kerasviz.attribution import Occlusion, Saliency, Scorer, create
from kerasviz.metrics import Faithfulness

SIZE = 12


@pytest.fixture(scope="module")
def two_heads(keras):
    """A class head (softmax) and a regression head that reads only the left half."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 1))
    flat = keras.layers.Flatten()(inputs)
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    klass = keras.layers.Dense(3, activation="softmax", name="klass")(
        keras.layers.GlobalAveragePooling2D()(conv)
    )
    value = keras.layers.Dense(2, name="value")(flat)
    model = keras.Model(inputs, {"classes": klass, "box": value})
    kernel = np.random.default_rng(1).normal(size=(SIZE, SIZE, 2)).astype("float32")
    kernel[:, SIZE // 2 :] = 0  # both values read the left half only
    model.get_layer("value").set_weights([kernel.reshape(-1, 2), np.zeros(2, "float32")])
    return model


@pytest.fixture(scope="module")
def dense(keras):
    """A linear 3x3 convolution: a per-pixel output (N, H, W, 2)."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((SIZE, SIZE, 1))
    return keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same", name="seg")(inputs))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(3).random((2, SIZE, SIZE, 1)).astype("float32")


def test_regression_of_one_output_is_zero_where_it_does_not_read(two_heads, images):
    score = scores.Output("box", scores.Regression(index=1))
    maps = Saliency(two_heads, score=score).explain(images)
    kernel = two_heads.get_layer("value").get_weights()[0][:, 1].reshape(SIZE, SIZE)
    np.testing.assert_allclose(maps[0], np.abs(kernel), rtol=1e-5)  # d(x.w)/dx = w
    occ = Occlusion(two_heads, patch=2, stride=2, fill=0.0, score=score).explain_full(images)
    assert np.all(occ.targets == 1)
    assert np.all(occ.explanations[:, :, SIZE // 2 :] == 0)
    assert np.any(occ.explanations[:, :, : SIZE // 2] != 0)
    values = two_heads(images)["box"].numpy()
    np.testing.assert_allclose(occ.reference, values[:, 1], rtol=1e-5)


def test_output_by_key_or_layer_name_and_logits(two_heads, images):
    by_key = Scorer(two_heads, output="logit", score=scores.Output("classes"))
    by_layer = Scorer(two_heads, output="logit", score=scores.Output("klass"))
    logits = by_key.predict(images)
    np.testing.assert_allclose(logits, by_layer.predict(images), rtol=1e-6)
    probs = two_heads(images)["classes"].numpy()
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax, probs, rtol=1e-5)


def test_region_score_is_zero_outside_the_dilated_region(dense, images):
    mask = np.zeros((SIZE, SIZE), bool)
    mask[4:7, 5:8] = True
    maps = Saliency(dense, score=scores.Region(mask, category=1)).explain(images)
    kernel = dense.get_layer("seg").get_weights()[0][:, :, 0, 1]
    closed = np.abs(convolve2d(mask.astype("float32"), kernel, mode="same"))
    np.testing.assert_allclose(maps[0], closed, rtol=1e-4, atol=1e-6)
    dilated = np.zeros_like(mask)
    dilated[3:8, 4:9] = True
    assert np.all(maps[:, ~dilated] == 0) and np.all(maps[:, mask] > 0)
    occ = create("occlusion", dense, patch=1, stride=1, score=scores.Region(mask, 1))
    assert np.all(occ.explain(images)[:, ~dilated] == 0)


def test_region_per_image_masks_and_gradcam(dense, images, keras):
    masks = np.zeros((2, SIZE, SIZE), bool)
    masks[0, :4, :4] = masks[1, 8:, 8:] = True
    score = scores.Region(masks, category=0)
    both = Saliency(dense, score=score).explain_full(images)
    assert both.targets.tolist() == [0, 1]  # each image its own mask
    for i in range(2):
        one = Saliency(dense, score=scores.Region(masks[i], 0)).explain(images[i : i + 1])
        np.testing.assert_allclose(both.explanations[i], one[0], rtol=1e-6)
    with pytest.raises(ValueError, match="Expected 2 images, one per mask"):
        Saliency(dense, score=score).explain(images[:1])
    inputs = keras.Input((SIZE, SIZE, 1))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="hidden")(inputs)
    seg = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="seg")(hidden))
    cam = create("gradcam", seg, score=scores.Region(masks[0], 1))
    assert cam.layer_path == "hidden"  # the last spatial layer before the dense head
    assert cam.explain(images).shape == (2, SIZE, SIZE)


def test_a_callable_equals_the_category_it_computes(keras, images):
    from keras import ops

    keras.utils.set_random_seed(4)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="c")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    def pick(outputs, targets):
        return ops.take_along_axis(outputs, ops.expand_dims(targets, 1), axis=1)[:, 0]

    for method in ("occlusion", "gradcam", "lime"):
        settings = {"patch": 4, "stride": 2} if method == "occlusion" else {}
        if method == "lime":
            settings = {"num_samples": 24, "segmentation": "grid", "seed": 0}
        want = create(method, model, **settings).explain(images, [2, 0])
        custom = scores.Custom(pick, num_targets=3)
        got = create(method, model, score=custom, **settings).explain(images, [2, 0])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_faithfulness_scores_the_same_number(two_heads, images):
    score = scores.Output("box", scores.Regression(0))
    maps = Saliency(two_heads, score=score).explain(images)
    curve = Faithfulness(two_heads, steps=4, score=score).deletion(images, maps)
    np.testing.assert_allclose(
        curve.scores[:, 0], two_heads(images)["box"].numpy()[:, 0], rtol=1e-5
    )


def test_what_cannot_be_scored_is_said_in_one_line(two_heads, dense):
    with pytest.raises(ValueError, match=r"2 outputs: 'box' \(None, 2\), 'classes'.*score="):
        Saliency(two_heads)
    with pytest.raises(KeyError, match="Unknown output 'boxes'.*Did you mean 'box'"):
        Saliency(two_heads, score=scores.Output("boxes"))
    with pytest.raises(ValueError, match=r"Region\(mask, category\)"):
        Saliency(dense)
    with pytest.raises(ValueError, match=r"mask` of shape \(5, 5\) to match"):
        Saliency(dense, score=scores.Region(np.ones((5, 5), bool)))
    with pytest.raises(ValueError, match=r"one value per image.*shape \(2, 2\)"):
        Saliency(dense, score=lambda outputs, targets: outputs[:, 0, 0, :])
    with pytest.raises(ValueError, match=r"`category` in \[0, 2\)"):
        Saliency(dense, score=scores.Region(np.ones((SIZE, SIZE), bool), category=5))
    with pytest.raises(ValueError, match=r"`index` < 2"):
        Saliency(two_heads, score=scores.Output("box", scores.Regression(2)))
    with pytest.raises(ValueError, match="out of range"):
        Saliency(two_heads, score=scores.Output(1)).explain(np.zeros((1, SIZE, SIZE, 1)), 3)


def test_parse_the_command_line_form():
    assert scores.parse("category").to_dict() == {"kind": "Category"}
    assert scores.parse("output:box:regression:1").to_dict() == {
        "kind": "Output",
        "name": "box",
        "inner": {"kind": "Regression", "index": 1},
    }
    with pytest.raises(ValueError, match="--score"):
        scores.parse("region:3")
