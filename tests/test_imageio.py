"""Reading image files into model inputs: resize policy and geometry, preprocessing, channel
conversions, odd files (alpha, palette, 16-bit, EXIF orientation)."""

import numpy as np
import pytest
from PIL import Image

from kerasviz import imageio
from kerasviz._preprocess import Preprocessing


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


def ramp_image(path, height=20, width=40):
    """RGB whose red is the column (x * 6) and green the row (y * 12): a map of positions."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 6, y * 12, np.full_like(x, 50)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


@pytest.mark.parametrize(
    "mode, box, placed",
    [
        ("squash", (0, 0, 20, 40), (0, 0, 16, 16)),
        ("crop", (0, 10, 20, 30), (0, 0, 16, 16)),  # shorter side 20 -> 16: 32 wide, centre 16
        ("pad", (0, 0, 20, 40), (4, 0, 12, 16)),  # longer side 40 -> 16: 8 high, centred
    ],
)
def test_geometry_of_each_mode(tmp_path, mode, box, placed):
    rgb = ramp_image(tmp_path / "wide.png")
    found = imageio.read_images(tmp_path / "wide.png", (16, 16, 3), resize=mode)
    geo = found.geometries[0]
    assert geo.original == (20, 40) and geo.size == (16, 16) and geo.resize == mode
    assert geo.box == box and geo.placed == placed
    assert imageio.Geometry.from_dict(geo.to_dict()) == geo
    pixels = found.inputs[0] * 255
    if mode == "crop":  # the centre 20 x 20 of the original, shrunk: columns 10..29 only
        assert pixels[..., 0].min() >= 10 * 6 - 6 and pixels[..., 0].max() <= 29 * 6 + 6
    if mode == "pad":
        np.testing.assert_allclose(pixels[:4], imageio.PAD_VALUE, atol=1e-4)
        np.testing.assert_allclose(pixels[12:], imageio.PAD_VALUE, atol=1e-4)
        assert pixels[4:12, :, 2].min() == pytest.approx(50, abs=0.5)  # the image, not grey
    # Round trip: the input's pixels put back on the original give the original's pixels.
    for channel in (0, 1):
        back = imageio.place_map(pixels[..., channel], geo)
        assert back.shape == (20, 40)
        seen = ~np.isnan(back)
        assert seen.sum() == (20 * 20 if mode == "crop" else 800)
        if mode == "crop":
            assert seen[:, 10:30].all() and not seen[:, :10].any() and not seen[:, 30:].any()
        inner = np.zeros_like(seen)
        inner[3:-3, 3:-3] = True  # bilinear resampling blurs the outer pixels
        error = np.abs(back - rgb[..., channel])[seen & inner]
        step = (6, 12)[channel] * (40 / 16 if mode == "pad" else 20 / 16)  # one input pixel
        assert error.max() <= step, (mode, channel, error.max())


def test_place_map_of_a_constant_and_bad_shape():
    for mode in imageio.RESIZE_MODES:
        geo = imageio.geometry(mode, (30, 7), (8, 8))
        back = imageio.place_map(np.full((8, 8), 2.5), geo)
        np.testing.assert_allclose(back[~np.isnan(back)], 2.5)
    with pytest.raises(ValueError, match="explanation"):
        imageio.place_map(np.zeros((4, 4)), imageio.geometry("pad", (30, 7), (8, 8)))
    with pytest.raises(ValueError, match="resize"):
        imageio.geometry("stretch", (30, 7), (8, 8))


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_preprocessing_modes_give_keras_values(tmp_path, mode):
    from keras.applications import imagenet_utils

    ramp_image(tmp_path / "a.png", 16, 16)
    prep = Preprocessing(mode)
    got = imageio.load_image(tmp_path / "a.png", (16, 16), 3, preprocessing=prep)
    raw = np.asarray(Image.open(tmp_path / "a.png"), np.float32)
    expected = imagenet_utils.preprocess_input(raw.copy(), mode=mode)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(prep.display(got) * 255, raw, atol=1e-3)  # RGB again


def test_any_size_model_needs_size(tmp_path):
    ramp_image(tmp_path / "a.png")
    with pytest.raises(ValueError, match="size="):
        imageio.load_images(tmp_path, (None, None, 3))
    images, _ = imageio.load_images(tmp_path, (None, None, 3), size=(12, 10))
    assert images.shape == (1, 12, 10, 3)
    with pytest.raises(ValueError, match="size"):
        imageio.load_images(tmp_path, (None, None, 3), size=(12, 0))
    with pytest.raises(ValueError, match="size"):
        imageio.load_images(tmp_path, (16, 16, 3), size=(12, 10))  # not the model's size
    with pytest.raises(ValueError, match="resize"):
        imageio.load_images(tmp_path, (16, 16, 3), resize="fit")


def test_channel_conversions_say_so_once(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "grey1.png")
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "grey2.png")
    ramp_image(tmp_path / "rgb.png", 8, 8)
    images, _ = imageio.load_images(tmp_path, (8, 8, 3))
    np.testing.assert_allclose(images[0], 200 / 255, atol=1e-6)  # grey in all three channels
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "[images] 2 of 3 files were grey and were read as RGB (the grey value in all three "
        "channels)"
    ]
    imageio.load_images(tmp_path, (8, 8, 1))
    assert capsys.readouterr().err.count("1 of 3 files were colour and were read as grey") == 1
    imageio.load_image(tmp_path / "grey1.png", (8, 8), 1)  # nothing converted: nothing said
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("KERASVIZ_QUIET", "1")
    imageio.load_images(tmp_path, (8, 8, 3))
    assert capsys.readouterr().err == ""


def test_alpha_palette_16_bit_and_exif(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :3, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    got = imageio.load_image(tmp_path / "alpha.png", (4, 6), 3, scale=1, offset=0)
    np.testing.assert_array_equal(got[:, 0], [[255, 0, 0]] * 4)
    np.testing.assert_array_equal(got[:, 5], [[255, 255, 255]] * 4)  # composited on white

    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.gif", transparency=0)
    got = imageio.load_image(tmp_path / "pal.gif", (4, 4), 3, scale=1, offset=0)
    np.testing.assert_array_equal(got[0, 0], [10, 200, 30])

    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369).astype(np.uint16)  # 0..65535
    Image.fromarray(deep).save(tmp_path / "deep.png")
    got = imageio.load_image(tmp_path / "deep.png", (4, 4), 1, scale=1, offset=0)
    np.testing.assert_allclose(got[..., 0], deep / 257.0, atol=1e-3)  # scaled, not clipped

    upright = np.zeros((10, 20, 3), np.uint8)
    upright[:, :5] = 255  # white on the left
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as a phone stores
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    found = imageio.read_images(tmp_path / "phone.jpg", (10, 20, 3), scale=1, offset=0)
    assert found.geometries[0].original == (10, 20)
    left, right = found.inputs[0, :, :4].mean(), found.inputs[0, :, 6:].mean()
    assert left > 200 and right < 30
