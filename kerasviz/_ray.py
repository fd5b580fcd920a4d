"""The Ray engine of dataset jobs: batches explained by a pool of Ray actors.

`kerasviz.jobs.explain_folder(..., engine="ray")` sends each batch (an index span of the job's
file list, the same spans as the local engine) to a pool of actors (`ray.util.ActorPool`).
Each actor loads the model once from the bytes of its ``.keras`` file (put in Ray's object
store, so workers on other machines get it too), builds the scorer and explainer once
(`kerasviz.jobs.BatchWorker`), and returns a batch's maps, targets, scores and PNG overlays.
The driver writes them exactly as the local engine does, in order, as they arrive: the output
layout, the manifest and the resume rules are the local engine's, and the ``.npy`` bytes are
the same (same batches, same computation).

Without an address a local Ray is started with this machine's CPUs; with one
(``"auto"``, ``"ray://host:10001"``) the job joins that cluster. An actor that dies is
restarted and its batch retried (``max_restarts``, ``max_task_retries``). Every worker must be
able to read the image paths (a shared file system on a cluster).

Each CPU actor limits TensorFlow to one thread per operation, so ``workers`` actors share the
machine's cores instead of each claiming all of them.

Ray is an optional extra: ``pip install "kerasviz[ray]"``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_RETRIES = 2


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError(
            'engine="ray" needs Ray: pip install "kerasviz[ray]" (or pip install ray)'
        ) from None
    return ray


def model_bytes(model) -> bytes:
    """``model`` saved as a ``.keras`` file, as bytes (what every actor loads)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        try:
            model.save(path)
        except Exception as err:  # a model Keras cannot save cannot travel to the workers
            raise ValueError(
                f"Model {model.name!r} cannot be saved as a .keras file for the Ray workers "
                f"({type(err).__name__}: {err}); use the local engine"
            ) from None
        return path.read_bytes()


class _Worker:
    """One actor: the model loaded and the `BatchWorker` built once."""

    def __init__(self, blob, files, method, settings, read, wanted, score, batch_size):
        from kerasviz import _compute

        _compute.quiet_tensorflow()
        import keras

        from kerasviz.jobs import BatchWorker

        data = blob if isinstance(blob, bytes) else _ray().get(blob)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            path.write_bytes(data)
            model = keras.models.load_model(path, compile=False)
        self.worker = BatchWorker(model, files, method, settings, read, wanted, score, batch_size)

    def run(self, span, overlays: bool):
        return self.worker(span, overlays)


def _start(ray, address: str | None) -> bool:
    """Connect to Ray; returns True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        ray.init(num_cpus=os.cpu_count(), **options)
    else:
        ray.init(address=address, **options)
    return True


def run_batches(
    model,
    files,
    method,
    settings,
    read,
    wanted,
    score,
    batch_size,
    batches,
    overlays: bool,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0,
):
    """The results of `kerasviz.jobs.BatchWorker` for each span of ``batches``, in order."""
    ray = _ray()
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(f"Expected `workers` >= 1. Received: workers={workers!r}")
    if gpus_per_worker < 0:
        raise ValueError(f"Expected `gpus_per_worker` >= 0. Received: {gpus_per_worker!r}")
    if not batches:
        return
    blob = model_bytes(model)
    started = _start(ray, address)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = min(int(workers) if workers else max(cpus, 1), len(batches))
        threads = {} if gpus_per_worker else {"TF_NUM_INTRAOP_THREADS": "1"}
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTEROP_THREADS": "1", **threads}
        actor = ray.remote(
            num_cpus=1,
            num_gpus=gpus_per_worker,
            max_restarts=_RETRIES,
            max_task_retries=_RETRIES,
            runtime_env={"env_vars": env},
        )(_Worker)
        shared = ray.put(blob)
        args = (shared, list(files), method, dict(settings), read, list(wanted), score)
        pool = ray.util.ActorPool([actor.remote(*args, batch_size) for _ in range(count)])
        yield from pool.map(lambda a, span: a.run.remote(span, overlays), list(batches))
    finally:
        if started:
            ray.shutdown()
