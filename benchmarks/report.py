"""The HTML report on a real backbone against the default report, in the same run.

Run: ``python benchmarks/report.py [--images 6] [--size 96] [--repeats 2]`` (about two
minutes on 2 loaded CPU cores).

Rows, built in turns in this process (default, backbone, default, backbone...); the table
gives each row's fastest build, so neither pays the process's first TensorFlow start alone:

* ``default``: ``build_report("digits_cnn")``, what ``kerasviz report`` does with no options
  (6 shipped digits, the 1797 scikit-learn digits as reference set, four methods);
* ``backbone``: ``keras.applications.MobileNetV2(alpha=0.35, weights=None)`` at ``--size`` px
  (155 layers) with BatchNorm statistics calibrated on 8 images and its head scaled so the
  softmax is not flat (see `_common.mobilenetv2`), on ``--images`` shapes images read with
  the ``"tf"`` preprocessing, no reference set, the same four methods.

The target (issue 16) is ``backbone / default <= 3``, with the PNG count and bytes bounded
(at most 80 images). The table lists seconds, PNG files, PNG megabytes and the report's own
timings of its slow steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import print_table, quiet, sample_images  # noqa: E402

quiet()

import numpy as np  # noqa: E402

from kerasviz import imageio, report  # noqa: E402
from kerasviz._preprocess import Preprocessing  # noqa: E402


def backbone(size: int, classes: int = 10, seed: int = 0, calibration: int = 8):
    """MobileNetV2 alpha 0.35, random weights, BatchNorm calibrated and head scaled (as
    `_common.mobilenetv2`, which builds alpha 1.0)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(
        alpha=0.35, weights=None, input_shape=(size, size, 3), classes=classes
    )
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # one training pass sets the moving statistics to the batch's
    images = sample_images(calibration, size, (-1.0, 1.0), seed=seed + 1000)
    model(images, training=True)
    for layer in norms:
        layer.momentum = 0.99
    head = model.get_layer("predictions")
    probs = np.asarray(model(images, training=False), np.float64)
    spread = float(np.log(np.maximum(probs, 1e-30)).std(axis=1).mean())
    head.set_weights([w * (2.0 / max(spread, 1e-6)) for w in head.get_weights()])
    return model


def pngs(folder: Path) -> tuple[int, float]:
    files = list((folder / "img").rglob("*.png"))
    return len(files), sum(f.stat().st_size for f in files) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kv-report-bench-"))
    data = sample_images(args.images, args.size, seed=7)
    for i, img in enumerate(data):
        imageio.save_png(img, work / "images" / f"shape_{i}.png")
    model = backbone(args.size)
    runs = {
        "default": {"model": "digits_cnn"},
        "backbone": {
            "model": model,
            "images": work / "images",
            "preprocessing": Preprocessing("tf"),
        },
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for turn in range(max(1, args.repeats)):
        for name, kwargs in runs.items():
            start = time.perf_counter()
            report.build_report(out=work / name, progress=False, force=turn > 0, **kwargs)
            seconds[name].append(time.perf_counter() - start)
    rows = []
    for name in runs:
        count, megabytes = pngs(work / name)
        timings = json.loads((work / name / "report.json").read_text())["timings"]
        slow = ", ".join(f"{k} {v:.1f}" for k, v in sorted(timings.items(), key=lambda kv: -kv[1]))
        runs_text = " ".join(f"{t:.1f}" for t in seconds[name])
        rows.append([name, min(seconds[name]), runs_text, count, megabytes, slow])
    rows.append(["backbone / default", rows[1][1] / rows[0][1], "", "", "", ""])
    print_table(
        f"report: digits_cnn vs MobileNetV2 alpha 0.35 at {args.size} px, {args.images} images "
        f"({len(model.layers)} layers); folders in {work}",
        ["report", "seconds", "every run", "PNGs", "PNG MB", "slow steps of the last (s)"],
        rows,
    )


if __name__ == "__main__":
    main()
