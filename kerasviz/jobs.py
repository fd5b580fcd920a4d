"""Dataset-level jobs: explain a folder of images of any size, resumably, in bounded memory.

`explain_folder` (the command ``kerasviz explain``) streams the image files in batches of
``batch_size``: each batch is read from disk (the next one is read while the current one is
explained), explained, and written out before the next batch is touched, so memory does not
grow with the number of images. For each image it writes

* ``OUT/<name>.<method>.npy``: the float32 ``(H, W)`` map at the model input's size;
* ``OUT/<name>.<method>.png``: the map over the image at the image's own size and aspect
  (blue-white-red for signed maps, a blue-to-red ramp otherwise): the map is put back through
  the image's geometry (`kerasviz.imageio.place_map`); the parts of the image that a
  ``"crop"`` cut away carry no map and are drawn dimmed, without colour;
* one line of ``OUT/manifest.jsonl``: the file, the target class, the model's score for it,
  the method and its settings, and the image's ``geometry`` (its size and where it lies in
  the model input, `kerasviz.imageio.Geometry.to_dict`): ``place_map(np.load(npy),
  Geometry.from_dict(row["geometry"]))`` puts the ``.npy`` map on the original.

Images are read as `kerasviz.imageio` reads them (EXIF orientation, alpha on white, channels
converted with one note on stderr at the end of the job, resized by ``resize``).

``<name>`` is the file's path below the folder it was found in, without its suffix (so
sub-folders per class are kept). ``OUT/job.json`` records what the job computes (method,
settings, model name and weight fingerprint, preprocessing, resize mode and size, targets):
the same folder with another of these is another job.

Every file is written to a temporary name and moved into place with ``os.replace``, and an
image counts as finished only when its manifest line is complete, so a job that is killed
(even with SIGKILL) leaves finished images, at most one torn manifest line and stray temporary
files. Started again on the same folder, it drops the torn line and the temporary files, skips
finished images and recomputes the rest; batches are the same fixed slices of the sorted file
list as in an uninterrupted run, so the final folder is byte for byte the same.

Several GPUs or a TPU: pass a ``tf.distribute`` strategy and load the model in its scope, so
each replica holds the weights; every compiled step then splits its rows across the replicas
and gathers the results in input order (equal to the single-device results)::

    strategy = tf.distribute.MirroredStrategy()          # all GPUs of this machine
    # TPU: resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="")
    #      tf.config.experimental_connect_to_cluster(resolver)
    #      tf.tpu.experimental.initialize_tpu_system(resolver)
    #      strategy = tf.distribute.TPUStrategy(resolver)
    with strategy.scope():
        model = keras.models.load_model("model.keras")
    explain_folder(model, "photos/", "gradcam", out="maps", batch_size=64 * 8,
                   strategy=strategy)

Scale ``batch_size`` with the number of replicas (each gets ``batch_size / R`` rows). The same
``strategy=`` argument works on every explainer and on `kerasviz.embedding.FeatureExtractor`;
on the command line, ``kerasviz explain --strategy mirrored``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasviz import _checks, _compute, _files, imageio, inspect
from kerasviz._preprocess import Preprocessing
from kerasviz._progress import Progress
from kerasviz.plot.raster import overlay_rgb, png_bytes

MANIFEST = "manifest.jsonl"
JOB = "job.json"
TMP_SUFFIX = _files.TMP_SUFFIX


@dataclass
class JobResult:
    """What a job did.

    Attributes:
        out: the output folder.
        total: images in the job.
        written: images explained and written by this run.
        skipped: images already finished by an earlier run (resumed).
        seconds: wall time of this run.
        failed: ``(file, error)`` of each image that could not be read (recorded in the
            manifest with its ``error`` and tried again when the job is resumed).
    """

    out: Path
    total: int
    written: int
    skipped: int
    seconds: float
    failed: list = field(default_factory=list)


# -- files ------------------------------------------------------------------------------------


def _walk(folder: str) -> list[str]:
    """Image files below ``folder`` as ``str`` paths, in `kerasviz.imageio.list_images`' order
    (sorted by path components). Strings, not ``Path`` objects: a fifth of the memory each."""
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs.sort()
        found.extend(
            os.path.join(parent, n)
            for n in names
            if os.path.splitext(n)[1].lower() in imageio.SUFFIXES
        )
    found.sort(key=lambda f: f.split(os.sep))
    return found


def inventory(images) -> tuple[list[str], list[str]]:
    """The image files of ``images`` (files, or folders searched recursively for the suffixes
    of `kerasviz.imageio.SUFFIXES`) and a unique output name for each: its path below the
    folder given, without suffix.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: no image files; two files that would get the same output name.

    >>> files, names = inventory("saved_models/samples/shapes")
    >>> names
    ['circle', 'square', 'triangle']
    """
    roots = [images] if isinstance(images, str | Path) else list(images)
    files: list[str] = []
    names: list[str] = []
    for root in map(str, roots):
        if os.path.isdir(root):
            found = _walk(root)
            files.extend(found)
            names.extend(
                os.path.splitext(os.path.relpath(f, root))[0].replace(os.sep, "/") for f in found
            )
        elif os.path.isfile(root):
            files.append(root)
            names.append(os.path.splitext(os.path.basename(root))[0])
        else:
            raise FileNotFoundError(f"images: no such file or folder: {root}")
    if not files:
        raise ValueError(f"images: no image files ({', '.join(imageio.SUFFIXES)}) in {roots}")
    seen: dict[str, str] = {}
    for f, name in zip(files, names, strict=True):
        if name in seen:
            raise ValueError(
                f"images: {seen[name]} and {f} would both be written as "
                f"{name!r}; rename one or give their folder instead"
            )
        seen[name] = f
    return files, names


def write_json(path: Path, value) -> None:
    """``value`` as indented JSON at ``path``, atomically."""
    data = (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()
    _files.atomic_write(Path(path), lambda f: f.write(data))


def read_manifest(path: Path) -> list[dict]:
    """The complete lines of a manifest; a torn last line (a killed writer) is cut off the file.

    Raises:
        ValueError: a complete line that is not JSON (the file was edited or corrupted).
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # the writer died inside a line: drop it
        with open(path, "r+b") as f:
            f.truncate(end)
        data = data[:end]
    rows = []
    for number, line in enumerate(data.decode().splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(
                f"{path}: line {number} is not JSON; remove the folder or pass "
                "overwrite=True (--force) to start again"
            ) from None
    return rows


def _sort_manifest(path: Path, names: list[str]) -> None:
    """Put the manifest's lines in the order of ``names`` (as an uninterrupted run writes them)
    when a resumed run appended some out of order; lines of other names keep their place at
    the end. Holds the raw lines, not parsed rows."""
    where = {name: i for i, name in enumerate(names)}
    lines = Path(path).read_bytes().splitlines(keepends=True)
    keys = [(where.get(json.loads(line)["name"], len(names)), k) for k, line in enumerate(lines)]
    if keys != sorted(keys):
        data = b"".join(lines[k] for _, k in sorted(keys))
        _files.atomic_write(path, lambda f: f.write(data))


# -- the job ----------------------------------------------------------------------------------


def fingerprint(model) -> str:
    """A short hash of a model's weights: a job resumes only with the same weights."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        arr = np.ascontiguousarray(w)
        digest.update(str((arr.dtype.str, arr.shape)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:16]


def _jsonable(value):
    """Settings as JSON values (tuples become lists, numpy scalars numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(
        f"Expected `settings` of JSON values (numbers, strings, lists, dicts). "
        f"Received: {value!r} of type {type(value).__name__}"
    )


def _resolve_targets(targets, names: list[str], num_classes: int) -> list[int | None]:
    """One target per image (``None`` = its top class)."""
    n = len(names)
    if targets is None:
        return [None] * n
    if isinstance(targets, Mapping):
        unknown = sorted(set(targets) - set(names))
        if unknown:
            raise KeyError(f"`targets` names images that are not in the job: {unknown[:5]}")
        chosen = [targets.get(name) for name in names]
        given = [t for t in chosen if t is not None]
        if given:
            _checks.check_targets(given, len(given), num_classes)
        return [None if t is None else int(t) for t in chosen]
    arr = _checks.check_targets(targets, n, num_classes)
    return [int(t) for t in arr]


def _ours(job: dict | None):
    """``ours(relative path)``: whether a file of a job folder is one that job wrote."""
    method = (job or {}).get("method") if isinstance(job, dict) else None
    endings = () if not isinstance(method, str) else (f".{method}.npy", f".{method}.png")

    def ours(rel: str) -> bool:
        return rel in (JOB, MANIFEST) or (bool(endings) and rel.endswith(endings))

    return ours


def _check_out(out: Path, spec: dict, resume: bool, overwrite: bool) -> tuple[bool, list[str]]:
    """``(resuming, stale)``: whether ``out`` holds this job already, and the files of the
    job there that ``overwrite`` replaces. Refuses a different job or a folder with files of
    its own (never deleted, not even with ``overwrite``)."""
    if not out.exists():
        return False, []
    if not out.is_dir():
        raise FileExistsError(f"out: {out} exists and is not a folder")
    if not any(out.iterdir()):
        return False, []
    previous = None
    if (out / JOB).is_file():
        try:
            previous = json.loads((out / JOB).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = None
    ours = _ours(previous)
    if overwrite:
        foreign = _files.foreign_files(out, ours)
        if foreign:
            raise FileExistsError(
                f"out: {out} holds files kerasviz did not write ({_files.describe_files(foreign)}"
                "); they are not deleted: choose another folder or move them"
            )
        return False, [rel for rel in _files.files_below(out) if ours(rel)]
    if previous == spec:
        if resume:
            return True, []
        raise FileExistsError(
            f"out: {out} holds this job already; resume it, or pass "
            "overwrite=True (--force) to start again"
        )
    if (out / JOB).is_file():
        differs = sorted(k for k in spec if previous is None or previous.get(k) != spec[k])
        raise FileExistsError(
            f"out: {out} holds a different job (differs in: "
            f"{', '.join(differs)}); choose another folder or pass "
            "overwrite=True (--force) to replace it"
        )
    raise FileExistsError(
        f"out: {out} exists and holds no kerasviz job; choose another folder (kerasviz "
        "replaces only files it wrote)"
    )


def _overlay(path, explanation: np.ndarray, geo: imageio.Geometry, channels: int) -> np.ndarray:
    """The map over the original image at its own size, uint8 RGB ``(H0, W0, 3)``: the image as
    the model read it (its channels, before resizing and preprocessing); pixels the map does
    not cover (cut off by a crop) are the image at half brightness."""
    image = imageio.read_original(path, channels) / np.float32(255.0)  # (H0, W0, C) in [0, 1]
    placed = imageio.place_map(explanation, geo)  # (H0, W0), NaN outside the crop
    missing = np.isnan(placed)
    if missing.all():
        placed = np.zeros_like(placed)
    elif missing.any():
        placed = np.where(missing, np.nanmin(placed), placed)  # a value already in the map
    rgb = overlay_rgb(image, placed)
    if missing.any():
        grey = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        dim = np.round(grey * 127.5).astype(np.uint8)
        rgb[missing] = dim[missing]
    return rgb


def manifest_scorer(model, score, batch_size: int, strategy=None):
    """The scorer of a job's manifest: the model's own output (probabilities) under ``score``
    picks the default targets and gives the scores, whatever ``output`` the explainer scores;
    the same strategy splits these passes."""
    from kerasviz.attribution._base import Scorer

    return Scorer(
        model, output="probability", batch_size=batch_size, strategy=strategy, score=score
    )


class BatchWorker:
    """Reads, scores and explains one batch of a dataset job: what both engines run.

    The local engine calls it in the driver; the Ray engine builds one per actor (the model
    and the explainer once) and sends batches to it. Writing stays with the driver, so both
    engines write the same files in the same way.

    Args:
        model: the Keras model.
        files: every file of the job (the batches are index spans into it).
        method, settings: the explainer (`kerasviz.attribution.create`).
        read: ``(size (H, W), channels, preprocessing, resize)`` for `imageio.read_file`.
        wanted: one target per file (``None``: the score's default).
        score: the `kerasviz.scores` score.
        batch_size, strategy: the scorer's (see `explain_folder`).
        scorer: the manifest's scorer when the caller built it already (see `manifest_scorer`).
    """

    def __init__(
        self,
        model,
        files,
        method,
        settings,
        read,
        wanted,
        score,
        batch_size,
        strategy=None,
        scorer=None,
    ):
        from kerasviz import attribution

        self.files, self.read, self.wanted = list(files), read, list(wanted)
        self.scorer = (
            manifest_scorer(model, score, batch_size, strategy) if scorer is None else scorer
        )
        extra = {} if strategy is None else {"strategy": self.scorer.strategy}
        self.explainer = attribution.create(method, model, **settings, **extra, score=score)

    def load(self, span):
        """``(batch of the readable files, their geometries, {index: error}, kinds)``."""
        (h, w), c, prep, resize = self.read
        arrays, geometries, errors, kinds = [], [], {}, []
        for i in range(*span):
            try:
                array, geo, kind = imageio.read_file(self.files[i], (h, w), c, prep, resize)
            except (ValueError, OSError) as err:  # a corrupt, truncated or vanished file
                errors[i] = str(err)
                continue
            kinds.append(kind)
            arrays.append(array)
            geometries.append(geo)
        batch = np.stack(arrays) if arrays else np.zeros((0, h, w, c), np.float32)
        return batch, geometries, errors, kinds

    def compute(self, span, loaded, overlays: bool = False) -> dict:
        """The batch's results: ``good`` (file indices read), ``errors``, ``targets``,
        ``scores`` (of the targets), ``maps`` ``(B, H, W)``, ``geometries``, ``kinds`` and,
        with ``overlays``, the PNG bytes of each overlay."""
        batch, geometries, errors, kinds = loaded
        good = [i for i in range(*span) if i not in errors]
        result = {"span": tuple(span), "good": good, "errors": errors, "kinds": kinds}
        result["geometries"] = geometries
        if not good:
            return result
        scores = self.scorer.predict(batch)  # (B, T)
        top = self.scorer.default_targets(scores)  # Scorer.targets' rule, no 2nd pass
        picked = np.array(
            [top[j] if self.wanted[i] is None else self.wanted[i] for j, i in enumerate(good)],
            np.int32,
        )
        result["targets"] = picked
        result["scores"] = scores[np.arange(len(good)), picked].astype(np.float64)
        result["maps"] = np.asarray(self.explainer.explain(batch, picked), np.float32)
        if overlays:
            c = self.read[1]
            result["pngs"] = [
                png_bytes(_overlay(self.files[i], result["maps"][j], geometries[j], c))
                for j, i in enumerate(good)
            ]
        return result

    def __call__(self, span, overlays: bool = False) -> dict:
        return self.compute(span, self.load(span), overlays)


ENGINES = ("local", "ray")


def _local_batches(worker: BatchWorker, batches):
    """The batches' results in order, in this process; the next batch's files are read while
    the current one is explained."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(worker.load, batches[0]) if batches else None
        for k, span in enumerate(batches):
            loaded = pending.result()
            pending = reader.submit(worker.load, batches[k + 1]) if k + 1 < len(batches) else None
            yield worker.compute(span, loaded)


def explain_folder(
    model,
    images,
    method: str = "occlusion",
    out="kerasviz-explain",
    batch_size: int = 32,
    targets=None,
    settings: Mapping | None = None,
    scale: float = 1 / 255,
    offset: float = 0.0,
    class_names: Sequence[str] | None = None,
    resume: bool = True,
    overwrite: bool = False,
    png: bool = True,
    progress: bool = True,
    strategy=None,
    *,
    preprocessing: Preprocessing | None = None,
    resize: str = "squash",
    size=None,
    score=None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0,
) -> JobResult:
    """Explain every image file of a folder with one method; resumable and in bounded memory.

    Args:
        model: the Keras classifier.
        images: a folder (searched recursively), an image file, or a list of them.
        method: a method name of `kerasviz.attribution.METHODS` (``"occlusion"``, ``"gradcam"``,
            ``"saliency"``, ``"lime"``, ...).
        out: the output folder (see the module docstring for what is written there).
        batch_size: images read, explained and written together; bounds memory. The explainer
            gets the same ``batch_size`` unless ``settings`` sets it.
        targets: ``None`` (each image's top class), one class for all, one per image in the
            order of `inventory`, or a dict from output name to class (others: top class).
        settings: keyword settings of the explainer, over `kerasviz.attribution.create`'s
            defaults for the image size.
        scale, offset: 8-bit pixels ``v`` become ``v * scale + offset`` (the model's range)
            when ``preprocessing`` is not given.
        class_names: names for the manifest's ``class`` field (default: the indices).
        resume: when ``out`` holds this same job (same method, settings, model weights,
            scaling, targets), skip its finished images; ``False`` refuses such a folder.
        overwrite: start again in an existing folder, whatever it holds (files of ours are
            replaced; other files are left alone).
        png: also write the PNG overlays.
        progress: a progress bar with the images per second and the time left.
        strategy: a ``tf.distribute.Strategy`` that splits each batch across its replicas
            (several GPUs, a TPU); see `kerasviz.attribution._base.Explainer`.
        preprocessing: a `kerasviz._preprocess.Preprocessing` (``"tf"``, ``"torch"``,
            ``"caffe"`` or ``"scale"``); wins over ``scale`` and ``offset``.
        resize: ``"squash"``, ``"crop"`` or ``"pad"`` (`kerasviz.imageio.RESIZE_MODES`).
        size: ``(H, W)`` to read the images at; required for a model that accepts any size.
        score: what is explained (`kerasviz.scores`: ``None`` a class; `Output` one output of
            several, `Regression` a value, `Region` a class over one shared mask, a callable).
            The manifest's ``target`` and ``score`` are its target and value; ``class`` names
            the class for class scores and is the target's index otherwise.
        engine: ``"local"`` (this process) or ``"ray"``: the batches go to a pool of Ray
            actors, each of which loads the model and builds the explainer once (see
            `kerasviz._ray`); the files written are the same, byte for byte.
        address: with ``engine="ray"``, the Ray cluster to join (``"auto"``, ``"ray://..."``);
            ``None`` starts a local Ray with this machine's CPUs.
        workers: Ray actors (default: the cluster's CPUs, at most one per batch).
        gpus_per_worker: GPUs each actor holds (0: CPU only).

    Returns:
        A `JobResult`.

    Raises:
        KeyError: an unknown method.
        ValueError: bad settings or targets, an unreadable image file, a model that does not
            take image inputs, an unknown ``resize``, no ``size`` for an any-size model.
        FileExistsError: ``out`` is not empty and holds no job, or a different job, and
            ``overwrite`` is False.

    >>> result = explain_folder(model, "photos/", "gradcam", out="maps", batch_size=64)
    >>> result.written + result.skipped == result.total
    True
    """
    from kerasviz import attribution

    start_time = time.perf_counter()
    attribution.check_method(method)
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    shape = inspect.input_shape(model)
    if len(shape) != 3 or shape[2] is None:
        raise ValueError(
            f"Expected a model with image inputs (H, W, C). Received: input shape {shape}"
        )
    _checks.check_choice(resize, "resize", imageio.RESIZE_MODES)
    h, w = imageio.input_size(shape, size)
    c = int(shape[2])
    prep = Preprocessing("scale", scale, offset) if preprocessing is None else preprocessing
    if not isinstance(prep, Preprocessing):
        raise TypeError(
            "Expected `preprocessing` to be a kerasviz._preprocess.Preprocessing or None. "
            f"Received: {type(prep).__name__}"
        )
    chosen = dict(attribution.default_settings(method, (h, w, c)))
    chosen.update(settings or {})
    chosen.setdefault("batch_size", batch_size)
    settings_json = _jsonable(chosen)
    files, names = inventory(images)
    from kerasviz import scores as kscores

    score = kscores.as_score(score)
    if isinstance(score, kscores.Region) and score.per_image:
        raise ValueError(
            "Expected one shared `Region` mask (H, W) for a dataset job; masks per image pair "
            "with the images of one explain() call."
        )
    engine = _checks.check_choice(engine, "engine", ENGINES)
    if engine == "ray" and strategy is not None:
        raise ValueError("Expected `strategy` None with engine='ray' (give GPUs per worker)")
    # Checks the model against the score before anything else happens (one line if not);
    # the local engine's worker reuses it.
    scorer = manifest_scorer(model, score, batch_size, strategy)
    num_classes = scorer.num_classes
    wanted = _resolve_targets(targets, names, num_classes)
    classes = isinstance(score, kscores.Category) or (
        isinstance(score, kscores.Output) and isinstance(score.inner, kscores.Category)
    )
    if class_names is not None and classes and len(class_names) != num_classes:
        raise ValueError(
            f"Expected {num_classes} `class_names` (one per class). Received {len(class_names)}"
        )
    named = class_names and classes
    labels = [str(c) for c in class_names] if named else [str(i) for i in range(num_classes)]
    spec = {
        "kind": "explain",
        "method": method,
        "settings": settings_json,
        "model": {"name": model.name, "weights": fingerprint(model)},
        "preprocessing": prep.to_dict(),
        "resize": resize,
        "size": [h, w],
        "targets": _jsonable(targets),
        **({} if isinstance(score, kscores.Category) else {"score": score.to_dict()}),
    }

    out = Path(out)
    resuming, stale = _check_out(out, spec, resume, overwrite)
    read = ((h, w), c, prep, resize)
    manifest_path = out / MANIFEST
    suffix = f".{method}"
    rows = read_manifest(manifest_path) if resuming else []
    kept = [
        r
        for r in rows
        if "error" not in r  # an image that could not be read is tried again
        and (out / f"{r['name']}{suffix}.npy").is_file()
        and (not png or (out / f"{r['name']}{suffix}.png").is_file())
    ]
    finished = {r["name"] for r in kept}
    # The manifest to start from (the kept lines: none when starting afresh); None keeps it.
    fresh = None
    if not resuming or len(kept) < len(rows):
        fresh = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)

    def begin() -> None:
        """Make the folder the job's: only once its first result is ready, so that a run
        rejected before it (a bad setting found late, a model that fails) leaves nothing."""
        out.mkdir(parents=True, exist_ok=True)
        for stray in out.rglob(f"*{TMP_SUFFIX}"):  # left by a killed run
            stray.unlink()
        for rel in stale:  # the replaced job's files (overwrite): ours, checked above
            (out / rel).unlink(missing_ok=True)
        if fresh is not None:  # start afresh, or forget lost maps and unread images
            _files.atomic_write(manifest_path, lambda f: f.write(fresh.encode()))
        write_json(out / JOB, spec)

    batches = [
        (s, e)
        for s, e in _compute.padded_chunks(len(files), batch_size)
        if any(names[i] not in finished for i in range(s, e))
    ]
    skipped = sum(name in finished for name in names)
    del rows, kept  # only the names are needed from here on
    bar = Progress(len(files), skipped, f"explain {method}", enabled=progress)

    kinds: list[str] = []  # "grey" or "colour" per file read, for the one channel note
    if engine == "ray":
        from kerasviz import _ray

        results = _ray.run_batches(
            model,
            files,
            method,
            chosen,
            read,
            wanted,
            score,
            batch_size,
            batches,
            png,
            address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
        )
    else:
        results = _local_batches(
            BatchWorker(
                model, files, method, chosen, read, wanted, score, batch_size, strategy, scorer
            ),
            batches,
        )

    written, failed = 0, []
    manifest, held = None, []
    try:
        for result in results:
            s, e = result["span"]
            kinds.extend(result["kinds"])
            errors, geometries = result["errors"], result["geometries"]
            good = {i: j for j, i in enumerate(result["good"])}
            if good:
                picked, maps = result["targets"], result["maps"]
                if manifest is None:  # the first result: now the folder becomes the job's
                    begin()
                    manifest = open(manifest_path, "ab")  # noqa: SIM115 (closed below)
            lines = held  # rows of unreadable images wait for the first result
            for i in range(s, e):
                name = names[i]
                if name in finished:
                    continue
                if i in errors:
                    failed.append((files[i], errors[i]))
                    row = {"file": files[i], "name": name, "method": method}
                    row.update(settings=settings_json, error=errors[i])
                    lines.append(json.dumps(row, sort_keys=True) + "\n")
                    continue
                j = good[i]
                target = int(picked[j])
                base = out / f"{name}{suffix}"
                _files.atomic_write(
                    base.with_name(base.name + ".npy"), lambda f, m=maps[j]: np.save(f, m)
                )
                if png:
                    data = (
                        result["pngs"][j]
                        if "pngs" in result
                        else png_bytes(_overlay(files[i], maps[j], geometries[j], c))
                    )
                    _files.atomic_write(
                        base.with_name(base.name + ".png"), lambda f, d=data: f.write(d)
                    )
                written += 1
                lines.append(
                    json.dumps(
                        {
                            "file": files[i],
                            "name": name,
                            "target": target,
                            "class": labels[target],
                            "score": float(result["scores"][j]),
                            "method": method,
                            "settings": settings_json,
                            "geometry": geometries[j].to_dict(),
                        },
                        sort_keys=True,
                    )
                    + "\n"
                )
            bar.update(skipped + written + len(failed))
            if manifest is None:
                continue
            # One write per batch; a kill inside it leaves a torn line that a restart drops.
            manifest.write("".join(lines).encode())
            manifest.flush()
            os.fsync(manifest.fileno())
            held = []
        if manifest is None and held:
            if not skipped:  # not one image could be read: nothing was done, nothing written
                raise ValueError(
                    f"images: none of the {len(failed)} images could be read; the first: "
                    f"{failed[0][1]}"
                )
            begin()  # a resumed job whose remaining images are all unreadable
            manifest = open(manifest_path, "ab")  # noqa: SIM115 (closed below)
            manifest.write("".join(held).encode())
    finally:
        if manifest is not None:
            manifest.close()
    if resuming:
        _sort_manifest(manifest_path, names)
    converted = imageio.conversion_note(kinds, c)
    if converted:
        bar.note(converted)
    if failed:
        bar.note(
            f"{len(failed)} of {len(files)} images could not be read and were skipped (manifest "
            f"rows with an 'error'); the first: {failed[0][1]}"
        )
    seconds = time.perf_counter() - start_time
    return JobResult(out, len(files), written, skipped, seconds, failed)
