"""The command line: exit codes and one-line errors in-process through `cli.main`; the process
itself (fast --help without TensorFlow, the installed entry point) through subprocess."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kerasviz.cli import main


def run(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "kerasviz.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(capsys, code, message):
    """``code`` is 2 and stderr holds ``message`` on one line, without a traceback."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    out = run("--help")
    took = time.perf_counter() - start
    assert out.returncode == 0 and "info" in out.stdout
    # --help must not import TensorFlow (about 5 s); a loose bound keeps this meaningful.
    assert took < 3.0, took
    assert (
        "tensorflow"
        not in subprocess.run(
            [sys.executable, "-c", "import sys, kerasviz.cli; print(sorted(sys.modules))"],
            capture_output=True,
            text=True,
        ).stdout
    )


def test_entry_point_prints_layer_table_with_a_clean_stderr():
    """The installed ``kerasviz`` command, in a fresh process: TensorFlow's start-up lines
    (printed by C++ before logging is set up) are kept off the terminal."""
    entry = Path(sys.executable).parent / "kerasviz"
    command = [str(entry)] if entry.is_file() else [sys.executable, "-m", "kerasviz.cli"]
    out = subprocess.run(
        [*command, "info", "digits_cnn"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "conv1" in out.stdout and "(None, 30, 30, 32)" in out.stdout
    assert "default CAM layer: conv4" in out.stdout
    assert out.stderr == ""


def test_info_in_process(capsys):
    assert main(["info", "shapes_cnn"]) == 0
    out = capsys.readouterr().out
    assert "model: shapes_cnn" in out and "default CAM layer:" in out
    assert "classes: 3 (circle, square, triangle)" in out
    assert "preprocessing: v * 0.00392157 + 0   input size: 64x64" in out
    assert main(["info", "--model", "shapes_cnn"]) == 0
    assert capsys.readouterr().out == out  # the option and the positional say the same
    one_line_error(capsys, main(["info", "digits_cnn", "--model", "shapes_cnn"]), "give one")
    one_line_error(capsys, main(["info"]), "no model given")


def test_describe_shows_the_card(keras):
    from kerasviz.cli import describe

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ],
        name="two",
    )
    text = describe(
        model, {"class_names": ["yes", "no"], "preprocessing": {"mode": "caffe"}, "resize": "pad"}
    )
    assert text.splitlines()[1] == "classes: 2 (yes, no)"
    assert text.splitlines()[2] == (
        "preprocessing: caffe (RGB to BGR, v - ImageNet mean)   resize: pad"
    )
    assert "(no card entry: the default)" in describe(model, {})


@pytest.fixture
def tiny_files(keras, tmp_path):
    """A 3-class CNN saved as .h5 with a card, and a fully convolutional one that takes any
    image size, saved as .keras."""
    import warnings

    keras.utils.set_random_seed(6)
    fixed = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ],
        name="fixed",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed.save(tmp_path / "fixed.h5")
    (tmp_path / "fixed.json").write_text(
        json.dumps({"class_names": ["cat", "dog", "fox"], "preprocessing": {"mode": "torch"}})
    )
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dynamic = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x), name="dyn")
    dynamic.save(tmp_path / "dyn.keras")
    return tmp_path


def test_info_reads_a_legacy_hdf5_model_and_its_card(tiny_files, capsys):
    assert main(["info", "--model", str(tiny_files / "fixed.h5")]) == 0
    out = capsys.readouterr().out
    assert "model: fixed" in out and "classes: 3 (cat, dog, fox)" in out
    assert "preprocessing: torch (" in out
    card = tiny_files / "fixed.json"
    card.write_text(json.dumps({"class_names": ["cat", "dog"]}))
    one_line_error(
        capsys,
        main(["info", str(tiny_files / "fixed.h5")]),
        f"card {card}: key 'class_names': 2 names, but the model has 3 outputs",
    )
    card.write_text(json.dumps({"preprocessing": {"mode": "bgr"}}))
    one_line_error(capsys, main(["info", str(tiny_files / "fixed.h5")]), "key 'preprocessing.mode'")


@pytest.mark.parametrize(
    "arg, message",
    [
        ("missing.keras", "no such file"),
        ("README.md", "expected a .keras, .h5 or .hdf5 file"),
        ("resnet", "no such file or shipped name: resnet"),
        ("keras.applications.MobilNetV2", "close matches: keras.applications.MobileNetV2"),
    ],
)
def test_bad_model_one_line_exit_2(arg, message, capsys):
    one_line_error(capsys, main(["info", arg]), message)


def test_files_that_are_not_models(tiny_files, tmp_path, capsys):
    import zipfile

    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"PK not really a zip")
    one_line_error(capsys, main(["info", str(fake)]), "is not a Keras model")
    text = tmp_path / "notes.h5"
    text.write_text("a renamed text file")
    one_line_error(capsys, main(["info", str(text)]), "this one starts with b'a renamed text")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as z:
        z.writestr("readme.txt", "no model here")
    one_line_error(
        capsys, main(["info", str(tmp_path / "empty.keras")]), "could not be loaded as a Keras"
    )
    import keras

    weights = tmp_path / "fixed.weights.h5"
    keras.saving.load_model(tiny_files / "fixed.h5").save_weights(weights)
    one_line_error(capsys, main(["info", str(weights)]), "holds weights only")


def test_quiet_does_not_leak_into_the_caller(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    assert (
        main(
            [
                "explain",
                "--model",
                "shapes_cnn",
                "--images",
                "saved_models/samples/shapes",
                "--method",
                "saliency",
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 0
    )
    assert capsys.readouterr().err == ""
    import os

    assert "KERASVIZ_QUIET" not in os.environ


def test_embed_writes_features_neighbours_and_projector(tmp_path, capsys):
    code = main(
        [
            "embed",
            "--model",
            "digits_cnn",
            "--images",
            "saved_models/samples/digits",
            "--out",
            str(tmp_path / "e"),
            "--projector",
            str(tmp_path / "proj"),
            "--neighbours",
            "2",
            "--quiet",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    vectors = np.load(tmp_path / "e" / "features.npy")
    assert vectors.shape == (6, 128)
    rows = (tmp_path / "e" / "neighbours.csv").read_text().strip().splitlines()
    assert rows[0] == "file,rank,neighbour,distance" and len(rows) == 1 + 6 * 2
    assert (tmp_path / "proj" / "projector_config.pbtxt").is_file()
    assert "tensorboard --logdir" in out.out
    again = main(
        [
            "embed",
            "--images",
            "saved_models/samples/digits",
            "--out",
            str(tmp_path / "e"),
            "--quiet",
        ]
    )
    one_line_error(capsys, again, "--force")
    # Both destinations are checked first: a projector folder that refuses leaves --out alone.
    (tmp_path / "proj" / "notes.txt").write_text("mine")
    fresh = tmp_path / "e2"
    base = ["embed", "--images", "saved_models/samples/digits", "--quiet", "--force"]
    refused = main([*base, "--out", str(fresh), "--projector", str(tmp_path / "proj")])
    one_line_error(capsys, refused, "did not write (notes.txt)")
    assert not fresh.exists() and (tmp_path / "proj" / "notes.txt").read_text() == "mine"
    (tmp_path / "e" / "mine.csv").write_text("x")
    one_line_error(capsys, main([*base, "--out", str(tmp_path / "e")]), "mine.csv")
    (tmp_path / "e" / "mine.csv").unlink()
    assert main([*base, "--out", str(tmp_path / "e")]) == 0


def test_explain_writes_maps(tmp_path, capsys):
    code = main(
        [
            "explain",
            "--model",
            "shapes_cnn",
            "--images",
            "saved_models/samples/shapes",
            "--method",
            "gradcam",
            "--out",
            str(tmp_path / "x"),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    maps = sorted((tmp_path / "x").glob("*.gradcam.npy"))
    assert len(maps) == 3 and np.load(maps[0]).shape == (64, 64)
    assert len(list((tmp_path / "x").glob("*.gradcam.png"))) == 3


def test_explain_incremental_occlusion_takes_patch_and_stride(tmp_path, capsys):
    import json

    code = main(
        [
            "explain",
            "--model",
            "digits_cnn",
            "--images",
            "saved_models/samples/digits",
            "--method",
            "occlusion_incremental",
            "--patch",
            "8",
            "--stride",
            "8",
            "--out",
            str(tmp_path / "x"),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    spec = json.loads((tmp_path / "x" / "job.json").read_text())
    assert spec["settings"]["patch"] == 8 and spec["settings"]["stride"] == 8, spec
    assert len(list((tmp_path / "x").glob("*.occlusion_incremental.npy"))) == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["explain", "--images", "saved_models/samples/digits", "--method", "magic"],
            "Unknown method 'magic'",
        ),
        (["explain", "--images", "nowhere/"], "no such file"),
        (["explain", "--images", "README.md"], "not a readable image"),
        (["embed", "--images", "saved_models/samples/digits", "--layer", "conv99"], "No layer"),
        (
            [
                "explain",
                "--images",
                "saved_models/samples/digits",
                "--method",
                "gradcam",
                "--patch",
                "4",
            ],
            "--patch and --stride apply to --method occlusion or occlusion_incremental only",
        ),
    ],
)
def test_bad_input_one_line(args, message, tmp_path, capsys):
    one_line_error(capsys, main([*args, "--out", str(tmp_path / "o")]), message)


def test_size_and_resize_round_trip(tiny_files, tmp_path, capsys):
    """--size and --resize reach the images of an any-size model (the features equal those of
    the images read by imageio with the same size and resize), and a card's input_size stands
    in for --size."""
    import keras
    from PIL import Image

    from kerasviz import imageio
    from kerasviz._preprocess import Preprocessing

    photo = tmp_path / "photos" / "wide.png"
    photo.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 60, 3), dtype=np.uint8)).save(photo)
    model = str(tiny_files / "dyn.keras")
    base = ["embed", "--model", model, "--images", str(photo.parent), "--layer", "conv"]
    reader = keras.saving.load_model(model)
    conv = keras.Model(reader.inputs, reader.get_layer("conv").output)

    def features(*extra, name, reduce=("--reduce", "gap")):
        code = main([*base, *reduce, "--out", str(tmp_path / name), "--quiet", *extra])
        assert code == 0, capsys.readouterr().err
        return np.load(tmp_path / name / "features.npy")[0]

    def expected(resize, size):
        images, _ = imageio.load_images(
            [photo], (None, None, 3), preprocessing=Preprocessing(), resize=resize, size=size
        )
        return conv.predict(images, verbose=0)[0].mean(axis=(0, 1))

    np.testing.assert_allclose(
        features("--size", "12x20", name="a"), expected("squash", (12, 20)), rtol=1e-5
    )
    # Without --reduce an any-size model's maps are averaged (a flattened map has no fixed length).
    np.testing.assert_allclose(
        features("--size", "12x20", name="a2", reduce=()), expected("squash", (12, 20)), rtol=1e-5
    )
    one_line_error(capsys, main([*base, "--out", str(tmp_path / "b")]), "--size: the model")
    (tiny_files / "dyn.json").write_text(json.dumps({"input_size": [8, 8], "resize": "pad"}))
    np.testing.assert_allclose(features(name="c"), expected("pad", (8, 8)), rtol=1e-5)
    crop = features("--resize", "crop", name="d")
    np.testing.assert_allclose(crop, expected("crop", (8, 8)), rtol=1e-5)
    assert not np.allclose(crop, expected("pad", (8, 8)))
    args = ["embed", "--model", str(tiny_files / "fixed.h5"), "--images", str(photo.parent)]
    one_line_error(
        capsys,
        main([*args, "--size", "8x8", "--out", str(tmp_path / "f")]),
        "--size: the model takes 16x16 images",
    )
    one_line_error(
        capsys, main([*args, "--size", "big", "--out", str(tmp_path / "g")]), "expected HxW"
    )
