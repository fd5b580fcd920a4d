"""Pictures of feature space: neighbour strips, 2-D maps with thumbnails, cluster montages."""

from __future__ import annotations

import numpy as np

from kerasviz.imageio import as_display
from kerasviz.plot._base import figure, show_image

_MISMATCH = "#d62728"


def _name(label, class_names) -> str:
    if label is None:
        return ""
    if class_names is not None:
        try:
            return str(class_names[int(label)])
        except (ValueError, TypeError, IndexError):
            return str(label)
    return str(label)


def _check_images(images, name: str, rank: int) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == rank - 1:
        arr = arr[..., None]
    if arr.ndim != rank:
        want = "(Q, H, W, C)" if rank == 4 else "(Q, K, H, W, C)"
        raise ValueError(f"Expected `{name}` of shape {want}. Received: {name}.shape={arr.shape}")
    return arr


def neighbor_strips(
    queries,
    neighbors,
    distances=None,
    query_labels=None,
    neighbor_labels=None,
    class_names=None,
    size: float = 1.2,
):
    """One row per query: the query image, then its ``K`` nearest neighbours (AlexNet's figure).

    A neighbour whose label differs from its query's is titled in red.

    Args:
        queries: ``(Q, H, W, C)`` query images.
        neighbors: ``(Q, K, H, W, C)`` their neighbours, nearest first (``images[idx]`` with
            ``idx`` from `kerasviz.embedding.nearest`).
        distances: ``(Q, K)`` distances shown under each neighbour.
        query_labels: ``(Q,)`` labels of the queries.
        neighbor_labels: ``(Q, K)`` labels of the neighbours.
        class_names: names indexed by integer labels.
        size: inches per image.

    Returns:
        The ``Figure``.

    >>> fig = neighbor_strips(x[q], x[idx], dist, y[q], y[idx])
    """
    q_imgs = _check_images(queries, "queries", 4)
    n_imgs = _check_images(neighbors, "neighbors", 5)
    rows, k = n_imgs.shape[:2]
    if q_imgs.shape[0] != rows:
        raise ValueError(
            f"`queries` has {q_imgs.shape[0]} images and `neighbors` "
            f"{rows} rows; expected the same number."
        )
    dist = None if distances is None else np.asarray(distances, dtype=np.float64)
    if dist is not None and dist.shape != (rows, k):
        raise ValueError(f"Expected `distances` of shape {(rows, k)}. Received: {dist.shape}")
    ql = None if query_labels is None else np.asarray(query_labels).reshape(-1)
    nl = None if neighbor_labels is None else np.asarray(neighbor_labels)
    if ql is not None and ql.shape[0] != rows:
        raise ValueError(f"Expected {rows} `query_labels`. Received: {ql.shape[0]}")
    if nl is not None and nl.shape != (rows, k):
        raise ValueError(f"Expected `neighbor_labels` of shape {(rows, k)}. Received: {nl.shape}")
    fig, axes = figure(rows, k + 1, size=size)
    for r in range(rows):
        show_image(axes[r, 0], q_imgs[r])
        head = "query" if ql is None else f"query: {_name(ql[r], class_names)}"
        axes[r, 0].set_title(head, fontsize=8, fontweight="bold")
        for j in range(k):
            ax = axes[r, j + 1]
            show_image(ax, n_imgs[r, j])
            parts = []
            if nl is not None:
                parts.append(_name(nl[r, j], class_names))
            if dist is not None:
                parts.append(f"d={dist[r, j]:.3g}")
            wrong = nl is not None and ql is not None and nl[r, j] != ql[r]
            ax.set_title(" ".join(parts), fontsize=7, color=_MISMATCH if wrong else "black")
    fig.tight_layout(w_pad=0.2, h_pad=0.4)
    return fig


def _spread(points: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of ``count`` points spread over the map (greedy farthest-point sampling)."""
    n = points.shape[0]
    count = min(count, n)
    if count <= 0:
        return np.zeros((0,), np.int64)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    gap = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        nxt = int(np.argmax(gap))
        chosen.append(nxt)
        gap = np.minimum(gap, np.linalg.norm(points - points[nxt], axis=1))
    return np.asarray(chosen, np.int64)


def embedding_map(
    points,
    labels=None,
    images=None,
    thumbnails: int = 40,
    class_names=None,
    title: str | None = None,
    seed: int = 0,
    size: float = 7.0,
    thumb_px: float = 24.0,
    marks=None,
    mark_labels=None,
):
    """A 2-D scatter of feature vectors coloured by label, with thumbnails at some points.

    Args:
        points: ``(N, 2)`` map coordinates (`kerasviz.embedding.project`).
        labels: ``(N,)`` integer labels for the colours and legend.
        images: ``(N, H, W, C)`` images; ``thumbnails`` of them, chosen to spread over the map
            (farthest-point sampling from a ``seed``-chosen start), are drawn at their points
            with a frame in their label's colour.
        thumbnails: how many thumbnails to draw.
        class_names: legend names indexed by integer labels.
        title: the figure title.
        seed: chooses the first thumbnail.
        size: figure side in inches.
        thumb_px: thumbnail side on screen, in points.
        marks: ``(M, 2)`` more points drawn on top as black stars (e.g. the images a report
            explains, projected together with the others).
        mark_labels: ``M`` names written beside the stars.

    Returns:
        The ``Figure``.

    >>> fig = embedding_map(project(vectors, "tsne"), y, x, thumbnails=50)
    """
    from matplotlib import colormaps
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
        raise ValueError(
            f"Expected `points` of shape (N, 2) with N >= 1. Received: points.shape={pts.shape}"
        )
    n = pts.shape[0]
    lab = None if labels is None else np.asarray(labels).reshape(-1)
    if lab is not None and lab.shape[0] != n:
        raise ValueError(f"Expected {n} `labels` (one per point). Received: {lab.shape[0]}")
    fig, axes = figure(1, 1, size=size)
    ax = axes[0, 0]
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    classes = np.unique(lab) if lab is not None else np.zeros((1,))
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(classes)}
    if lab is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=6, color=cmap(0), alpha=0.7)
    else:
        for c in classes:
            sel = lab == c
            ax.scatter(
                pts[sel, 0],
                pts[sel, 1],
                s=6,
                color=colour[c],
                alpha=0.7,
                label=_name(c, class_names),
            )
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, markerscale=2.5, frameon=False
        )
    if images is not None and thumbnails > 0:
        imgs = np.asarray(images)
        if imgs.shape[0] != n:
            raise ValueError(f"Expected {n} `images` (one per point). Received: {imgs.shape[0]}")
        for i in _spread(pts, thumbnails, seed):
            img = as_display(imgs[i])
            zoom = thumb_px / max(img.shape[:2])
            box = OffsetImage(img, zoom=zoom, cmap="gray" if img.ndim == 2 else None)
            edge = colour[lab[i]] if lab is not None else "black"
            ab = AnnotationBbox(
                box, pts[i], frameon=True, pad=0.1, bboxprops={"edgecolor": edge, "linewidth": 1.5}
            )
            ax.add_artist(ab)
    if marks is not None:
        spots = np.asarray(marks, dtype=np.float64).reshape(-1, 2)
        if mark_labels is not None and len(mark_labels) != spots.shape[0]:
            raise ValueError(
                f"Expected {spots.shape[0]} `mark_labels` (one per mark). "
                f"Received: {len(mark_labels)}"
            )
        ax.scatter(
            spots[:, 0],
            spots[:, 1],
            s=160,
            marker="*",
            color="black",
            edgecolors="white",
            linewidths=1.0,
            zorder=5,
        )
        for i, spot in enumerate(spots if mark_labels is not None else []):
            ax.annotate(
                str(mark_labels[i]),
                spot,
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=8,
                fontweight="bold",
                zorder=6,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def cluster_montage(
    images,
    clusters,
    labels=None,
    per_cluster: int = 8,
    class_names=None,
    seed: int = 0,
    size: float = 1.0,
):
    """One row per cluster: a sample of its images, titled with its size and majority label.

    Images whose label differs from their cluster's majority label are titled in red.

    Args:
        images: ``(N, H, W, C)`` images.
        clusters: ``(N,)`` cluster indices (`kerasviz.embedding.kmeans`).
        labels: ``(N,)`` labels, for the majority label and the red titles.
        per_cluster: images shown per cluster (sampled with ``seed``).
        class_names: names indexed by integer labels.
        seed: random seed of the sample.
        size: inches per image.

    Returns:
        The ``Figure``.

    >>> fig = cluster_montage(x, kmeans(vectors, 10), y)
    """
    imgs = np.asarray(images)
    if imgs.ndim not in (3, 4):
        raise ValueError(
            "Expected `images` of shape (N, H, W) or (N, H, W, C). "
            f"Received: images.shape={imgs.shape}"
        )
    assign = np.asarray(clusters).reshape(-1)
    if imgs.shape[0] != assign.shape[0]:
        raise ValueError(
            f"`images` has {imgs.shape[0]} images and `clusters` "
            f"{assign.shape[0]} entries; expected the same number."
        )
    lab = None if labels is None else np.asarray(labels).reshape(-1)
    if lab is not None and lab.shape[0] != assign.shape[0]:
        raise ValueError(f"Expected {assign.shape[0]} `labels`. Received: {lab.shape[0]}")
    ids = np.unique(assign)
    rng = np.random.default_rng(seed)
    # Column 0 holds the cluster's description; the images follow.
    fig, axes = figure(len(ids), per_cluster + 1, size=size)
    for r, c in enumerate(ids):
        members = np.flatnonzero(assign == c)
        shown = np.sort(rng.choice(members, size=min(per_cluster, members.size), replace=False))
        majority = None
        head = f"cluster {c}\n{members.size} images"
        if lab is not None:
            values, counts = np.unique(lab[members], return_counts=True)
            majority = values[np.argmax(counts)]
            head += f"\nmostly {_name(majority, class_names)}\n({counts.max() / members.size:.0%})"
        axes[r, 0].text(
            0.5, 0.5, head, transform=axes[r, 0].transAxes, fontsize=8, ha="center", va="center"
        )
        for j, i in enumerate(shown):
            ax = axes[r, j + 1]
            show_image(ax, imgs[i])
            if lab is not None:
                wrong = lab[i] != majority
                ax.set_title(
                    _name(lab[i], class_names), fontsize=7, color=_MISMATCH if wrong else "black"
                )
    fig.tight_layout()
    return fig
