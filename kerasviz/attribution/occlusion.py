"""Occlusion sensitivity: slide a patch over the image and record how the target's score falls.

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks" (ECCV 2014, Fig. 7).

The work is split in three steps; positions and aggregation are shared with incremental
inference (`kerasviz.attribution.incremental`) through `kerasviz.attribution._patches`:

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

from kerasviz.attribution._patches import (
    FILLS,
    NO_PATCH,
    PatchExplainer,
    check_mode,
    coverage,
    grid_to_map,
    patch_starts,
)

# The patch geometry lives in `_patches`; these names stay importable from here.
__all__ = ["FILLS", "NO_PATCH", "Occlusion", "coverage", "grid_to_map", "patch_starts"]


class Occlusion(PatchExplainer):
    """Occlusion sensitivity (Zeiler and Fergus, ECCV 2014): the score drop when a patch is hidden.

    For every image and every patch position the patch is replaced by ``fill`` and the model is
    run; the drop ``score(image) - score(occluded)`` of the target class is recorded in a grid
    ``(N, rows, cols)``, and the map ``(N, H, W)`` gives each pixel the mean drop over the
    patches that cover it. Positive = hiding the region lowers the target's score.

    Patch positions follow the border rule of `patch_starts`: a regular grid with step
    ``stride`` whose last row and column of patches end exactly at the image's edge, so every
    pixel is covered. The number of forward rows is ``N * (rows * cols + 1)`` (one unoccluded
    row per image gives the reference score and, for ``targets=None``, the top class).

    The occluded copies are never stored: a compiled function receives the images once per call
    and, per chunk of ``batch_size`` tasks, builds the copies from the tasks' ``(image, top,
    left)`` indices (a mask from index comparisons, then ``where(mask, fill, image)``) and runs
    the model. Tasks of all images are packed into the same chunks. The function is traced once
    per image shape (the chunk axis is dynamic); ``traces`` counts its traces.

    `IncrementalOcclusion` gives the same maps recomputing only the window each patch changes
    (``attribution.create("occlusion_incremental", model)``).

    Args:
        model, patch, stride, fill, output, batch_size, jit_compile, blur_sigma: as
            `kerasviz.attribution._patches.PatchExplainer`.
        strategy: a ``tf.distribute.Strategy`` whose replicas share each chunk of tasks
            (see `Explainer`).
        mode: deprecated. ``"full"`` is accepted with a `DeprecationWarning`;
            ``"incremental"`` raises a ValueError naming `IncrementalOcclusion`.

    Attributes:
        traces: how many times the scoring function has been traced.

    >>> maps = Occlusion(model, patch=8, stride=4).explain(images)  # images (2, 64, 64, 3)
    >>> maps.shape
    (2, 64, 64)
    """

    method = "occlusion"

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
        mode: str | None = None,
        strategy=None,
    ):
        check_mode(mode, "full", "Occlusion")
        super().__init__(
            model,
            patch=patch,
            stride=stride,
            fill=fill,
            output=output,
            batch_size=batch_size,
            jit_compile=jit_compile,
            blur_sigma=blur_sigma,
            strategy=strategy,
        )
        self._steps: dict[tuple, object] = {}

    # -- step 2: compiled scoring --------------------------------------------------------------

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

    def score(
        self,
        batch: np.ndarray,
        tasks: np.ndarray,
        fills: np.ndarray | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Scores ``(T, K)`` of the occluded copies described by ``tasks`` ``(T, 3)``.

        Args:
            batch: float32 ``(N, H, W, C)`` images.
            tasks: int32 ``(T, 3)`` rows ``(image, top, left)`` (see `tasks`).
            fills: the fill images (default `fills` of ``batch``).
            progress: show a progress bar over the chunks.
        """
        import tensorflow as tf

        from kerasviz import _compute, _progress

        step = self._step(tuple(batch.shape[1:]))
        images = tf.constant(batch)
        fill = tf.constant(self.fills(batch) if fills is None else fills)
        tasks = np.ascontiguousarray(tasks, dtype=np.int32)
        bar = _progress.Progress(len(tasks), label="occlusion", enabled=progress)
        out = []
        for start, stop in _compute.padded_chunks(len(tasks), self.batch_size):
            out.append(step(images, fill, tf.constant(tasks[start:stop])).numpy())
            bar.update(stop)
        return np.concatenate(out, axis=0)
