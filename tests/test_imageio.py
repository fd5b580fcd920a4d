"""Reading image files into model inputs."""

import numpy as np
import pytest
from PIL import Image

from kerasviz import imageio


def test_shipped_samples_round_trip():
    images, files = imageio.load_images("saved_models/samples/digits", (32, 32, 1))
    assert images.shape == (6, 32, 32, 1) and images.dtype == np.float32
    assert [f.name for f in files][0] == "digit_0.png"
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.5


def test_resize_channels_and_scale(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "red.png")
    grey = imageio.load_image(tmp_path / "red.png", (8, 8), 1)
    assert grey.shape == (8, 8, 1)
    np.testing.assert_allclose(grey, 0.299, atol=0.01)  # ITU-R 601 luma of pure red
    rgb_in = imageio.load_image(tmp_path / "red.png", (5, 5), 3, scale=2 / 255, offset=-1)
    np.testing.assert_allclose(rgb_in[..., 0], 1.0)
    np.testing.assert_allclose(rgb_in[..., 1], -1.0)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        imageio.list_images(tmp_path / "nope")
    with pytest.raises(ValueError, match="no image files"):
        imageio.list_images(tmp_path)
    (tmp_path / "fake.png").write_text("text")
    with pytest.raises(ValueError, match="not a readable image"):
        imageio.load_images(tmp_path, (8, 8, 3))


def test_save_png(tmp_path):
    path = imageio.save_png(np.linspace(-1, 1, 64).reshape(8, 8, 1), tmp_path / "a" / "m.png")
    arr = np.asarray(Image.open(path))
    assert arr.shape == (8, 8) and arr.min() == 0 and arr.max() == 255


def test_as_display_is_public_and_shared_with_plot():
    from kerasviz.plot import _base

    assert _base.as_display is imageio.as_display
    inside = np.array([[0.0, 0.5], [0.25, 1.0]], np.float32)[..., None]
    np.testing.assert_array_equal(imageio.as_display(inside), inside[..., 0])  # kept, squeezed
    wide = np.array([[-1.0, 1.0], [0.0, 3.0]], np.float32)
    np.testing.assert_allclose(imageio.as_display(wide), [[0.0, 0.5], [0.25, 1.0]])
    assert imageio.as_display(np.full((2, 2, 3), 7.0)).tolist() == np.zeros((2, 2, 3)).tolist()
    assert imageio.to_uint8(wide).tolist() == [[0, 128], [64, 255]]
