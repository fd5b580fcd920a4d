"""Feature vectors: extraction against hand arithmetic, neighbours on known geometry, clusters,
maps, plots, the training callback, streaming memory and the digits model's semantic space."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kerasviz import embedding, inspect

# --------------------------------------------------------------------------------------------
# Models with known features
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear_model(keras):
    """4x4x1 -> conv (1x1, 2 channels: x and -2x + 0.5) -> flatten -> dropout -> Dense(3)."""
    inputs = keras.Input((4, 4, 1), name="image")
    conv = keras.layers.Conv2D(2, 1, name="conv")
    h = conv(inputs)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(h)
    conv.set_weights([np.array([1.0, -2.0], np.float32).reshape(1, 1, 1, 2),
                      np.array([0.0, 0.5], np.float32)])
    return keras.Model(inputs, outputs, name="linear")


def conv_maps(x):
    """The conv layer's output by hand: (N, 4, 4, 2)."""
    return np.concatenate([x, -2.0 * x + 0.5], axis=-1)


@pytest.fixture(scope="module")
def x4():
    return np.random.default_rng(0).uniform(0, 1, (7, 4, 4, 1)).astype(np.float32)


class TestExtraction:
    def test_default_layer_is_the_classifier_input(self, linear_model, functional_model,
                                                  sequential_no_input, nested_model):
        # Dropout is the identity at inference: the layer before it is reported.
        assert embedding.FeatureExtractor(linear_model).layer == "flat"
        assert embedding.FeatureExtractor(functional_model).layer == "gap"
        assert inspect.feature_layer(sequential_no_input) == "gap"
        assert inspect.feature_layer(nested_model) == "gap"

    def test_default_features_equal_hand_arithmetic(self, linear_model, x4):
        vectors = embedding.features(linear_model, x4)
        np.testing.assert_allclose(vectors, conv_maps(x4).reshape(7, -1), atol=1e-6)
        assert vectors.dtype == np.float32

    @pytest.mark.parametrize(
        "reduce, reference",
        [("flatten", lambda m: m.reshape(len(m), -1)),
         ("gap", lambda m: m.mean(axis=(1, 2))),
         ("max", lambda m: m.max(axis=(1, 2)))],
    )
    def test_reductions_of_a_spatial_layer(self, linear_model, x4, reduce, reference):
        vectors = embedding.features(linear_model, x4, layer="conv", reduce=reduce)
        np.testing.assert_allclose(vectors, reference(conv_maps(x4)), atol=1e-6)

    def test_batch_size_does_not_change_results(self, functional_model):
        x = np.random.default_rng(1).uniform(0, 1, (7, 16, 16, 3)).astype(np.float32)
        results = [embedding.features(functional_model, x, layer="conv2", batch_size=b)
                   for b in (1, 3, 7, 64)]
        for r in results[1:]:
            np.testing.assert_allclose(r, results[0], atol=1e-6)
        assert results[0].shape == (7, 8 * 8 * 6)

    def test_a_layer_inside_a_nested_backbone(self, nested_model):
        x = np.random.default_rng(2).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
        path = f"{nested_model.layers[1].name}/block_16_project"
        maps = np.asarray(inspect.submodel(nested_model, [path])(x, training=False)[0])
        vectors = embedding.features(nested_model, x, layer=path, reduce="gap")
        np.testing.assert_allclose(vectors, maps.mean(axis=(1, 2)), atol=1e-5)

    def test_single_image_and_uint8(self, linear_model, x4):
        one = embedding.features(linear_model, x4[2])
        assert one.shape == (32,)
        np.testing.assert_allclose(one, conv_maps(x4[2:3]).reshape(-1), atol=1e-6)
        raw = np.arange(7 * 16, dtype=np.uint8).reshape(7, 4, 4, 1)
        np.testing.assert_allclose(embedding.features(linear_model, raw),
                                   conv_maps(raw.astype(np.float32)).reshape(7, -1), rtol=1e-6)

    def test_extractor_traces_once(self, linear_model, x4):
        extractor = embedding.FeatureExtractor(linear_model, batch_size=4)
        for n in (1, 3, 7, 5):
            extractor.extract(x4[:n])
        assert extractor._forward.experimental_get_tracing_count() == 1

    def test_datasets_in_every_form(self, linear_model, x4):
        import tensorflow as tf

        expected = conv_maps(x4).reshape(7, -1)
        labels = np.arange(7) % 3
        ids = np.array([f"img{i}" for i in range(7)])
        extractor = embedding.FeatureExtractor(linear_model, batch_size=3)
        # Unbatched images.
        got = extractor.extract(tf.data.Dataset.from_tensor_slices(x4))
        np.testing.assert_allclose(got, expected, atol=1e-6)
        # Batched (images, labels) with batches that do not match ours.
        vectors, got_labels = extractor.extract(
            tf.data.Dataset.from_tensor_slices((x4, labels)).batch(2))
        np.testing.assert_allclose(vectors, expected, atol=1e-6)
        np.testing.assert_array_equal(got_labels, labels)
        # (images, labels, ids): string ids come back as str.
        vectors, got_labels, got_ids = extractor.extract(
            tf.data.Dataset.from_tensor_slices((x4, labels, ids)).batch(4))
        np.testing.assert_allclose(vectors, expected, atol=1e-6)
        np.testing.assert_array_equal(got_ids, ids)
        assert got_ids.dtype.kind == "U"

    def test_bad_inputs(self, keras, linear_model, x4):
        import tensorflow as tf

        class BatchMean(keras.layers.Layer):
            """Averages over the batch: its output has no batch axis."""

            def call(self, x):
                return keras.ops.mean(x, axis=0)

            def compute_output_shape(self, shape):
                return shape[1:]

        inputs = keras.Input((4, 4, 1))
        h = keras.layers.Flatten()(keras.layers.Conv2D(2, 1)(inputs))
        pooled = BatchMean(name="batch_mean")(h)
        model = keras.Model(inputs, keras.layers.Dense(2)(keras.ops.expand_dims(pooled, 0)))
        with pytest.raises(ValueError, match="batch_mean.*without the batch axis"):
            embedding.FeatureExtractor(model, layer="batch_mean")
        with pytest.raises(ValueError, match="reduce"):
            embedding.FeatureExtractor(linear_model, reduce="mean")
        with pytest.raises(KeyError, match="conv"):
            embedding.FeatureExtractor(linear_model, layer="convv")
        with pytest.raises(ValueError, match=r"\(N, 4, 4, 1\).*data.shape=\(200, 5, 5, 1\)"):
            embedding.features(linear_model, np.zeros((200, 5, 5, 1)))
        with pytest.raises(ValueError, match="rank"):
            embedding.features(linear_model, np.zeros((4, 4)))
        with pytest.raises(ValueError, match="infinite"):
            embedding.features(linear_model, tf.data.Dataset.from_tensor_slices(x4).repeat())
        with pytest.raises(ValueError, match="empty"):
            embedding.features(linear_model, tf.data.Dataset.from_tensor_slices(x4).take(0))
        with pytest.raises(TypeError, match="element_spec"):
            embedding.features(linear_model, tf.data.Dataset.from_tensor_slices({"x": x4}))
        with pytest.raises(ValueError, match="no Dense"):
            inspect.feature_layer(keras.Sequential([keras.Input((4, 4, 1)),
                                                    keras.layers.Conv2D(1, 1)]))


# --------------------------------------------------------------------------------------------
# Neighbours, clusters, maps
# --------------------------------------------------------------------------------------------

LINE_T = np.array([7.0, 0.0, 31.0, 1.0, 15.0, 3.0])  # positions along a line, shuffled


def line_points():
    """Points a + t * u in 3-D, with |u| = 3, so distances are 3 * |t_i - t_j|."""
    a = np.array([1.0, -2.0, 0.5])
    u = np.array([2.0, 1.0, 2.0])
    return (a + LINE_T[:, None] * u).astype(np.float32)


class TestNearest:
    def test_points_on_a_line_come_back_in_order(self):
        pts = line_points()
        idx, dist = embedding.nearest(pts, 0, k=5)  # the point at t = 7
        # By hand: |t - 7| = 4 (t=3), 6 (t=1), 7 (t=0), 8 (t=15), 24 (t=31).
        np.testing.assert_array_equal(LINE_T[idx[0]], [3.0, 1.0, 0.0, 15.0, 31.0])
        np.testing.assert_allclose(dist[0], 3.0 * np.array([4, 6, 7, 8, 24]), rtol=1e-5)
        # Every point, as a batch of index queries: the order of |t_i - t_j|.
        idx, _ = embedding.nearest(pts, np.arange(6), k=5)
        for i in range(6):
            gaps = np.abs(LINE_T - LINE_T[i])
            gaps[i] = np.inf
            np.testing.assert_array_equal(idx[i], np.argsort(gaps)[:5])

    def test_query_by_vector_includes_the_point_itself(self):
        pts = line_points()
        idx, dist = embedding.nearest(pts, pts[4], k=2)  # t = 15
        np.testing.assert_array_equal(LINE_T[idx[0]], [15.0, 7.0])
        np.testing.assert_allclose(dist[0], [0.0, 24.0], atol=1e-4)

    def test_cosine_and_euclidean_differ_where_they_should(self):
        # b points the same way as a but lies far away; c is near a but 45 degrees off.
        a, b, c = [1.0, 0.0], [100.0, 1.0], [0.7, 0.7]
        pts = np.array([a, b, c], np.float32)
        idx_e, dist_e = embedding.nearest(pts, 0, k=2, metric="euclidean")
        idx_c, dist_c = embedding.nearest(pts, 0, k=2, metric="cosine")
        assert idx_e[0].tolist() == [2, 1]
        assert idx_c[0].tolist() == [1, 2]
        cos_b = 100.0 / np.hypot(100.0, 1.0)
        np.testing.assert_allclose(dist_c[0], [1 - cos_b, 1 - np.sqrt(0.5)], atol=1e-6)
        np.testing.assert_allclose(dist_e[0], [np.hypot(0.3, 0.7), np.hypot(99, 1)], rtol=1e-6)
        # Scaling a vector changes nothing for cosine, everything for euclidean.
        scaled = pts * np.array([[1.0], [1.0], [1000.0]], np.float32)
        assert embedding.nearest(scaled, 0, k=2, metric="cosine")[0][0].tolist() == [1, 2]
        assert embedding.nearest(scaled, 0, k=2)[0][0].tolist() == [1, 2]

    def test_ties_keep_row_order_and_match_brute_force(self):
        rng = np.random.default_rng(3)
        pts = rng.normal(size=(50, 4)).astype(np.float32)
        idx, dist = embedding.nearest(pts, np.arange(50), k=6)
        ref = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        np.fill_diagonal(ref, np.inf)
        np.testing.assert_array_equal(idx, np.argsort(ref, axis=1)[:, :6])
        np.testing.assert_allclose(dist, np.sort(ref, axis=1)[:, :6], rtol=1e-5)
        same = np.zeros((4, 2), np.float32)  # all equal: the row order decides
        assert embedding.nearest(same, 2, k=3)[0][0].tolist() == [0, 1, 3]

    def test_query_by_new_image(self, linear_model, x4):
        extractor = embedding.FeatureExtractor(linear_model)
        vectors = extractor.extract(x4)
        idx, dist = embedding.nearest(vectors, x4[[5, 1]], k=1, extractor=extractor)
        assert idx[:, 0].tolist() == [5, 1]
        np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-3)
        with pytest.raises(TypeError, match="extractor"):
            embedding.nearest(vectors, x4[0])

    def test_bad_inputs(self):
        pts = line_points()
        with pytest.raises(ValueError, match="k"):
            embedding.nearest(pts, 0, k=6)
        with pytest.raises(ValueError, match="indices"):
            embedding.nearest(pts, [0, 9], k=1)
        with pytest.raises(ValueError, match="length 2"):
            embedding.nearest(pts, np.zeros(2), k=1)
        with pytest.raises(ValueError, match="metric"):
            embedding.nearest(pts, 0, metric="manhattan")
        with pytest.raises(ValueError, match="NaN"):
            embedding.nearest(np.full((3, 2), np.nan), 0, k=1)


def blobs(n_per=20, centers=((0, 0, 0), (10, 0, 0), (0, 10, 0)), seed=0):
    rng = np.random.default_rng(seed)
    pts = np.concatenate([np.asarray(c) + rng.normal(scale=0.5, size=(n_per, 3))
                          for c in centers]).astype(np.float32)
    return pts, np.repeat(np.arange(len(centers)), n_per)


class TestClustersAndMaps:
    def test_purity_by_hand(self):
        assert embedding.purity([0, 0, 1, 1], ["a", "a", "b", "a"]) == 0.75
        # Clusters of 3 (2 x, 1 y), 2 (2 y) and 1 (x): (2 + 2 + 1) / 6.
        assert embedding.purity([5, 5, 5, 2, 2, 9], ["x", "x", "y", "y", "y", "x"]) == 5 / 6
        assert embedding.purity([0, 1, 2], [0, 0, 0]) == 1.0  # one point per cluster
        assert embedding.purity([0, 0, 0, 0], [0, 1, 2, 3]) == 0.25
        with pytest.raises(ValueError, match="same"):
            embedding.purity([0, 1], [0])

    def test_kmeans_finds_separated_blobs(self):
        pts, labels = blobs()
        clusters = embedding.kmeans(pts, n_clusters=3, seed=0)
        assert embedding.purity(clusters, labels) == 1.0
        assert len(np.unique(clusters)) == 3
        np.testing.assert_array_equal(clusters, embedding.kmeans(pts, 3, seed=0))
        with pytest.raises(ValueError, match="n_clusters"):
            embedding.kmeans(pts[:2], n_clusters=3)

    def test_pca_of_a_line_is_the_line(self):
        pts = line_points()
        points = embedding.project(pts, "pca")
        assert points.shape == (6, 2) and points.dtype == np.float32
        # The first axis is an affine function of t; the second carries nothing.
        assert abs(np.corrcoef(points[:, 0], LINE_T)[0, 1]) > 0.9999
        np.testing.assert_allclose(points[:, 1], 0.0, atol=1e-3)

    def test_tsne_keeps_blobs_apart(self):
        pts, labels = blobs(n_per=10)
        points = embedding.project(pts, "tsne", seed=0, max_iter=500)
        idx, _ = embedding.nearest(points, np.arange(len(points)), k=5)
        assert (labels[idx] == labels[:, None]).mean() == 1.0
        np.testing.assert_array_equal(points, embedding.project(pts, "tsne", seed=0,
                                                                max_iter=500))

    def test_umap_when_installed(self):
        pytest.importorskip("umap", reason="umap-learn is an optional extra (kerasviz[umap])")
        pts, labels = blobs(n_per=15)
        points = embedding.project(pts, "umap", seed=0)
        idx, _ = embedding.nearest(points, np.arange(len(points)), k=5)
        assert (labels[idx] == labels[:, None]).mean() == 1.0

    def test_umap_missing_says_how_to_install(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` fail
        with pytest.raises(ImportError, match=r"kerasviz\[umap\]"):
            embedding.project(blobs()[0], "umap")

    def test_bad_method(self):
        with pytest.raises(ValueError, match="method"):
            embedding.project(blobs()[0], "isomap")


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


class TestPlots:
    def test_neighbor_strips(self):
        from kerasviz import plot

        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)
        idx = np.array([[1, 2, 3], [0, 4, 5]])
        labels = np.array([0, 0, 1, 0, 1, 1])
        fig = plot.neighbor_strips(images[[0, 1]], images[idx], np.ones((2, 3)),
                                   labels[[0, 1]], labels[idx], class_names=["zero", "one"])
        axes = np.asarray(fig.axes).reshape(2, 4)
        assert axes[0, 0].get_title() == "query: zero"
        assert axes[0, 2].get_title() == "one d=1"
        # Neighbours with another label than the query are titled in red.
        red = [[ax.title.get_color() == "#d62728" for ax in row[1:]] for row in axes]
        assert red == [[False, True, False], [False, True, True]]
        np.testing.assert_allclose(axes[1, 1].images[0].get_array(), images[0, ..., 0])
        with pytest.raises(ValueError, match="neighbors"):
            plot.neighbor_strips(images[:2], images[:3])

    def test_embedding_map_thumbnails_spread(self):
        from matplotlib.offsetbox import AnnotationBbox

        from kerasviz import plot
        from kerasviz.plot.embedding import _spread

        t = np.linspace(0, 1, 21)
        points = np.stack([t, np.zeros_like(t)], axis=1)
        # Farthest-point sampling on a line: after the start, the end farthest from it, then
        # the middle of the widest gap; asking for every point gives each point once.
        chosen = _spread(points, 3, seed=0).tolist()
        far = 0 if t[chosen[0]] > 0.5 else 20
        assert chosen[1] == far
        gaps = np.minimum(np.abs(t - t[chosen[0]]), np.abs(t - t[far]))
        assert np.isclose(gaps[chosen[2]], gaps.max())
        assert sorted(_spread(points, 30, seed=1).tolist()) == list(range(21))
        labels = (t > 0.5).astype(int)
        images = np.zeros((21, 8, 8, 3), np.float32)
        fig = plot.embedding_map(points, labels, images, thumbnails=5)
        boxes = [a for a in fig.axes[0].get_children() if isinstance(a, AnnotationBbox)]
        assert len(boxes) == 5
        assert len(fig.axes[0].collections) == 2  # one scatter per label
        with pytest.raises(ValueError, match="points"):
            plot.embedding_map(np.zeros((3, 3)))

    def test_cluster_montage(self):
        from kerasviz import plot

        images = np.random.default_rng(0).uniform(0, 1, (9, 8, 8, 1))
        clusters = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
        labels = np.array([3, 3, 4, 5, 5, 5, 5, 6, 6])
        fig = plot.cluster_montage(images, clusters, labels, per_cluster=4)
        axes = np.asarray(fig.axes).reshape(3, 5)
        assert "cluster 0\n3 images\nmostly 3\n(67%)" == axes[0, 0].texts[0].get_text()
        assert [len(ax.images) for ax in axes[2]] == [0, 1, 1, 0, 0]
        assert sum(ax.title.get_color() == "#d62728" for ax in axes[0]) == 1


# --------------------------------------------------------------------------------------------
# Saving vectors and neighbours
# --------------------------------------------------------------------------------------------


class TestSaveFeatures:
    def test_writes_vectors_and_every_neighbour(self, tmp_path):
        import csv
        from pathlib import Path

        vectors = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)  # a line: known order
        names = [Path("digits/a.png"), Path("digits/b.png"), "c,1.png", "d.png"]
        paths = embedding.save_features(tmp_path / "new" / "out", names, vectors, k=2)
        assert paths == (tmp_path / "new" / "out" / "features.npy",
                         tmp_path / "new" / "out" / "neighbours.csv")
        np.testing.assert_array_equal(np.load(paths[0]), vectors)
        with open(paths[1], newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["file", "rank", "neighbour", "distance"]
        want = {0: [(1, 1.0), (2, 3.0)], 1: [(0, 1.0), (2, 2.0)], 2: [(1, 2.0), (0, 3.0)],
                3: [(2, 4.0), (1, 6.0)]}
        shown = [str(n) for n in names]
        assert rows[1:] == [[shown[i], str(r + 1), shown[j], f"{d:.6g}"]
                            for i, near in want.items() for r, (j, d) in enumerate(near)]
        # The CLI's format, byte for byte, for plain names: one line per row, no quoting.
        lines = paths[1].read_text().splitlines()
        assert lines[1] == "digits/a.png,1,digits/b.png,1" and '"c,1.png"' in lines[5]

    def test_cosine_and_k_clipped_to_the_other_vectors(self, tmp_path):
        vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
        _, table = embedding.save_features(tmp_path, ["a", "b", "c"], vectors, k=10,
                                           metric="cosine")
        idx, dist = embedding.nearest(vectors, np.arange(3), k=2, metric="cosine")
        rows = [line.split(",") for line in table.read_text().splitlines()[1:]]
        assert len(rows) == 3 * 2
        assert [r[2] for r in rows] == ["abc"[j] for j in idx.ravel()]
        np.testing.assert_allclose([float(r[3]) for r in rows], dist.ravel(), rtol=1e-5)
        _, alone = embedding.save_features(tmp_path / "one", ["a"], vectors[:1])
        assert alone.read_text() == "file,rank,neighbour,distance\n"
        _, none = embedding.save_features(tmp_path / "zero", ["a", "b"], vectors[:2], k=0)
        assert none.read_text() == "file,rank,neighbour,distance\n"

    def test_never_overwrites_unless_asked(self, tmp_path):
        first = np.ones((2, 3), np.float32)
        embedding.save_features(tmp_path, ["a", "b"], first)
        (tmp_path / "notes.txt").write_text("mine")
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        with pytest.raises(FileExistsError, match="features.npy, neighbours.csv.*overwrite"):
            embedding.save_features(tmp_path, ["a", "b"], first * 2)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
        (tmp_path / "features.npy").unlink()  # one file left is still refused
        with pytest.raises(FileExistsError, match="neighbours.csv"):
            embedding.save_features(tmp_path, ["a", "b"], first * 2)
        embedding.save_features(tmp_path, ["a", "b"], first * 2, overwrite=True)
        np.testing.assert_array_equal(np.load(tmp_path / "features.npy"), first * 2)
        assert (tmp_path / "notes.txt").read_text() == "mine"
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "features.npy", "neighbours.csv", "notes.txt"]

    def test_a_failure_leaves_the_old_files(self, tmp_path, monkeypatch):
        from kerasviz.embedding import saving

        embedding.save_features(tmp_path, ["a", "b"], np.ones((2, 3)))
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

        def broken_save(handle, array):
            handle.write(b"half an array")
            raise OSError("disk full")

        monkeypatch.setattr(saving.np, "save", broken_save)
        with pytest.raises(OSError, match="disk full"):
            embedding.save_features(tmp_path, ["a", "b"], np.zeros((2, 3)), overwrite=True)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no .partial
        with pytest.raises(OSError, match="disk full"):
            embedding.save_features(tmp_path / "new", ["a", "b"], np.zeros((2, 3)))
        assert list((tmp_path / "new").iterdir()) == []

    def test_bad_arguments_named(self, tmp_path):
        vectors = np.zeros((2, 3), np.float32)
        with pytest.raises(ValueError, match="one name per vector: 2 names"):
            embedding.save_features(tmp_path, ["a"], vectors)
        with pytest.raises(TypeError, match="names"):
            embedding.save_features(tmp_path, "ab", vectors)
        with pytest.raises(TypeError, match="names.*3"):
            embedding.save_features(tmp_path, ["a", 3], vectors)
        with pytest.raises(ValueError, match="k"):
            embedding.save_features(tmp_path, ["a", "b"], vectors, k=-1)
        with pytest.raises(ValueError, match="metric"):
            embedding.save_features(tmp_path, ["a", "b"], vectors, metric="manhattan")
        with pytest.raises(ValueError, match="vectors"):
            embedding.save_features(tmp_path, ["a", "b"], np.full((2, 3), np.nan))
        (tmp_path / "file").write_text("x")
        with pytest.raises(FileExistsError, match="not a folder"):
            embedding.save_features(tmp_path / "file", ["a", "b"], vectors)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_import_loads_no_keras():
    """The light parts (space, saving, projector) never need Keras; the callback loads it."""
    code = ("import sys, kerasviz.embedding as e; "
            "print('keras' in sys.modules, 'tensorflow' in sys.modules); "
            "e.ProjectorCallback; print('keras' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "False", "True"]


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------


class TestCallback:
    def test_exports_every_k_epochs_and_at_the_end(self, keras, tmp_path):
        import tensorflow as tf

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3, name="c"),
                                  keras.layers.GlobalAveragePooling2D(name="gap"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        x = np.random.default_rng(0).uniform(0, 1, (12, 8, 8, 1)).astype(np.float32)
        y = np.arange(12) % 2
        callback = embedding.ProjectorCallback(tmp_path, x, labels=y, every=2)
        model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[callback])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0002", "epoch_0003"]
        ckpt = tf.train.load_checkpoint(str(tmp_path / "epoch_0003"))
        saved = ckpt.get_tensor("embedding/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_allclose(saved, embedding.features(model, x, layer="gap"), atol=1e-6)
        early = tf.train.load_checkpoint(str(tmp_path / "epoch_0002"))
        assert not np.allclose(early.get_tensor("embedding/.ATTRIBUTES/VARIABLE_VALUE"), saved)
        lines = (tmp_path / "epoch_0003" / "metadata.tsv").read_text().splitlines()
        assert lines == [str(v) for v in y]
        # A second run into the same folder refuses before training, unless asked.
        again = embedding.ProjectorCallback(tmp_path, x, labels=y)
        with pytest.raises(FileExistsError, match="overwrite"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[again])
        with pytest.raises(ValueError, match="labels"):
            embedding.ProjectorCallback(tmp_path, x, labels=y[:5])


# --------------------------------------------------------------------------------------------
# Streaming memory and the shipped digits model
# --------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = textwrap.dedent("""
    import os, resource, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras, tensorflow as tf
    from kerasviz import embedding
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(2)])
    extractor = embedding.FeatureExtractor(model, batch_size=256)

    def generated(n):
        # Images made on the fly, in batches of 500: the set never exists in memory at once.
        return tf.data.Dataset.range(n).batch(500).map(
            lambda i: tf.random.stateless_uniform((tf.shape(i)[0], 32, 32, 3),
                                                  seed=tf.stack([i[0], 1])))

    for n in (2_000, 20_000):  # the peak is a running maximum: small set first
        vectors = extractor.extract(generated(n))
        assert vectors.shape == (n, 4), vectors.shape
        print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # MiB
""")


@pytest.mark.slow
def test_streaming_memory_stays_flat():
    if not sys.platform.startswith("linux"):
        pytest.skip("ru_maxrss is in kB on Linux only")
    run = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    peaks = dict(tuple(map(int, line.split())) for line in run.stdout.strip().splitlines())
    # 18,000 more 32x32x3 float32 images would be 211 MiB if they were held at once.
    assert peaks[20_000] - peaks[2_000] < 60, peaks


@pytest.mark.slow  # 1797 digits through the shipped CNN, KMeans and 9,000 neighbours
def test_digits_feature_space_is_semantic(shipped):
    from kerasviz import datasets

    model = shipped("digits_cnn")
    images, labels = datasets.digits(32)
    extractor = embedding.FeatureExtractor(model, batch_size=128)
    assert extractor.layer == "fc1"
    vectors = extractor.extract(images)
    assert vectors.shape == (1797, 128)
    idx, _ = embedding.nearest(vectors, np.arange(len(labels)), k=5)
    agreement = (labels[idx] == labels[:, None]).mean()
    purity = embedding.purity(embedding.kmeans(vectors, n_clusters=10, seed=0, n_init=3), labels)
    assert agreement >= 0.95, agreement
    assert purity >= 0.9, purity
