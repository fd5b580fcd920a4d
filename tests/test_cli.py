"""The command line: exit codes and one-line errors in-process through `cli.main`; the process
itself (fast --help without TensorFlow, the installed entry point) through subprocess."""

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


@pytest.mark.parametrize(
    "arg, message",
    [
        ("missing.keras", "no such file"),
        ("README.md", "expected a .keras file"),
    ],
)
def test_bad_model_one_line_exit_2(arg, message, capsys):
    one_line_error(capsys, main(["info", arg]), message)


def test_not_a_keras_model(tmp_path, capsys):
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"PK not really a zip")
    one_line_error(capsys, main(["info", str(fake)]), "could not be loaded as a Keras model")


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
