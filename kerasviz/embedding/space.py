"""The geometry of feature vectors: nearest neighbours, clusters and 2-D maps (scikit-learn).

Numpy in, numpy out; no Keras here (an image query goes through the `FeatureExtractor` given).
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks

METRICS = ("euclidean", "cosine")
PROJECTIONS = ("pca", "tsne", "umap")


def nearest(
    features,
    query,
    k: int = 5,
    metric: str = "euclidean",
    extractor=None,
    exclude_self: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
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

    metric = _checks.check_choice(metric, "metric", METRICS)
    feats = _checks.check_features(features)
    n = feats.shape[0]
    k = _checks.check_positive_int(k, "k")
    q = np.asarray(query)
    by_index = q.dtype != bool and np.issubdtype(q.dtype, np.integer) and q.ndim <= 1
    if by_index:
        rows = np.atleast_1d(q).astype(np.int64)
        if rows.size == 0:
            raise ValueError("`query` is an empty sequence of indices.")
        if rows.min() < -n or rows.max() >= n:
            raise ValueError(
                f"`query` indices must lie in [{-n}, {n - 1}] for {n} features. "
                f"Received: {rows.tolist()}"
            )
        rows = rows % n
        vectors = feats[rows]
    elif q.ndim in (3, 4):
        if extractor is None:
            raise TypeError(
                "`query` looks like images (rank 3 or 4); pass `extractor=` (the "
                "FeatureExtractor that made `features`) to turn them into vectors."
            )
        vectors = np.atleast_2d(extractor.extract(q))
    else:
        vectors = _checks.check_features(np.atleast_2d(q), name="query")
    if vectors.shape[1] != feats.shape[1]:
        raise ValueError(
            f"`query` vectors have length {vectors.shape[1]}, `features` have {feats.shape[1]}."
        )
    skip = exclude_self and by_index
    available = n - 1 if skip else n
    if k > available:
        raise ValueError(f"Expected `k` <= {available} (the candidates per query). Received: k={k}")
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

    feats = _checks.check_features(features)
    n_clusters = _checks.check_positive_int(n_clusters, "n_clusters")
    if n_clusters > feats.shape[0]:
        raise ValueError(
            f"Expected `n_clusters` <= {feats.shape[0]} (the number of vectors). "
            f"Received: n_clusters={n_clusters}"
        )
    model = KMeans(
        n_clusters=n_clusters,
        n_init=_checks.check_positive_int(n_init, "n_init"),
        random_state=seed,
    )
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
        raise ValueError(
            f"Expected `clusters` and `labels` of the same non-zero length. "
            f"Received: {c.shape[0]} clusters and {y.shape[0]} labels"
        )
    _, y_codes = np.unique(y, return_inverse=True)
    _, c_codes = np.unique(c, return_inverse=True)
    table = np.zeros((c_codes.max() + 1, y_codes.max() + 1), np.int64)
    np.add.at(table, (c_codes, y_codes), 1)
    return float(table.max(axis=1).sum() / c.size)


def project(
    features,
    method: str = "pca",
    seed: int = 0,
    perplexity: float = 30.0,
    pca_dims: int = 50,
    max_iter: int = 1000,
) -> np.ndarray:
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

    method = _checks.check_choice(method, "method", PROJECTIONS)
    feats = _checks.check_features(features)
    n, d = feats.shape
    if method == "pca":
        if n < 2:
            raise ValueError("PCA needs at least 2 vectors.")
        pca = PCA(n_components=min(2, d), random_state=seed)
        out = pca.fit_transform(feats)
        if out.shape[1] < 2:  # one-dimensional features: a line on the x axis
            out = np.concatenate([out, np.zeros_like(out)], axis=1)
        return out.astype(np.float32)
    if n < 4:
        raise ValueError(f"{method} needs at least 4 vectors. Received: {n}")
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ImportError(
                "method='umap' needs the optional package umap-learn: `pip install kerasviz[umap]`."
            ) from None
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1))
        return np.asarray(reducer.fit_transform(feats), dtype=np.float32)
    from sklearn.manifold import TSNE

    if d > pca_dims and n > pca_dims:
        feats = PCA(n_components=pca_dims, random_state=seed).fit_transform(feats)
    max_iter = _checks.check_positive_int(max_iter, "max_iter", minimum=250)
    tsne = TSNE(
        n_components=2,
        perplexity=min(float(perplexity), (n - 1) / 3.0),
        init="pca",
        learning_rate="auto",
        max_iter=max_iter,
        random_state=seed,
    )
    return tsne.fit_transform(feats).astype(np.float32)
