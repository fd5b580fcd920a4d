"""Fuzzing every public explainer and renderer with hypothesis.

Random shapes, dtypes (uint8, int, float16, float64, bool), NaN and inf, empty batches, huge
patches, zero or negative strides, out-of-range targets and missing layers must give either a
correct result or a named ``ValueError`` / ``TypeError`` / ``KeyError``: never a TensorFlow
internal error, another exception type, or a hang. Where the input is valid the result must
exist (no refusal of good input), be float32 of the documented shape and finite, and equal the
result for the same values given as float32 (dtype invariance).

The tiny model and the explainers are built once (module scope) so compiled steps are traced
once; each property runs a bounded number of examples.
"""

import signal
import warnings
from contextlib import contextmanager

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerasviz import activations, attribution, filters, plot

SIZE, CHANNELS, CLASSES = 12, 3, 3
ALLOWED = (ValueError, TypeError, KeyError)
FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=12)


def build_model():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, CHANNELS))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="fuzz_cnn")


MODEL = build_model()
EXPLAINERS = {
    "occlusion": attribution.Occlusion(MODEL, patch=4, stride=2, batch_size=16),
    "saliency": attribution.Saliency(MODEL, batch_size=4),
    "smoothgrad": attribution.SmoothGrad(MODEL, samples=3, batch_size=8),
    "integrated_gradients": attribution.IntegratedGradients(MODEL, steps=4, batch_size=8),
    "gradcam": attribution.GradCAM(MODEL, batch_size=4),
    "lime": attribution.Lime(
        MODEL, segmentation="grid", segmentation_args={"cells": 3}, num_samples=16, batch_size=16
    ),
}


class Hang(Exception):
    """Raised by the watchdog; never one of the allowed errors."""


@contextmanager
def watchdog(seconds: float = 60.0):
    """Fail (instead of hanging the suite) when a call takes longer than ``seconds``."""

    def alarm(signum, frame):
        raise Hang(f"call took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(fn, *args, **kwargs):
    """``("ok", result)`` or ``("error", exc)`` for an allowed error; anything else propagates.

    Numeric RuntimeWarnings (e.g. NaN arithmetic while drawing) are not errors here: the
    property is about exceptions.
    """
    with watchdog(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return "ok", fn(*args, **kwargs)
        except ALLOWED as err:
            assert str(err), f"{type(err).__name__} without a message"
            return "error", err


# -- generated inputs -------------------------------------------------------------------------

DTYPES = [np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_]


@st.composite
def image_arrays(draw, size=SIZE, channels=CHANNELS, good_shape_weight=0.7):
    """Arrays that are often valid model inputs and often subtly not."""
    if draw(st.floats(0, 1)) < good_shape_weight:
        n = draw(st.integers(0, 3))
        shape = (
            (size, size, channels) if draw(st.booleans()) and n == 1 else (n, size, size, channels)
        )
    else:
        rank = draw(st.integers(0, 5))
        shape = tuple(
            draw(
                st.lists(
                    st.sampled_from([0, 1, 2, 3, size, size + 1]), min_size=rank, max_size=rank
                )
            )
        )
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype == np.bool_:
        arr = rng.random(shape) > 0.5
    elif np.issubdtype(dtype, np.integer):
        arr = rng.integers(0, 256, shape).astype(dtype)
    else:
        arr = rng.random(shape).astype(dtype)
        special = draw(st.sampled_from([None, None, None, np.nan, np.inf, -np.inf, 1e300]))
        if special is not None and arr.size:
            arr = arr.astype(np.float64) if special == 1e300 else arr
            arr.flat[draw(st.integers(0, arr.size - 1))] = special
    return arr


def valid_images(arr) -> bool:
    if arr.dtype == np.bool_ or arr.ndim not in (3, 4):
        return False
    batch = arr[None] if arr.ndim == 3 else arr
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: invalid
        finite = bool(np.all(np.isfinite(batch.astype(np.float32))))
    return batch.shape[0] > 0 and batch.shape[1:] == (SIZE, SIZE, CHANNELS) and finite


TARGETS = st.one_of(
    st.none(),
    st.integers(-3, CLASSES + 2),
    st.sampled_from([1.0, 2.5, "a", True]),
    st.lists(st.integers(-1, CLASSES), min_size=0, max_size=4),
)


def valid_targets(targets, n: int) -> bool:
    if targets is None:
        return True
    if isinstance(targets, bool) or isinstance(targets, str):
        return False
    if isinstance(targets, float):
        return targets.is_integer() and 0 <= targets < CLASSES
    if isinstance(targets, int):
        return 0 <= targets < CLASSES
    return len(targets) == n and all(0 <= t < CLASSES for t in targets)


def check_maps(maps, arr):
    n = 1 if arr.ndim == 3 else arr.shape[0]
    shape = (SIZE, SIZE) if arr.ndim == 3 else (n, SIZE, SIZE)
    assert isinstance(maps, np.ndarray) and maps.dtype == np.float32
    assert maps.shape == shape, (maps.shape, shape)
    assert np.all(np.isfinite(maps))


# -- explainers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPLAINERS))
@FUZZ
@given(arr=image_arrays(), targets=TARGETS)
def test_explainers_on_fuzzed_inputs_and_targets(name, arr, targets):
    explainer = EXPLAINERS[name]
    kind, result = outcome(explainer.explain, arr, targets)
    n = 1 if arr.ndim == 3 else (arr.shape[0] if arr.ndim == 4 else 0)
    valid = valid_images(arr) and valid_targets(targets, n)
    if not valid:
        assert kind == "error", f"{name} accepted invalid input {arr.shape} {arr.dtype}"
        return
    assert kind == "ok", f"{name} refused valid input: {result!r}"
    check_maps(result, arr)
    if arr.dtype != np.float32:  # the same values as float32 give the same maps
        again = explainer.explain(arr.astype(np.float32), targets)
        np.testing.assert_allclose(result, again, rtol=1e-5, atol=1e-6)


IMAGES = np.random.default_rng(0).random((2, SIZE, SIZE, CHANNELS), dtype=np.float32)
SIDE = st.one_of(
    st.integers(-2, 40),
    st.tuples(st.integers(-1, 14), st.integers(-1, 14)),
    st.sampled_from([2.0, 2.5, "4", None]),
)


@FEW
@given(patch=SIDE, stride=SIDE)
def test_occlusion_patch_and_stride(patch, stride):
    def run():
        return attribution.Occlusion(MODEL, patch=patch, stride=stride, batch_size=64).explain(
            IMAGES, 0
        )

    kind, result = outcome(run)
    if kind == "ok":
        check_maps(result, IMAGES)
    if isinstance(patch, int) and isinstance(stride, int) and 1 <= stride <= patch <= SIZE:
        assert kind == "ok", result  # a valid setting must work


@FEW
@given(
    steps=st.integers(-2, 6),
    samples=st.integers(-2, 4),
    noise=st.sampled_from([-0.1, 0.0, 0.2, float("nan"), float("inf")]),
    baseline=st.sampled_from(["zeros", "mean", "blur", "nope", 0.5, np.zeros((3, 3, 3))]),
)
def test_gradient_settings(steps, samples, noise, baseline):
    kind, result = outcome(
        lambda: attribution.IntegratedGradients(
            MODEL, baseline=baseline, steps=steps, batch_size=8
        ).explain(IMAGES, 1)
    )
    if kind == "ok":
        check_maps(result, IMAGES)
    if steps >= 1 and isinstance(baseline, str | float) and baseline != "nope":
        assert kind == "ok", result
    kind, result = outcome(
        lambda: attribution.SmoothGrad(MODEL, noise=noise, samples=samples, batch_size=8).explain(
            IMAGES, 1
        )
    )
    if kind == "ok":
        check_maps(result, IMAGES)
    if samples >= 1 and np.isfinite(noise) and noise >= 0:
        assert kind == "ok", result


LAYERS = st.sampled_from(
    ["conv1", "conv2", "pool1", "gap", "predictions", "nope", "conv9", 0, 1, 99, -1, None, 3.5, ""]
)


@FEW
@given(layer=LAYERS, batch_size=st.integers(-1, 5))
def test_gradcam_layers(layer, batch_size):
    kind, result = outcome(
        lambda: attribution.GradCAM(MODEL, layer=layer, batch_size=batch_size).explain(IMAGES)
    )
    if kind == "ok":
        check_maps(result, IMAGES)
        assert np.all(result >= 0)  # Grad-CAM is a ReLU of its weighted maps
    if layer in ("conv1", "conv2", "pool1", None) and batch_size >= 1:
        assert kind == "ok", result


@FEW
@given(cells=st.sampled_from([-1, 0, 1, 2, 4, 12, 13, 100, 2.5]), samples=st.integers(-1, 20))
def test_lime_settings(cells, samples):
    kind, result = outcome(
        lambda: attribution.Lime(
            MODEL,
            segmentation="grid",
            segmentation_args={"cells": cells},
            num_samples=samples,
            batch_size=8,
        ).explain(IMAGES, 2)
    )
    if kind == "ok":
        check_maps(result, IMAGES)


# -- filters and activations ------------------------------------------------------------------


@FUZZ
@given(layer=LAYERS, part=st.sampled_from([None, "depthwise", "pointwise", "kernel", 3]))
def test_filters_layers(layer, part):
    kind, result = outcome(filters.filters, MODEL, layer, part)
    if kind == "ok" and layer in ("conv1", "conv2"):
        kernel = np.asarray(MODEL.get_layer(layer).kernel)  # (kh, kw, in, n) -> (n, kh, kw, in)
        np.testing.assert_array_equal(result, np.moveaxis(kernel, -1, 0))
    if layer in ("conv1", "conv2") and part is None:
        assert kind == "ok", result


@FUZZ
@given(
    arr=image_arrays(),
    layers=st.one_of(LAYERS, st.lists(LAYERS, max_size=3)),
    batch_size=st.integers(-1, 4),
)
def test_activations_fuzzed(arr, layers, batch_size):
    kind, result = outcome(activations.activations, MODEL, arr, layers, batch_size)
    names = layers if isinstance(layers, list) else [layers]
    good_layers = (
        bool(names)
        and len(set(map(str, names))) == len(names)
        and all(n in ("conv1", "conv2", "pool1", "gap", "predictions") for n in names)
    )
    if kind == "ok":
        batch = arr[None] if arr.ndim == 3 else arr
        for key, value in result.items():
            assert (
                value.dtype == np.float32 and value.shape[:1] == batch.shape[:1] or (arr.ndim == 3)
            )
            assert np.all(np.isfinite(value)), key
        if "conv1" in names:  # the same as the layer run by hand
            probe = keras.Model(MODEL.inputs, MODEL.get_layer("conv1").output)
            expected = np.asarray(probe(batch.astype(np.float32)))
            got = result["conv1"][None] if arr.ndim == 3 else result["conv1"]
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if valid_images(arr) and good_layers and batch_size >= 1:
        assert kind == "ok", result
    if not valid_images(arr):
        assert kind == "error"


# -- renderers --------------------------------------------------------------------------------


@st.composite
def any_arrays(draw, max_rank=5, max_side=5):
    rank = draw(st.integers(0, max_rank))
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=rank, max_size=rank)))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if np.issubdtype(dtype, np.integer):
        return (
            rng.integers(-5, 256, shape).astype(dtype)
            if dtype != np.uint8
            else rng.integers(0, 256, shape).astype(dtype)
        )
    arr = (rng.standard_normal(shape) * 3).astype(dtype)
    special = draw(st.sampled_from([None, None, np.nan, np.inf]))
    if special is not None and arr.size:
        arr.flat[0] = special
    return arr


def figure_or_error(fn, *args, **kwargs):
    kind, result = outcome(fn, *args, **kwargs)
    if kind == "ok":
        fig = result[0] if isinstance(result, tuple) else result
        from matplotlib.figure import Figure

        assert isinstance(fig, Figure), type(fig)
        fig.canvas.draw()  # errors hidden until drawing count too
    return kind


# name -> (draw function, shape templates of its array arguments). Letters shared between
# templates are one size (with a small chance of a mismatch); "3" is a fixed size.
RENDERERS = {
    "overlay": (lambda a, b: plot.overlay(a, b), ("HWC", "HW")),
    "image_grid": (lambda a, b: plot.image_grid(a), ("NHWC", "")),
    "explanation_grid": (lambda a, b: plot.explanation_grid(a, {"m": b}), ("NHWC", "NHW")),
    "filter_tiles": (lambda a, b: plot.filter_tiles(a), ("NHWC", "")),
    "filter_grid": (lambda a, b: plot.filter_grid(a), ("NHWC", "")),
    "activation_grid": (lambda a, b: plot.activation_grid(a), ("HWC", "")),
    "activation_overlay": (lambda a, b: plot.activation_overlay(a, b), ("HWC", "KK")),
    "maximization_gallery": (lambda a, b: plot.maximization_gallery(a), ("NHWC", "")),
    "lime_view": (lambda a, b: plot.lime_view(a, b, np.ones(3)), ("HWC", "HW")),
    "lime_overlay": (lambda a, b: plot.lime_overlay(a, b, np.ones(3)), ("HWC", "HW")),
    "embedding_map": (lambda a, b: plot.embedding_map(a, labels=b), ("N2", "N")),
    "neighbor_strips": (lambda a, b: plot.neighbor_strips(a, b), ("NHWC", "NKHWC")),
    "cluster_montage": (lambda a, b: plot.cluster_montage(a, b), ("NHWC", "N")),
}


@st.composite
def shaped_arrays(draw, templates):
    """Arrays following ``templates`` (often valid), or of any shape (rarely valid)."""
    if draw(st.floats(0, 1)) < 0.25:
        return tuple(draw(any_arrays()) for _ in templates)
    sizes = {}
    out = []
    for template in templates:
        shape = []
        for letter in template:
            if letter.isdigit():
                shape.append(int(letter))
                continue
            if letter not in sizes or draw(st.floats(0, 1)) < 0.1:
                sizes[letter] = (
                    draw(st.integers(0, 5))
                    if letter != "C"
                    else draw(st.sampled_from([0, 1, 2, 3, 4]))
                )
            shape.append(sizes[letter])
        dtype = draw(st.sampled_from(DTYPES))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        if dtype == np.bool_:
            arr = rng.random(shape) > 0.5
        elif np.issubdtype(dtype, np.integer):
            arr = rng.integers(0, 4, shape).astype(dtype)
        else:
            arr = (rng.standard_normal(shape) * draw(st.sampled_from([1e-3, 1.0, 1e4]))).astype(
                dtype
            )
            special = draw(st.sampled_from([None, None, np.nan, np.inf]))
            if special is not None and arr.size:
                arr.flat[0] = special
        out.append(arr)
    return tuple(out)


@pytest.mark.parametrize("name", list(RENDERERS))
@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_renderers_fuzzed(name, data):
    draw_fn, templates = RENDERERS[name]
    a, b = data.draw(shaped_arrays(templates))
    figure_or_error(draw_fn, a, b)


@pytest.mark.parametrize("name", ["overlay", "explanation_grid"])
def test_renderers_draw_valid_input(name):
    rng = np.random.default_rng(1)
    images = rng.random((2, 8, 8, 3)).astype(np.float32)
    maps = rng.standard_normal((2, 8, 8)).astype(np.float32)
    a, b = (images[0], maps[0]) if name == "overlay" else (images, maps)
    assert figure_or_error(RENDERERS[name][0], a, b) == "ok"


def test_fuzz_finds_invalid_inputs_rejected():
    """The generators do produce both valid and invalid inputs (the properties bite)."""
    seen = set()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(arr=image_arrays())
    def collect(arr):
        seen.add(valid_images(arr))

    collect()
    assert seen == {True, False}
