"""Occlusion sensitivity: slide a patch over the image and record how the target's score falls.

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks" (ECCV 2014, Fig. 7).

The work is split in three steps so that other modes (incremental inference) can reuse them:

1. **positions** (`patch_starts`, `Occlusion.positions`): the top-left corners of the patches,
   a regular grid with a fixed border rule;
2. **scoring** (`Occlusion.score`): a ``tf.function`` that takes the original images, their fill
   images and a chunk of ``(image, top, left)`` tasks, builds the occluded copies from index
   arithmetic inside the graph and returns the model's scores. The chunk axis is dynamic in the
   function's signature, so it is traced once per image shape and never for a new batch size,
   number of images or last partial chunk;
3. **aggregation** (`grid_to_map`): the ``(N, rows, cols)`` grid of score drops is spread back
   over the pixels; each pixel gets the mean drop over the patches that cover it.
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks, inspect
from kerasviz.attribution._base import Explainer

FILLS = ("mean", "blur")
MODES = ("full", "incremental")
NO_PATCH = -(2**30)  # a `top` that puts the patch outside the image: the unoccluded image


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
        raise ValueError(f"`{name}` ({patch}) is larger than the image ({length} pixels along "
                         f"that axis). Expected `{name}` <= {length}.")
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


def grid_to_map(grid: np.ndarray, tops: np.ndarray, lefts: np.ndarray, patch: tuple[int, int],
                size: tuple[int, int]) -> np.ndarray:
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


class Occlusion(Explainer):
    """Occlusion sensitivity (Zeiler and Fergus, ECCV 2014): the score drop when a patch is hidden.

    For every image and every patch position the patch is replaced by ``fill`` and the model is
    run; the drop ``score(image) - score(occluded)`` of the target class is recorded in a grid
    ``(N, rows, cols)``, and the map ``(N, H, W)`` gives each pixel the mean drop over the
    patches that cover it. Positive = hiding the region lowers the target's score.

    Patch positions follow the border rule of `patch_starts`: a regular grid with step
    ``stride`` whose last row and column of patches end exactly at the image's edge, so every
    pixel is covered. The number of forward passes is ``N * (rows * cols + 1)`` (one unoccluded
    pass per image gives the reference score and, for ``targets=None``, the top class).

    The occluded copies are never stored: a compiled function receives the images once per call
    and, per chunk of ``batch_size`` tasks, builds the copies from the tasks' ``(image, top,
    left)`` indices (a mask from index comparisons, then ``where(mask, fill, image)``) and runs
    the model. Tasks of all images are packed into the same chunks. The function is traced once
    per image shape (the chunk axis is dynamic); ``traces`` counts its traces.

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
        blur_sigma: Gaussian sigma in pixels for ``fill="blur"``; default ``max(patch) / 2``.
        strategy: a ``tf.distribute.Strategy`` whose replicas share each chunk of tasks
            (see `Explainer`).
        mode: ``"full"`` re-runs the whole model for every position; ``"incremental"`` returns
            an `IncrementalOcclusion` (same maps to float rounding, recomputing only the window
            each patch changes; extra settings such as ``full_threshold`` go to it).

    Attributes:
        traces: how many times the scoring function has been traced.
        last_grid: the ``(N, rows, cols)`` grid of the last `explain` call.
        last_positions: ``(tops, lefts)`` of the last `explain` call.
        last_targets: int32 ``(N,)`` classes explained by the last call (resolved top classes
            for ``targets=None``).

    >>> maps = Occlusion(model, patch=8, stride=4).explain(images)  # images (2, 64, 64, 3)
    >>> maps.shape
    (2, 64, 64)
    """

    def __new__(cls, *args, mode: str = "full", **kwargs):
        if mode not in MODES:
            raise ValueError(f"Expected `mode` in {MODES}. Received: mode={mode!r}")
        if mode == "incremental" and cls is Occlusion:
            from kerasviz.attribution.incremental import IncrementalOcclusion

            cls = IncrementalOcclusion
        return super().__new__(cls)

    def __init__(self, model, patch=16, stride=None, fill="mean", output: str = "probability",
                 batch_size: int = 32, jit_compile: bool = False,
                 blur_sigma: float | None = None, mode: str = "full", strategy=None):
        super().__init__(model, output=output, batch_size=batch_size, strategy=strategy)
        self.mode = mode
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
        self.fill = self._check_fill(fill)
        if blur_sigma is not None:
            if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, int | float) or not (
                np.isfinite(blur_sigma) and blur_sigma > 0
            ):
                raise ValueError(f"Expected `blur_sigma` > 0. Received: blur_sigma={blur_sigma!r}")
        self.blur_sigma = float(blur_sigma) if blur_sigma is not None else max(self.patch) / 2.0
        self.jit_compile = bool(jit_compile)
        self.traces = 0
        self.last_grid: np.ndarray | None = None
        self.last_positions: tuple[np.ndarray, np.ndarray] | None = None
        self.last_targets: np.ndarray | None = None
        self._steps: dict[tuple, object] = {}

    @staticmethod
    def _check_fill(fill):
        if isinstance(fill, str):
            if fill not in FILLS:
                raise ValueError(f"Expected `fill` to be a float or one of {FILLS}. "
                                 f"Received: fill={fill!r}")
            return fill
        if isinstance(fill, bool) or not isinstance(fill, int | float | np.number) or not (
            np.isfinite(fill)
        ):
            raise ValueError(f"Expected `fill` to be a finite float or one of {FILLS}. "
                             f"Received: fill={fill!r}")
        return float(fill)

    # -- step 1: positions ---------------------------------------------------------------------

    def positions(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(tops, lefts)``: start rows and columns of the patch grid for an image of that size.

        >>> Occlusion(model, patch=32, stride=16).positions(224, 224)[0].shape
        (13,)
        """
        return (patch_starts(height, self.patch[0], self.stride[0], "patch"),
                patch_starts(width, self.patch[1], self.stride[1], "patch"))

    @staticmethod
    def tasks(n: int, tops: np.ndarray, lefts: np.ndarray) -> np.ndarray:
        """int32 ``(N * (rows * cols + 1), 3)`` rows ``(image, top, left)``, image by image.

        Each image's first task has ``top = NO_PATCH`` (the unoccluded image); its positions
        follow in row-major order.
        """
        top, left = np.meshgrid(tops, lefts, indexing="ij")  # (rows, cols) each
        per_image = np.concatenate(
            [[[NO_PATCH, 0]], np.stack([top.ravel(), left.ravel()], axis=1)], axis=0
        )  # (P + 1, 2)
        image = np.repeat(np.arange(n), per_image.shape[0])[:, None]
        return np.concatenate([image, np.tile(per_image, (n, 1))], axis=1).astype(np.int32)

    # -- step 2: compiled scoring --------------------------------------------------------------

    def fills(self, batch: np.ndarray) -> np.ndarray:
        """Patch contents: (N, 1, 1, C) for a constant or the mean, (N, H, W, C) for blur."""
        n, _, _, c = batch.shape
        if self.fill == "mean":
            return batch.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
        if self.fill == "blur":
            from scipy.ndimage import gaussian_filter

            s = self.blur_sigma
            return gaussian_filter(batch, sigma=(0, s, s, 0), mode="reflect").astype(np.float32)
        return np.full((n, 1, 1, c), self.fill, dtype=np.float32)

    def _step(self, shape: tuple[int, int, int]):
        """The compiled scoring function for images of ``shape`` (built and traced once)."""
        key = (shape, self.fill == "blur")
        if key in self._steps:
            return self._steps[key]
        import tensorflow as tf

        height, width, channels = shape
        ph, pw = self.patch
        fill_hw = (height, width) if self.fill == "blur" else (1, 1)
        model = self.scored

        @tf.function(
            jit_compile=self.jit_compile,
            input_signature=[
                tf.TensorSpec((None, height, width, channels), tf.float32),
                tf.TensorSpec((None, *fill_hw, channels), tf.float32),
                tf.TensorSpec((None, 3), tf.int32),
            ],
        )
        def step(images, fills, tasks):
            self.traces += 1  # Python side effect: runs only while tracing
            index, tops, lefts = tasks[:, 0], tasks[:, 1:2], tasks[:, 2:3]  # (B,), (B, 1) x2
            rows = tf.range(height)[None, :]  # (1, H)
            cols = tf.range(width)[None, :]  # (1, W)
            in_rows = (rows >= tops) & (rows < tops + ph)  # (B, H)
            in_cols = (cols >= lefts) & (cols < lefts + pw)  # (B, W)
            mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]  # (B, H, W, 1)
            occluded = tf.where(mask, tf.gather(fills, index), tf.gather(images, index))
            return model(occluded, training=False)  # (B, K)

        step = self.distributed(step, split=(2,))  # tasks split, images whole
        self._steps[key] = step
        return step

    def score(self, batch: np.ndarray, tasks: np.ndarray, fills: np.ndarray | None = None,
              progress: bool = False) -> np.ndarray:
        """Scores ``(T, K)`` of the occluded copies described by ``tasks`` ``(T, 3)``.

        Args:
            batch: float32 ``(N, H, W, C)`` images.
            tasks: int32 ``(T, 3)`` rows ``(image, top, left)`` (see `tasks`).
            fills: the fill images (default `fills` of ``batch``).
            progress: show a progress bar over the chunks.
        """
        import tensorflow as tf

        from kerasviz import _compute

        step = self._step(tuple(batch.shape[1:]))
        images = tf.constant(batch)
        fill = tf.constant(self.fills(batch) if fills is None else fills)
        tasks = np.ascontiguousarray(tasks, dtype=np.int32)
        bar = _compute.progress_bar(len(tasks), progress, "occlusion")
        out = []
        for start, stop in _compute.padded_chunks(len(tasks), self.batch_size):
            out.append(step(images, fill, tf.constant(tasks[start:stop])).numpy())
            if bar is not None:
                bar.update(stop)
        return np.concatenate(out, axis=0)

    # -- step 3: aggregation -------------------------------------------------------------------

    def explain(self, inputs, targets=None, return_grid: bool = False, progress: bool = False):
        """Occlusion maps for ``inputs``.

        Args:
            inputs: ``(N, H, W, C)`` images or one image ``(H, W, C)``, in the model's range.
            targets: an int, one int per image, or ``None`` for each image's top class.
            return_grid: also return the raw grid of score drops.
            progress: show a progress bar.

        Returns:
            float32 ``(N, H, W)`` maps (``(H, W)`` for one image); with ``return_grid`` a pair
            ``(maps, grid)`` where ``grid`` is ``(N, rows, cols)`` (``(rows, cols)`` for one
            image), entry ``[n, i, j]`` the drop for the patch at ``(tops[i], lefts[j])`` of
            `positions`. The grid is also kept in ``last_grid``.

        Raises:
            ValueError: wrong rank or shape, NaN or inf in ``inputs``; ``patch`` larger than
                the image; ``targets`` out of range.

        >>> maps, grid = Occlusion(model, patch=8, stride=4).explain(images, 0, return_grid=True)
        >>> maps.shape, grid.shape  # images (2, 64, 64, 3)
        ((2, 64, 64), (2, 15, 15))
        """
        batch, single = inspect.check_inputs(self.model, inputs)
        n, height, width, _ = batch.shape
        chosen = _checks.check_targets(targets, n, self.num_classes)
        tops, lefts = self.positions(height, width)
        count = len(tops) * len(lefts)
        scores = self.score(batch, self.tasks(n, tops, lefts), progress=progress)
        scores = scores.reshape(n, count + 1, -1)  # (N * (P + 1), K) -> (N, P + 1, K)
        if chosen is None:
            chosen = np.argmax(scores[:, 0], axis=-1).astype(np.int32)
        picked = np.take_along_axis(scores, chosen[:, None, None], axis=2)[..., 0]  # (N, P + 1)
        grid = (picked[:, :1] - picked[:, 1:]).reshape(n, len(tops), len(lefts))
        grid = grid.astype(np.float32)
        maps = grid_to_map(grid, tops, lefts, self.patch, (height, width))
        self.last_grid, self.last_positions = grid, (tops, lefts)
        self.last_targets = chosen
        maps = _checks.restore_single(maps, single)
        if return_grid:
            return maps, _checks.restore_single(grid, single)
        return maps
