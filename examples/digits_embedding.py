"""Feature vectors of the digits: neighbours, clusters, a t-SNE map and the TensorBoard projector.

    python examples/digits_embedding.py                   # writes into out/digits_embedding/
    python examples/digits_embedding.py --out /tmp/emb --quick

The lecture's "final feature vectors": ``digits_cnn``'s 128 values at ``fc1`` (the input of its
classifier) for all 1797 scikit-learn digits. Images that differ pixel by pixel but show the
same digit lie close together there: nearest neighbours share the query's label and KMeans
finds the ten digits without being told the labels.

Writes ``neighbors.png`` (queries and their 5 nearest neighbours), ``tsne.png`` (a 2-D map with
thumbnails), ``clusters.png`` (a montage per KMeans cluster) and ``projector/`` (open it with
the printed ``tensorboard`` command, then choose "Projector" in the menu). ``--quick`` maps 400
digits instead of 1797 with 500 t-SNE steps, and uses fewer KMeans restarts (for CI).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also for the subprocesses

from kerasviz._compute import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's start-up lines and retracing notices stay off the terminal

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/digits_embedding", help="output folder")
    parser.add_argument("--quick", action="store_true", help="smaller t-SNE and KMeans (CI)")
    parser.add_argument("--k", type=int, default=5, help="neighbours per query")
    args = parser.parse_args(argv)

    from kerasviz import datasets, embedding, models, plot

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = models.load("digits_cnn")
    class_names = models.card("digits_cnn").get("class_names")
    images, labels = datasets.digits(32)

    start = time.perf_counter()
    extractor = embedding.FeatureExtractor(model, batch_size=128)
    vectors = extractor.extract(images)
    print(
        f"features: {vectors.shape} at layer {extractor.layer!r} "
        f"({time.perf_counter() - start:.1f} s)"
    )

    # Neighbours: how often do the k nearest digits in feature space share the query's label?
    idx, dist = embedding.nearest(vectors, np.arange(len(labels)), k=args.k)
    agreement = float((labels[idx] == labels[:, None]).mean())
    idx_cos, _ = embedding.nearest(vectors, np.arange(len(labels)), k=args.k, metric="cosine")
    agreement_cos = float((labels[idx_cos] == labels[:, None]).mean())
    pixels = images.reshape(len(images), -1)
    idx_px, _ = embedding.nearest(pixels, np.arange(len(labels)), k=args.k)
    agreement_px = float((labels[idx_px] == labels[:, None]).mean())
    print(
        f"{args.k}-NN label agreement: {agreement:.3f} euclidean, {agreement_cos:.3f} cosine "
        f"(raw pixels: {agreement_px:.3f})"
    )

    rng = np.random.default_rng(0)
    queries = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(labels == d), 1) for d in range(10)])
    )
    fig = plot.neighbor_strips(
        images[queries],
        images[idx[queries]],
        dist[queries],
        labels[queries],
        labels[idx[queries]],
        class_names,
    )
    print("wrote", plot.save(fig, out / "neighbors.png"))

    # Clusters: KMeans(10) on the feature vectors, scored against the labels.
    clusters = embedding.kmeans(vectors, n_clusters=10, seed=0, n_init=3 if args.quick else 10)
    purity = embedding.purity(clusters, labels)
    purity_px = embedding.purity(embedding.kmeans(pixels, 10, seed=0, n_init=3), labels)
    print(f"KMeans(10) purity: {purity:.3f} (raw pixels: {purity_px:.3f})")
    fig = plot.cluster_montage(images, clusters, labels, per_cluster=10, class_names=class_names)
    print("wrote", plot.save(fig, out / "clusters.png"))

    # A 2-D map.
    subset = (
        np.arange(len(labels))
        if not args.quick
        else np.sort(rng.choice(len(labels), 400, replace=False))
    )
    start = time.perf_counter()
    points = embedding.project(
        vectors[subset], "tsne", seed=0, max_iter=500 if args.quick else 1000
    )
    fig = plot.embedding_map(
        points,
        labels[subset],
        images[subset],
        thumbnails=60,
        class_names=class_names,
        title=f"t-SNE of digits_cnn {extractor.layer} features ({len(subset)} digits)",
    )
    print(f"wrote {plot.save(fig, out / 'tsne.png')} (t-SNE {time.perf_counter() - start:.1f} s)")

    # The TensorBoard projector.
    names = [class_names[i] for i in labels] if class_names else labels
    logdir = embedding.export_projector(
        out / "projector",
        vectors,
        labels={"digit": names, "kmeans_cluster": clusters, "index": np.arange(len(labels))},
        images=images,
        overwrite=True,
    )
    print(
        f"wrote {logdir}; open it with:\n"
        f"    tensorboard --logdir {logdir.resolve()} --host 127.0.0.1\n"
        'then open the printed address and choose "Projector" in the menu.'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
