"""Feature vectors: extraction, nearest neighbours, clusters, 2-D maps, projector export.

The "final feature vector" of a CNN is the input of its classifier (AlexNet's fc7). Images that
differ pixel by pixel but show the same thing lie close together in that space; nearest
neighbours, clusters and 2-D maps make this visible, and the TensorBoard embedding projector
lets a person explore it interactively.

* `FeatureExtractor` / `features`: feature vectors at any layer for numpy arrays or a
  ``tf.data.Dataset``, streamed in fixed-size batches through one compiled forward pass, so
  memory grows with the number of vectors, not with the images.
* `nearest`, `kmeans`, `purity`, `project`: analysis with scikit-learn.
* `export_projector`, `ProjectorCallback`: a log directory TensorBoard's projector opens
  (checkpoint, ``metadata.tsv``, sprite, ``projector_config.pbtxt``), written atomically.

>>> vectors = features(model, images)            # (N, D) float32
>>> idx, dist = nearest(vectors, [0, 5], k=5)    # (2, 5) neighbours of images 0 and 5
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from kerasviz import _checks, _compute, inspect

REDUCTIONS = ("flatten", "gap", "max")
METRICS = ("euclidean", "cosine")
SPRITE_LIMIT = 8192  # the projector's largest sprite side, in pixels
CONFIG_NAME = "projector_config.pbtxt"
METADATA_NAME = "metadata.tsv"
SPRITE_NAME = "sprite.png"


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def _reduce_tensor(out, reduce: str):
    """Symbolic reduction of a layer output to ``(N, D)``."""
    rank = len(out.shape)
    if rank == 2:
        return out
    if reduce == "flatten":
        return keras.layers.Flatten(name="kerasviz_flatten")(out)
    axes = tuple(range(1, rank - 1))  # every axis between the batch and the channels
    if reduce == "gap":
        return keras.ops.mean(out, axis=axes)
    return keras.ops.max(out, axis=axes)


class FeatureExtractor:
    """Feature vectors of images at one layer of a model, built once and called many times.

    The sub-model up to ``layer`` (plus the reduction of spatial maps to vectors) is compiled
    once; every call streams its data through it in batches of ``batch_size`` (the last batch
    is padded, so the graph is traced once).

    Args:
        model: a Keras image model (Functional, Sequential or nested).
        layer: the layer whose output is the feature vector (name, path, index or Layer).
            ``None``: the input of the last ``Dense`` layer (`kerasviz.inspect.feature_layer`),
            e.g. ``"fc1"`` of ``digits_cnn``.
        reduce: how a spatial output ``(N, h, w, c)`` becomes a vector: ``"flatten"``
            (``h*w*c`` values), ``"gap"`` (global average, ``c`` values) or ``"max"`` (global
            max, ``c`` values). Outputs that are already ``(N, D)`` are kept as they are.
        batch_size: images per forward pass; bounds memory.
        strategy: a ``tf.distribute.Strategy`` whose replicas share each batch
            (``MirroredStrategy`` for several GPUs, ``TPUStrategy``); ``None``: the one
            whose scope is active, else the default (one device).

    Attributes:
        layer: the path of the feature layer.
        dim: ``D``, the length of a feature vector (``None`` when it depends on the image size).

    Raises:
        KeyError: an unknown layer.
        ValueError: an unknown ``reduce``; a layer whose output has no batch axis.

    >>> FeatureExtractor(model).extract(images).shape
    (1797, 128)
    """

    def __init__(self, model, layer=None, reduce: str = "flatten", batch_size: int = 64,
                 strategy=None):
        if reduce not in REDUCTIONS:
            raise ValueError(f"Expected `reduce` in {REDUCTIONS}. Received: reduce={reduce!r}")
        self.batch_size = _checks.check_positive_int(batch_size, "batch_size")
        self.reduce = reduce
        self.model = model
        path = inspect.feature_layer(model) if layer is None else layer
        target = inspect.find_layer(model, path)
        self.layer = path if isinstance(path, str) else inspect.layer_path(model, target)
        sub = inspect.submodel(model, [target])
        out = sub.outputs[0]
        shape = tuple(out.shape)
        batch_dim = sub.inputs[0].shape[0]
        if len(shape) < 2 or shape[0] != batch_dim:
            raise ValueError(
                f"Layer {self.layer!r} gives an output of shape {shape} without the batch axis "
                f"of the input (expected (N, ...) with N = {batch_dim}); feature vectors need "
                "one vector per image. Choose another `layer`."
            )
        vec = _reduce_tensor(out, reduce)
        self.dim = vec.shape[-1]
        self._model = keras.Model(sub.inputs, vec, name=f"{model.name}_features")
        # Each padded batch is split across the strategy's replicas (one device: unchanged).
        self._forward = _compute.distribute(_compute.compiled_forward(self._model),
                                            _compute.resolve_strategy(strategy),
                                            rows=self.batch_size)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One padded batch through the compiled graph; returns ``(n, D)`` float32."""
        n = batch.shape[0]
        out = np.asarray(self._forward(_compute.pad_to(batch, self.batch_size)))
        if out.ndim != 2 or out.shape[0] != self.batch_size:
            raise ValueError(f"Layer {self.layer!r} returned shape {out.shape} for a batch of "
                             f"{self.batch_size} images; expected ({self.batch_size}, D).")
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
            raise TypeError("Expected `data` to be images (N, H, W, C) or a tf.data.Dataset. "
                            f"Received: data of type {type(data).__name__}")
        arr, single = _checks.as_batch(np.asarray(data), "N, H, W, C", "data")
        if arr.shape[0] == 0:
            raise ValueError(f"`data` is an empty batch. Received: data.shape={arr.shape}")
        expected = inspect.input_shape(self.model)
        if any(want is not None and got != want
               for got, want in zip(arr.shape[1:], expected, strict=True)):
            raise ValueError(f"Expected `data` of shape (N, {', '.join(map(str, expected))}) "
                             f"for model {self.model.name!r}. Received: data.shape={arr.shape}")
        bar = _compute.progress_bar(arr.shape[0], progress)
        parts = []
        # Convert and check one chunk at a time: a uint8 data set is never copied to float32.
        for start, stop in _compute.padded_chunks(arr.shape[0], self.batch_size):
            batch, _ = inspect.check_inputs(self.model, arr[start:stop], name="data")
            parts.append(self._run(batch))
            if bar is not None:
                bar.update(stop)
        return _checks.restore_single(np.concatenate(parts, axis=0), single)

    def _extract_dataset(self, data, progress):
        import tensorflow as tf

        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError("`data` is an infinite tf.data.Dataset (a `.repeat()` without "
                             "count?); take a finite part with `.take(n)`.")
        spec = data.element_spec
        if isinstance(spec, tf.TensorSpec):
            arity, image_spec = 1, spec
        elif isinstance(spec, tuple) and len(spec) in (2, 3) and all(
            isinstance(s, tf.TensorSpec) for s in spec
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
        bar = _compute.progress_bar(total, progress)
        columns: list[list[np.ndarray]] = [[] for _ in range(arity)]
        seen = 0
        for element in data:
            parts = (element,) if arity == 1 else tuple(element)
            batch, _ = inspect.check_inputs(self.model, parts[0].numpy(), name="data")
            columns[0].append(self._run(batch))
            for store, part in zip(columns[1:], parts[1:], strict=True):
                store.append(part.numpy())
            seen += batch.shape[0]
            if bar is not None:
                bar.update(seen)
        if bar is not None and total is None:
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


def features(model, data, layer=None, batch_size: int = 64, reduce: str = "flatten",
             progress: bool = False):
    """Feature vectors of ``data`` at ``layer``: a one-off `FeatureExtractor`.

    Args:
        model: a Keras image model.
        data: numpy images or a ``tf.data.Dataset`` (see `FeatureExtractor.extract`).
        layer: the feature layer; ``None`` for the input of the last ``Dense`` layer.
        batch_size: images per forward pass.
        reduce: ``"flatten"``, ``"gap"`` or ``"max"`` for spatial outputs.
        progress: show a progress bar.

    Returns:
        ``(N, D)`` float32 features, or ``(features, labels[, ids])`` for a dataset that yields
        labels (and ids); see `FeatureExtractor.extract`.

    >>> features(model, images).shape
    (1797, 128)
    """
    extractor = FeatureExtractor(model, layer=layer, reduce=reduce, batch_size=batch_size)
    return extractor.extract(data, progress=progress)


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


def _check_features(values, name: str = "features") -> np.ndarray:
    try:
        arr = np.asarray(values)
    except Exception as err:  # ragged lists
        raise ValueError(f"`{name}` could not be read as an array: {err}") from None
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"Expected `{name}` of a real numeric dtype. Received: {name}.dtype="
                        f"{arr.dtype}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"Expected `{name}` of shape (N, D) with N, D >= 1. Received: "
                         f"{name}.shape={arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def nearest(features, query, k: int = 5, metric: str = "euclidean", extractor=None,
            exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of each query among ``features`` (exact, brute force).

    Args:
        features: ``(N, D)`` feature vectors to search.
        query: what to look up, one of
            * an int or a sequence of ints: rows of ``features`` (the row itself is left out
              of its own neighbours when ``exclude_self``);
            * feature vectors ``(D,)`` or ``(Q, D)``;
            * images ``(H, W, C)`` or ``(Q, H, W, C)``, turned into vectors by ``extractor``
              (the `FeatureExtractor` that made ``features``).
        k: neighbours per query.
        metric: ``"euclidean"`` or ``"cosine"`` (distance ``1 - cos``).
        extractor: needed for image queries.
        exclude_self: leave an index query out of its own neighbours.

    Returns:
        ``(indices, distances)``: int64 and float32 arrays of shape ``(Q, k)``, nearest first;
        equal distances keep the order of the rows in ``features``.

    Raises:
        ValueError: unknown metric, ``k`` larger than the candidates, an index out of range,
            vectors of another length than ``features``.
        TypeError: an image query without ``extractor``.

    >>> idx, dist = nearest(vectors, 0, k=5, metric="cosine")
    >>> idx.shape
    (1, 5)
    """
    from sklearn.metrics import pairwise_distances

    if metric not in METRICS:
        raise ValueError(f"Expected `metric` in {METRICS}. Received: metric={metric!r}")
    feats = _check_features(features)
    n = feats.shape[0]
    k = _checks.check_positive_int(k, "k")
    q = np.asarray(query)
    by_index = q.dtype != bool and np.issubdtype(q.dtype, np.integer) and q.ndim <= 1
    if by_index:
        rows = np.atleast_1d(q).astype(np.int64)
        if rows.size == 0:
            raise ValueError("`query` is an empty sequence of indices.")
        if rows.min() < -n or rows.max() >= n:
            raise ValueError(f"`query` indices must lie in [{-n}, {n - 1}] for {n} features. "
                             f"Received: {rows.tolist()}")
        rows = rows % n
        vectors = feats[rows]
    elif q.ndim in (3, 4):
        if extractor is None:
            raise TypeError("`query` looks like images (rank 3 or 4); pass `extractor=` (the "
                            "FeatureExtractor that made `features`) to turn them into vectors.")
        vectors = np.atleast_2d(extractor.extract(q))
    else:
        vectors = _check_features(np.atleast_2d(q), name="query")
    if vectors.shape[1] != feats.shape[1]:
        raise ValueError(f"`query` vectors have length {vectors.shape[1]}, `features` have "
                         f"{feats.shape[1]}.")
    skip = exclude_self and by_index
    available = n - 1 if skip else n
    if k > available:
        raise ValueError(f"Expected `k` <= {available} (the candidates per query). "
                         f"Received: k={k}")
    out_idx = np.empty((vectors.shape[0], k), np.int64)
    out_dist = np.empty((vectors.shape[0], k), np.float32)
    block = max(1, 2**22 // n)  # bounds the distance matrix held at once to ~32 MB
    base = feats.astype(np.float64)
    for start in range(0, vectors.shape[0], block):
        stop = min(start + block, vectors.shape[0])
        dist = pairwise_distances(vectors[start:stop].astype(np.float64), base, metric=metric)
        if skip:
            dist[np.arange(stop - start), rows[start:stop]] = np.inf
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        out_idx[start:stop] = order
        out_dist[start:stop] = np.take_along_axis(dist, order, axis=1)
    return out_idx, out_dist


def kmeans(features, n_clusters: int = 10, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """KMeans cluster of every feature vector (scikit-learn, ``n_init`` restarts).

    Returns:
        ``(N,)`` int64 cluster indices in ``[0, n_clusters)``.

    >>> kmeans(vectors, n_clusters=10).shape
    (1797,)
    """
    from sklearn.cluster import KMeans

    feats = _check_features(features)
    n_clusters = _checks.check_positive_int(n_clusters, "n_clusters")
    if n_clusters > feats.shape[0]:
        raise ValueError(f"Expected `n_clusters` <= {feats.shape[0]} (the number of vectors). "
                         f"Received: n_clusters={n_clusters}")
    model = KMeans(n_clusters=n_clusters, n_init=_checks.check_positive_int(n_init, "n_init"),
                   random_state=seed)
    return model.fit_predict(feats).astype(np.int64)


def purity(clusters, labels) -> float:
    """Cluster purity: the share of points whose label is their cluster's majority label.

    ``sum over clusters of (count of the most common label) / N``; 1.0 when every cluster holds
    one label only.

    >>> purity([0, 0, 1, 1], ["a", "a", "b", "a"])
    0.75
    """
    c = np.asarray(clusters).ravel()
    y = np.asarray(labels).ravel()
    if c.shape != y.shape or c.size == 0:
        raise ValueError(f"Expected `clusters` and `labels` of the same non-zero length. "
                         f"Received: {c.shape[0]} clusters and {y.shape[0]} labels")
    _, y_codes = np.unique(y, return_inverse=True)
    _, c_codes = np.unique(c, return_inverse=True)
    table = np.zeros((c_codes.max() + 1, y_codes.max() + 1), np.int64)
    np.add.at(table, (c_codes, y_codes), 1)
    return float(table.max(axis=1).sum() / c.size)


def project(features, method: str = "pca", seed: int = 0, perplexity: float = 30.0,
            pca_dims: int = 50, max_iter: int = 1000) -> np.ndarray:
    """A 2-D map of the feature vectors.

    Args:
        features: ``(N, D)`` vectors.
        method: ``"pca"`` (linear, fast), ``"tsne"`` (scikit-learn's t-SNE, after PCA to
            ``pca_dims`` dimensions when ``D`` is larger, the usual practice) or ``"umap"``
            (needs ``umap-learn``: ``pip install kerasviz[umap]``).
        seed: random seed (t-SNE, UMAP).
        perplexity: t-SNE perplexity, lowered to ``(N - 1) / 3`` for small ``N``.
        pca_dims: dimensions kept before t-SNE.
        max_iter: t-SNE optimisation steps (at least 250).

    Returns:
        ``(N, 2)`` float32 coordinates.

    Raises:
        ValueError: an unknown method, fewer than 3 vectors (t-SNE, UMAP).
        ImportError: ``"umap"`` without ``umap-learn`` installed.

    >>> project(vectors, "tsne").shape
    (1797, 2)
    """
    from sklearn.decomposition import PCA

    feats = _check_features(features)
    n, d = feats.shape
    if method == "pca":
        if n < 2:
            raise ValueError("PCA needs at least 2 vectors.")
        pca = PCA(n_components=min(2, d), random_state=seed)
        out = pca.fit_transform(feats)
        if out.shape[1] < 2:  # one-dimensional features: a line on the x axis
            out = np.concatenate([out, np.zeros_like(out)], axis=1)
        return out.astype(np.float32)
    if method not in ("tsne", "umap"):
        raise ValueError(f"Expected `method` in ('pca', 'tsne', 'umap'). Received: "
                         f"method={method!r}")
    if n < 4:
        raise ValueError(f"{method} needs at least 4 vectors. Received: {n}")
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ImportError("method='umap' needs the optional package umap-learn: "
                              "`pip install kerasviz[umap]`.") from None
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1))
        return np.asarray(reducer.fit_transform(feats), dtype=np.float32)
    from sklearn.manifold import TSNE

    if d > pca_dims and n > pca_dims:
        feats = PCA(n_components=pca_dims, random_state=seed).fit_transform(feats)
    max_iter = _checks.check_positive_int(max_iter, "max_iter", minimum=250)
    tsne = TSNE(n_components=2, perplexity=min(float(perplexity), (n - 1) / 3.0), init="pca",
                learning_rate="auto", max_iter=max_iter, random_state=seed)
    return tsne.fit_transform(feats).astype(np.float32)


# --------------------------------------------------------------------------------------------
# TensorBoard projector export
# --------------------------------------------------------------------------------------------


def _metadata_rows(labels, n: int) -> list[str]:
    """Lines of ``metadata.tsv``: one column without header, or several with a header."""
    if isinstance(labels, Mapping):
        if not labels:
            raise ValueError("`labels` is an empty mapping; pass None for no metadata.")
        names = [str(k) for k in labels]
        columns = [np.asarray(v).ravel() if np.ndim(v) else None for v in labels.values()]
        for name, col in zip(names, columns, strict=True):
            if col is None or col.shape[0] != n:
                got = "a scalar" if col is None else f"{col.shape[0]} values"
                raise ValueError(f"`labels` column {name!r} has {got}; expected {n} (one per "
                                 "feature vector).")
    else:
        if isinstance(labels, str | bytes):
            raise TypeError("Expected `labels` to be a sequence (one per vector) or a mapping "
                            "{column: values}. Received: a string")
        arr = np.asarray(labels)
        if arr.ndim != 1:
            raise ValueError(f"Expected `labels` of shape (N,) or a mapping {{column: values}}. "
                             f"Received: labels.shape={arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(f"`labels` has {arr.shape[0]} values; expected {n} (one per "
                             "feature vector).")
        names, columns = [], [arr]

    def cell(value, column: str) -> str:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if "\t" in text or "\n" in text or "\r" in text:
            raise ValueError(f"`labels` {column} holds a value with a tab or line break: "
                             f"{text!r}; metadata.tsv cannot store it.")
        return text

    where = [f"column {c!r}" for c in names] or ["column"]
    rows = ["\t".join(cell(col[i], w) for col, w in zip(columns, where, strict=True))
            for i in range(n)]
    if len(columns) > 1:  # the projector reads a first line with a tab as the header
        rows.insert(0, "\t".join(cell(c, "name") for c in names))
    return rows


def _sprite_images(images, n: int) -> np.ndarray:
    """Validate thumbnail source images; returns ``(N, H, W, C)`` uint8."""
    if isinstance(images, np.ndarray):
        items = images
    elif isinstance(images, Sequence) and not isinstance(images, str | bytes):
        shapes = {np.shape(img) for img in images}
        if len(shapes) > 1:
            first = [np.shape(img) for img in images]
            odd = next(i for i, s in enumerate(first) if s != first[0])
            raise ValueError(f"`images` for the sprite must all have one size. Received: "
                             f"images[0].shape={first[0]} and images[{odd}].shape={first[odd]}")
        items = np.asarray(images)
    else:
        raise TypeError("Expected `images` as an array (N, H, W[, C]) or a list of arrays. "
                        f"Received: {type(images).__name__}")
    arr = np.asarray(items)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError("Expected `images` of shape (N, H, W) or (N, H, W, C) with C in 1, 3, "
                         f"4. Received: images.shape={arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"`images` has {arr.shape[0]} images; expected {n} (one per feature "
                         "vector).")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"Expected numeric `images`. Received: images.dtype={arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("`images` contains NaN or infinite values.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        scaled = arr
    elif lo >= 0.0 and hi <= 255.0:
        scaled = arr / 255.0
    else:
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return np.round(scaled * 255.0).astype(np.uint8)


def sprite_layout(n: int, height: int, width: int) -> tuple[int, int, int]:
    """``(per_row, thumb_h, thumb_w)`` for a sprite of ``n`` thumbnails within 8192 px.

    Thumbnails fill a square grid of ``ceil(sqrt(n))`` per row; they keep the images' aspect
    and are never larger than the images, and shrink as ``n`` grows so the sprite fits.

    >>> sprite_layout(1797, 32, 32)
    (43, 32, 32)
    >>> sprite_layout(100_000, 32, 32)
    (317, 25, 25)
    """
    per_row = math.ceil(math.sqrt(n))
    cell = SPRITE_LIMIT // per_row
    if cell < 1:
        raise ValueError(f"{n} images do not fit a {SPRITE_LIMIT} px sprite even at 1 px each.")
    longest = max(height, width)
    if longest <= cell:
        return per_row, height, width
    # Integer arithmetic: the longer side becomes exactly `cell`, the other keeps the aspect.
    return per_row, max(1, height * cell // longest), max(1, width * cell // longest)


def _write_sprite(path: Path, images: np.ndarray) -> tuple[int, int]:
    """Write the sprite PNG; returns the thumbnail ``(width, height)``."""
    from PIL import Image

    n, h, w, c = images.shape
    per_row, th, tw = sprite_layout(n, h, w)
    rows = math.ceil(n / per_row)
    sheet = np.zeros((rows * th, per_row * tw, c), np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    for i in range(n):
        tile = images[i]
        if (th, tw) != (h, w):
            pic = Image.fromarray(tile[..., 0] if c == 1 else tile, mode)
            tile = np.asarray(pic.resize((tw, th), Image.Resampling.LANCZOS)).reshape(th, tw, c)
        r, col = divmod(i, per_row)
        sheet[r * th:(r + 1) * th, col * tw:(col + 1) * tw] = tile
    Image.fromarray(sheet[..., 0] if c == 1 else sheet, mode).save(path)
    return tw, th


def _write_checkpoint(folder: Path, vectors: np.ndarray, name: str) -> str:
    """Save the vectors as a TF checkpoint; returns the tensor name the projector reads."""
    import tensorflow as tf

    variable = tf.Variable(vectors, name=name, trainable=False)
    tf.train.Checkpoint(**{name: variable}).save(str(folder / "embedding.ckpt"))
    return f"{name}/.ATTRIBUTES/VARIABLE_VALUE"


def _write_events(folder: Path) -> None:
    """An (empty) event file, so the export is listed as a run under a parent log directory."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(folder))
    writer.flush()
    writer.close()


def _write_config(folder: Path, tensor_name: str, metadata: bool, sprite) -> None:
    from google.protobuf import text_format
    from tensorboard.plugins.projector import ProjectorConfig

    config = ProjectorConfig()
    emb = config.embeddings.add()
    emb.tensor_name = tensor_name
    if metadata:
        emb.metadata_path = METADATA_NAME  # relative: resolved against the config's folder
    if sprite is not None:
        emb.sprite.image_path = SPRITE_NAME
        emb.sprite.single_image_dim.extend(sprite)  # [width, height]
    (folder / CONFIG_NAME).write_text(text_format.MessageToString(config))


def export_projector(logdir, features, labels=None, images=None, overwrite: bool = False,
                     name: str = "embedding") -> Path:
    """Write a log directory that TensorBoard's embedding projector opens.

    The folder holds the vectors as a TensorFlow checkpoint (tensor
    ``"<name>/.ATTRIBUTES/VARIABLE_VALUE"``), ``metadata.tsv`` (one column: no header, as the
    projector requires; several columns: a header row), ``sprite.png`` (a grid of thumbnails
    within 8192 px, sized from ``N`` by `sprite_layout`), ``projector_config.pbtxt`` and an
    empty event file (so the folder is also a run when TensorBoard is pointed at its parent).
    Everything is written to a temporary sibling folder and moved into place when complete: a
    failure leaves no half export and leaves a previous export untouched.

    Open it with ``tensorboard --logdir LOGDIR`` and choose "Projector".

    Args:
        logdir: the folder to create; owned by the export.
        features: ``(N, D)`` vectors.
        labels: ``None``; one value per vector (a single metadata column); or a mapping
            ``{column name: N values}``.
        images: ``None`` or the ``N`` images (``(N, H, W[, C])`` array or a list of arrays of
            one size; floats in [0, 1] or [0, 255], or uint8) for the sprite.
        overwrite: replace an existing export at ``logdir``. A folder that holds something
            other than a projector export is never replaced.
        name: the checkpoint variable name (a Python identifier).

    Returns:
        The path of the export folder.

    Raises:
        FileExistsError: ``logdir`` exists and ``overwrite`` is False, or it is not an export.
        ValueError: labels or images of the wrong length; images of mixed sizes; values with
            tabs or line breaks in the metadata.

    >>> export_projector("logs/digits", vectors, labels=y, images=x)
    PosixPath('logs/digits')
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"Expected `name` to be a Python identifier. Received: name={name!r}")
    vectors = _check_features(features)
    n = vectors.shape[0]
    rows = None if labels is None else _metadata_rows(labels, n)
    thumbs = None if images is None else _sprite_images(images, n)
    target = Path(logdir).expanduser().absolute()
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace the export.")
        if not target.is_dir() or (any(target.iterdir()) and not (target / CONFIG_NAME).exists()):
            raise FileExistsError(f"{target} exists and is not a projector export (no "
                                  f"{CONFIG_NAME}); it is not replaced. Choose another logdir.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        tensor_name = _write_checkpoint(tmp, vectors, name)
        if rows is not None:
            (tmp / METADATA_NAME).write_text("\n".join(rows) + "\n", encoding="utf-8")
        dims = None if thumbs is None else _write_sprite(tmp / SPRITE_NAME, thumbs)
        _write_config(tmp, tensor_name, rows is not None, dims)
        _write_events(tmp)
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Path(logdir)


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is swapped out, then deleted."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = tmp.with_suffix(".old")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


class ProjectorCallback(keras.callbacks.Callback):
    """Exports feature vectors of fixed inputs to the projector during training.

    The built-in ``keras.callbacks.TensorBoard`` lost its ``embeddings_*`` options in TF2 /
    Keras 3; this brings them back. Each export is a run folder ``log_dir/epoch_NNNN`` (the
    epoch count after which it was taken), so several exports can be compared in the
    projector's run menu: every ``every`` epochs when given, and always after the last epoch.

    Args:
        log_dir: the parent folder of the exports (may be the TensorBoard callback's folder).
        inputs: the images to embed, ``(N, H, W, C)``.
        labels: metadata for `export_projector` (one value per image, or a mapping).
        layer: the feature layer (default: the input of the last ``Dense`` layer).
        reduce: reduction of spatial maps (see `FeatureExtractor`).
        every: export every this many epochs; ``None`` only at the end of training.
        sprite: use ``inputs`` as sprite thumbnails.
        batch_size: images per forward pass.
        overwrite: replace exports left by an earlier run; otherwise training refuses to start
            when ``log_dir`` already holds ``epoch_*`` exports.

    >>> model.fit(x, y, epochs=10, callbacks=[ProjectorCallback("logs", x[:500], y[:500])])
    """

    def __init__(self, log_dir, inputs, labels=None, layer=None, reduce: str = "flatten",
                 every: int | None = None, sprite: bool = True, batch_size: int = 64,
                 overwrite: bool = False):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.inputs, _ = _checks.check_images(inputs, name="inputs")
        n = self.inputs.shape[0]
        if labels is not None:
            _metadata_rows(labels, n)  # fail now, not after the training
        self.labels = labels
        self.layer = layer
        self.reduce = reduce
        self.every = None if every is None else _checks.check_positive_int(every, "every")
        self.sprite = sprite
        self.batch_size = batch_size
        self.overwrite = overwrite
        self.exported: list[Path] = []
        self._extractor = None
        self._epoch = 0
        self._last_export = None

    def on_train_begin(self, logs=None):
        if self.log_dir.exists() and not self.overwrite:
            existing = sorted(p.name for p in self.log_dir.glob("epoch_*"))
            if existing:
                raise FileExistsError(f"{self.log_dir} already holds projector exports "
                                      f"{existing[:3]}; pass overwrite=True or another log_dir.")
        self._extractor = FeatureExtractor(self.model, layer=self.layer, reduce=self.reduce,
                                           batch_size=self.batch_size)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        if self.every is not None and self._epoch % self.every == 0:
            self._export()

    def on_train_end(self, logs=None):
        if self._last_export != self._epoch:
            self._export()

    def _export(self):
        vectors = self._extractor.extract(self.inputs)
        path = export_projector(self.log_dir / f"epoch_{self._epoch:04d}", vectors,
                                labels=self.labels,
                                images=self.inputs if self.sprite else None, overwrite=True)
        self._last_export = self._epoch
        self.exported.append(path)
