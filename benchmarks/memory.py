"""Peak memory of dataset-scale work: does it grow with the number of images?

Two workloads on generated 32x32 images and the shipped ``digits_cnn``:

* **explain job**: ``kerasviz.jobs.explain_folder`` (Grad-CAM, batch 64) over N PNG files,
  writing N maps (.npy + PNG) and the manifest; against the **naive** way (what ``kerasviz
  explain`` did before the job existed): load every image, explain them all at once, write.
* **feature extraction**: ``FeatureExtractor.extract`` on a ``tf.data.Dataset`` that generates
  the images on the fly (nothing held but the batch and the ``(N, 128)`` result); against the
  naive way: generate all images as one array, then extract.

Every cell is a fresh interpreter (peak RSS is per process). ``peak MB`` is the process's
peak resident memory (``ru_maxrss``); ``base MB`` is the peak after TensorFlow, the model and
a warm-up batch, before the N images; ``growth`` is their difference, the part that can
depend on N.

Run: ``python benchmarks/memory.py`` (N = 1000, 3000, 10000; about 3 minutes on 2 busy cores)
or ``--quick`` (N = 500, 2000).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, quiet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32

CHILD = r'''
import json, os, resource, sys, time
from pathlib import Path
import numpy as np

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

workload, way, n, folder, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
import tensorflow as tf
from kerasviz import jobs, models, imageio
from kerasviz.attribution import GradCAM
from kerasviz.embedding import FeatureExtractor

model = models.load("digits_cnn")
size = 32

def generated(count, seed=0):
    """Image i is a function of (seed, i): a blob on noise, like a digit stroke."""
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        rng = np.random.default_rng((seed, i))
        cy, cx = rng.uniform(8, 24, 2)
        img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0) + 0.1 * rng.random((size, size))
        yield np.clip(img, 0, 1).astype(np.float32)[..., None]

files = sorted(Path(folder).glob("*.png"))[:n]
if workload == "job":
    warm = np.stack([imageio.load_image(f, (size, size), 1) for f in files[:64]])
    GradCAM(model, batch_size=64).explain(warm)
    base = peak_mb()
    start = time.perf_counter()
    if way == "ours":
        jobs.explain_folder(model, files, "gradcam", out, batch_size=64, progress=False)
    else:
        images, names = imageio.load_images(files, (size, size, 1))
        maps = GradCAM(model, batch_size=64).explain(images)
        Path(out).mkdir(parents=True, exist_ok=True)
        for f, img, m in zip(names, images, maps):
            np.save(Path(out) / f"{Path(f).stem}.gradcam.npy", m)
            imageio.save_png(jobs.overlay_rgb(img, m), Path(out) / f"{Path(f).stem}.gradcam.png")
else:
    extractor = FeatureExtractor(model, batch_size=64)
    extractor.extract(np.stack(list(generated(64))))
    base = peak_mb()
    start = time.perf_counter()
    if way == "ours":
        data = tf.data.Dataset.from_generator(
            lambda: generated(n), output_signature=tf.TensorSpec((size, size, 1), tf.float32))
        vectors = extractor.extract(data)
    else:
        vectors = extractor.extract(np.stack(list(generated(n))))
    assert vectors.shape == (n, 128)
print("RESULT", json.dumps({"peak": peak_mb(), "base": base,
                            "seconds": time.perf_counter() - start}))
'''


def make_images(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)).save(
            folder / f"img{i:05d}.png"
        )


def run_child(workload: str, way: str, n: int, folder: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, workload, way, str(n), str(folder), str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 500, 2000")
    args = parser.parse_args()
    quiet()
    sizes = (500, 2000) if args.quick else (1000, 3000, 10000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        t0 = time.perf_counter()
        make_images(folder, max(sizes))
        print(
            f"{max(sizes)} PNG files of {SIZE}x{SIZE} written in {time.perf_counter() - t0:.1f} s"
        )
        rows = []
        for workload in ("job", "features"):
            for way in ("ours", "naive"):
                for n in sizes:
                    r = run_child(workload, way, n, folder, Path(tmp) / f"{workload}-{way}-{n}")
                    rows.append(
                        (
                            workload,
                            way,
                            f"{n}",
                            f"{r['base']:.0f}",
                            f"{r['peak']:.0f}",
                            f"{r['peak'] - r['base']:.0f}",
                            f"{r['seconds']:.1f}",
                            f"{n / r['seconds']:.0f}",
                        )
                    )
                    print(*rows[-1], flush=True)
    print_table(
        "Peak resident memory vs number of images (digits_cnn, 32x32, batch 64)",
        ("workload", "way", "N", "base MB", "peak MB", "growth MB", "seconds", "images/s"),
        rows,
    )


if __name__ == "__main__":
    main()
