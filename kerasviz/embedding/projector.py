"""A log directory TensorBoard's embedding projector opens, written atomically.

The vectors as a TensorFlow checkpoint, ``metadata.tsv``, a sprite of thumbnails and
``projector_config.pbtxt``. TensorFlow, TensorBoard and Pillow are imported when writing.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kerasviz import _checks, _files

SPRITE_LIMIT = 8192  # the projector's largest sprite side, in pixels
CONFIG_NAME = "projector_config.pbtxt"
METADATA_NAME = "metadata.tsv"
SPRITE_NAME = "sprite.png"


def _metadata_rows(labels, n: int) -> list[str]:
    """Lines of ``metadata.tsv``: one column without header, or several with a header."""
    if isinstance(labels, Mapping):
        if not labels:
            raise ValueError("`labels` is an empty mapping; pass None for no metadata.")
        names = [str(k) for k in labels]
        columns = [np.asarray(v).ravel() if np.ndim(v) else None for v in labels.values()]
        for name, col in zip(names, columns, strict=True):
            if col is None or col.shape[0] != n:
                got = "a scalar" if col is None else f"{col.shape[0]} values"
                raise ValueError(
                    f"`labels` column {name!r} has {got}; expected {n} (one per feature vector)."
                )
    else:
        if isinstance(labels, str | bytes):
            raise TypeError(
                "Expected `labels` to be a sequence (one per vector) or a mapping "
                "{column: values}. Received: a string"
            )
        arr = np.asarray(labels)
        if arr.ndim != 1:
            raise ValueError(
                f"Expected `labels` of shape (N,) or a mapping {{column: values}}. "
                f"Received: labels.shape={arr.shape}"
            )
        if arr.shape[0] != n:
            raise ValueError(
                f"`labels` has {arr.shape[0]} values; expected {n} (one per feature vector)."
            )
        names, columns = [], [arr]

    def cell(value, column: str) -> str:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if "\t" in text or "\n" in text or "\r" in text:
            raise ValueError(
                f"`labels` {column} holds a value with a tab or line break: "
                f"{text!r}; metadata.tsv cannot store it."
            )
        return text

    where = [f"column {c!r}" for c in names] or ["column"]
    rows = [
        "\t".join(cell(col[i], w) for col, w in zip(columns, where, strict=True)) for i in range(n)
    ]
    if len(columns) > 1:  # the projector reads a first line with a tab as the header
        rows.insert(0, "\t".join(cell(c, "name") for c in names))
    return rows


def _sprite_images(images, n: int) -> np.ndarray:
    """Validate thumbnail source images; returns ``(N, H, W, C)`` uint8."""
    if isinstance(images, np.ndarray):
        items = images
    elif isinstance(images, Sequence) and not isinstance(images, str | bytes):
        shapes = {np.shape(img) for img in images}
        if len(shapes) > 1:
            first = [np.shape(img) for img in images]
            odd = next(i for i, s in enumerate(first) if s != first[0])
            raise ValueError(
                f"`images` for the sprite must all have one size. Received: "
                f"images[0].shape={first[0]} and images[{odd}].shape={first[odd]}"
            )
        items = np.asarray(images)
    else:
        raise TypeError(
            "Expected `images` as an array (N, H, W[, C]) or a list of arrays. "
            f"Received: {type(images).__name__}"
        )
    arr = np.asarray(items)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(
            "Expected `images` of shape (N, H, W) or (N, H, W, C) with C in 1, 3, "
            f"4. Received: images.shape={arr.shape}"
        )
    if arr.shape[0] != n:
        raise ValueError(
            f"`images` has {arr.shape[0]} images; expected {n} (one per feature vector)."
        )
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"Expected numeric `images`. Received: images.dtype={arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("`images` contains NaN or infinite values.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        scaled = arr
    elif lo >= 0.0 and hi <= 255.0:
        scaled = arr / 255.0
    else:
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return np.round(scaled * 255.0).astype(np.uint8)


def sprite_layout(n: int, height: int, width: int) -> tuple[int, int, int]:
    """``(per_row, thumb_h, thumb_w)`` for a sprite of ``n`` thumbnails within 8192 px.

    Thumbnails fill a square grid of ``ceil(sqrt(n))`` per row; they keep the images' aspect
    and are never larger than the images, and shrink as ``n`` grows so the sprite fits.

    >>> sprite_layout(1797, 32, 32)
    (43, 32, 32)
    >>> sprite_layout(100_000, 32, 32)
    (317, 25, 25)
    """
    per_row = math.ceil(math.sqrt(n))
    cell = SPRITE_LIMIT // per_row
    if cell < 1:
        raise ValueError(f"{n} images do not fit a {SPRITE_LIMIT} px sprite even at 1 px each.")
    longest = max(height, width)
    if longest <= cell:
        return per_row, height, width
    # Integer arithmetic: the longer side becomes exactly `cell`, the other keeps the aspect.
    return per_row, max(1, height * cell // longest), max(1, width * cell // longest)


def _write_sprite(path: Path, images: np.ndarray) -> tuple[int, int]:
    """Write the sprite PNG; returns the thumbnail ``(width, height)``."""
    from PIL import Image

    n, h, w, c = images.shape
    per_row, th, tw = sprite_layout(n, h, w)
    rows = math.ceil(n / per_row)
    sheet = np.zeros((rows * th, per_row * tw, c), np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    for i in range(n):
        tile = images[i]
        if (th, tw) != (h, w):
            pic = Image.fromarray(tile[..., 0] if c == 1 else tile, mode)
            tile = np.asarray(pic.resize((tw, th), Image.Resampling.LANCZOS)).reshape(th, tw, c)
        r, col = divmod(i, per_row)
        sheet[r * th : (r + 1) * th, col * tw : (col + 1) * tw] = tile
    Image.fromarray(sheet[..., 0] if c == 1 else sheet, mode).save(path)
    return tw, th


def is_export_file(rel: str) -> bool:
    """Whether a file of an export folder is one `export_projector` writes (exports made
    before folders carried a marker)."""
    return rel in (CONFIG_NAME, METADATA_NAME, SPRITE_NAME, "checkpoint") or rel.startswith(
        ("embedding.ckpt", "events.out.tfevents")
    )


def _write_checkpoint(folder: Path, vectors: np.ndarray, name: str) -> str:
    """Save the vectors as a TF checkpoint; returns the tensor name the projector reads."""
    import tensorflow as tf

    variable = tf.Variable(vectors, name=name, trainable=False)
    tf.train.Checkpoint(**{name: variable}).save(str(folder / "embedding.ckpt"))
    return f"{name}/.ATTRIBUTES/VARIABLE_VALUE"


def _write_events(folder: Path) -> None:
    """An (empty) event file, so the export is listed as a run under a parent log directory."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(folder))
    writer.flush()
    writer.close()


def _write_config(folder: Path, tensor_name: str, metadata: bool, sprite) -> None:
    from google.protobuf import text_format
    from tensorboard.plugins.projector import ProjectorConfig

    config = ProjectorConfig()
    emb = config.embeddings.add()
    emb.tensor_name = tensor_name
    if metadata:
        emb.metadata_path = METADATA_NAME  # relative: resolved against the config's folder
    if sprite is not None:
        emb.sprite.image_path = SPRITE_NAME
        emb.sprite.single_image_dim.extend(sprite)  # [width, height]
    (folder / CONFIG_NAME).write_text(text_format.MessageToString(config))


def export_projector(
    logdir, features, labels=None, images=None, overwrite: bool = False, name: str = "embedding"
) -> Path:
    """Write a log directory that TensorBoard's embedding projector opens.

    The folder holds the vectors as a TensorFlow checkpoint (tensor
    ``"<name>/.ATTRIBUTES/VARIABLE_VALUE"``), ``metadata.tsv`` (one column: no header, as the
    projector requires; several columns: a header row), ``sprite.png`` (a grid of thumbnails
    within 8192 px, sized from ``N`` by `sprite_layout`), ``projector_config.pbtxt`` and an
    empty event file (so the folder is also a run when TensorBoard is pointed at its parent).
    Everything is written to a temporary sibling folder and moved into place when complete: a
    failure leaves no half export and leaves a previous export untouched.

    Open it with ``tensorboard --logdir LOGDIR`` and choose "Projector".

    Args:
        logdir: the folder to create; owned by the export.
        features: ``(N, D)`` vectors.
        labels: ``None``; one value per vector (a single metadata column); or a mapping
            ``{column name: N values}``.
        images: ``None`` or the ``N`` images (``(N, H, W[, C])`` array or a list of arrays of
            one size; floats in [0, 1] or [0, 255], or uint8) for the sprite.
        overwrite: replace an existing export at ``logdir``. A folder that holds something
            other than a projector export is never replaced.
        name: the checkpoint variable name (a Python identifier).

    Returns:
        The path of the export folder.

    Raises:
        FileExistsError: ``logdir`` exists and ``overwrite`` is False, or it is not an export.
        ValueError: labels or images of the wrong length; images of mixed sizes; values with
            tabs or line breaks in the metadata.

    >>> export_projector("logs/digits", vectors, labels=y, images=x)
    PosixPath('logs/digits')
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"Expected `name` to be a Python identifier. Received: name={name!r}")
    vectors = _checks.check_features(features)
    n = vectors.shape[0]
    rows = None if labels is None else _metadata_rows(labels, n)
    thumbs = None if images is None else _sprite_images(images, n)
    target = Path(logdir).expanduser().absolute()
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True to replace the export.")
        if not target.is_dir() or (any(target.iterdir()) and not (target / CONFIG_NAME).exists()):
            raise FileExistsError(
                f"{target} exists and is not a projector export (no "
                f"{CONFIG_NAME}); it is not replaced. Choose another logdir."
            )
    if target.exists() and target.is_dir():  # an export of ours, with nothing else in it
        _files.check_replaceable(target, overwrite, "overwrite=True", ours=is_export_file)
    tmp = _files.temp_folder(target, suffix=".partial")
    try:
        tensor_name = _write_checkpoint(tmp, vectors, name)
        if rows is not None:
            (tmp / METADATA_NAME).write_text("\n".join(rows) + "\n", encoding="utf-8")
        dims = None if thumbs is None else _write_sprite(tmp / SPRITE_NAME, thumbs)
        _write_config(tmp, tensor_name, rows is not None, dims)
        _write_events(tmp)
        _files.replace_folder(tmp, target, ours=is_export_file)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Path(logdir)
