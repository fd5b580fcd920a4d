"""The command line through subprocess: exit codes, one-line errors, fast --help."""

import subprocess
import sys
import time

import pytest


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "kerasviz.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    out = run("--help")
    took = time.perf_counter() - start
    assert out.returncode == 0 and "info" in out.stdout
    # --help must not import TensorFlow (about 5 s); a loose bound keeps this meaningful.
    assert took < 3.0, took
    assert "tensorflow" not in subprocess.run(
        [sys.executable, "-c", "import sys, kerasviz.cli; print(sorted(sys.modules))"],
        capture_output=True, text=True).stdout


def test_info_prints_layer_table():
    out = run("info", "digits_cnn")
    assert out.returncode == 0, out.stderr
    assert "conv1" in out.stdout and "(None, 30, 30, 32)" in out.stdout
    assert "default CAM layer: conv4" in out.stdout
    assert out.stderr == ""  # TensorFlow's start-up lines are kept off the terminal


@pytest.mark.parametrize("arg, message", [
    ("missing.keras", "no such file"),
    ("README.md", "expected a .keras file"),
])
def test_bad_model_one_line_exit_2(arg, message):
    out = run("info", arg)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_not_a_keras_model(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"PK not really a zip")
    out = run("info", str(fake))
    assert out.returncode == 2 and "could not be loaded as a Keras model" in out.stderr
    assert "Traceback" not in out.stderr


def test_embed_writes_features_neighbours_and_projector(tmp_path):
    out = run("embed", "--model", "digits_cnn", "--images", "saved_models/samples/digits",
              "--out", str(tmp_path / "e"), "--projector", str(tmp_path / "proj"),
              "--neighbours", "2", "--quiet")
    assert out.returncode == 0, out.stderr
    import numpy as np

    vectors = np.load(tmp_path / "e" / "features.npy")
    assert vectors.shape == (6, 128)
    rows = (tmp_path / "e" / "neighbours.csv").read_text().strip().splitlines()
    assert rows[0] == "file,rank,neighbour,distance" and len(rows) == 1 + 6 * 2
    assert (tmp_path / "proj" / "projector_config.pbtxt").is_file()
    assert "tensorboard --logdir" in out.stdout
    again = run("embed", "--images", "saved_models/samples/digits", "--out",
                str(tmp_path / "e"), "--quiet")
    assert again.returncode == 2 and "--force" in again.stderr


def test_explain_writes_maps(tmp_path):
    out = run("explain", "--model", "shapes_cnn", "--images", "saved_models/samples/shapes",
              "--method", "gradcam", "--out", str(tmp_path / "x"), "--quiet")
    assert out.returncode == 0, out.stderr
    import numpy as np

    maps = sorted((tmp_path / "x").glob("*.gradcam.npy"))
    assert len(maps) == 3 and np.load(maps[0]).shape == (64, 64)
    assert len(list((tmp_path / "x").glob("*.gradcam.png"))) == 3


@pytest.mark.parametrize("args, message", [
    (["explain", "--images", "saved_models/samples/digits", "--method", "magic"],
     "Unknown method 'magic'"),
    (["explain", "--images", "nowhere/"], "no such file"),
    (["explain", "--images", "README.md"], "not a readable image"),
    (["embed", "--images", "saved_models/samples/digits", "--layer", "conv99"], "No layer"),
])
def test_bad_input_one_line(args, message, tmp_path):
    out = run(*args, "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
