"""Shared helpers for the benchmark scripts: timing, tables, memory, models, peers.

Every benchmark measures its rows side by side in one run, on the same machine and the same
data, and prints median seconds and ratios. Import from a script in this folder with
``from _common import ...`` (the scripts put their own folder on ``sys.path`` when run as
``python benchmarks/NAME.py``).

Helpers:
    quiet(): silence TensorFlow's logs and kerasviz progress bars (call before importing TF).
    median_time(fn, repeats, warmup): median wall-clock seconds of ``fn()``.
    interleaved_times(fns, repeats, warmup): medians of several functions timed in turns.
    print_table(title, headers, rows): a fixed-width text table.
    rss_bytes(), peak_rss(fn): resident memory now, and its peak while ``fn()`` runs.
    sample_images(n, size, value_range, seed): shapes-dataset images, resized and rescaled.
    mobilenetv2(size, classes, seed): MobileNetV2(weights=None) with BatchNorm statistics
        calibrated on a few images, so its softmax is not flat.
    limit_forward(model, images, batch_size): the cost floor: compiled forward passes of
        already-built images in the given chunks.
    import_peer(module, stubs): import a peer library or say why it cannot be imported.
    correlation(a, b): Pearson correlation of two arrays, flattened.
    tf_keras_vis_model(model, output): a standalone Functional copy of the scored view that
        tf-keras-vis (and tf-explain, Xplique) can use.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence

import numpy as np


def quiet() -> None:
    """Silence TensorFlow's C++ logs and kerasviz progress bars (call before importing TF)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERASVIZ_QUIET", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")


# --------------------------------------------------------------------------------------------
# Timing and tables
# --------------------------------------------------------------------------------------------


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    The warm-up runs absorb tracing and first-call costs, so a compiled function is timed in
    its steady state. Results are forced to host memory by ``fn`` itself (return numpy).

    >>> median_time(lambda: sum(range(1000)), repeats=3)  # doctest: +SKIP
    2.1e-05
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(
    fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: int = 1
) -> dict[str, float]:
    """Median seconds of several functions timed in turns (a, b, c, a, b, c, ...).

    On a shared machine the load drifts during a run; timing the rows in turns exposes them
    to the same drift, so their ratios are steadier than with one row after another.

    >>> interleaved_times({"a": f, "b": g}, repeats=3)  # doctest: +SKIP
    {'a': 0.51, 'b': 0.53}
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Print (and return) a fixed-width table; floats get 4 significant digits.

    >>> _ = print_table("demo", ["name", "s"], [["ours", 1.23456]])  # doctest: +SKIP
    """

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [title, "  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def peak_rss(fn: Callable[[], object], interval: float = 0.002) -> tuple[object, int]:
    """Run ``fn()`` and return ``(result, peak RSS increase in bytes)`` sampled every ``interval``.

    The increase is over the RSS just before the call. TensorFlow's CPU allocator keeps freed
    memory, so measure in a fresh process (or largest-last) when comparing settings.
    """
    start = rss_bytes()
    peak = [start]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], rss_bytes())
    return result, peak[0] - start


# --------------------------------------------------------------------------------------------
# Data and models
# --------------------------------------------------------------------------------------------


def sample_images(
    n: int, size: int, value_range: tuple[float, float] = (0.0, 1.0), seed: int = 0
) -> np.ndarray:
    """``n`` images ``(n, size, size, 3)`` float32 from `kerasviz.datasets.shapes`, rescaled.

    Shapes on textured backgrounds: structured content, unlike uniform noise.
    """
    from kerasviz import datasets

    images, _, _ = datasets.shapes(n, size=size, seed=seed)
    low, high = value_range
    return (low + (high - low) * images).astype(np.float32)


def mobilenetv2(
    size: int = 224,
    classes: int = 1000,
    seed: int = 0,
    calibration: int = 8,
    logit_std: float = 2.0,
):
    """``keras.applications.MobileNetV2(weights=None)`` whose BatchNorm statistics fit real images.

    With random weights and the default BatchNorm statistics (mean 0, variance 1) activations
    blow up or vanish layer after layer and the softmax is flat or saturated, so occlusion
    maps would be noise. Here every BatchNorm layer's moving mean and variance are set to the
    statistics of ``calibration`` sample images (one training-mode pass with momentum 0), so
    the network computes on well-scaled activations; the weights stay random. Then the head's
    kernel and bias are scaled so the logits of those images spread with standard deviation
    ``logit_std`` across classes (random heads give a nearly uniform softmax). Input range
    [-1, 1], as MobileNetV2 expects.

    >>> mobilenetv2(96, classes=10).output_shape  # doctest: +SKIP
    (None, 10)
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(size, size, 3), classes=classes
    )
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    images = sample_images(calibration, size, (-1.0, 1.0), seed=seed + 1000)
    model(images, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    head = model.get_layer("predictions")
    probs = np.asarray(model(images, training=False), np.float64)
    spread = float(np.log(np.maximum(probs, 1e-30)).std(axis=1).mean())  # logit std per image
    scale = logit_std / max(spread, 1e-6)
    head.set_weights([w * scale for w in head.get_weights()])
    return model


# --------------------------------------------------------------------------------------------
# The limit and peers
# --------------------------------------------------------------------------------------------


def limit_forward(model, images: np.ndarray, batch_size: int) -> Callable[[], np.ndarray]:
    """A function running the bare compiled forward passes of ``images`` in chunks.

    ``tf.function`` around ``model(x, training=False)`` (kerasviz's `compiled_forward`), fed
    consecutive chunks of ``batch_size`` already-built images (the last chunk may be smaller:
    it is traced once during warm-up). Time the returned function: it is the floor that any
    perturbation method running the same forward passes can reach.
    """
    import tensorflow as tf

    from kerasviz import _compute

    forward = _compute.compiled_forward(model)
    chunks = [
        tf.constant(images[start:stop])
        for start, stop in _compute.padded_chunks(len(images), batch_size)
    ]

    def run():
        return np.concatenate([forward(chunk).numpy() for chunk in chunks], axis=0)

    return run


class _Placeholder(types.ModuleType):
    """A stand-in module: any attribute is another placeholder; calling one raises."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        raise ImportError(f"{self.__name__} is a placeholder installed by benchmarks/_common.py")


def import_peer(module: str, stubs: Sequence[str] = ()) -> tuple[object | None, str]:
    """Import a peer library for comparison: ``(module, "")`` or ``(None, why)``.

    Args:
        module: dotted module name, e.g. ``"tf_explain.core.occlusion_sensitivity"``.
        stubs: modules the peer imports at package level but the compared code never calls;
            when missing they are replaced by placeholders (any use raises ImportError).
    """
    import importlib

    for name in stubs:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _Placeholder(name)
    try:
        return importlib.import_module(module), ""
    except Exception as err:  # ImportError, or a peer failing under Keras 3
        return None, f"{type(err).__name__}: {err}"


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of ``a`` and ``b`` flattened (nan when either is constant)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def tf_keras_vis_model(model, output: str = "logit"):
    """A standalone Functional copy of ``model``'s scored view for tf-keras-vis and other peers.

    tf-keras-vis reads ``layer.output``, which on a Sequential model, a nested backbone or one
    of kerasviz's replayed views belongs to another graph, and its ``ReplaceToLinear`` fails on
    Sequential models. This clones the flat (``"probability"``) or logits (``"logit"``) view of
    `kerasviz.inspect` into fresh layers with copied weights (the user's layer names).

    >>> Gradcam(tf_keras_vis_model(model))  # doctest: +SKIP
    """
    from kerasviz import _checks, inspect

    _checks.check_choice(output, "output", ("probability", "logit"))
    view = inspect.logits_model(model) if output == "logit" else inspect.flat_model(model)
    return inspect.standalone_copy(view)
