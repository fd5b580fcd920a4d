"""Models kerasviz builds never fail on operation names, and raw keras.ops operations are
layer-table rows that can be tapped like layers."""

import numpy as np
import pytest

from kerasviz import inspect

RELOADED = """
import json, sys
import numpy as np
import keras
from kerasviz import attribution, inspect
model = keras.models.load_model(sys.argv[1])
view = inspect.logits_model(model)
x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
maps = {n: attribution.create(n, model).explain(x, [0, 1]).shape
        for n in ("saliency", "integrated_gradients", "gradcam")}
print("RESULT " + json.dumps({"ops": [op.name for op in view._operations],
      "layers": [l.name for l in model.layers], "maps": {k: list(v) for k, v in maps.items()}}))
"""


def _residual(keras):
    # The names Keras gives the first two Add layers of a fresh process, set by hand: this
    # process has built many models already, so its counter is past them.
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Add(name="add")([x, y])
    y = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Add(name="add_1")([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_reloaded_default_names_in_a_fresh_process(keras, tmp_path, run_script):
    path = tmp_path / "res.keras"
    _residual(keras).save(path)
    out = run_script(RELOADED, path)
    assert {"add", "add_1"} <= set(out["layers"])
    assert len(set(out["ops"])) == len(out["ops"])
    assert {"add", "add_1"} <= set(out["ops"])  # the user's names are kept
    assert all(shape == [2, 16, 16] for shape in out["maps"].values())


def test_our_operations_get_kerasviz_names(keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="add")])
    inputs = inspect.fresh_input(model)
    y = model.layers[0](inputs)
    z = y + 1.0  # an operation of ours, automatically named "add..." by Keras' counter
    z._keras_history.operation.name = "add"  # what a fresh process gives next to a loaded model
    built = inspect.graph_model(inputs, z, "view", owner=model)
    names = [op.name for op in built._operations]
    assert "add" in names and len(set(names)) == len(names)
    assert model.layers[0].name == "add"
    np.testing.assert_allclose(
        built(np.ones((1, 4), "float32")), model(np.ones((1, 4), "float32")) + 1.0, rtol=1e-6
    )


def test_repeated_user_names_are_renamed_only_while_building(keras):
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="inner")
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inner(inputs)))
    flat = inspect.flat_model(outer)  # the replay puts both "dense" layers in one graph
    assert [layer.name for layer in inner.layers] == ["dense"]
    assert outer.layers[-1].name == "dense"
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(flat(x), outer(x), rtol=1e-6)


def test_raw_operations_are_rows_and_taps(keras):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.ops.add(x, x)  # a raw operation, not a layer
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="fc")(x))
    rows = {r.path: r for r in inspect.layer_table(model)}
    raw = [p for p in rows if inspect.is_raw_op(inspect.find_layer(model, p))]
    assert len(raw) == 1 and rows[raw[0]].type == "Add" and rows[raw[0]].params == 0
    assert rows[raw[0]].output_shape == (None, 8, 8, 4)
    assert inspect.last_spatial_layer(model) == raw[0]
    sub = inspect.submodel(model, [raw[0]])
    images = np.random.default_rng(0).random((1, 8, 8, 3)).astype("float32")
    conv = inspect.layer_model(model, "conv")([images])
    np.testing.assert_allclose(sub(images)[0], 2 * np.asarray(conv), rtol=1e-5)


def test_feature_layer_of_heads_without_dense(keras):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    x = keras.layers.Conv2D(6, 1, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    x = keras.layers.Conv2D(3, 1, name="logits")(x)  # MobileNetV3's head: convs on 1x1 maps
    x = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="pred")(x))
    assert inspect.feature_layer(model) == "fc1"
    pooled = keras.Model(
        inputs,
        keras.layers.GlobalMaxPooling2D(name="gmp")(keras.layers.Conv2D(4, 3, name="c")(inputs)),
    )
    assert inspect.feature_layer(pooled) == "gmp"


def test_sized_model(keras):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    view = inspect.sized_model(model, 12, 10)
    assert tuple(view.inputs[0].shape) == (None, 12, 10, 3)
    images = np.random.default_rng(0).random((1, 12, 10, 3)).astype("float32")
    np.testing.assert_allclose(view(images), model(images), rtol=1e-6)
    with pytest.raises(ValueError, match="size"):
        inspect.sized_model(_fixed(keras), 9, 9)


def _fixed(keras):
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
