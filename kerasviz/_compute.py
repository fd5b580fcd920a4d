"""Batched, compiled execution shared by every module that runs a model many times.

A compiled function (``tf.function``) is traced once per input shape. A last batch smaller than
the others would be a new shape and trigger a retrace, so `run_batched` pads it to the full
batch size and drops the padding from the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np


def tf():
    import tensorflow

    return tensorflow


def compiled_forward(model, jit_compile: bool = False) -> Callable:
    """``tf.function`` around ``model(x, training=False)``: the cost floor of any method."""
    t = tf()

    @t.function(jit_compile=jit_compile, reduce_retracing=False)
    def forward(x):
        return model(x, training=False)

    return forward


def padded_chunks(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``batch_size`` items."""
    for start in range(0, n, batch_size):
        yield start, min(start + batch_size, n)


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Pad axis 0 of ``x`` to ``size`` rows by repeating its last row."""
    if x.shape[0] == size:
        return x
    reps = np.repeat(x[-1:], size - x.shape[0], axis=0)
    return np.concatenate([x, reps], axis=0)


def run_batched(fn: Callable, arrays: tuple[np.ndarray, ...], batch_size: int,
                progress: bool = False, label: str | None = None) -> list[np.ndarray]:
    """Apply ``fn`` to fixed-size chunks of ``arrays`` (all sharing axis 0) and concatenate.

    Every call sees exactly ``batch_size`` rows (the last chunk is padded), so a compiled ``fn``
    is traced once. ``fn`` returns a tensor or a tuple of tensors with the batch first.
    Returns a list of numpy arrays, one per output of ``fn``.
    """
    n = arrays[0].shape[0]
    size = min(batch_size, n)
    bar = progress_bar(n, progress, label)
    parts: list[list[np.ndarray]] | None = None
    for start, stop in padded_chunks(n, size):
        chunk = tuple(pad_to(a[start:stop], size) for a in arrays)
        out = fn(*chunk)
        outs = out if isinstance(out, tuple | list) else (out,)
        outs = [np.asarray(o)[: stop - start] for o in outs]
        if parts is None:
            parts = [[] for _ in outs]
        for store, o in zip(parts, outs, strict=True):
            store.append(o)
        if bar is not None:
            bar.update(stop)
    return [np.concatenate(p, axis=0) for p in parts]


def progress_bar(total: int, enabled: bool, label: str | None = None):
    """A ``keras.utils.Progbar`` when ``enabled`` and not silenced by ``KERASVIZ_QUIET``."""
    if not enabled or os.environ.get("KERASVIZ_QUIET"):
        return None
    import keras

    if label:
        print(label)
    return keras.utils.Progbar(total)
