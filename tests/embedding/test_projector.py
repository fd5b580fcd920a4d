"""The TensorBoard projector export: read back by a real TensorBoard, written atomically,
never overwriting by accident, and refusing bad input."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kerasviz import embedding

TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, route: str, **params) -> bytes:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(
        f"{base}/data/plugin/projector/{route}?{query}", timeout=30
    ) as response:
        return response.read()


# --------------------------------------------------------------------------------------------
# A real TensorBoard
# --------------------------------------------------------------------------------------------

SINGLE = {
    "features": np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32),
    "labels": [f"item {i}" for i in range(30)],
    # Not square, so width and height cannot be swapped unnoticed.
    "images": np.random.default_rng(1).uniform(0, 1, (30, 12, 10, 3)).astype(np.float32),
}
MULTI = {
    "features": np.arange(15, dtype=np.float32).reshape(5, 3) / 7.0,
    "labels": {"digit": [3, 1, 4, 1, 5], "name": ["three", "one", "four", "one", "five"]},
    "images": np.random.default_rng(2).integers(0, 256, (5, 8, 8), dtype=np.uint8),
}


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory):
    """Exports two runs, starts TensorBoard on them and yields its address; stops it by PID."""
    root = tmp_path_factory.mktemp("tb")
    embedding.export_projector(root / "single", **SINGLE)
    embedding.export_projector(root / "multi", **MULTI)
    log = open(root.parent / "tensorboard.log", "w+")  # noqa: SIM115 (closed in finally)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = None
    try:
        for _attempt in range(2):  # a second port if another process took the first
            port = _free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tensorboard.main",
                    "--logdir",
                    str(root),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--load_fast=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    runs = json.loads(_get(base, "runs"))
                    if {"single", "multi"} <= set(runs):
                        break
                except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                    pass
                time.sleep(0.5)
            if proc.poll() is None:
                break
        log.seek(0)
        output = log.read()[-3000:]
        assert proc.poll() is None, f"TensorBoard exited:\n{output}"
        assert {"single", "multi"} <= set(json.loads(_get(base, "runs"))), output
        yield base
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        log.close()


@pytest.mark.slow  # starting TensorBoard takes seconds
class TestTensorBoardReadsTheExport:
    def test_config_reports_tensor_shape_metadata_and_sprite(self, tensorboard):
        single = json.loads(_get(tensorboard, "info", run="single"))
        (emb,) = single["embeddings"]
        assert emb["tensorName"] == TENSOR
        assert [int(s) for s in emb["tensorShape"]] == [30, 6]
        assert emb["metadataPath"] == "metadata.tsv"
        assert emb["sprite"] == {"imagePath": "sprite.png", "singleImageDim": [10, 12]}  # w, h
        multi = json.loads(_get(tensorboard, "info", run="multi"))
        assert [int(s) for s in multi["embeddings"][0]["tensorShape"]] == [5, 3]

    @pytest.mark.parametrize("run, data", [("single", SINGLE), ("multi", MULTI)])
    def test_tensor_bytes_equal_our_features(self, tensorboard, run, data):
        raw = _get(tensorboard, "tensor", run=run, name=TENSOR)
        got = np.frombuffer(raw, dtype=np.float32).reshape(data["features"].shape)
        np.testing.assert_array_equal(got, data["features"])

    def test_metadata_rows_and_the_header_rule(self, tensorboard):
        single = _get(tensorboard, "metadata", run="single", name=TENSOR).decode()
        assert single.splitlines() == SINGLE["labels"]  # one column: no header
        multi = _get(tensorboard, "metadata", run="multi", name=TENSOR).decode().splitlines()
        assert multi[0] == "digit\tname"
        assert multi[1:] == ["3\tthree", "1\tone", "4\tfour", "1\tone", "5\tfive"]
        # TensorBoard itself saw a header in `multi` (2 rows + header) and none in `single`.
        assert (
            len(
                _get(tensorboard, "metadata", run="multi", name=TENSOR, num_rows=2)
                .decode()
                .splitlines()
            )
            == 3
        )
        assert (
            len(
                _get(tensorboard, "metadata", run="single", name=TENSOR, num_rows=2)
                .decode()
                .splitlines()
            )
            == 2
        )

    def test_sprite_png(self, tensorboard, tmp_path):
        from PIL import Image

        raw = _get(tensorboard, "sprite_image", run="single", name=TENSOR)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        (tmp_path / "s.png").write_bytes(raw)
        sheet = np.asarray(Image.open(tmp_path / "s.png"))
        assert sheet.shape == (5 * 12, 6 * 10, 3)  # ceil(sqrt(30)) = 6 per row, 5 rows
        expected = np.round(SINGLE["images"] * 255).astype(np.uint8)
        for i in (0, 7, 29):
            r, c = divmod(i, 6)
            np.testing.assert_array_equal(
                sheet[r * 12 : (r + 1) * 12, c * 10 : (c + 1) * 10], expected[i]
            )
        grey = _get(tensorboard, "sprite_image", run="multi", name=TENSOR)
        (tmp_path / "g.png").write_bytes(grey)
        sheet = np.asarray(Image.open(tmp_path / "g.png"))
        np.testing.assert_array_equal(sheet[:8, 8:16], MULTI["images"][1])


# --------------------------------------------------------------------------------------------
# Files, without TensorBoard
# --------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class TestFiles:
    def test_header_rule(self, tmp_path):
        f = np.zeros((3, 2), np.float32)
        embedding.export_projector(tmp_path / "a", f, labels=np.array([1, 2, 3]))
        assert (tmp_path / "a" / "metadata.tsv").read_text() == "1\n2\n3\n"
        embedding.export_projector(tmp_path / "b", f, labels={"only": ["x", "y", "z"]})
        assert (tmp_path / "b" / "metadata.tsv").read_text() == "x\ny\nz\n"
        embedding.export_projector(tmp_path / "c", f, labels={"p": [1, 2, 3], "q": list("abc")})
        assert (tmp_path / "c" / "metadata.tsv").read_text() == "p\tq\n1\ta\n2\tb\n3\tc\n"
        embedding.export_projector(tmp_path / "d", f)
        assert not (tmp_path / "d" / "metadata.tsv").exists()
        assert "metadata_path" not in (tmp_path / "d" / "projector_config.pbtxt").read_text()

    @pytest.mark.parametrize(
        "n, side, thumb",
        [
            (1, 32, 32),
            (1797, 32, 32),
            (65_536, 32, 32),
            (100_000, 32, 25),
            (1_000_000, 64, 8),
            (50, 300, 300),
            (5_000, 300, 115),
        ],
    )
    def test_sprite_layout_within_the_limit(self, n, side, thumb):
        per_row, th, tw = embedding.sprite_layout(n, side, side)
        rows = -(-n // per_row)
        assert per_row * per_row >= n
        assert per_row * tw <= 8192 and rows * th <= 8192
        assert th == tw == thumb
        assert embedding.sprite_layout(n, side, side // 2)[1:] == (thumb, max(1, thumb // 2))
        with pytest.raises(ValueError, match="8192"):
            embedding.sprite_layout(8193 * 8193, 4, 4)

    def test_thumbnails_shrink_to_fit(self, tmp_path, monkeypatch):
        from PIL import Image

        from kerasviz.embedding import projector

        monkeypatch.setattr(projector, "SPRITE_LIMIT", 64)  # where sprite_layout reads it
        # 10 flat images at 32 px: 4 per row, 16 px cells, so 16 px thumbnails.
        shades = np.linspace(0.1, 0.9, 10)
        images = np.ones((10, 32, 32, 1)) * shades[:, None, None, None]
        embedding.export_projector(tmp_path / "e", np.zeros((10, 2)), images=images)
        sheet = np.asarray(Image.open(tmp_path / "e" / "sprite.png"))
        assert sheet.shape == (3 * 16, 4 * 16)
        for i, shade in enumerate(shades):
            r, c = divmod(i, 4)
            tile = sheet[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16].astype(int)
            assert np.abs(tile - round(shade * 255)).max() <= 1
        assert "single_image_dim: 16" in (tmp_path / "e" / "projector_config.pbtxt").read_text()

    def test_refuses_to_overwrite_unless_asked(self, tmp_path):
        target = tmp_path / "run"
        embedding.export_projector(target, np.ones((4, 2)), labels=list("abcd"))
        before = _snapshot(target)
        with pytest.raises(FileExistsError, match="overwrite=True"):
            embedding.export_projector(target, np.zeros((4, 2)), labels=list("wxyz"))
        assert _snapshot(target) == before
        embedding.export_projector(target, np.zeros((4, 2)), labels=list("wxyz"), overwrite=True)
        assert (target / "metadata.tsv").read_text() == "w\nx\ny\nz\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no leftovers

    def test_files_put_in_an_export_are_never_deleted(self, tmp_path):
        target = tmp_path / "run"
        embedding.export_projector(target, np.ones((4, 2)), labels=list("abcd"))
        assert (target.stat().st_mode & 0o777) == 0o755  # not mkdtemp's 0700
        assert ((target / "metadata.tsv").stat().st_mode & 0o777) == 0o644
        (target / "notes.txt").write_text("precious")
        before = _snapshot(target)
        with pytest.raises(FileExistsError, match=r"did not write \(notes\.txt\)"):
            embedding.export_projector(target, np.zeros((4, 2)), overwrite=True)
        assert _snapshot(target) == before
        (target / "notes.txt").unlink()
        (target / ".kerasviz.json").unlink()  # an export written before folders had markers
        embedding.export_projector(target, np.zeros((4, 2)), overwrite=True)
        assert (target / ".kerasviz.json").is_file()

    def test_never_replaces_a_folder_that_is_not_an_export(self, tmp_path):
        target = tmp_path / "training_logs"
        target.mkdir()
        (target / "events.out.tfevents.1").write_text("precious")
        with pytest.raises(FileExistsError, match="not a projector export"):
            embedding.export_projector(target, np.ones((2, 2)), overwrite=True)
        assert (target / "events.out.tfevents.1").read_text() == "precious"

    def test_failure_mid_export_leaves_the_old_export(self, tmp_path, monkeypatch):
        target = tmp_path / "run"
        embedding.export_projector(
            target, np.ones((4, 2)), labels=list("abcd"), images=np.zeros((4, 8, 8))
        )
        before = _snapshot(target)

        def broken_sprite(path, images):
            path.write_bytes(b"\x89PNG half a sprite")
            raise OSError("disk full")

        from kerasviz.embedding import projector

        monkeypatch.setattr(projector, "_write_sprite", broken_sprite)
        with pytest.raises(OSError, match="disk full"):
            embedding.export_projector(
                target,
                np.zeros((4, 2)),
                labels=list("wxyz"),
                images=np.ones((4, 8, 8)),
                overwrite=True,
            )
        assert _snapshot(target) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
        # A first export that fails leaves nothing at all.
        with pytest.raises(OSError, match="disk full"):
            embedding.export_projector(
                tmp_path / "new", np.zeros((4, 2)), images=np.ones((4, 8, 8))
            )
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

    def test_failure_while_swapping_restores_the_old_export(self, tmp_path, monkeypatch):
        target = tmp_path / "run"
        embedding.export_projector(target, np.ones((3, 2)), labels=list("abc"))
        before = _snapshot(target)
        real_rename = os.rename

        def rename(src, dst):
            if str(src).endswith(".partial"):  # the new export moving into place
                raise OSError("rename failed")
            real_rename(src, dst)

        from kerasviz import _files

        monkeypatch.setattr(_files.os, "rename", rename)
        with pytest.raises(OSError, match="rename failed"):
            embedding.export_projector(target, np.zeros((3, 2)), overwrite=True)
        assert _snapshot(target) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

    def test_checkpoint_holds_the_features(self, tmp_path):
        import tensorflow as tf

        f = np.random.default_rng(4).normal(size=(9, 5)).astype(np.float32)
        path = embedding.export_projector(tmp_path / "run", f, name="fc7")
        reader = tf.train.load_checkpoint(str(path))
        np.testing.assert_array_equal(reader.get_tensor("fc7/.ATTRIBUTES/VARIABLE_VALUE"), f)
        assert (
            'tensor_name: "fc7/.ATTRIBUTES/VARIABLE_VALUE"'
            in (path / "projector_config.pbtxt").read_text()
        )


class TestBadInput:
    def test_labels_of_the_wrong_length(self, tmp_path):
        with pytest.raises(ValueError, match="`labels` has 3 values; expected 4"):
            embedding.export_projector(tmp_path / "x", np.ones((4, 2)), labels=[1, 2, 3])
        with pytest.raises(ValueError, match="column 'b' has 2 values; expected 4"):
            embedding.export_projector(
                tmp_path / "x", np.ones((4, 2)), labels={"a": [1, 2, 3, 4], "b": [1, 2]}
            )
        with pytest.raises(ValueError, match="tab"):
            embedding.export_projector(tmp_path / "x", np.ones((2, 2)), labels=["a\tb", "c"])
        with pytest.raises(ValueError, match=r"shape \(N,\)"):
            embedding.export_projector(tmp_path / "x", np.ones((2, 2)), labels=np.ones((2, 2)))
        assert not (tmp_path / "x").exists()

    def test_sprite_images_of_mixed_sizes(self, tmp_path):
        images = [np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), np.zeros((9, 8, 3))]
        with pytest.raises(ValueError, match=r"one size.*images\[2\]\.shape=\(9, 8, 3\)"):
            embedding.export_projector(tmp_path / "x", np.ones((3, 2)), images=images)
        with pytest.raises(ValueError, match="3 images; expected 4"):
            embedding.export_projector(tmp_path / "x", np.ones((4, 2)), images=np.zeros((3, 8, 8)))
        with pytest.raises(ValueError, match="C in 1, 3, 4"):
            embedding.export_projector(
                tmp_path / "x", np.ones((3, 2)), images=np.zeros((3, 8, 8, 2))
            )
        assert not (tmp_path / "x").exists()

    def test_bad_features_and_name(self, tmp_path):
        with pytest.raises(ValueError, match=r"\(N, D\)"):
            embedding.export_projector(tmp_path / "x", np.ones(4))
        with pytest.raises(ValueError, match="NaN"):
            embedding.export_projector(tmp_path / "x", np.full((2, 2), np.nan))
        with pytest.raises(ValueError, match="identifier"):
            embedding.export_projector(tmp_path / "x", np.ones((2, 2)), name="a/b")
        assert not (tmp_path / "x").exists()
