"""Feature vectors and their nearest neighbours as files: ``features.npy`` and
``neighbours.csv``, written atomically and never over earlier files unless asked."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasviz import _checks, _files
from kerasviz.embedding.space import METRICS, nearest

FEATURES_NAME = "features.npy"
NEIGHBOURS_NAME = "neighbours.csv"
NEIGHBOURS_HEADER = ("file", "rank", "neighbour", "distance")


def _neighbour_rows(names: list[str], vectors: np.ndarray, k: int, metric: str) -> str:
    """The text of ``neighbours.csv``: a header, then ``k`` rows per vector, nearest first."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(NEIGHBOURS_HEADER)
    k = min(k, len(names) - 1)  # a vector is never its own neighbour
    if k >= 1:
        idx, dist = nearest(vectors, np.arange(len(names)), k=k, metric=metric)  # (N, k) each
        for i, name in enumerate(names):
            for r in range(k):
                writer.writerow((name, r + 1, names[idx[i, r]], f"{dist[i, r]:.6g}"))
    return text.getvalue()


def save_features(
    out,
    names: Sequence[str],
    vectors,
    k: int = 5,
    metric: str = "euclidean",
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write feature vectors as ``features.npy`` and their neighbours as ``neighbours.csv``.

    ``features.npy`` holds the ``(N, D)`` float32 vectors (``numpy.load`` reads it);
    ``neighbours.csv`` has the header ``file,rank,neighbour,distance`` and, for each vector,
    its ``k`` nearest other vectors (`nearest`, rank 1 first) named by ``names``. Both files
    are written to temporary files in ``out`` first and renamed into place only when both are
    complete, so a failure leaves neither half-written file nor a changed earlier one.

    Args:
        out: the folder to write into; created (with its parents) when missing.
        names: one name per vector (a string or a path, such as the image's file), used in
            ``neighbours.csv``.
        vectors: ``(N, D)`` feature vectors.
        k: neighbours per vector, at most ``N - 1`` (fewer vectors give fewer; 0 or a single
            vector: the header alone).
        metric: ``"euclidean"`` or ``"cosine"``.
        overwrite: replace ``features.npy`` and ``neighbours.csv`` already in ``out``; other
            files in ``out`` are never touched.

    Returns:
        The paths of ``features.npy`` and ``neighbours.csv``.

    Raises:
        FileExistsError: one of the files exists and ``overwrite`` is False, or ``out`` is a
            file.
        ValueError: ``names`` of another length than ``vectors``, bad vectors, a negative
            ``k``, an unknown ``metric``.
        TypeError: ``names`` that are not strings or paths, a ``k`` that is not an int.

    >>> save_features("out/digits", files, vectors, k=5)
    (PosixPath('out/digits/features.npy'), PosixPath('out/digits/neighbours.csv'))
    """
    feats = _checks.check_features(vectors, "vectors")
    k = _checks.check_positive_int(k, "k", minimum=0)
    metric = _checks.check_choice(metric, "metric", METRICS)
    if isinstance(names, str | bytes) or not isinstance(names, Sequence | np.ndarray):
        # a string is one name, not a sequence of them
        raise TypeError(
            f"Expected `names` to be a sequence of strings (one per vector). "
            f"Received: names of type {type(names).__name__}"
        )
    labels = [os.fspath(n) if isinstance(n, str | os.PathLike) else None for n in names]
    if None in labels or not all(isinstance(n, str) for n in labels):
        bad = next(n for n, t in zip(names, labels, strict=True) if not isinstance(t, str))
        raise TypeError(
            f"Expected `names` of strings or paths. Received: {bad!r} of type {type(bad).__name__}"
        )
    if len(labels) != feats.shape[0]:
        raise ValueError(
            f"Expected one name per vector: {feats.shape[0]} names. Received: {len(labels)} names"
        )
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder; choose another `out`.")
    paths = (folder / FEATURES_NAME, folder / NEIGHBOURS_NAME)
    existing = [p.name for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{folder} already holds {', '.join(existing)}; pass overwrite=True to replace them."
        )
    table = _neighbour_rows(labels, feats, k, metric)  # computed before anything is written
    temps = []
    try:
        temps.append(_files.staged(paths[0], lambda handle: np.save(handle, feats)))
        temps.append(_files.staged(paths[1], lambda handle: handle.write(table.encode("utf-8"))))
        for tmp, path in zip(temps, paths, strict=True):
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return paths
