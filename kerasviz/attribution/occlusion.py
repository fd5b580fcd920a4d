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

from kerasviz import _checks, inspect
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

    **A unit instead of a class** (Zeiler and Fergus, Fig. 7b): with ``layer``, the score is a
    channel's summed activation over the layer's map (``targets`` are then channels: an int, one
    per image, or ``None`` for ``unit``, and for ``unit=None`` each image's strongest channel, the
    one with the largest summed activation in the unoccluded image). The same compiled pass
    returns the class scores, so `explain_full` also gives the most probable class at each
    position (``labels``, Fig. 7e) and every class's score there (``position_scores``, Fig. 7d),
    in both modes, without another forward pass.

    Args:
        model, patch, stride, fill, output, batch_size, jit_compile, blur_sigma: as
            `kerasviz.attribution._patches.PatchExplainer`.
        strategy: a ``tf.distribute.Strategy`` whose replicas share each chunk of tasks
            (see `Explainer`).
        mode: deprecated. ``"full"`` is accepted with a `DeprecationWarning`;
            ``"incremental"`` raises a ValueError naming `IncrementalOcclusion`.
        layer: ``None`` to score classes; a layer reference (see `kerasviz.inspect.find_layer`)
            with a spatial output ``(N, h, w, C)`` to score one of its channels.
        unit: with ``layer``: the channel scored when ``targets`` is ``None`` (``None``: each
            image's strongest channel).

    Attributes:
        traces: how many times the scoring function has been traced.

    >>> maps = Occlusion(model, patch=8, stride=4).explain(images)  # images (2, 64, 64, 3)
    >>> maps.shape
    (2, 64, 64)
    >>> Occlusion(model, patch=8, stride=4, layer="conv3").explain_full(images).labels.shape
    (2, 15, 15)
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
        layer=None,
        unit: int | None = None,
        score=None,
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
            score=score,
        )
        self._steps: dict[tuple, object] = {}
        self.layer = None  # the path of the scored layer
        self.unit = None
        self.num_units = 0  # channels of `layer`
        self._network = self.scored  # images -> class scores, or [layer map, class scores]
        if layer is None:
            if unit is not None:
                raise ValueError(
                    f"`unit` needs `layer`: the channel of which layer? Received: unit={unit!r}, "
                    "layer=None"
                )
            return
        target = inspect.find_layer(model, layer)
        self.layer = inspect.layer_path(model, target)
        self._network = inspect.submodel(self.scored, [target])
        shape = tuple(self._network.outputs[0].shape)
        if len(shape) != 4:
            raise ValueError(
                f"Expected `layer` with a spatial (N, h, w, C) output. Received: "
                f"layer={self.layer!r} with output shape {shape}"
            )
        self.num_units = int(shape[-1])
        if unit is not None:
            self.unit = int(_checks.check_targets(unit, 1, self.num_units, "unit")[0])

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
        model = self._network

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
            if self.layer is None:
                return model(occluded, training=False)  # (B, K)
            maps, scores = model(occluded, training=False)  # (B, h, w, C), (B, K)
            return tf.concat([tf.reduce_sum(maps, axis=(1, 2)), scores], axis=-1)  # (B, C + K)

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

        With ``layer``: ``(T, C + K)``, the summed activation of each of the layer's ``C``
        channels, then the ``K`` class scores.

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

    # -- a unit instead of a class, and the label map ------------------------------------------

    def _default_targets(self, clean: np.ndarray) -> np.ndarray:
        if self.layer is not None:  # each image's most active channel
            return np.argmax(clean, axis=-1).astype(np.int32)
        return super()._default_targets(clean)

    def _start(self, inputs, targets):
        """Checked ``(batch, targets or None, tops, lefts)``; channels with ``layer``."""
        if self.layer is None:
            return super()._start(inputs, targets)
        batch, _ = self.scorer.check_inputs(inputs)
        if targets is None and self.unit is not None:
            targets = self.unit
        chosen = _checks.check_targets(targets, batch.shape[0], self.num_units)
        tops, lefts = self.positions(*batch.shape[1:3])
        return batch, chosen, tops, lefts

    def explain_full(self, inputs, targets=None, progress: bool = False):
        """Occlusion maps with their grid, patch positions and label map.

        Args:
            inputs: ``(N, H, W, C)`` images or one image ``(H, W, C)``, in the model's range.
            targets: classes (an int, one per image, ``None`` for each image's top class);
                with ``layer``, channels of that layer (``None``: ``unit``, else each image's
                strongest channel).
            progress: show a progress bar.

        Returns:
            An `Explanation` (batch first): ``explanations`` float32 ``(N, H, W)``;
            ``targets`` int32 ``(N,)`` (classes, or channels with ``layer``); ``grid`` float32
            ``(N, rows, cols)`` score drops; ``positions`` ``(tops, lefts)``; ``labels`` int32
            ``(N, rows, cols)`` the most probable class per position; ``position_scores``
            float32 ``(N, rows, cols, K)``; ``reference`` float32 ``(N,)`` unoccluded scores of
            the targets; ``layer`` the scored layer's path or ``None``.

        Raises:
            ValueError: wrong rank or shape, NaN or inf in ``inputs``; ``patch`` larger than
                the image; ``targets`` out of range.

        >>> result = Occlusion(model, patch=8, stride=4, layer="conv3").explain_full(images)
        >>> result.grid.shape, result.labels.shape  # images (2, 64, 64, 3)
        ((2, 15, 15), (2, 15, 15))
        """
        batch, chosen, tops, lefts = self._start(inputs, targets)
        n, height, width, _ = batch.shape
        rows, cols = len(tops), len(lefts)
        scores = self.score(batch, self.tasks(n, tops, lefts), progress=progress)
        scores = scores.reshape(n, rows * cols + 1, -1)  # (N * (P + 1), S) -> (N, P + 1, S)
        units = self.num_units if self.layer is not None else 0
        targeted = scores[..., :units] if units else scores  # unit sums, or the class scores
        classes = scores[..., units:]  # (N, P + 1, K)
        drops, chosen = self._drops(targeted, chosen)
        reference = targeted[np.arange(n), 0, chosen]
        positioned = classes[:, 1:].reshape(n, rows, cols, -1).astype(np.float32)
        return self._result(
            drops.reshape(n, rows, cols),
            chosen,
            tops,
            lefts,
            (height, width),
            labels=np.argmax(positioned, axis=-1).astype(np.int32),
            position_scores=positioned,
            reference=reference.astype(np.float32),
            layer=self.layer,
        )
