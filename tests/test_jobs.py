"""The dataset job: streamed, written atomically, resumed after SIGKILL to the same bytes."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from kerasviz import attribution, jobs
from kerasviz.cli import main

ROOT = Path(__file__).resolve().parents[1]
SIZE = 16


def tiny_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def write_images(folder: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / ("a" if i % 3 else "b")  # class sub-folders are kept in the names
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            sub / f"img{i:04d}.png"
        )
    return folder


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def cli(*args, **kwargs):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kerasviz.cli", "explain", *args], env=env, cwd=ROOT, **kwargs
    )


def read_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / jobs.MANIFEST).read_text().splitlines()]


def manifest_lines(folder: Path) -> int:
    try:
        return (folder / jobs.MANIFEST).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


class TestOutputs:
    def test_maps_scores_and_manifest_equal_direct_computation(self, tmp_path, model):
        images = write_images(tmp_path / "in", 7)
        result = jobs.explain_folder(
            model,
            images,
            "occlusion",
            tmp_path / "out",
            batch_size=3,
            settings={"patch": 4, "stride": 2},
            progress=False,
            class_names=["x", "y", "z"],
        )
        assert (result.total, result.written, result.skipped) == (7, 7, 0)
        files, names = jobs.inventory(images)
        assert names[0] == "a/img0001" and names[-1] == "b/img0006"  # sorted path order
        batch = np.stack(
            [np.asarray(Image.open(f).convert("RGB"), np.float32) / 255 for f in files]
        )
        probs = model.predict(batch, verbose=0)
        # The job's explainer is `create`'s, with its defaults for the size (e.g. the output).
        expected = attribution.create("occlusion", model, patch=4, stride=2).explain(batch)
        rows = read_rows(tmp_path / "out")
        assert [r["name"] for r in rows] == names
        for i, (row, name) in enumerate(zip(rows, names, strict=True)):
            got = np.load(tmp_path / "out" / f"{name}.occlusion.npy")
            assert got.dtype == np.float32 and got.shape == (SIZE, SIZE)
            np.testing.assert_allclose(got, expected[i], atol=1e-6)
            assert row["target"] == int(probs[i].argmax())
            assert row["class"] == "xyz"[row["target"]]
            assert row["score"] == pytest.approx(float(probs[i].max()), abs=1e-6)
            assert row["settings"]["patch"] == 4 and row["method"] == "occlusion"
            with Image.open(tmp_path / "out" / f"{name}.occlusion.png") as png:
                assert png.size == (SIZE, SIZE) and png.mode == "RGB"

    def test_targets_per_image_and_by_name(self, tmp_path, model):
        images = write_images(tmp_path / "in", 4)
        _, names = jobs.inventory(images)
        jobs.explain_folder(
            model,
            images,
            "saliency",
            tmp_path / "o1",
            batch_size=3,
            targets=[2, 1, 0, 2],
            progress=False,
        )
        rows = read_rows(tmp_path / "o1")
        assert [r["target"] for r in rows] == [2, 1, 0, 2]
        jobs.explain_folder(
            model,
            images,
            "saliency",
            tmp_path / "o2",
            batch_size=3,
            targets={names[1]: 2},
            progress=False,
        )
        rows = read_rows(tmp_path / "o2")
        assert rows[1]["target"] == 2
        with pytest.raises(ValueError, match="out of range"):
            jobs.explain_folder(model, images, "saliency", tmp_path / "o3", targets=7)
        with pytest.raises(KeyError, match="not in the job"):
            jobs.explain_folder(model, images, "saliency", tmp_path / "o4", targets={"zz": 1})

    def test_inventory_matches_list_images_order(self, tmp_path):
        from kerasviz import imageio

        for rel in ["a-b/x.png", "a/b.png", "a/c/z.jpg", "A/q.PNG", "a/notes.txt", "b.png"]:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(b"")
        files, names = jobs.inventory(tmp_path)
        assert files == [str(f) for f in imageio.list_images(tmp_path)]
        assert names == ["A/q", "a/b", "a/c/z", "a-b/x", "b"]
        assert jobs.inventory([tmp_path / "b.png"])[1] == ["b"]

    def test_overlay_colours_closed_form(self):
        from kerasviz.plot import raster

        assert jobs.overlay_rgb is raster.overlay_rgb  # the job draws with the raster module
        image = np.zeros((2, 2, 1), np.float32)
        signed = np.array([[1.0, -1.0], [0.0, 0.5]], np.float32)
        rgb = raster.overlay_rgb(image, signed, alpha=1.0)
        assert rgb[0, 0].tolist() == [255, 0, 0]  # +max: red
        assert rgb[0, 1].tolist() == [0, 0, 255]  # -max: blue
        assert rgb[1, 0].tolist() == [255, 255, 255]  # 0: white
        assert rgb[1, 1].tolist() == [255, 128, 128]  # half way from white to red
        half = raster.overlay_rgb(np.ones((1, 1, 3)), np.zeros((1, 1)), alpha=0.5)
        assert half[0, 0].tolist() == [128, 128, 191]  # (white + dark blue) / 2


class TestResume:
    def test_sigkill_then_restart_gives_the_uninterrupted_bytes(
        self, tmp_path, model, model_file, capsys
    ):
        images = write_images(tmp_path / "in", 120, seed=1)
        args = [
            "--model",
            str(model_file),
            "--images",
            str(images),
            "--method",
            "occlusion",
            "--patch",
            "2",
            "--stride",
            "1",
            "--batch-size",
            "8",
            "--quiet",
        ]
        # Uninterrupted reference through the Python twin, in this process.
        jobs.explain_folder(
            model,
            [str(images)],
            "occlusion",
            tmp_path / "ref",
            batch_size=8,
            settings={"patch": 2, "stride": 1},
            progress=False,
        )
        out = tmp_path / "out"
        proc = cli(*args, "--out", str(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while manifest_lines(out) < 16 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, stderr
        done_at_kill = manifest_lines(out)
        assert 16 <= done_at_kill < 120, done_at_kill  # killed mid-run
        # The restart runs in this process (one TensorFlow start-up less).
        assert main(["explain", *args, "--out", str(out)]) == 0
        assert "done before" in capsys.readouterr().out
        assert snapshot(out) == snapshot(tmp_path / "ref")

    def test_torn_manifest_stray_temp_and_lost_map_are_repaired(self, tmp_path, model):
        images = write_images(tmp_path / "in", 9)
        run = dict(method="gradcam", batch_size=4, progress=False)
        jobs.explain_folder(model, images, out=tmp_path / "ref", **run)
        out = tmp_path / "out"
        jobs.explain_folder(model, images, out=out, **run)
        _, names = jobs.inventory(images)
        data = (out / jobs.MANIFEST).read_bytes()
        lines = data.splitlines(keepends=True)
        # A kill while writing the third batch's line, a temp file of a map being written,
        # and a finished map deleted by hand.
        (out / jobs.MANIFEST).write_bytes(b"".join(lines[:8]) + lines[8][:20])
        (out / f"{names[8]}.gradcam.npy").unlink()
        last = Path(names[8])
        (out / last.parent / f".{last.name}.gradcam.npy.123{jobs.TMP_SUFFIX}").write_bytes(b"x")
        (out / f"{names[2]}.gradcam.png").unlink()
        result = jobs.explain_folder(model, images, out=out, **run)
        assert (result.skipped, result.written) == (7, 2)
        assert snapshot(out) == snapshot(tmp_path / "ref")

    def test_resume_with_new_images_adds_only_those(self, tmp_path, model):
        images = write_images(tmp_path / "in", 4)
        jobs.explain_folder(model, images, "saliency", tmp_path / "out", progress=False)
        write_images(tmp_path / "more", 6)  # img0004, img0005 are new names
        for f in (tmp_path / "more").rglob("img000[45].png"):
            target = images / f.relative_to(tmp_path / "more")
            target.write_bytes(f.read_bytes())
        result = jobs.explain_folder(model, images, "saliency", tmp_path / "out", progress=False)
        assert (result.total, result.skipped, result.written) == (6, 4, 2)


class TestRefusals:
    def test_foreign_or_different_folder_refused(self, tmp_path, model):
        images = write_images(tmp_path / "in", 2)
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        (foreign / "notes.txt").write_text("mine")
        with pytest.raises(FileExistsError, match="holds no kerasviz job"):
            jobs.explain_folder(model, images, "saliency", foreign)
        with pytest.raises(FileExistsError, match=r"did not write \(notes\.txt\)"):
            jobs.explain_folder(model, images, "saliency", foreign, overwrite=True)
        assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
        (foreign / "notes.txt").unlink()
        jobs.explain_folder(model, images, "saliency", foreign, progress=False)
        with pytest.raises(FileExistsError, match="differs in: method"):
            jobs.explain_folder(model, images, "gradcam", foreign)
        with pytest.raises(FileExistsError, match="holds this job"):
            jobs.explain_folder(model, images, "saliency", foreign, resume=False)
        keras.utils.set_random_seed(9)
        other = keras.models.clone_model(model)  # same graph, other weights
        with pytest.raises(FileExistsError, match="model"):
            jobs.explain_folder(other, images, "saliency", foreign)
        # overwrite replaces the job's own files (the saliency maps go) and nothing else
        (foreign / "notes.txt").write_text("mine")
        with pytest.raises(FileExistsError, match="notes.txt"):
            jobs.explain_folder(model, images, "gradcam", foreign, overwrite=True)
        (foreign / "notes.txt").unlink()
        jobs.explain_folder(model, images, "gradcam", foreign, overwrite=True, progress=False)
        assert (
            not list(foreign.rglob("*.saliency.*")) and len(list(foreign.rglob("*.gradcam.*"))) == 4
        )

    def test_bad_arguments_named(self, tmp_path, model):
        images = write_images(tmp_path / "in", 2)
        with pytest.raises(KeyError, match="Unknown method"):
            jobs.explain_folder(model, images, "magic", tmp_path / "o")
        with pytest.raises(ValueError, match="batch_size"):
            jobs.explain_folder(model, images, "saliency", tmp_path / "o", batch_size=0)
        with pytest.raises(FileNotFoundError):
            jobs.explain_folder(model, tmp_path / "nowhere", "saliency", tmp_path / "o")
        with pytest.raises(TypeError, match="settings"):
            jobs.explain_folder(
                model, images, "saliency", tmp_path / "o", settings={"output": object()}
            )
        (tmp_path / "dup").mkdir()
        for ext in ("png", "jpg"):
            Image.new("RGB", (SIZE, SIZE)).save(tmp_path / "dup" / f"same.{ext}")
        with pytest.raises(ValueError, match="same"):
            jobs.explain_folder(model, tmp_path / "dup", "saliency", tmp_path / "o")

    def test_cli_refuses_foreign_folder_in_one_line(self, tmp_path, model_file, capsys):
        images = write_images(tmp_path / "in", 1)
        (tmp_path / "foreign").mkdir()
        (tmp_path / "foreign" / "x.txt").write_text("x")
        args = ["explain", "--model", str(model_file), "--images", str(images), "--quiet"]
        for force in ((), ("--force",)):
            assert main([*args, "--out", str(tmp_path / "foreign"), *force]) == 2
            stderr = capsys.readouterr().err
            assert "choose another folder" in stderr and len(stderr.strip().splitlines()) == 1
        assert (tmp_path / "foreign" / "x.txt").read_text() == "x"
        assert main([*args, "--out", str(tmp_path / "o"), "--batch-size", "0"]) == 2
        assert "batch_size" in capsys.readouterr().err
        assert main([*args, "--out", str(tmp_path / "o")]) == 0
        assert main([*args, "--out", str(tmp_path / "o")]) == 0  # resumed: nothing to do
        assert main([*args, "--out", str(tmp_path / "o"), "--method", "gradcam"]) == 2
        assert "--force" in capsys.readouterr().err
        assert main([*args, "--out", str(tmp_path / "o"), "--force", "--method", "gradcam"]) == 0

    def test_rejected_runs_leave_nothing(self, tmp_path, model, model_file, capsys):
        images = write_images(tmp_path / "in", 2)
        out = tmp_path / "o"
        with pytest.raises(ValueError, match="patch"):
            jobs.explain_folder(model, images, "occlusion", out, settings={"patch": 500})
        args = ["explain", "--model", str(model_file), "--images", str(images), "--quiet"]
        assert main([*args, "--out", str(out), "--method", "occlusion", "--patch", "500"]) == 2
        assert not out.exists()
        assert main([*args, "--out", str(out), "--method", "occlusion", "--patch", "4"]) == 0


def test_bad_images_are_recorded_and_the_good_ones_explained(tmp_path, model, model_file, capsys):
    images = write_images(tmp_path / "in", 3)
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (images / "empty.jpg").write_bytes(b"")
    out = tmp_path / "o"
    result = jobs.explain_folder(model, images, "saliency", out, batch_size=2, progress=False)
    assert (result.total, result.written) == (5, 3)
    assert sorted(Path(f).name for f, _ in result.failed) == ["corrupt.png", "empty.jpg"]
    rows = read_rows(out)
    bad = {r["name"]: r for r in rows if "error" in r}
    assert sorted(bad) == ["corrupt", "empty"] and all(
        "not a readable image" in r["error"] for r in bad.values()
    )
    assert len([r for r in rows if "error" not in r]) == 3 == len(list(out.rglob("*.saliency.npy")))
    before = snapshot(out)
    again = jobs.explain_folder(model, images, "saliency", out, batch_size=2, progress=False)
    assert (again.skipped, again.written, len(again.failed)) == (3, 0, 2)  # retried, same rows
    assert snapshot(out) == before
    args = ["explain", "--model", str(model_file), "--images", str(images), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "c")]) == 0  # a folder: skipped, exit 0
    assert "explain: 3 maps in" in capsys.readouterr().out  # --quiet: the summary only
    assert main([*args[:-1], "--out", str(tmp_path / "c2")]) == 0
    captured = capsys.readouterr()
    assert "3 maps" in captured.out and "2 images unreadable" in captured.out
    assert main([*args, "--out", str(tmp_path / "d"), "--strict"]) == 3
    one = ["explain", "--model", str(model_file), "--images", str(images / "corrupt.png")]
    assert main([*one, "--quiet", "--out", str(tmp_path / "e")]) == 2  # nothing readable
    assert "none of the 1 images could be read" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    two = [*one, str(images / "a" / "img0001.png"), "--quiet"]
    assert main([*two, "--out", str(tmp_path / "f")]) == 3  # files named: strict
    assert main([*two, "--out", str(tmp_path / "g"), "--skip-bad"]) == 0
    assert len(list((tmp_path / "d").rglob("*.npy"))) == 3  # the good ones still done


def test_progress_line_has_rate_and_eta(monkeypatch):
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    stream = io.StringIO()
    bar = jobs.Progress(total=100, done=40, label="job", every=0.0, stream=stream)
    bar.started -= 2.0  # 2 s for 10 new images: 5 img/s, 50 left: 10 s
    bar.update(50)
    line = stream.getvalue()
    assert "50/100" in line and "5.0 img/s" in line and "ETA 0:10" in line, line


MEMORY_CHILD = r"""
import json, resource, sys, tracemalloc
from pathlib import Path
import numpy as np
from PIL import Image
import keras
from kerasviz import jobs

tmp = Path(sys.argv[1])
rng = np.random.default_rng(0)
for i in range(1800):
    folder = tmp / ("small" if i < 300 else "large")
    folder.mkdir(exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
keras.utils.set_random_seed(0)
inputs = keras.Input((32, 32, 3))
x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
x = keras.layers.GlobalAveragePooling2D()(x)
model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def run(name):
    tracemalloc.reset_peak()
    jobs.explain_folder(model, tmp / name, "gradcam", tmp / f"out-{name}", batch_size=50,
                        progress=False)
    return peak_mb(), tracemalloc.get_traced_memory()[1] / 2**20

tracemalloc.start()
jobs.explain_folder(model, sorted((tmp / "small").glob("*.png"))[:50], "gradcam",
                    tmp / "warm", batch_size=50, progress=False)  # traces, caches, imports
small = run("small")
large = run("large")
print("RESULT", json.dumps({"small": small, "large": large}))
"""


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_images(tmp_path, run_script):
    """300 then 1500 images (32x32x3) in one process: the peak RSS may not grow by half of what
    holding the images would cost (1500 x 16 KiB of image and map = 23 MiB), and the
    Python/numpy heap (tracemalloc) stays within a few batches' worth."""
    figures = run_script(MEMORY_CHILD, tmp_path)
    (rss_small, heap_small), (rss_large, heap_large) = figures["small"], figures["large"]
    assert rss_large - rss_small < 12, figures  # MiB; naive would add about 20 more
    assert heap_large < heap_small + 3, figures  # MiB; 1500 file names and manifest rows fit
    assert heap_large < 10, figures


class TestImagesAsTheyCome:
    def test_overlay_at_the_image_size_geometry_in_manifest_and_one_note(
        self, tmp_path, model, capsys, monkeypatch
    ):
        from kerasviz import imageio
        from kerasviz._preprocess import Preprocessing

        monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
        folder = tmp_path / "in"
        folder.mkdir()
        y, x = np.mgrid[0:20, 0:40]
        wide = np.stack([x * 6, y * 12, np.full_like(x, 90)], -1).astype(np.uint8)
        Image.fromarray(wide).save(folder / "wide.png")  # 40 wide, 20 high
        Image.fromarray(np.full((30, 10), 77, np.uint8)).save(folder / "tall.png")  # grey
        prep = Preprocessing("caffe")
        out = tmp_path / "out"
        jobs.explain_folder(
            model, folder, "saliency", out, batch_size=2, preprocessing=prep, resize="crop"
        )
        notes = [line for line in capsys.readouterr().err.splitlines() if "were grey" in line]
        assert notes == [
            "[explain saliency] 1 of 2 files were grey and were read as RGB (the grey value "
            "in all three channels)"
        ]
        rows = {r["name"]: r for r in read_rows(out)}
        found = imageio.read_images(
            [folder / "tall.png", folder / "wide.png"],
            (SIZE, SIZE, 3),
            preprocessing=prep,
            resize="crop",
        )
        expected = attribution.create("saliency", model).explain(found.inputs)
        for k, name in enumerate(["tall", "wide"]):
            geo = found.geometries[k]
            assert rows[name]["geometry"] == geo.to_dict()
            assert imageio.Geometry.from_dict(rows[name]["geometry"]) == geo
            got = np.load(out / f"{name}.saliency.npy")
            np.testing.assert_allclose(got, expected[k], atol=1e-6)  # at the input's size
        assert rows["wide"]["geometry"]["box"] == [0.0, 10.0, 20.0, 30.0]
        with Image.open(out / "wide.saliency.png") as png:
            assert png.size == (40, 20)
            rgb = np.asarray(png)
        with Image.open(out / "tall.saliency.png") as png:
            assert png.size == (10, 30)
        dim = np.round(wide / 255 * 127.5).astype(np.uint8)  # outside the crop: dimmed image
        np.testing.assert_array_equal(rgb[:, :10], dim[:, :10])
        np.testing.assert_array_equal(rgb[:, 30:], dim[:, 30:])
        placed = imageio.place_map(expected[1], found.geometries[1])
        assert np.isnan(placed[:, :10]).all() and not np.isnan(placed[:, 10:30]).any()
        drawn = jobs.overlay_rgb(wide / 255.0, np.nan_to_num(placed, nan=np.nanmin(placed)))
        np.testing.assert_array_equal(rgb[:, 10:30], drawn[:, 10:30])  # the map, on RGB pixels
        job = json.loads((out / jobs.JOB).read_text())
        assert job["preprocessing"] == {"mode": "caffe"} and job["resize"] == "crop"
        with pytest.raises(FileExistsError, match="differs in: resize"):
            jobs.explain_folder(model, folder, "saliency", out, preprocessing=prep, resize="pad")
        with pytest.raises(FileExistsError, match="differs in: preprocessing"):
            jobs.explain_folder(model, folder, "saliency", out, resize="crop")

    def test_any_size_model_needs_size(self, tmp_path):
        keras.utils.set_random_seed(4)
        inputs = keras.Input((None, None, 3))
        x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        open_model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
        images = write_images(tmp_path / "in", 2)
        with pytest.raises(ValueError, match="size="):
            jobs.explain_folder(open_model, images, "saliency", tmp_path / "o", progress=False)
        jobs.explain_folder(
            open_model, images, "saliency", tmp_path / "o", progress=False, size=(12, 20)
        )
        assert json.loads((tmp_path / "o" / jobs.JOB).read_text())["size"] == [12, 20]
        name = read_rows(tmp_path / "o")[0]["name"]
        assert np.load(tmp_path / "o" / f"{name}.saliency.npy").shape == (12, 20)
        with Image.open(tmp_path / "o" / f"{name}.saliency.png") as png:
            assert png.size == (SIZE, SIZE)  # the file's own size
        with pytest.raises(FileExistsError, match="differs in: size"):
            jobs.explain_folder(open_model, images, "saliency", tmp_path / "o", size=(16, 16))


def test_a_two_output_model_is_explained_with_a_score(tmp_path, capsys):
    """score= reaches the dataset job and --score the command line; without it the job is
    refused in one line that names the outputs."""
    from kerasviz import scores

    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    heads = {
        "label": keras.layers.Dense(3, activation="softmax", name="label")(x),
        "box": keras.layers.Dense(4, name="box")(x),
    }
    model = keras.Model(inputs, heads, name="two_heads")
    images = write_images(tmp_path / "images", 3)
    score = scores.Output("box", scores.Regression(2))
    result = jobs.explain_folder(
        model, images, "saliency", out=tmp_path / "out", score=score, progress=False
    )
    rows = jobs.read_manifest(tmp_path / "out" / jobs.MANIFEST)
    assert result.written == 3 and all(r["target"] == 2 for r in rows)
    batch = np.stack(
        [np.asarray(Image.open(r["file"]), np.float32) / 255 for r in rows]
    )  # the job's default scaling
    want = model(batch)["box"].numpy()[:, 2]
    np.testing.assert_allclose([r["score"] for r in rows], want, rtol=1e-5)
    spec = json.loads((tmp_path / "out" / jobs.JOB).read_text())
    assert spec["score"]["inner"] == {"kind": "Regression", "index": 2}

    path = tmp_path / "two_heads.keras"
    model.save(path)
    args = ["explain", "--model", str(path), "--images", str(images), "--method", "saliency"]
    code = main([*args, "--out", str(tmp_path / "cli"), "--score", "output:box:regression:2"])
    assert code == 0, capsys.readouterr().err
    code = main([*args, "--out", str(tmp_path / "refused")])
    err = capsys.readouterr().err
    assert code == 2 and "2 outputs" in err and "--score output:NAME" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()
