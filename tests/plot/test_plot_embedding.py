"""kerasviz.plot.embedding: neighbour strips, cluster montages and 2-D maps."""

import numpy as np
import pytest


class TestPlots:
    def test_neighbor_strips(self):
        from kerasviz import plot

        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)
        idx = np.array([[1, 2, 3], [0, 4, 5]])
        labels = np.array([0, 0, 1, 0, 1, 1])
        fig = plot.neighbor_strips(
            images[[0, 1]],
            images[idx],
            np.ones((2, 3)),
            labels[[0, 1]],
            labels[idx],
            class_names=["zero", "one"],
        )
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

    def test_embedding_map_marks_the_inputs(self):
        from kerasviz import plot

        points = np.random.default_rng(0).normal(size=(12, 2))
        marks = np.array([[0.5, -0.5], [2.0, 1.0]])
        fig = plot.embedding_map(points, marks=marks, mark_labels=["cat", "dog"])
        ax = fig.axes[0]
        stars = ax.collections[-1]
        np.testing.assert_allclose(stars.get_offsets(), marks)
        assert [t.get_text() for t in ax.texts] == ["cat", "dog"]
        assert [tuple(t.xy) for t in ax.texts] == [tuple(m) for m in marks]
        with pytest.raises(ValueError, match="mark_labels"):
            plot.embedding_map(points, marks=marks, mark_labels=["cat"])

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
