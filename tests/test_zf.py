"""Zeiler & Fergus pictures: the Fig. 2 grid, the Fig. 7 row, the report section, the example."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kerasviz import activations, plot
from kerasviz.attribution import Occlusion

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def top(functional_model):
    images = np.random.default_rng(0).uniform(0, 1, (12, 16, 16, 3)).astype(np.float32)
    return activations.top_patches(
        functional_model, "conv2", images, units=[0, 2, 4], k=4, projection="deconvnet"
    )


def test_patch_display_marks_the_outside_and_scales_the_inside():
    from kerasviz.plot.zf import OUTSIDE, patch_display, projection_display

    patches = np.full((1, 2, 2, 1), 3.0, np.float32)
    patches[0, 0, 0] = 1.0
    valid = np.array([[[True, True], [True, False]]])
    shown = patch_display(patches, valid)
    assert shown.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(shown[0, 0, 0], 0.0)  # the smallest pixel inside
    np.testing.assert_allclose(shown[0, 0, 1], 1.0)  # the largest
    np.testing.assert_allclose(shown[0, 1, 1], OUTSIDE)  # padding, whatever its value
    signed = projection_display(np.array([[[[-2.0], [0.0]], [[2.0], [0.0]]]]), np.ones((1, 2, 2)))
    np.testing.assert_allclose(signed[0, :, 0, 0], [0.0, 1.0])  # symmetric around grey
    np.testing.assert_allclose(signed[0, :, 1, 0], [0.5, 0.5])


def test_top_patch_grid_rows_and_errors(top):
    fig = plot.top_patch_grid(top, units=[4, 0])
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * 2 * 4  # 2 units x (patches + projections) x k
    assert "conv2" in fig._suptitle.get_text()
    assert len([ax for ax in plot.top_patch_grid(top, projections=False).axes if ax.images]) == 12
    with pytest.raises(ValueError, match="units"):
        plot.top_patch_grid(top, units=[1])
    top.projections, saved = None, top.projections
    try:
        with pytest.raises(ValueError, match="projection"):
            plot.top_patch_grid(top, projections=True)
    finally:
        top.projections = saved


def test_occlusion_row_and_its_legend(functional_model):
    images = np.random.default_rng(1).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    result = Occlusion(functional_model, patch=6, stride=4, layer="conv2").explain_full(images)
    fmap = activations.activations(functional_model, images, "conv2")["conv2"][0, ..., 0]
    fig = plot.occlusion_row(images[0], fmap, result, target=1, class_names=["a", "b", "c"])
    legend = fig.axes[4].get_legend()
    present = {["a", "b", "c"][c] for c in np.unique(result.labels[0])}
    assert {t.get_text() for t in legend.get_texts()} == present
    assert "p(b)" in fig.axes[3].get_title()
    classes = Occlusion(functional_model, patch=6, stride=4).explain_full(images)
    with pytest.raises(ValueError, match="layer"):
        plot.occlusion_row(images[0], fmap, classes)


def test_units_section_html(top):
    saved = []

    def figure(fig, name, alt, width=None):
        saved.append((name, len([ax for ax in fig.axes if ax.images])))
        return f'<img src="img/{name}.png" alt="{alt}">'

    body = plot.units_section([top], figure, units_per_layer=2)
    assert saved == [("units_0", 2 * 2 * 4)] and 'src="img/units_0.png"' in body
    assert "<code>conv2</code>" in body and "receptive field" in body
    assert "No spatial layer" in plot.units_section([], figure)


@pytest.mark.slow
def test_example_writes_the_figures(tmp_path):
    env = {**os.environ, "KERASVIZ_QUIET": "1", "MPLBACKEND": "Agg"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the example quiets TensorFlow itself
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "zeiler_fergus.py"), "--out", str(tmp_path)]
        + ["--quick", "--models", "digits_cnn"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""  # no TensorFlow start-up lines, oneDNN notices or retracing warnings
    folder = tmp_path / "digits_cnn"
    assert (folder / "top_patches_conv4.png").stat().st_size > 10_000
    assert (folder / "occlusion_row_0.png").stat().st_size > 10_000
    assert "field 14x14" in out.stdout and "classes:" in out.stdout
