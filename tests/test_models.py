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
    with pytest.raises(FileNotFoundError):
        models.load(str(tmp_path / "missing.keras"))
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="not be loaded as a Keras model"):
        models.load(str(bad))
