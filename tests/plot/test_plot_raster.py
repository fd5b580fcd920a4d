"""kerasviz.plot.raster: overlays as pixels without matplotlib; plot never imports inspect."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from kerasviz import imageio
from kerasviz.plot import raster

PLOT = Path(__file__).resolve().parents[2] / "kerasviz" / "plot"


def test_raster_imports_neither_matplotlib_nor_tensorflow():
    code = (
        "import sys, kerasviz.plot, kerasviz.plot.raster; kerasviz.plot.overlay_rgb; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('matplotlib', 'tensorflow', 'keras') or m == 'kerasviz.inspect'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_plot_never_imports_inspect():
    for path in sorted(PLOT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.startswith("kerasviz.inspect") for n in names), (path, names)


def test_colours_interpolate_anchors():
    got = raster.colours(np.array([0.0, 0.25, 1.0, 2.0]), raster.SIGNED)
    np.testing.assert_allclose(got, [[0, 0, 1], [0.5, 0.5, 1], [1, 0, 0], [1, 0, 0]])


def test_overlay_scales_the_image_like_as_display():
    image = np.full((2, 2, 3), 200.0, np.float32)
    image[0, 0] = 0.0
    rgb = raster.overlay_rgb(image, np.zeros((2, 2)), alpha=0.0)
    expected = np.round(imageio.as_display(image) * 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb, expected)
    grey = raster.overlay_rgb(np.full((2, 2), 0.5), np.zeros((2, 2)), alpha=0.0)
    assert grey.shape == (2, 2, 3) and (grey == 128).all()


def test_png_bytes_round_trip(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = tmp_path / "x.png"
    path.write_bytes(raster.png_bytes(rgb))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
