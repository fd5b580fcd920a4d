"""Feature vectors of images at any layer, streamed through one compiled forward pass.

The "final feature vector" of a CNN is the input of its classifier (AlexNet's fc7). Numpy
arrays and ``tf.data.Dataset`` inputs go through the model in fixed-size batches, so memory
grows with the number of vectors, not with the images. Keras and TensorFlow are imported when
an extractor is built.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kerasviz import _checks, _compute, _progress, inspect

REDUCTIONS = inspect.REDUCTIONS


class FeatureExtractor:
    """Feature vectors of images at one layer of a model, built once and called many times.

    The sub-model up to ``layer`` (plus the reduction of spatial maps to vectors) is compiled
    once; every call streams its data through it in batches of ``batch_size`` (the last batch
    is padded, so the graph is traced once).

    Args:
        model: a Keras image model (Functional, Sequential or nested).
        layer: the layer whose output is the feature vector (name, path, index or Layer).
            ``None``: the input of the classifier (`kerasviz.inspect.feature_layer`: the last
            ``Dense`` layer or 1x1-map convolution, else the last global pooling or
            ``Flatten``), e.g. ``"fc1"`` of ``digits_cnn``.
        reduce: how a spatial output ``(N, h, w, c)`` becomes a vector: ``"flatten"``
            (``h*w*c`` values), ``"gap"`` (global average, ``c`` values) or ``"max"`` (global
            max, ``c`` values). ``None`` (default): ``"flatten"``, or ``"gap"`` when the map's
            size depends on the image size (a model on ``Input((None, None, 3))``), where
            ``"flatten"`` is refused. Outputs that are already ``(N, D)`` are kept as they
            are.
        batch_size: images per forward pass; bounds memory.
        strategy: a ``tf.distribute.Strategy`` whose replicas share each batch
            (``MirroredStrategy`` for several GPUs, ``TPUStrategy``); ``None``: the one
            whose scope is active, else the default (one device).

    Attributes:
        layer: the path of the feature layer.
        dim: ``D``, the length of a feature vector (``None`` when it depends on the image size).

    Raises:
        KeyError: an unknown layer.
        ValueError: an unknown ``reduce``; ``"flatten"`` of a map whose size is open; a layer
            whose output has no batch axis.

    >>> FeatureExtractor(model).extract(images).shape
    (1797, 128)
    """

    def __init__(
        self, model, layer=None, reduce: str | None = None, batch_size: int = 64, strategy=None
    ):
        if reduce is not None:
            reduce = _checks.check_choice(reduce, "reduce", REDUCTIONS)
        self.batch_size = _checks.check_positive_int(batch_size, "batch_size")
        self.model = model
        path = inspect.feature_layer(model) if layer is None else layer
        target = inspect.find_layer(model, path)
        self.layer = path if isinstance(path, str) else inspect.layer_path(model, target)
        sub = inspect.layer_model(model, target)
        out = sub.outputs[0]
        shape = tuple(out.shape)
        batch_dim = sub.inputs[0].shape[0]
        if len(shape) < 2 or shape[0] != batch_dim:
            raise ValueError(
                f"Layer {self.layer!r} gives an output of shape {shape} without the batch axis "
                f"of the input (expected (N, ...) with N = {batch_dim}); feature vectors need "
                "one vector per image. Choose another `layer`."
            )
        if reduce is None:  # flatten, unless the map's size follows the image's
            reduce = "gap" if any(d is None for d in shape[1:]) else "flatten"
        self.reduce = reduce
        self._model = inspect.reduced_model(sub, self.reduce)
        self.dim = self._model.outputs[0].shape[-1]
        # Each padded batch is split across the strategy's replicas (one device: unchanged).
        self._forward = _compute.distribute(
            _compute.compiled_forward(self._model),
            _compute.resolve_strategy(strategy),
            rows=self.batch_size,
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One padded batch through the compiled graph; returns ``(n, D)`` float32."""
        n = batch.shape[0]
        out = np.asarray(self._forward(_compute.pad_to(batch, self.batch_size)))
        if out.ndim != 2 or out.shape[0] != self.batch_size:
            raise ValueError(
                f"Layer {self.layer!r} returned shape {out.shape} for a batch of "
                f"{self.batch_size} images; expected ({self.batch_size}, D)."
            )
        return out[:n].astype(np.float32, copy=False)

    def extract(self, data, progress: bool = False):
        """Feature vectors of ``data``.

        Args:
            data: images ``(N, H, W, C)`` or one image ``(H, W, C)`` as a numpy array, or a
                ``tf.data.Dataset`` (batched or not) whose elements are ``images``,
                ``(images, labels)`` or ``(images, labels, ids)``.
            progress: show a progress bar.

        Returns:
            The same structure as the data, with features in place of images:

            * numpy images, or a dataset of images: ``features`` ``(N, D)`` float32
              (``(D,)`` for one numpy image);
            * a dataset of ``(images, labels)``: ``(features, labels)``;
            * a dataset of ``(images, labels, ids)``: ``(features, labels, ids)``;

            labels and ids as numpy arrays with the batch first, strings decoded to ``str``.

        Raises:
            TypeError: ``data`` of another type, or dataset elements of another structure.
            ValueError: images of the wrong shape, an empty or infinite dataset.

        >>> vectors, labels = extractor.extract(tf.data.Dataset.from_tensor_slices((x, y)))
        """
        import tensorflow as tf

        if isinstance(data, tf.data.Dataset):
            return self._extract_dataset(data, progress)
        if isinstance(data, str | bytes | Mapping):
            raise TypeError(
                "Expected `data` to be images (N, H, W, C) or a tf.data.Dataset. "
                f"Received: data of type {type(data).__name__}"
            )
        arr, single = _checks.as_batch(np.asarray(data), "N, H, W, C", "data")
        if arr.shape[0] == 0:
            raise ValueError(f"`data` is an empty batch. Received: data.shape={arr.shape}")
        expected = inspect.input_shape(self.model)
        if any(
            want is not None and got != want
            for got, want in zip(arr.shape[1:], expected, strict=True)
        ):
            raise ValueError(
                f"Expected `data` of shape (N, {', '.join(map(str, expected))}) "
                f"for model {self.model.name!r}. Received: data.shape={arr.shape}"
            )
        bar = _progress.Progress(arr.shape[0], label="features", enabled=progress)
        parts = []
        # Convert and check one chunk at a time: a uint8 data set is never copied to float32.
        for start, stop in _compute.padded_chunks(arr.shape[0], self.batch_size):
            batch, _ = inspect.check_inputs(self.model, arr[start:stop], name="data")
            parts.append(self._run(batch))
            bar.update(stop)
        return _checks.restore_single(np.concatenate(parts, axis=0), single)

    def _extract_dataset(self, data, progress):
        import tensorflow as tf

        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "`data` is an infinite tf.data.Dataset (a `.repeat()` without "
                "count?); take a finite part with `.take(n)`."
            )
        spec = data.element_spec
        if isinstance(spec, tf.TensorSpec):
            arity, image_spec = 1, spec
        elif (
            isinstance(spec, tuple)
            and len(spec) in (2, 3)
            and all(isinstance(s, tf.TensorSpec) for s in spec)
        ):
            arity, image_spec = len(spec), spec[0]
        else:
            raise TypeError(
                "Expected a tf.data.Dataset whose elements are images, (images, labels) or "
                f"(images, labels, ids). Received: element_spec={spec}"
            )
        rank = image_spec.shape.rank
        count = int(data.cardinality())
        total = count if rank == 3 and count >= 0 else None  # images, when known upfront
        if rank == 4:
            data = data.unbatch()  # re-batch at our size, so the graph is traced once
        elif rank != 3:
            raise ValueError(
                "Expected dataset images of shape (H, W, C) or batches (N, H, W, C). "
                f"Received: element_spec={spec}"
            )
        data = data.batch(self.batch_size).prefetch(1)
        bar = _progress.Progress(total, label="features", enabled=progress)
        columns: list[list[np.ndarray]] = [[] for _ in range(arity)]
        seen = 0
        for element in data:
            parts = (element,) if arity == 1 else tuple(element)
            batch, _ = inspect.check_inputs(self.model, parts[0].numpy(), name="data")
            columns[0].append(self._run(batch))
            for store, part in zip(columns[1:], parts[1:], strict=True):
                store.append(part.numpy())
            seen += batch.shape[0]
            bar.update(seen)
        if total is None:
            bar.update(seen, finalize=True)
        if not seen:
            raise ValueError("`data` is an empty tf.data.Dataset.")
        out = [np.concatenate(c, axis=0) for c in columns]
        out = [out[0], *(_decode(a) for a in out[1:])]
        return out[0] if arity == 1 else tuple(out)


def _decode(arr: np.ndarray) -> np.ndarray:
    """Byte strings from TensorFlow as ``str``; other arrays unchanged."""
    if arr.dtype == object or arr.dtype.kind == "S":
        flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.ravel()]
        return np.asarray(flat, dtype=str).reshape(arr.shape)
    return arr


def features(
    model,
    data,
    layer=None,
    batch_size: int = 64,
    reduce: str | None = None,
    progress: bool = False,
):
    """Feature vectors of ``data`` at ``layer``: a one-off `FeatureExtractor`.

    Args:
        model: a Keras image model.
        data: numpy images or a ``tf.data.Dataset`` (see `FeatureExtractor.extract`).
        layer: the feature layer; ``None`` for the input of the last ``Dense`` layer.
        batch_size: images per forward pass.
        reduce: ``"flatten"``, ``"gap"`` or ``"max"`` for spatial outputs; ``None`` as
            `FeatureExtractor`.
        progress: show a progress bar.

    Returns:
        ``(N, D)`` float32 features, or ``(features, labels[, ids])`` for a dataset that yields
        labels (and ids); see `FeatureExtractor.extract`.

    >>> features(model, images).shape
    (1797, 128)
    """
    extractor = FeatureExtractor(model, layer=layer, reduce=reduce, batch_size=batch_size)
    return extractor.extract(data, progress=progress)
