"""The dataset job on Ray against the single-process job: images per second, and where time goes.

Run: ``python benchmarks/ray_jobs.py [--images 240] [--method occlusion] [--batch-size 16]``
(about 3 minutes on 2 shared cores). Needs the Ray extra (``pip install "kerasviz[ray]"``).

Rows, measured in one run on the same model (the shipped ``shapes_cnn``, 64x64) and the same
generated PNG files (`kerasviz.datasets.shapes`), each job into a fresh folder:

* ``local``: ``explain_folder(engine="local")``, this process (TensorFlow uses every core).
* ``ray, W workers``: ``explain_folder(engine="ray", workers=W)`` on a local Ray started once
  beforehand (``ray.init`` is reported on its own); each job starts its actors, which import
  TensorFlow and load the model: that start-up is measured with a one-batch job and shown as
  ``start-up``, and ``steady`` is the rate once the actors run.
* ``forward passes only``: the bare compiled forward passes the method runs (occlusion:
  ``positions + 1`` per image), on already-built images: the floor of any engine on one core
  set.
* the single-process breakdown: reading (decode, resize, preprocess), the model (score and
  explain), the PNG overlays, and the rest (the driver's writing: ``.npy``, PNG and manifest
  files, fsync per batch).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import limit_forward, print_table, quiet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--method", default="occlusion")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="comma list of Ray worker counts")
    args = parser.parse_args()
    quiet()
    import keras
    import numpy as np
    import ray
    from PIL import Image

    from kerasviz import attribution, datasets, jobs

    model = keras.models.load_model(ROOT / "saved_models" / "shapes_cnn.keras", compile=False)
    work = Path(tempfile.mkdtemp(prefix="kv-rayjobs-"))
    folder = work / "images"
    folder.mkdir()
    images, _, _ = datasets.shapes(args.images, seed=7)
    for i, image in enumerate(images):
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
    settings = {"patch": 8, "stride": 4} if args.method == "occlusion" else {}
    n, b = args.images, args.batch_size
    job = dict(batch_size=b, settings=settings, progress=False)

    def timed(out, count=None, **options):
        files = sorted(map(str, folder.glob("*.png")))[:count] if count else [str(folder)]
        start = time.perf_counter()
        jobs.explain_folder(model, files, args.method, work / out, **job, **options)
        return time.perf_counter() - start

    timed("warm", count=b)  # traces the compiled passes once, as a long job would
    local = timed("local")
    rows = [["local (1 process, all cores)", f"{local:.1f}", f"{n / local:.1f}", "", "1.00"]]

    start = time.perf_counter()
    ray_dir = tempfile.mkdtemp(prefix="kvray", dir="/tmp")
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=ray_dir,
    )
    ray_init = time.perf_counter() - start
    for w in [int(x) for x in args.workers.split(",")]:
        startup = timed(f"ray{w}-one", count=b, engine="ray", workers=w)
        seconds = timed(f"ray{w}", engine="ray", workers=w)
        steady = (n - b) / max(seconds - startup, 1e-9)
        rows.append(
            [
                f"ray, {w} worker{'s' * (w > 1)}",
                f"{seconds:.1f}",
                f"{n / seconds:.1f}",
                f"{startup:.1f} s start-up, steady {steady:.1f}/s",
                f"{local / seconds:.2f}",
            ]
        )
    ray.shutdown()
    shutil.rmtree(ray_dir, ignore_errors=True)

    # Where the single-process job spends its time.
    from kerasviz._compute import padded_chunks
    from kerasviz._preprocess import Preprocessing

    files, _ = jobs.inventory(str(folder))
    read = ((64, 64), 3, Preprocessing("scale", 1 / 255, 0.0), "squash")
    chosen = dict(attribution.default_settings(args.method, (64, 64, 3)), **settings)
    chosen.setdefault("batch_size", b)
    worker = jobs.BatchWorker(model, files, args.method, chosen, read, [None] * n, None, b)
    spans = list(padded_chunks(n, b))
    worker(spans[0])  # warm
    t0 = time.perf_counter()
    loaded = [worker.load(span) for span in spans]
    t1 = time.perf_counter()
    results = [worker.compute(span, data) for span, data in zip(spans, loaded, strict=True)]
    t2 = time.perf_counter()
    for span, data in zip(spans, loaded, strict=True):
        worker.compute(span, data, overlays=True)
    t3 = time.perf_counter()
    reading, modelling, overlays = t1 - t0, t2 - t1, (t3 - t2) - (t2 - t1)
    del results
    if args.method == "occlusion":
        positions = (64 - 8) // 4 + 1
        passes_per_image = positions * positions + 1
        sample = 32
        built = np.repeat(images[:sample].astype(np.float32), passes_per_image, axis=0)
        floor = limit_forward(model, built, chosen["batch_size"])
        floor()
        start = time.perf_counter()
        floor()
        forward = (time.perf_counter() - start) * n / sample
        rows.append(
            [
                "forward passes only",
                f"{forward:.1f}",
                f"{n / forward:.1f}",
                "",
                f"{local / forward:.2f}",
            ]
        )
    print_table(
        f"{n} images, {args.method} {settings}, batch {b}, {os.cpu_count()} CPUs "
        f"(ray.init {ray_init:.1f} s, not counted)",
        ["engine", "seconds", "images/s", "notes", "speed vs local"],
        rows,
    )
    rest = local - reading - modelling - overlays
    print_table(
        "single-process job, where the time goes",
        ["part", "seconds", "share"],
        [
            [name, f"{s:.1f}", f"{s / local:.0%}"]
            for name, s in [
                ("reading", reading),
                ("model (score + explain)", modelling),
                ("PNG overlays", overlays),
                ("writing and the rest", rest),
            ]
        ],
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
