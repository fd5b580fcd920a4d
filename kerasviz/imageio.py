"""Reading image files into model inputs, and writing arrays as PNG.

Files are decoded with Pillow and brought to what the model takes, in this order:

1. **Orientation**: the EXIF orientation tag is applied (`PIL.ImageOps.exif_transpose`), so a
   phone photo stored sideways is read upright.
2. **Pixels**: transparent images (RGBA, LA, palette with transparency) are composited on white;
   palette, CMYK and other colour modes become RGB; 16-bit grey images (Pillow modes ``I;16``
   and ``I``) are scaled by ``255 / 65535`` to 0-255 (Pillow's own conversion would clip them).
3. **Channels**: grey files for an RGB model get the grey value in all three channels; colour
   files for a grey model become ITU-R 601 luma. Each call that converts says so in one line on
   stderr through `kerasviz._progress.Progress.note` (``[images] 2 of 5 files were grey ...``),
   silenced, like every progress line, by ``KERASVIZ_QUIET`` (``--quiet``).
4. **Size**: one of `RESIZE_MODES` (bilinear):

   * ``"squash"``: stretched to the input's ``H x W``, whatever the aspect ratio;
   * ``"crop"``: scaled so that the shorter side fits, then the centre ``H x W`` is cut out
     (how ImageNet models are evaluated); the edges of the longer side are not seen;
   * ``"pad"``: scaled so that the longer side fits, centred, the rest filled with mid grey
     (`PAD_VALUE` = 127.5 in 0-255 pixels, before preprocessing: ``0`` for ``"tf"`` inputs, near
     the ImageNet mean for ``"torch"`` and ``"caffe"``, ``0.5`` for ``1/255`` scaling).

   A model whose input accepts any size (``Input((None, None, 3))``) needs ``size=(H, W)``.
5. **Values**: a `kerasviz._preprocess.Preprocessing` maps the 0-255 pixels to the model's
   range (``"scale"``: ``v * scale + offset``, the shipped models' ``1/255, 0``; ``"tf"``,
   ``"torch"``, ``"caffe"``: Keras' applications).

`read_images` also returns each file's `Geometry`: its own size and where it lies in the model
input, so that a map computed on the input can be put back on the original image with
`place_map` (`kerasviz.jobs.explain_folder` writes its overlays that way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerasviz import _checks
from kerasviz._preprocess import RESIZE_MODES, Preprocessing
from kerasviz._progress import Progress

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PAD_VALUE = 127.5  # 0-255 grey of the border "pad" adds, before preprocessing
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


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


@dataclass(frozen=True)
class Geometry:
    """Where an image file lies in the model input it was read into.

    The rectangle ``box`` of the original image (after EXIF orientation) is shown in the
    rectangle ``placed`` of the input, stretched bilinearly: ``"squash"`` shows the whole image
    on the whole input, ``"crop"`` a centred part of the image on the whole input, ``"pad"`` the
    whole image on a centred part of the input (the rest is `PAD_VALUE`).

    Attributes:
        original: ``(H, W)`` of the file, upright.
        size: ``(H, W)`` of the model input.
        resize: the mode, one of `RESIZE_MODES`.
        box: ``(top, left, bottom, right)`` in the original's pixels (may be fractional).
        placed: ``(top, left, bottom, right)`` in the input's pixels.

    >>> geometry("crop", (20, 40), (16, 16)).box
    (0.0, 10.0, 20.0, 30.0)
    """

    original: tuple[int, int]
    size: tuple[int, int]
    resize: str
    box: tuple[float, float, float, float]
    placed: tuple[int, int, int, int]

    def to_dict(self) -> dict:
        """The JSON form (lists of numbers), as the job manifest records it."""
        return {
            "original": list(self.original),
            "size": list(self.size),
            "resize": self.resize,
            "box": [float(v) for v in self.box],
            "placed": [int(v) for v in self.placed],
        }

    @classmethod
    def from_dict(cls, value: dict) -> Geometry:
        """The inverse of `to_dict` (e.g. a manifest row's ``geometry``)."""
        return cls(
            tuple(int(v) for v in value["original"]),
            tuple(int(v) for v in value["size"]),
            str(value["resize"]),
            tuple(float(v) for v in value["box"]),
            tuple(int(v) for v in value["placed"]),
        )


def geometry(resize: str, original: tuple[int, int], size: tuple[int, int]) -> Geometry:
    """The `Geometry` of an image of ``original`` ``(H, W)`` read into ``size`` ``(H, W)``.

    >>> geometry("pad", (20, 40), (16, 16)).placed
    (4, 0, 12, 16)
    """
    _checks.check_choice(resize, "resize", RESIZE_MODES)
    oh, ow = (int(v) for v in original)
    h, w = (int(v) for v in size)
    whole_image = (0.0, 0.0, float(oh), float(ow))
    if resize == "squash":
        return Geometry((oh, ow), (h, w), resize, whole_image, (0, 0, h, w))
    if resize == "crop":
        s = max(h / oh, w / ow)  # the shorter side fits
        top, left = (oh * s - h) / 2 / s, (ow * s - w) / 2 / s
        box = tuple(round(v, 6) for v in (top, left, top + h / s, left + w / s))
        return Geometry((oh, ow), (h, w), resize, box, (0, 0, h, w))
    s = min(h / oh, w / ow)  # the longer side fits
    rh, rw = max(1, min(h, round(oh * s))), max(1, min(w, round(ow * s)))
    top, left = (h - rh) // 2, (w - rw) // 2
    return Geometry((oh, ow), (h, w), resize, whole_image, (top, left, top + rh, left + rw))


def _open(path, channels: int):
    """``(upright 0-255 PIL image in mode L, RGB or F, source kind "grey" or "colour")``."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as raw:
            img = ImageOps.exif_transpose(raw)
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"images: {path} is not a readable image ({err})") from None
    grey = img.mode in _GREY_MODES
    if img.mode == "P":
        img = img.convert("RGBA")  # keeps palette transparency (RGB would warn and drop it)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("L" if grey else "RGB")
    elif img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, np.float32)
        if img.mode != "F":
            values = values * np.float32(255.0 / 65535.0)
        img = Image.fromarray(np.clip(values, 0.0, 255.0).astype(np.float32), "F")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("L" if grey else "RGB")
    if channels == 3 and img.mode == "F":
        img = img.convert("L")  # 8 bits per channel is what an RGB image holds
    if channels == 3 and img.mode == "L":
        img = img.convert("RGB")
    elif channels == 1 and img.mode == "RGB":
        img = img.convert("L")
    return img, "grey" if grey else "colour"


def _fit(img, geo: Geometry) -> np.ndarray:
    """The PIL image resized as ``geo`` says, as a float32 ``(H, W, C)`` array of 0-255."""
    from PIL import Image

    h, w = geo.size
    t, left, b, r = geo.placed
    top, lft, bottom, right = geo.box
    if geo.resize == "pad":
        if img.size != (r - left, b - t):
            img = img.resize((r - left, b - t), Image.BILINEAR)
        part = np.asarray(img, np.float32)
        arr = np.full((h, w) + part.shape[2:], PAD_VALUE, np.float32)
        arr[t:b, left:r] = part
    else:
        if geo.resize == "crop" and geo.box != (0.0, 0.0) + tuple(map(float, geo.original)):
            img = img.resize((w, h), Image.BILINEAR, box=(lft, top, right, bottom))
        elif img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)
        arr = np.asarray(img, np.float32)
    return arr[..., None] if arr.ndim == 2 else arr


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(
            f"kerasviz reads grey (1) or RGB (3) images; the model takes {channels} channels."
        )


def _prep(preprocessing, scale, offset) -> Preprocessing:
    if preprocessing is None:
        return Preprocessing("scale", scale, offset)
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError(
            "Expected `preprocessing` to be a kerasviz._preprocess.Preprocessing or None. "
            f"Received: {type(preprocessing).__name__}"
        )
    return preprocessing


def read_file(path, size, channels: int, preprocessing: Preprocessing, resize: str = "squash"):
    """One file as ``(input, geometry, kind)``: the float32 ``(H, W, C)`` model input, its
    `Geometry` and ``"grey"`` or ``"colour"`` (what the file held, before channel conversion).
    No note is printed (`read_images` counts the conversions); the building block of the
    readers here and of `kerasviz.jobs`.

    Raises:
        ValueError: an unreadable file, ``channels`` not 1 or 3, an unknown ``resize``.
    """
    _check_channels(channels)
    _checks.check_choice(resize, "resize", RESIZE_MODES)
    img, kind = _open(path, channels)
    geo = geometry(resize, (img.size[1], img.size[0]), size)
    return preprocessing.apply(_fit(img, geo)), geo, kind


def conversion_note(kinds, channels: int) -> str | None:
    """The one line saying how many files changed channels (``None`` when none did).

    >>> conversion_note(["grey", "colour"], 3)
    '1 of 2 files were grey and were read as RGB (the grey value in all three channels)'
    """
    kinds = list(kinds)
    if channels == 3:
        n = kinds.count("grey")
        how = "were grey and were read as RGB (the grey value in all three channels)"
    else:
        n = kinds.count("colour")
        how = "were colour and were read as grey (ITU-R 601 luma: 0.299 R + 0.587 G + 0.114 B)"
    if not n:
        return None
    files = "file" if len(kinds) == 1 else "files"
    return f"{n} of {len(kinds)} {files} {how}"


def note(text: str | None) -> None:
    """Print ``[images] text`` on stderr (see `kerasviz._progress.Progress.note`)."""
    if text:
        Progress(0, label="images").note(text)


def load_image(
    path,
    size: tuple[int, int],
    channels: int,
    scale: float = 1 / 255,
    offset: float = 0.0,
    *,
    preprocessing: Preprocessing | None = None,
    resize: str = "squash",
) -> np.ndarray:
    """One file as a float32 ``(H, W, C)`` model input.

    Args:
        path: the image file.
        size: ``(H, W)`` of the model's input.
        channels: 1 (grey) or 3 (RGB).
        scale, offset: the 8-bit values ``v`` become ``v * scale + offset`` (when
            ``preprocessing`` is not given).
        preprocessing: how 0-255 pixels become inputs; wins over ``scale`` and ``offset``.
        resize: one of `RESIZE_MODES` (see the module docstring).

    Raises:
        ValueError: the file is not an image Pillow can read, ``channels`` is not 1 or 3, or
            ``resize`` is unknown.

    >>> load_image("saved_models/samples/digits/digit_0.png", (32, 32), 1).shape
    (32, 32, 1)
    """
    arr, _, kind = read_file(
        path, _size(size), channels, _prep(preprocessing, scale, offset), resize
    )
    note(conversion_note([kind], channels))
    return arr


def _size(size) -> tuple[int, int]:
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size)
        or min(size) < 1
    ):
        raise ValueError(f"Expected `size` to be (H, W), two positive integers. Received: {size!r}")
    return int(size[0]), int(size[1])


def input_size(input_shape, size=None) -> tuple[int, int]:
    """The ``(H, W)`` images are read at: the model's, or ``size`` for a model that accepts any.

    Raises:
        ValueError: the model accepts any size and ``size`` is None, ``size`` is not two
            positive integers, or it differs from the model's fixed size.

    >>> input_size((None, None, 3), size=(64, 48))
    (64, 48)
    """
    h, w = input_shape[0], input_shape[1]
    if h is None or w is None:
        if size is None:
            raise ValueError(
                f"The model accepts images of any size (input shape {tuple(input_shape)}); "
                "pass `size=(H, W)` (--size HxW) to say the size to read them at"
            )
        size = _size(size)
        if (h is not None and size[0] != h) or (w is not None and size[1] != w):
            raise ValueError(f"`size` {size} does not fit the model's input {tuple(input_shape)}")
        return size
    if size is not None and _size(size) != (int(h), int(w)):
        raise ValueError(
            f"`size` {tuple(size)} differs from the model's fixed input size {(h, w)}; "
            "`size` is for models that accept any size"
        )
    return int(h), int(w)


@dataclass
class Images:
    """What `read_images` returns.

    Attributes:
        inputs: float32 ``(N, H, W, C)`` model inputs.
        files: the file paths, in order.
        geometries: one `Geometry` per file.
        preprocessing: the `kerasviz._preprocess.Preprocessing` that made the inputs
            (``preprocessing.display(inputs)`` draws them).
    """

    inputs: np.ndarray
    files: list[Path]
    geometries: list[Geometry]
    preprocessing: Preprocessing


def read_images(
    paths,
    input_shape,
    scale: float = 1 / 255,
    offset: float = 0.0,
    *,
    preprocessing: Preprocessing | None = None,
    resize: str = "squash",
    size=None,
) -> Images:
    """Files (or folders of files) as model inputs with each file's `Geometry`.

    The arguments are those of `load_images`; a file that changes channels is counted in one
    note on stderr (see the module docstring).

    >>> found = read_images("photos/", (None, None, 3), resize="crop", size=(224, 224))
    >>> found.inputs.shape, found.geometries[0].original
    ((5, 224, 224, 3), (3024, 4032))
    """
    h, w = input_size(input_shape, size)
    channels = input_shape[2]
    _check_channels(channels)
    _checks.check_choice(resize, "resize", RESIZE_MODES)
    prep = _prep(preprocessing, scale, offset)
    files = list_images(paths)
    read = [read_file(f, (h, w), channels, prep, resize) for f in files]
    note(conversion_note([kind for _, _, kind in read], channels))
    return Images(np.stack([a for a, _, _ in read]), files, [g for _, g, _ in read], prep)


def load_images(
    paths,
    input_shape,
    scale: float = 1 / 255,
    offset: float = 0.0,
    *,
    preprocessing: Preprocessing | None = None,
    resize: str = "squash",
    size=None,
):
    """Files (or folders of files) as a float32 batch for a model with ``input_shape``.

    Args:
        paths: image files or folders (searched recursively, see `list_images`).
        input_shape: the model's ``(H, W, C)``; ``H`` and ``W`` may be ``None`` (any size).
        scale, offset: 8-bit ``v`` becomes ``v * scale + offset`` (without ``preprocessing``).
        preprocessing: a `kerasviz._preprocess.Preprocessing`; wins over ``scale``/``offset``.
        resize: ``"squash"``, ``"crop"`` or ``"pad"`` (see the module docstring).
        size: ``(H, W)`` to read the images at; required when the model accepts any size.

    Returns:
        ``(images, files)``: ``(N, H, W, C)`` float32 and the list of file paths (for the
        geometries too, see `read_images`).

    Raises:
        ValueError: an unreadable file, an unknown ``resize``, a missing or bad ``size``.

    >>> images, files = load_images("saved_models/samples/digits", (32, 32, 1))
    >>> images.shape
    (6, 32, 32, 1)
    """
    found = read_images(
        paths,
        input_shape,
        scale,
        offset,
        preprocessing=preprocessing,
        resize=resize,
        size=size,
    )
    return found.inputs, found.files


def _weights(n_out: int, start: float, step: float, lo: int, hi: int):
    """Bilinear sampling of ``n_out`` output pixels at input positions ``start + step * k``
    (pixel centres), clamped to the input pixels ``lo .. hi - 1``."""
    pos = start + step * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5
    pos = np.clip(pos, lo, hi - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, hi - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def place_map(explanation, geo: Geometry) -> np.ndarray:
    """A map computed on the model input, put back on the original image.

    The part of the input that shows the image (``geo.placed``) is stretched bilinearly onto
    the part of the original it shows (``geo.box``). Original pixels the input did not show
    (outside a crop) are NaN; the padding of ``"pad"`` is dropped.

    Args:
        explanation: ``(H, W)`` at the input's size (e.g. an explainer's map).
        geo: the image's `Geometry`.

    Returns:
        float32 ``(H0, W0)``, the original's size.

    >>> place_map(np.ones((16, 16)), geometry("crop", (20, 40), (16, 16))).shape
    (20, 40)
    """
    m = np.asarray(explanation, np.float32)
    if m.shape != tuple(geo.size):
        raise ValueError(
            f"Expected `explanation` of the input's shape {tuple(geo.size)}. Received: {m.shape}"
        )
    oh, ow = geo.original
    top, left, bottom, right = geo.box
    pt, pl, pb, pr = geo.placed
    ky, kx = (pb - pt) / (bottom - top), (pr - pl) / (right - left)  # input px per original px
    y0, y1, fy = _weights(oh, pt - top * ky, ky, pt, pb)
    x0, x1, fx = _weights(ow, pl - left * kx, kx, pl, pr)
    rows = m[y0] * (1 - fy)[:, None] + m[y1] * fy[:, None]  # (H0, W)
    out = rows[:, x0] * (1 - fx) + rows[:, x1] * fx  # (H0, W0)
    ys, xs = np.arange(oh) + 0.5, np.arange(ow) + 0.5
    outside = ((ys < top) | (ys > bottom))[:, None] | ((xs < left) | (xs > right))[None, :]
    out[outside] = np.nan
    return out.astype(np.float32)


def read_original(path, channels: int = 3) -> np.ndarray:
    """The file upright as 0-255 float32 ``(H0, W0, C)`` pixels (``C`` = ``channels``),
    read as `read_file` reads it, without resizing: what overlays are drawn on.

    >>> read_original("saved_models/samples/shapes/circle.png").shape
    (64, 64, 3)
    """
    _check_channels(channels)
    img, _ = _open(path, channels)
    arr = np.asarray(img, np.float32)
    return arr[..., None] if arr.ndim == 2 else arr


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
