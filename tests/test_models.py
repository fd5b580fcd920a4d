"""The shipped models meet their accuracy figures on freshly generated data."""

import json

import numpy as np
import pytest

from kerasviz import datasets, models


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=250, verbose=0), -1) == y))


def test_files_small_and_carded():
    for name in models.SHIPPED:
        path = models.path(name)
        assert path.stat().st_size < 2_000_000, name
        card = models.card(name)
        assert card["name"] == name and card["input_range"] == [0.0, 1.0]
        assert card["seed"] == 0 and card["class_names"]
        json.dumps(card)


def test_digits_cnn(shipped):
    from sklearn.model_selection import train_test_split

    model = shipped("digits_cnn")
    images, labels = datasets.digits(32)
    _, x_te, _, y_te = train_test_split(
        images, labels, test_size=0.2, random_state=0, stratify=labels
    )
    assert _accuracy(model, x_te, y_te) >= 0.95
    assert [layer.name for layer in model.layers][-3:] == ["fc1", "dropout", "predictions"]


def test_shapes_cnn(shipped):
    x, y, _ = datasets.shapes(500, seed=777)
    assert _accuracy(shipped("shapes_cnn"), x, y) >= 0.95


def test_snow_models(shipped):
    x_in, y_in, _ = datasets.snow(400, "test", seed=777)
    x_sw, y_sw, _ = datasets.snow(400, "swapped", seed=777)
    biased, fair = shipped("snow_biased"), shipped("snow_fair")
    assert _accuracy(biased, x_in, y_in) >= 0.95
    assert _accuracy(biased, x_sw, y_sw) <= 0.60  # it learned the background
    assert _accuracy(fair, x_sw, y_sw) >= 0.90


def test_load_errors(tmp_path):
    with pytest.raises(KeyError, match="Shipped"):
        models.load("resnet")
    with pytest.raises(FileNotFoundError, match="no such file"):
        models.load(str(tmp_path / "missing.keras"))
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="is not a Keras model: a .keras file is a zip archive"):
        models.load(str(bad))


# --- every model a user brings: files of the wrong kind, cards, keras.applications ---


@pytest.fixture(scope="module")
def tiny(keras):
    """A 3-class CNN on 8x8 RGB: the smallest model to save in each format."""
    keras.utils.set_random_seed(5)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ],
        name="tiny",
    )


def test_every_format_and_the_wrong_kinds_of_file(tiny, tmp_path):
    import shutil
    import warnings

    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    tiny.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras calls HDF5 legacy
        tiny.save(tmp_path / "m.h5")
    for name in ("m.keras", "m.h5"):
        x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
        reloaded = models.load(str(tmp_path / name))
        np.testing.assert_allclose(reloaded.predict(x, verbose=0), tiny.predict(x, verbose=0))
    shutil.copy(tmp_path / "m.h5", tmp_path / "m.hdf5")
    assert models.load(str(tmp_path / "m.hdf5")).name == "tiny"
    tiny.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "legacy_weights.h5", "w") as f:  # Keras' download layout
        legacy_h5_format.save_weights_to_hdf5_group(f, tiny)
    shutil.copy(tmp_path / "m.keras", tmp_path / "zip.h5")
    shutil.copy(tmp_path / "m.h5", tmp_path / "hdf5.keras")
    (tmp_path / "text.h5").write_text("hello")
    cases = {
        "w.weights.h5": "holds weights only, no model architecture: build the model in Python "
        "and call model.load_weights(",
        "legacy_weights.h5": "holds weights only",
        "zip.h5": "is a zip archive (a Keras 3 model) with an HDF5 name; rename it to .keras",
        "hdf5.keras": "is an HDF5 file with a .keras name; rename it to .h5",
        "text.h5": "is not a Keras model: a .h5 file is an HDF5 file, and this one starts with",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError) as err:
            models.load(str(tmp_path / name))
        assert message in str(err.value) and "\n" not in str(err.value), (name, err.value)
    with pytest.raises(ValueError, match="is a folder"):
        models.load(str(tmp_path))


def test_cards_beside_model_files_are_read_and_checked(tiny, tmp_path):
    tiny.save(tmp_path / "m.keras")
    ref = str(tmp_path / "m.keras")
    assert models.card(ref) == {}
    good = {
        "class_names": ["a", "b", "c"],
        "preprocessing": {"mode": "caffe"},
        "input_shape": [8, 8, 3],
        "resize": "pad",
        "channel_order": "BGR",
    }
    card_file = tmp_path / "m.json"
    card_file.write_text(json.dumps(good))
    assert models.card(ref, model=tiny) == good
    bad = {
        "{not json": "not valid JSON",
        '["a list"]': "expected a JSON object",
        json.dumps({"class_names": ["a", "b"]}): "key 'class_names': 2 names, but the model "
        "has 3 outputs",
        json.dumps({"class_names": "abc"}): "key 'class_names': expected a non-empty list",
        json.dumps({"preprocessing": {"mode": "inception"}}): "key 'preprocessing.mode': "
        "expected one of scale, tf, torch, caffe; got 'inception'",
        json.dumps({"preprocessing": {"mode": "tf", "scale": 2}}): "'preprocessing.scale': "
        "applies to mode 'scale' only",
        json.dumps({"preprocessing": {"scale": 0}}): "'preprocessing.scale': expected a "
        "finite non-zero number",
        json.dumps({"resize": "stretch"}): "key 'resize': expected one of squash, crop, pad",
        json.dumps({"input_size": [8]}): "key 'input_size': expected [H, W]",
        json.dumps({"input_size": [16, 16]}): "key 'input_size': 16x16, but the model takes 8x8",
        json.dumps({"input_shape": [8, 8, 1]}): "key 'input_shape': 1 channels",
        json.dumps({"channel_order": "BGR"}): "key 'channel_order': 'BGR' disagrees with the "
        "preprocessing",
    }
    for text, message in bad.items():
        card_file.write_text(text)
        with pytest.raises(ValueError) as err:
            models.card(ref, model=tiny)
        assert str(err.value).startswith(f"card {card_file}: "), err.value
        assert message in str(err.value) and "\n" not in str(err.value), (text, err.value)


def test_application_cards_match_keras(keras):
    """Every application Keras ships has a card whose preprocessing is its module's
    ``preprocess_input``, and the ImageNet class names in Keras' order."""
    from kerasviz._preprocess import Preprocessing

    shipped = {n for n in dir(keras.applications) if n[0].isupper()}
    assert set(models.applications()) == shipped
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype("float32")
    for name in models.applications():
        card = models.card(f"keras.applications.{name}")
        module = getattr(keras.applications, card["source"].split(".")[2])
        expected = np.asarray(module.preprocess_input(pixels.copy()))
        got = Preprocessing.from_card(card).apply(pixels)
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=name)
        assert card["resize"] == "crop" and len(card["class_names"]) == 1000
        assert card.get("channel_order", "RGB") == (
            "BGR" if "VGG" in name or name in ("ResNet50", "ResNet101", "ResNet152") else "RGB"
        )
    sizes = {
        "MobileNetV2": 224,
        "Xception": 299,
        "InceptionV3": 299,
        "NASNetLarge": 331,
        "EfficientNetB7": 600,
        "EfficientNetV2S": 384,
    }
    for name, size in sizes.items():
        assert models.application_card(name)["input_size"] == [size, size], name
    names, wnids = models.imagenet_classes(), models.imagenet_wnids()
    assert names[:3] == ["tench", "goldfish", "great_white_shark"]
    assert names[999] == "toilet_tissue" and names[134] == names[517] == "crane"
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000  # Keras' index order
    assert wnids[0] == "n01440764" and wnids[999] == "n15075141"


def test_unknown_application_lists_close_matches():
    with pytest.raises(ValueError) as err:
        models.load("keras.applications.MobilNetV2")
    assert "close matches: keras.applications.MobileNetV2" in str(err.value)
    with pytest.raises(ValueError, match="known: ConvNeXtBase"):
        models.card("keras.applications.Foo")


def test_legacy_scale_offset_refuses_other_modes():
    assert models.preprocessing({"preprocessing": {"scale": 2.0}}) == (2.0, 0.0)
    with pytest.raises(ValueError, match="mode 'torch'"):
        models.preprocessing({"preprocessing": {"mode": "torch"}})


_PRETRAINED = """
import contextlib, io, json, re, sys
import h5py, keras, numpy as np
from keras.src.legacy.saving import legacy_h5_format
from kerasviz import cli, models

def info():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["info", "--model", "keras.applications.MobileNetV2"])
    return code, out.getvalue(), err.getvalue()

# 1. nothing cached, no network: the one-line error names the file Keras looks for
code, _, message = info()
target = re.search(r"Keras looks for (\\S+):", message).group(1)
# 2. a weights file saved from a weights=None model, in the layout Keras downloads, placed there
keras.utils.set_random_seed(0)
donor = keras.applications.MobileNetV2(weights=None)
with h5py.File(target, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, donor)
model = models.load("keras.applications.MobileNetV2")
same = all(np.array_equal(a, b) for a, b in zip(donor.get_weights(), model.get_weights()))
code2, out2, _ = info()
print("RESULT " + json.dumps({"code": code, "message": message, "target": target,
      "same": same, "code2": code2, "out2": out2}))
"""


@pytest.mark.slow
def test_pretrained_application_offline(run_script, tmp_path, monkeypatch):
    """keras.applications.MobileNetV2 with weights="imagenet" through Keras' real download and
    cache code, in a fresh interpreter (Keras reads KERAS_HOME on import), offline: first the
    error that names the file; then a file put there by hand loads."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # refused at once, network or not
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    got = run_script(_PRETRAINED)
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    assert got["code"] == 2 and got["target"] == str(home / "models" / name), got
    message = got["message"]
    assert len(message.strip().splitlines()) == 1 and "Traceback" not in message, message
    assert "could not be downloaded" in message and "put it there" in message, message
    assert f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{name}" in (
        message
    )
    assert got["same"], "the model did not load the weights placed in KERAS_HOME"
    assert got["code2"] == 0
    out = got["out2"]
    assert "outputs: 1000" in out and "classes: 1000 (tench, goldfish," in out, out
    assert "preprocessing: tf (v / 127.5 - 1)   resize: crop   input size: 224x224" in out, out
