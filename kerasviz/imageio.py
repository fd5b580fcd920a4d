"""Reading image files into model inputs, and writing arrays as PNG.

Files are decoded with Pillow, converted to the model's channel count (grey or RGB), resized to
its input size, and mapped to its input range with ``x * scale + offset`` (the shipped models
take ``scale = 1/255``, ``offset = 0``: the values are written in each model's card).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def list_images(paths) -> list[Path]:
    """Image files named by ``paths``: files, or folders (their image files and those of their
    sub-folders, sorted by path; a sub-folder per class is how reference sets carry labels).

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: no image file was found.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            )
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"images: no such file or folder: {p}")
    if not found:
        raise ValueError(f"images: no image files ({', '.join(SUFFIXES)}) in {list(paths)}")
    return found


def load_image(
    path, size: tuple[int, int], channels: int, scale: float = 1 / 255, offset: float = 0.0
) -> np.ndarray:
    """One file as a float32 ``(H, W, C)`` model input.

    Args:
        path: the image file.
        size: ``(H, W)`` of the model's input.
        channels: 1 (grey) or 3 (RGB).
        scale, offset: the 8-bit values ``v`` become ``v * scale + offset``.

    Raises:
        ValueError: the file is not an image Pillow can read, or ``channels`` is not 1 or 3.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(
            f"kerasviz reads grey (1) or RGB (3) images; the model takes {channels} channels."
        )
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            h, w = size
            if img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"images: {path} is not a readable image ({err})") from None
    if channels == 1:
        arr = arr[..., None]
    return arr * np.float32(scale) + np.float32(offset)


def load_images(paths, input_shape, scale: float = 1 / 255, offset: float = 0.0):
    """Files (or folders of files) as a float32 batch for a model with ``input_shape``.

    Returns:
        ``(images, files)``: ``(N, H, W, C)`` float32 and the list of file paths.

    >>> images, files = load_images("saved_models/samples/digits", (32, 32, 1))
    >>> images.shape
    (6, 32, 32, 1)
    """
    h, w, c = input_shape
    if h is None or w is None:
        raise ValueError(
            "The model accepts any image size; resize your images to one size "
            "and build the model with a fixed input shape."
        )
    files = list_images(paths)
    images = np.stack([load_image(f, (h, w), c, scale, offset) for f in files])
    return images, files


def as_display(image: np.ndarray) -> np.ndarray:
    """An image scaled to [0, 1] for display: kept as it is when it lies in [0, 1], else
    rescaled from its own minimum and maximum; one channel ``(H, W, 1)`` becomes ``(H, W)``.

    Every picture kerasviz makes (figures, PNG overlays, `save_png`) shows images this way.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` in any range.

    Returns:
        float32 ``(H, W)`` or ``(H, W, C)`` in [0, 1].

    >>> as_display(np.full((4, 4, 1), 127.0)).shape
    (4, 4)
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 1.0:
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image in [0, 1] (or any range, rescaled) as 8-bit, grey images squeezed to 2-D."""
    return np.round(np.clip(as_display(image), 0, 1) * 255).astype(np.uint8)


def save_png(image: np.ndarray, path) -> Path:
    """Write an image array as PNG (see `to_uint8`) and return the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)
    return path
