"""kerasviz.embedding.saving: features.npy and neighbours.csv, atomic and never overwritten."""

import numpy as np
import pytest

from kerasviz import embedding


class TestSaveFeatures:
    def test_writes_vectors_and_every_neighbour(self, tmp_path):
        import csv
        from pathlib import Path

        vectors = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)  # a line: known order
        names = [Path("digits/a.png"), Path("digits/b.png"), "c,1.png", "d.png"]
        paths = embedding.save_features(tmp_path / "new" / "out", names, vectors, k=2)
        assert paths == (
            tmp_path / "new" / "out" / "features.npy",
            tmp_path / "new" / "out" / "neighbours.csv",
        )
        np.testing.assert_array_equal(np.load(paths[0]), vectors)
        with open(paths[1], newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["file", "rank", "neighbour", "distance"]
        want = {
            0: [(1, 1.0), (2, 3.0)],
            1: [(0, 1.0), (2, 2.0)],
            2: [(1, 2.0), (0, 3.0)],
            3: [(2, 4.0), (1, 6.0)],
        }
        shown = [str(n) for n in names]
        assert rows[1:] == [
            [shown[i], str(r + 1), shown[j], f"{d:.6g}"]
            for i, near in want.items()
            for r, (j, d) in enumerate(near)
        ]
        # The CLI's format, byte for byte, for plain names: one line per row, no quoting.
        lines = paths[1].read_text().splitlines()
        assert lines[1] == "digits/a.png,1,digits/b.png,1" and '"c,1.png"' in lines[5]

    def test_cosine_and_k_clipped_to_the_other_vectors(self, tmp_path):
        vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
        _, table = embedding.save_features(
            tmp_path, ["a", "b", "c"], vectors, k=10, metric="cosine"
        )
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
            "features.npy",
            "neighbours.csv",
            "notes.txt",
        ]

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
