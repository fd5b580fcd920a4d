"""Train the models kerasviz ships in saved_models/, deterministically, on the CPU.

    python examples/train_models.py                 # all four, into saved_models/
    python examples/train_models.py --only digits_cnn --out /tmp/models

Each model is written as NAME.keras with a JSON card beside it (data, seed, accuracy, class
names, input shape and range). The same seed gives the same weights on the same machine
(TensorFlow op determinism is switched on). Every model trains in a few minutes on 2 cores.

| model        | data                                   | what it shows                          |
|--------------|----------------------------------------|----------------------------------------|
| digits_cnn   | scikit-learn digits, 32x32 grey        | classic CNN: filters, feature vectors  |
| shapes_cnn   | `datasets.shapes`, 64x64 RGB, 3 classes| explanations checked against masks     |
| snow_biased  | `datasets.snow` train split, bias 1.0  | a model that learned the background    |
| snow_fair    | `datasets.snow` train split, bias 0.5  | the same model without the shortcut    |
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also for the subprocesses

from kerasviz._compute import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's start-up lines and retracing notices stay off the terminal

import numpy as np  # noqa: E402

SEED = 0


def _setup(seed: int):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return keras


def small_cnn(keras, input_shape, n_classes, name):
    """Four conv-BN-ReLU blocks (3x3), three poolings, global average pooling, softmax.

    BatchNorm makes training reliable in a few epochs; the last block keeps an 8x8 map at
    64 px, so Grad-CAM has room to localise.
    """
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, filters in enumerate((16, 32, 64, 64), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < 4:
            x = layers.MaxPooling2D(name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def digits_cnn(keras):
    """The lecture's classic CNN: conv 3x3 x32, conv 3x3 x32, pool, ..., dense 128, softmax."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 1), name="image")
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv3")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv4")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def _fit(keras, model, x, y, epochs, batch_size=64, lr=2e-3):
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=2)


def _accuracy(model, x, y) -> float:
    pred = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
    return float(np.mean(pred == y))


def _write(model, card: dict, out: Path):
    """Save without the optimizer state (it would triple the file) and the card beside it."""
    import keras

    out.mkdir(parents=True, exist_ok=True)
    bare = keras.Model.from_config(model.get_config())  # clone_model keeps the optimizer
    bare.set_weights(model.get_weights())
    bare.save(out / f"{model.name}.keras")
    (out / f"{model.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    size = (out / f"{model.name}.keras").stat().st_size
    print(f"wrote {out / model.name}.keras ({size / 1e6:.2f} MB): {card['accuracy']}")


def _card(model, data, classes, accuracy, epochs, seconds):
    return {
        "name": model.name,
        "data": data,
        "seed": SEED,
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "accuracy": accuracy,
        "class_names": list(classes),
        "input_shape": list(model.inputs[0].shape[1:]),
        "input_range": [0.0, 1.0],
        "preprocessing": {
            "scale": 1 / 255,
            "offset": 0.0,
            "note": "8-bit images are divided by 255; kerasviz data is in [0, 1]",
        },
        "trained_by": "examples/train_models.py",
    }


def train_digits(out: Path):
    from sklearn.model_selection import train_test_split

    from kerasviz import datasets

    keras = _setup(SEED)
    images, labels = datasets.digits(32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=0.2, random_state=SEED, stratify=labels
    )
    model = digits_cnn(keras)
    t = time.time()
    _fit(keras, model, x_tr, y_tr, epochs=12, batch_size=32, lr=1e-3)
    acc = {"test (held-out 20% of sklearn digits, random_state=0)": _accuracy(model, x_te, y_te)}
    _write(
        model,
        _card(
            model,
            "kerasviz.datasets.digits(32), 80/20 stratified split",
            [str(d) for d in range(10)],
            acc,
            12,
            time.time() - t,
        ),
        out,
    )


def train_shapes(out: Path):
    from kerasviz import datasets

    keras = _setup(SEED)
    x, y, _ = datasets.shapes(4000, seed=SEED)
    x_te, y_te, _ = datasets.shapes(1000, seed=SEED + 1)
    model = small_cnn(keras, (64, 64, 3), len(datasets.SHAPE_CLASSES), "shapes_cnn")
    t = time.time()
    _fit(keras, model, x, y, epochs=10, lr=2e-3)
    acc = {"test (shapes(1000, seed=1))": _accuracy(model, x_te, y_te)}
    _write(
        model,
        _card(
            model,
            "kerasviz.datasets.shapes(4000, seed=0)",
            datasets.SHAPE_CLASSES,
            acc,
            10,
            time.time() - t,
        ),
        out,
    )


def train_snow(out: Path, bias: float, name: str):
    from kerasviz import datasets

    keras = _setup(SEED)
    x, y, _ = datasets.snow(3000, "train", seed=SEED, bias=bias)
    model = small_cnn(keras, (64, 64, 3), 2, name)
    t = time.time()
    epochs = 6 if bias == 1.0 else 15
    _fit(keras, model, x, y, epochs=epochs)
    acc = {}
    for split in ("test", "swapped"):
        x_te, y_te, _ = datasets.snow(1000, split, seed=SEED + 1)
        acc[f"{split} (snow(1000, '{split}', seed=1))"] = _accuracy(model, x_te, y_te)
    _write(
        model,
        _card(
            model,
            f"kerasviz.datasets.snow(3000, 'train', seed=0, bias={bias})",
            datasets.SNOW_CLASSES,
            acc,
            epochs,
            time.time() - t,
        ),
        out,
    )


def write_samples(out: Path):
    """A few 8-bit PNGs for the report's default run: held-out digits and shapes test images."""
    from PIL import Image
    from sklearn.model_selection import train_test_split

    from kerasviz import datasets

    images, labels = datasets.digits(32)
    _, x_te, _, y_te = train_test_split(
        images, labels, test_size=0.2, random_state=SEED, stratify=labels
    )
    folder = out / "samples" / "digits"
    folder.mkdir(parents=True, exist_ok=True)
    for digit in (0, 2, 3, 5, 7, 8):
        img = x_te[np.flatnonzero(y_te == digit)[0], :, :, 0]
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(folder / f"digit_{digit}.png")
    x, y, _ = datasets.shapes(12, seed=SEED + 2)
    folder = out / "samples" / "shapes"
    folder.mkdir(parents=True, exist_ok=True)
    for label, name in enumerate(datasets.SHAPE_CLASSES):  # the first image of each class
        img = x[np.flatnonzero(y == label)[0]]
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(folder / f"{name}.png")
    print(f"wrote samples into {out / 'samples'}")


JOBS = {
    "samples": write_samples,
    "digits_cnn": train_digits,
    "shapes_cnn": train_shapes,
    "snow_biased": lambda out: train_snow(out, 1.0, "snow_biased"),
    "snow_fair": lambda out: train_snow(out, 0.5, "snow_fair"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", choices=sorted(JOBS), action="append", help="train only this model (repeatable)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "saved_models"
    )
    args = parser.parse_args(argv)
    for name in args.only or list(JOBS):
        JOBS[name](args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
