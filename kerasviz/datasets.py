"""Data with ground truth, generated in code: no downloads.

* `shapes`: coloured circles, squares and triangles on textured backgrounds, with object masks;
  an explanation is right when it points at the object.
* `snow`: the husky-vs-wolf lesson (Ribeiro et al. 2016, "Why should I trust you?"). Two animals
  with similar silhouettes; in the biased training split wolves stand on snow and huskies on
  grass, so a model can score well by looking at the background alone.
* `digits`: scikit-learn's bundled 8x8 handwritten digits, resized: small real data.

Images are float32 in [0, 1], ``(N, H, W, C)``; masks are boolean ``(N, H, W)``. The same seed
gives the same arrays.
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks

SHAPE_CLASSES = ("circle", "square", "triangle")
SNOW_CLASSES = ("husky", "wolf")
SNOW_SPLITS = ("train", "test", "swapped")


def _check_n(n, name: str = "n") -> int:
    return _checks.check_positive_int(n, name)


def _check_size(size) -> int:
    return _checks.check_positive_int(size, "size", minimum=16)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid, bilinearly upsampled."""
    from scipy.ndimage import zoom

    coarse = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1, channels))
    fine = zoom(coarse, (size / (cells + 1), size / (cells + 1), 1), order=1, mode="nearest")
    return fine[:size, :size]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return xs, ys


def _rotate(xs, ys, cx, cy, angle):
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = xs - cx, ys - cy
    return c * dx + s * dy, -s * dx + c * dy


def _triangle(xs, ys, pts) -> np.ndarray:
    """Pixels inside the triangle with corners ``pts`` (3 x (x, y))."""
    (x1, y1), (x2, y2), (x3, y3) = pts

    def side(ax, ay, bx, by):
        return (xs - bx) * (ay - by) - (ax - bx) * (ys - by)

    d1, d2, d3 = side(x1, y1, x2, y2), side(x2, y2, x3, y3), side(x3, y3, x1, y1)
    neg = (d1 < 0) | (d2 < 0) | (d3 < 0)
    pos = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return ~(neg & pos)


def _capsule(xs, ys, p, q, width) -> np.ndarray:
    """Pixels within ``width`` of the segment from ``p`` to ``q``."""
    px, py = p
    qx, qy = q
    vx, vy = qx - px, qy - py
    t = np.clip(((xs - px) * vx + (ys - py) * vy) / (vx * vx + vy * vy + 1e-9), 0.0, 1.0)
    return (xs - px - t * vx) ** 2 + (ys - py - t * vy) ** 2 <= width**2


def _ellipse(xs, ys, cx, cy, a, b) -> np.ndarray:
    return ((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2 <= 1.0


def _textured_background(rng, size: int, colour: np.ndarray, strength: float) -> np.ndarray:
    tex = _smooth_noise(rng, size, cells=int(rng.integers(3, 8)), channels=3)
    grain = rng.normal(0.0, 0.04, (size, size, 3))
    return colour + strength * tex + grain


def shapes(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coloured shapes on textured backgrounds, with the object's mask.

    Each image holds one circle, square or triangle (label 0, 1, 2; see `SHAPE_CLASSES`) at a
    random position, size, rotation and colour, on a random low-frequency texture whose colour
    differs clearly from the object's.

    Args:
        n: number of images.
        size: height and width in pixels (>= 16).
        seed: the same seed gives the same arrays.

    Returns:
        ``(images, labels, masks)``: float32 ``(n, size, size, 3)`` in [0, 1], int64 ``(n,)``,
        bool ``(n, size, size)``.

    >>> images, labels, masks = shapes(8, size=64, seed=0)
    >>> images.shape, labels.shape, masks.shape
    ((8, 64, 64, 3), (8,), (8, 64, 64))
    """
    n, size = _check_n(n), _check_size(size)
    rng = np.random.default_rng(seed)
    xs, ys = _grid(size)
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, size, size), bool)
    labels = rng.integers(0, len(SHAPE_CLASSES), n)
    for i in range(n):
        bg_colour = rng.uniform(0.1, 0.9, 3)
        while True:
            fg_colour = rng.uniform(0.0, 1.0, 3)
            if np.linalg.norm(fg_colour - bg_colour) > 0.55:
                break
        r = rng.uniform(0.14, 0.26) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        angle = rng.uniform(0, 2 * np.pi)
        if labels[i] == 0:
            mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= r**2
        elif labels[i] == 1:
            u, v = _rotate(xs, ys, cx, cy, angle)
            half = r * 0.8
            mask = (np.abs(u) <= half) & (np.abs(v) <= half)
        else:
            turns = angle + np.arange(3) * 2 * np.pi / 3
            corners = list(zip(cx + r * np.cos(turns), cy + r * np.sin(turns), strict=True))
            mask = _triangle(xs, ys, corners)
        img = _textured_background(rng, size, bg_colour, strength=0.18)
        obj = fg_colour + rng.normal(0.0, 0.03, (size, size, 3))
        img[mask] = obj[mask]
        images[i] = np.clip(img, 0.0, 1.0)
        masks[i] = mask
    return images, labels.astype(np.int64), masks


def _head(xs, ys, cx, cy, s, facing: int) -> tuple[np.ndarray, float]:
    """The animal's round head (without snout and ears) and the row of its centre."""
    hy = cy - 0.5 * s
    return (xs - (cx + facing * 0.95 * s)) ** 2 + (ys - hy) ** 2 <= (0.38 * s) ** 2, hy


def _animal(xs, ys, cx, cy, s, facing: int) -> np.ndarray:
    """Silhouette of a dog-like animal: a stocky body, head, snout, ears, four legs and a tail.

    Huskies and wolves share it, so the outline says nothing about the class: the evidence
    lies inside the animal (see `_coat`), where a faithful explanation should put it.
    ``facing`` is +1 (right) or -1 (left); the animal spans ``cx - 1.4 s`` to ``cx + 1.65 s``
    across and ``cy - 1.15 s`` to ``cy + 1.03 s`` down.
    """

    def X(dx):  # noqa: N802 - a coordinate transform, named like the axis
        return cx + facing * dx * s

    def Y(dy):  # noqa: N802
        return cy + dy * s

    m = _ellipse(xs, ys, X(0.0), Y(0.0), 1.0 * s, 0.55 * s)
    m |= _head(xs, ys, cx, cy, s, facing)[0]
    m |= _ellipse(xs, ys, X(1.35), Y(-0.4), 0.3 * s, 0.15 * s)
    for base in (0.72, 0.98):
        m |= _triangle(
            xs, ys, [(X(base), Y(-0.65)), (X(base + 0.24), Y(-0.67)), (X(base + 0.1), Y(-1.15))]
        )
    for lx in (-0.62, -0.35, 0.4, 0.67):
        m |= _capsule(xs, ys, (X(lx), Y(0.3)), (X(lx), Y(0.9)), 0.13 * s)
    m |= _capsule(xs, ys, (X(-0.9), Y(-0.1)), (X(-1.25), Y(0.5)), 0.15 * s)
    return m


def _coat(rng, xs, ys, cx, cy, s, facing: int, wolf: bool) -> np.ndarray:
    """Fur colours for the whole ``(size, size, 3)`` grid; the caller keeps the animal's pixels.

    A husky is black and white: a dark saddle over the back, the top of the head and the ears;
    a white face, belly and legs; smooth fur. A wolf is grizzled: a tawny grey-brown with
    strong pixel-scale speckle (agouti hairs). Both cues sit inside the silhouette.
    """
    size = xs.shape[0]
    if wolf:
        shade = rng.uniform(0.35, 0.55)
        base = np.array([shade + 0.08, shade, shade - 0.1])
        return (
            base + rng.normal(0.0, 0.13, (size, size, 1)) + rng.normal(0.0, 0.03, (size, size, 3))
        )
    dark, light = rng.uniform(0.12, 0.28), rng.uniform(0.8, 0.92)
    head, eyes = _head(xs, ys, cx, cy, s, facing)
    saddle = (ys < cy - 0.05 * s) & ~(head & (ys > eyes))  # the face below the eyes is white
    fur = np.where(saddle[..., None], dark, light) * np.ones(3)
    return fur + rng.normal(0.0, 0.04, (size, size, 3))


def _snow_background(rng, size):
    colour = np.array([0.9, 0.93, 0.97]) + rng.uniform(-0.06, 0.04)
    img = _textured_background(rng, size, colour, strength=0.05)
    # A few soft drifts in shadow blue-grey.
    drift = _smooth_noise(rng, size, cells=3, channels=1)
    img -= 0.08 * np.clip(drift, 0, 1) * np.array([0.6, 0.5, 0.2])
    return img


def _grass_background(rng, size):
    colour = np.array([0.25, 0.5, 0.18]) + rng.uniform(-0.06, 0.06, 3)
    img = _textured_background(rng, size, colour, strength=0.08)
    blades = rng.normal(0.0, 0.06, (1, size, 1)) * np.array([0.5, 1.0, 0.4])
    return img + blades  # vertical streaks


def snow(
    n: int,
    split: str = "train",
    size: int = 64,
    seed: int = 0,
    bias: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The husky-vs-wolf shortcut set: label correlated with the background.

    Labels: 0 husky, 1 wolf (`SNOW_CLASSES`). Both have the same build, with a random size,
    position and facing; what tells them apart is the coat, inside the outline: a husky is
    black and white (dark saddle, white face and belly), a wolf grizzled tawny (see `_coat`).
    The animal covers about a quarter of the image, the background the rest.

    Args:
        n: number of images, half of each class on average.
        split: ``"train"`` or ``"test"``: a wolf stands on snow and a husky on grass with
            probability ``bias`` (otherwise the other background); ``"swapped"``: the opposite,
            wolves on grass and huskies on snow with probability ``bias``.
        size: height and width (>= 16).
        seed: the same seed gives the same arrays. Splits differ for the same seed.
        bias: probability of the shortcut background; ``0.5`` makes the background carry no
            information (a fair training set), ``1.0`` makes it perfectly predictive.

    Returns:
        ``(images, labels, masks)``: float32 ``(n, size, size, 3)`` in [0, 1], int64 ``(n,)``,
        bool ``(n, size, size)`` masks of the animal.

    >>> images, labels, masks = snow(4, split="swapped", seed=1)
    >>> images.shape
    (4, 64, 64, 3)
    """
    n, size = _check_n(n), _check_size(size)
    _checks.check_choice(split, "split", SNOW_SPLITS)
    _checks.check_fraction(bias, "bias", low_open=False)
    rng = np.random.default_rng([seed, SNOW_SPLITS.index(split)])
    xs, ys = _grid(size)
    labels = rng.integers(0, 2, n)
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, size, size), bool)
    for i in range(n):
        wolf = bool(labels[i] == 1)
        shortcut = rng.uniform() < bias
        on_snow = wolf == shortcut if split != "swapped" else wolf != shortcut
        img = _snow_background(rng, size) if on_snow else _grass_background(rng, size)
        s = rng.uniform(0.26, 0.31) * size
        facing = int(rng.choice([-1, 1]))
        left, right = (1.45 * s, 1.7 * s) if facing == 1 else (1.7 * s, 1.45 * s)
        cx = rng.uniform(left, size - right)
        cy = rng.uniform(1.2 * s, size - 1.05 * s)
        mask = _animal(xs, ys, cx, cy, s, facing)
        fur = _coat(rng, xs, ys, cx, cy, s, facing, wolf)
        img[mask] = fur[mask]
        images[i] = np.clip(img, 0.0, 1.0)
        masks[i] = mask
    return images, labels.astype(np.int64), masks


def digits(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 bundled 8x8 handwritten digits, bilinearly resized.

    Args:
        size: height and width of the output (>= 8).

    Returns:
        ``(images, labels)``: float32 ``(1797, size, size, 1)`` in [0, 1] and int64 ``(1797,)``.

    >>> images, labels = digits(32)
    >>> images.shape
    (1797, 32, 32, 1)
    """
    _checks.check_positive_int(size, "size", minimum=8)
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    raw = (data.images / 16.0).astype(np.float32)
    out = np.empty((raw.shape[0], size, size, 1), np.float32)
    for i, img in enumerate(raw):
        pil = Image.fromarray(img, mode="F").resize((size, size), Image.BILINEAR)
        out[i, :, :, 0] = np.asarray(pil)
    return np.clip(out, 0.0, 1.0), data.target.astype(np.int64)
