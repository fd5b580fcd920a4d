"""Every gradient and CAM method side by side: one row per image, one column per method.

    python examples/explain_methods.py                  # figures in /tmp/kerasviz_methods
    python examples/explain_methods.py --out figs --quick

For the shipped ``shapes_cnn`` (circle / square / triangle) and the two snow models
(``snow_biased``, trained where wolves always stood on snow, and ``snow_fair``), it explains a
few test images for their true class with saliency, SmoothGrad, Integrated Gradients, guided
backprop, Grad-CAM, Grad-CAM++, Score-CAM and Layer-CAM, prints the time each method took, and
writes ``methods_<model>.png``. On the snow images, expect the biased model's maps to light up
the background and the fair model's the animal.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also for the subprocesses

from kerasviz._compute import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's start-up lines and retracing notices stay off the terminal
os.environ.setdefault("KERASVIZ_QUIET", "1")

import numpy as np  # noqa: E402


def methods(model, quick: bool) -> dict:
    """Method name -> a built explainer (settings once, explain many times)."""
    from kerasviz.attribution import (
        GradCAM,
        GradCAMPlusPlus,
        GuidedBackprop,
        IntegratedGradients,
        LayerCAM,
        Saliency,
        ScoreCAM,
        SmoothGrad,
    )

    return {
        "saliency": Saliency(model),
        "SmoothGrad": SmoothGrad(model, noise=0.15, samples=8 if quick else 32),
        "integrated gradients": IntegratedGradients(model, steps=16 if quick else 64),
        "guided backprop": GuidedBackprop(model),
        "Grad-CAM": GradCAM(model),
        "Grad-CAM++": GradCAMPlusPlus(model),
        "Score-CAM": ScoreCAM(model, max_channels=16 if quick else None),
        "Layer-CAM": LayerCAM(model),
    }


def explain_model(name: str, n: int, quick: bool, out: Path) -> Path:
    from kerasviz import datasets, models, plot

    model = models.load(name)
    classes = models.card(name).get("class_names")
    if name == "shapes_cnn":
        images, labels, _ = datasets.shapes(8 * n, seed=101)
    else:
        images, labels, _ = datasets.snow(8 * n, split="test", seed=101)
    # Classes in turn, so every class appears.
    rank = np.array([np.sum(labels[:i] == labels[i]) for i in range(len(labels))])
    pick = np.lexsort((labels, rank))[:n]
    images, labels = images[pick], labels[pick].astype(np.int32)
    maps = {}
    for method, explainer in methods(model, quick).items():
        start = time.perf_counter()
        maps[method] = explainer.explain(images, labels)
        print(f"  {name:12s} {method:22s} {time.perf_counter() - start:6.2f} s")
    probs = model.predict(images, verbose=0)
    titles = [f"{classes[t] if classes else t} (p={probs[i, t]:.2f})" for i, t in enumerate(labels)]
    fig = plot.explanation_grid(images, maps, titles=titles, size=1.6)
    fig.suptitle(f"{name}: gradient and CAM explanations of the true class", fontsize=10, y=1.03)
    return plot.save(fig, out / f"methods_{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/kerasviz_methods", help="output folder")
    parser.add_argument("--n", type=int, default=4, help="images per model")
    parser.add_argument(
        "--quick", action="store_true", help="3 images, fewer samples and steps (for CI)"
    )
    args = parser.parse_args()
    n = 3 if args.quick else args.n
    out = Path(args.out)
    for name in ("shapes_cnn", "snow_biased", "snow_fair"):
        print(f"wrote {explain_model(name, n, args.quick, out)}")


if __name__ == "__main__":
    main()
