"""Patch geometry and settings shared by full and incremental occlusion.

Both occlusion explainers hide a ``patch`` at a regular grid of positions and record how the
target's score falls; they differ only in how they score the occluded copies. What they share
lives here, so that neither imports the other:

1. **positions** (`patch_starts`): the top-left corners of the patches, a regular grid with a
   fixed border rule;
2. **tasks** (`tasks`): the ``(image, top, left)`` table the scoring steps read, with
   ``top = NO_PATCH`` for the unoccluded image;
3. **aggregation** (`grid_to_map`): the ``(N, rows, cols)`` grid of score drops is spread back
   over the pixels; each pixel gets the mean drop over the patches that cover it;
4. **settings** (`PatchExplainer`): patch, stride, fill and blur checks, the fill images (built
   with `kerasviz.attribution._references`) and the ``explain_full`` that turns a subclass's
   ``score`` into an `Explanation`.
"""

from __future__ import annotations

import warnings

import numpy as np

from kerasviz import _checks
from kerasviz.attribution import _references
from kerasviz.attribution._base import Explainer
from kerasviz.attribution._result import Explanation

FILLS = ("mean", "blur")
NO_PATCH = -(2**30)  # a `top` that puts the patch outside the image: the unoccluded image

# The registry name of each occlusion class, and how to build the other one.
_REPLACEMENT = {
    "full": "`Occlusion(model, ...)` or `attribution.create('occlusion', model, ...)`",
    "incremental": (
        "`IncrementalOcclusion(model, ...)` or "
        "`attribution.create('occlusion_incremental', model, ...)`"
    ),
}


def patch_starts(length: int, patch: int, stride: int, name: str = "patch") -> np.ndarray:
    """Start offsets of the patches along one axis of ``length`` pixels.

    Border rule: patches start at ``0, stride, 2 * stride, ...`` while they fit inside the image;
    when the last of them stops short of the edge, one more patch is added that ends exactly at
    the edge (it starts at ``length - patch`` and overlaps its neighbour more than ``stride``
    would). So no patch hangs over the edge and, with ``stride <= patch``, every pixel is covered.

    Args:
        length: the image's size along the axis.
        patch: the patch's size along the axis.
        stride: the step between patches along the axis.
        name: the argument named in errors.

    Returns:
        int32 ``(count,)`` start offsets, increasing.

    Raises:
        ValueError: the patch is larger than the image.

    >>> patch_starts(10, 4, 3)
    array([0, 3, 6], dtype=int32)
    >>> patch_starts(11, 4, 3)
    array([0, 3, 6, 7], dtype=int32)
    """
    if patch > length:
        raise ValueError(
            f"`{name}` ({patch}) is larger than the image ({length} pixels along "
            f"that axis). Expected `{name}` <= {length}."
        )
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return np.asarray(starts, dtype=np.int32)


def coverage(length: int, starts: np.ndarray, patch: int) -> np.ndarray:
    """``(length, count)`` 0/1 float32 matrix: pixel ``i`` is covered by the patch at ``starts[j]``.

    >>> coverage(4, np.array([0, 2]), 2)[:, 1]
    array([0., 0., 1., 1.], dtype=float32)
    """
    pixels = np.arange(length)[:, None]
    return ((pixels >= starts[None, :]) & (pixels < starts[None, :] + patch)).astype(np.float32)


def grid_to_map(
    grid: np.ndarray,
    tops: np.ndarray,
    lefts: np.ndarray,
    patch: tuple[int, int],
    size: tuple[int, int],
) -> np.ndarray:
    """Spread a grid of per-patch values over the pixels: each pixel gets their mean.

    Args:
        grid: ``(N, rows, cols)`` one value per patch position.
        tops: ``(rows,)`` start rows of the patches (`patch_starts`).
        lefts: ``(cols,)`` start columns.
        patch: ``(h, w)`` of the patch.
        size: ``(H, W)`` of the image.

    Returns:
        float32 ``(N, H, W)``: each pixel is the mean of the values of the patches covering it
        (0 where no patch covers it, which the border rule avoids when ``stride <= patch``).

    >>> grid_to_map(np.ones((1, 2, 2)), np.array([0, 2]), np.array([0, 2]), (2, 2), (4, 4)).shape
    (1, 4, 4)
    """
    grid = np.asarray(grid, dtype=np.float32)
    rows = coverage(size[0], np.asarray(tops), patch[0])  # (H, rows)
    cols = coverage(size[1], np.asarray(lefts), patch[1])  # (W, cols)
    total = np.einsum("yi,nij,xj->nyx", rows, grid, cols, optimize=True)  # (N, H, W)
    count = rows.sum(axis=1)[:, None] * cols.sum(axis=1)[None, :]  # (H, W)
    return (total / np.maximum(count, 1.0)[None]).astype(np.float32)


def tasks(n: int, tops: np.ndarray, lefts: np.ndarray) -> np.ndarray:
    """int32 ``(N * (rows * cols + 1), 3)`` rows ``(image, top, left)``, image by image.

    Each image's first task has ``top = NO_PATCH`` (the unoccluded image); its positions
    follow in row-major order.

    >>> tasks(2, np.array([0, 4]), np.array([0])).shape  # 2 images x (2 positions + 1)
    (6, 3)
    """
    top, left = np.meshgrid(tops, lefts, indexing="ij")  # (rows, cols) each
    per_image = np.concatenate(
        [[[NO_PATCH, 0]], np.stack([top.ravel(), left.ravel()], axis=1)], axis=0
    )  # (P + 1, 2)
    image = np.repeat(np.arange(n), per_image.shape[0])[:, None]
    return np.concatenate([image, np.tile(per_image, (n, 1))], axis=1).astype(np.int32)


def check_fill(fill):
    """A finite number (as a float) or one of `FILLS`.

    >>> check_fill(0)
    0.0
    """
    if isinstance(fill, str):
        return _checks.check_choice(fill, "fill", FILLS)
    if (
        isinstance(fill, bool)
        or not isinstance(fill, int | float | np.number)
        or not (np.isfinite(fill))
    ):
        raise ValueError(
            f"Expected `fill` to be a finite float or one of {FILLS}. Received: fill={fill!r}"
        )
    return float(fill)


def check_mode(mode, own: str, owner: str) -> None:
    """The deprecated ``mode=`` argument: ``None``; ``own`` warns; the other mode is refused.

    ``mode`` used to pick the class (``Occlusion(..., mode="incremental")`` returned an
    `IncrementalOcclusion`); each class now is one mode, and the registry names both.
    """
    if mode is None:
        return
    if mode == own:
        warnings.warn(
            f"`mode` is deprecated and will be removed: {owner} always computes "
            f"{own!r} occlusion; drop the argument.",
            DeprecationWarning,
            stacklevel=3,
        )
        return
    if mode in _REPLACEMENT:
        raise ValueError(
            f"{owner} does not take mode={mode!r}: {mode} occlusion is {_REPLACEMENT[mode]}."
        )
    raise ValueError(
        f"Expected `mode` to be omitted (it is deprecated). Received: mode={mode!r}. "
        f"Full occlusion is {_REPLACEMENT['full']}; incremental occlusion is "
        f"{_REPLACEMENT['incremental']}."
    )


class PatchExplainer(Explainer):
    """Base class of the occlusion explainers: patch settings, fills and the result.

    Subclasses define ``method`` (their registry name) and ``score(batch, tasks, fills,
    progress)``, the ``(T, K)`` scores of the occluded copies described by ``tasks``.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        patch: patch size, an int or ``(h, w)``.
        stride: step between patches, an int or ``(h, w)``, at most ``patch``; default
            ``patch // 2`` (at least 1).
        fill: what hides the patch: a float constant (in the model's input range, e.g. 0.5 for
            [0, 1] images), ``"mean"`` (each image's mean colour, per channel) or ``"blur"``
            (a Gaussian-blurred copy of the image, sigma ``blur_sigma``).
        output: ``"probability"`` or ``"logit"`` (see `Explainer`).
        batch_size: occluded images per forward pass; bounds memory.
        jit_compile: compile the scoring function with XLA (opt-in; on CPU it is usually slower).
        blur_sigma: Gaussian sigma in pixels for ``fill="blur"``; ``None``: the one rule of
            `kerasviz.attribution._references`, ``max(H, W) / 16`` of the image.
        strategy: a ``tf.distribute.Strategy`` (see `Explainer`).

    Attributes:
        traces: how many times the scoring function has been traced.
    """

    method = ""

    def __init__(
        self,
        model,
        patch=16,
        stride=None,
        fill="mean",
        output: str = "probability",
        batch_size: int = 32,
        jit_compile: bool = False,
        blur_sigma: float | None = None,
        strategy=None,
        score=None,
    ):
        super().__init__(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        self.patch = _checks.pair(patch, "patch")
        if stride is None:
            stride = (max(1, self.patch[0] // 2), max(1, self.patch[1] // 2))
        self.stride = _checks.pair(stride, "stride")
        for axis, (p, s) in enumerate(zip(self.patch, self.stride, strict=True)):
            if s > p:
                raise ValueError(
                    f"Expected `stride` <= `patch` along every axis so that every pixel is "
                    f"covered. Received: stride={self.stride}, patch={self.patch} (axis {axis})."
                )
        self.fill = check_fill(fill)
        self.blur_sigma = _references.check_sigma(blur_sigma, "blur_sigma")
        self.jit_compile = bool(jit_compile)
        self.traces = 0

    def positions(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(tops, lefts)``: start rows and columns of the patch grid for an image of that size.

        >>> Occlusion(model, patch=32, stride=16).positions(224, 224)[0].shape
        (13,)
        """
        return (
            patch_starts(height, self.patch[0], self.stride[0], "patch"),
            patch_starts(width, self.patch[1], self.stride[1], "patch"),
        )

    tasks = staticmethod(tasks)

    def fills(self, batch: np.ndarray) -> np.ndarray:
        """Patch contents: (N, 1, 1, C) for a constant or the mean, (N, H, W, C) for blur."""
        n, _, _, c = batch.shape
        if self.fill == "mean":
            return _references.mean_colour(batch)
        if self.fill == "blur":
            return _references.blur(batch, self.blur_sigma)
        return np.full((n, 1, 1, c), self.fill, dtype=np.float32)

    def score(
        self,
        batch: np.ndarray,
        tasks: np.ndarray,
        fills: np.ndarray | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Scores ``(T, K)`` of the occluded copies described by ``tasks`` ``(T, 3)``."""
        raise NotImplementedError(f"{type(self).__name__} does not define score")

    def _start(self, inputs, targets):
        """Checked ``(batch, targets or None, tops, lefts)`` for one call."""
        batch, _ = self.scorer.check_inputs(inputs)
        chosen = _checks.check_targets(targets, batch.shape[0], self.num_classes)
        tops, lefts = self.positions(*batch.shape[1:3])
        return batch, chosen, tops, lefts

    def _default_targets(self, clean: np.ndarray) -> np.ndarray:
        """Targets for ``targets=None`` from the clean images' scores ``(N, T)``."""
        return self.scorer.default_targets(clean)

    def _drops(self, scores: np.ndarray, chosen) -> tuple[np.ndarray, np.ndarray]:
        """``(N, P)`` score drops and the targets from ``(N, P + 1, K)`` scores, clean first."""
        if chosen is None:  # the score's default (the top class) from the clean rows
            chosen = self._default_targets(scores[:, 0])
        picked = np.take_along_axis(scores, chosen[:, None, None], axis=2)[..., 0]  # (N, P + 1)
        return (picked[:, :1] - picked[:, 1:]).astype(np.float32), chosen

    def _result(self, grid, chosen, tops, lefts, size, **extra) -> Explanation:
        maps = grid_to_map(grid, tops, lefts, self.patch, size)
        return Explanation(
            maps,
            np.asarray(chosen, np.int32),
            self.method,
            grid=grid.astype(np.float32),
            positions=(tops, lefts),
            **extra,
        )

    def explain_full(self, inputs, targets=None, progress: bool = False) -> Explanation:
        """Occlusion maps with their grid and patch positions.

        Args:
            inputs: ``(N, H, W, C)`` images or one image ``(H, W, C)``, in the model's range.
            targets: an int, one int per image, or ``None`` for each image's top class.
            progress: show a progress bar.

        Returns:
            An `Explanation` (batch first, also for one image): ``explanations`` float32
            ``(N, H, W)``; ``targets`` int32 ``(N,)``; ``grid`` float32 ``(N, rows, cols)``,
            entry ``[n, i, j]`` the drop for the patch at ``(tops[i], lefts[j])``;
            ``positions`` ``(tops, lefts)``.

        Raises:
            ValueError: wrong rank or shape, NaN or inf in ``inputs``; ``patch`` larger than
                the image; ``targets`` out of range.

        >>> result = Occlusion(model, patch=8, stride=4).explain_full(images, 0)
        >>> result.explanations.shape, result.grid.shape  # images (2, 64, 64, 3)
        ((2, 64, 64), (2, 15, 15))
        """
        batch, chosen, tops, lefts = self._start(inputs, targets)
        n, height, width, _ = batch.shape
        count = len(tops) * len(lefts)
        scores = self.score(batch, self.tasks(n, tops, lefts), progress=progress)
        scores = scores.reshape(n, count + 1, -1)  # (N * (P + 1), K) -> (N, P + 1, K)
        drops, chosen = self._drops(scores, chosen)
        grid = drops.reshape(n, len(tops), len(lefts))
        return self._result(grid, chosen, tops, lefts, (height, width))

    def explain(self, inputs, targets=None, progress: bool = False, *, return_grid: bool = False):
        """Occlusion maps ``(N, H, W)`` float32 (``(H, W)`` for one image); see `explain_full`.

        ``return_grid=True`` is deprecated: it returns ``(maps, grid)``; use
        ``explain_full(...).grid`` instead.

        >>> Occlusion(model, patch=8, stride=4).explain(images).shape  # images (2, 64, 64, 3)
        (2, 64, 64)
        """
        if not return_grid:
            return super().explain(inputs, targets, progress=progress)
        return self._maps_and_grid(inputs, targets, progress, "explain(..., return_grid=True)")
