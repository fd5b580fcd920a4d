"""Batched, compiled execution shared by every module that runs a model many times.

A compiled function (``tf.function``) is traced once per input shape. A last batch smaller than
the others would be a new shape and trigger a retrace, so `run_batched` pads it to the full
batch size and drops the padding from the result.

`distribute` runs such a one-batch step on every replica of a ``tf.distribute.Strategy``
(several GPUs with ``MirroredStrategy``, the cores of a TPU with ``TPUStrategy``): the rows of
a batch are split into one equal slice per replica, each replica runs the step on its slice,
and the slices of the results are put back together in input order. With the default strategy
(one device) the step is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from kerasviz import _progress


def tf():
    import tensorflow

    return tensorflow


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up lines and warnings on the user's terminal.

    Its C++ start-up lines (oneDNN, absl) are printed before logging is set up, so
    ``TF_CPP_MIN_LOG_LEVEL`` alone cannot silence them: stderr is pointed at the null device
    while it is imported. Its Python warnings (retracing notices) are limited to errors. Set
    ``KERASVIZ_TF_LOGS=1`` to see everything. For the command line and the examples.
    """
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ.get("KERASVIZ_TF_LOGS"):
        return
    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                import keras  # noqa: F401
                import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf().get_logger().setLevel("ERROR")


def compiled_forward(model, jit_compile: bool = False) -> Callable:
    """``tf.function`` around ``model(x, training=False)``: the cost floor of any method."""
    t = tf()

    @t.function(jit_compile=jit_compile, reduce_retracing=False)
    def forward(x):
        return model(x, training=False)

    return forward


def resolve_strategy(strategy=None):
    """The ``tf.distribute.Strategy`` to run on.

    ``None`` means the strategy whose ``scope()`` is active, else TensorFlow's default strategy
    (one device: the first GPU if there is one, else the CPU).

    Raises:
        TypeError: ``strategy`` is not a ``tf.distribute.Strategy``.
    """
    t = tf()
    if strategy is None:
        return t.distribute.get_strategy()
    if not isinstance(strategy, t.distribute.Strategy):
        raise TypeError(
            "Expected `strategy` to be a tf.distribute.Strategy (e.g. "
            "tf.distribute.MirroredStrategy()) or None. Received: "
            f"strategy of type {type(strategy).__name__}"
        )
    return strategy


def is_default(strategy) -> bool:
    """Whether ``strategy`` is TensorFlow's default (single-device, no-op) strategy."""
    return strategy is None or type(strategy).__name__ == "_DefaultDistributionStrategy"


def replicas(strategy) -> int:
    """Number of replicas the work is split across (1 for the default strategy)."""
    return 1 if is_default(strategy) else int(strategy.num_replicas_in_sync)


def distribute(fn: Callable, strategy=None, split=None, rows: int = 0) -> Callable:
    """Run the one-batch step ``fn`` split across the replicas of ``strategy``.

    The returned function is called like ``fn``. The arguments at the positions in ``split``
    (default: all of them) share the batch axis 0: they are padded (last row repeated) to a
    multiple of the number of replicas ``R``, at least ``rows``, and replica ``r`` receives
    rows ``[r * n / R, (r + 1) * n / R)``. The other arguments (e.g. images that every task
    indexes into) are given whole to every replica. The outputs (a tensor or a tuple of
    tensors, batch first) of the replicas are concatenated in replica order, so row ``i`` of
    the result belongs to input row ``i``, and the padding is dropped.

    Padding every call to the same ``rows`` keeps one input shape, so ``fn`` and the
    distributed wrapper are traced once. On a TPU, shapes must be static: pass ``rows`` equal
    to the batch size.

    Args:
        fn: a function of tensors (typically a ``tf.function``) that keeps the batch axis.
        strategy: a ``tf.distribute.Strategy``; ``None`` or the default strategy returns
            ``fn`` itself.
        split: positions of the arguments whose rows are split; ``None`` for all.
        rows: pad the split arguments to at least this many rows.

    Returns:
        A function returning what ``fn`` returns (eager tensors), for the whole batch.

    >>> step = distribute(compiled_forward(model), tf.distribute.MirroredStrategy(), rows=32)
    >>> step(images[:32]).shape
    TensorShape([32, 10])
    """
    if is_default(strategy):
        return fn
    t = tf()
    count = replicas(strategy)
    devices = tuple(strategy.extended.worker_devices)

    def on_each(*args):  # a plain function: `strategy.run` gives it one replica's tensors
        return fn(*args)

    @t.function(reduce_retracing=False)
    def run_replicas(*args):
        return strategy.run(on_each, args=args)

    def call(*args):
        positions = range(len(args)) if split is None else split
        if not positions:
            raise ValueError("Expected at least one argument to split across replicas.")
        n = int(args[positions[0]].shape[0])
        per = -(-max(n, rows, 1) // count)  # rows per replica
        values = list(args)
        for i in positions:
            whole = pad_to(np.asarray(args[i]), per * count)

            def on_replica(ctx, whole=whole):
                r = ctx.replica_id_in_sync_group
                with t.device(devices[r]):
                    return t.identity(whole[r * per : (r + 1) * per])

            values[i] = strategy.experimental_distribute_values_from_function(on_replica)
        out = run_replicas(*values)
        single = not isinstance(out, tuple | list)
        outs = (out,) if single else tuple(out)
        gathered = tuple(t.concat(strategy.experimental_local_results(o), axis=0)[:n] for o in outs)
        return gathered[0] if single else gathered

    call.strategy = strategy  # marks a distributed step
    return call


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


def run_batched(
    fn: Callable,
    arrays: tuple[np.ndarray, ...],
    batch_size: int,
    progress: bool = False,
    label: str | None = None,
) -> list[np.ndarray]:
    """Apply ``fn`` to fixed-size chunks of ``arrays`` (all sharing axis 0) and concatenate.

    Every call sees exactly ``batch_size`` rows (the last chunk is padded), so a compiled ``fn``
    is traced once. ``fn`` returns a tensor or a tuple of tensors with the batch first.
    Returns a list of numpy arrays, one per output of ``fn``.
    """
    n = arrays[0].shape[0]
    size = min(batch_size, n)
    bar = _progress.Progress(n, label=label or "", enabled=progress)
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
        bar.update(stop)
    return [np.concatenate(p, axis=0) for p in parts]
