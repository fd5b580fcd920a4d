"""kerasviz.embedding.space: neighbours on known geometry, clusters, 2-D maps, and the digits
model's semantic space."""

import sys

import numpy as np
import pytest

from kerasviz import embedding

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
    pts = np.concatenate(
        [np.asarray(c) + rng.normal(scale=0.5, size=(n_per, 3)) for c in centers]
    ).astype(np.float32)
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
        np.testing.assert_array_equal(points, embedding.project(pts, "tsne", seed=0, max_iter=500))

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
