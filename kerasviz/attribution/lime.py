"""LIME for images: which superpixels, switched on and off, move the model's score.

Ribeiro, Singh and Guestrin 2016, "Why should I trust you?": an image is cut into superpixels;
random subsets of them are hidden (replaced by a fill); the model scores every perturbed image;
a linear model, fitted to those scores with weights that favour samples close to the original,
gives each superpixel its weight.

What differs from the ``lime`` package:

* the perturbed images are built inside the compiled, batched step (segments and on/off rows go
  in, scores come out) instead of one Python copy per sample, so the cost is close to the bare
  forward passes;
* ``seed`` seeds the segmentation *and* the sampling, so a result is reproducible;
* several images are explained in one call, their samples sharing the forward batches.

``Lime.explain_full`` returns an `kerasviz.attribution.Explanation` with the superpixel
``segments``, their ``weights``, the fits' ``intercepts`` and ``fit_r2``, and ``timings``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np

from kerasviz import _checks, _compute, _progress
from kerasviz.attribution import _references
from kerasviz.attribution._base import Explainer
from kerasviz.attribution._result import Explanation

SEGMENTATIONS = ("quickshift", "slic", "felzenszwalb", "grid")
FILLS = ("mean", "blur")

# Settings per segmenter for images in [0, 1]. Quickshift takes the settings the ``lime`` package
# uses by default (kernel_size 4, max_dist 200, ratio 0.2) at 224 pixels, with kernel_size and
# max_dist scaled by the image's larger side / 224 (at 64 pixels lime's own settings leave a few
# segments, at 32 pixels one): 15 to 50 superpixels from 32 to 224 pixels.
_SEGMENT_DEFAULTS = {
    "quickshift": {"ratio": 0.2},
    "slic": {"n_segments": 50, "compactness": 10.0, "start_label": 0},
    "felzenszwalb": {"scale": 100.0, "sigma": 0.5, "min_size": 20},
    "grid": {"cells": 8},
}


def __getattr__(name):
    if name == "LimeResult":
        warnings.warn(
            "kerasviz.attribution.lime.LimeResult is deprecated; Lime.explain_full "
            "returns a kerasviz.attribution.Explanation (its `scores` are now "
            "`fit_r2`)",
            DeprecationWarning,
            stacklevel=2,
        )
        return Explanation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def unit_range(image: np.ndarray) -> np.ndarray:
    """The image as segmenters expect it: values in [0, 1], three channels.

    An image already in [0, 1] is kept; any other range (0-255, -1..1) is min-max scaled, because
    scikit-image's segmenters read values as [0, 1] colours (on 0-255 input quickshift returns
    thousands of one-pixel segments). One channel is repeated to three.
    """
    img = np.asarray(image, dtype=np.float64)
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 1.0:
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return img


def grid_segments(height: int, width: int, cells=8) -> np.ndarray:
    """A regular grid of ``cells`` (an int or ``(rows, cols)``) superpixels, row-major labels.

    >>> grid_segments(4, 4, cells=2)[:, 0]
    array([0, 0, 2, 2], dtype=int32)
    """
    rows, cols = _checks.pair(cells, "cells")
    if rows > height or cols > width:
        raise ValueError(
            f"Expected `cells` of at most ({height}, {width}) for an image of that "
            f"size. Received: cells={cells!r}"
        )
    ys = (np.arange(height) * rows) // height
    xs = (np.arange(width) * cols) // width
    return (ys[:, None] * cols + xs[None, :]).astype(np.int32)


def segment(
    image: np.ndarray, method: str = "quickshift", seed: int | None = 0, **kwargs
) -> np.ndarray:
    """Superpixels of one image ``(H, W, C)`` as int32 labels ``(H, W)`` from 0.

    Args:
        image: one image in any range (segmenters see it through `unit_range`).
        method: ``"quickshift"``, ``"slic"``, ``"felzenszwalb"`` (scikit-image) or ``"grid"``.
        seed: quickshift's random tie-breaking seed.
        **kwargs: settings of the segmenter, overriding kerasviz's defaults.

    >>> segment(images[0], "slic", n_segments=20).shape
    (64, 64)
    """
    img = np.asarray(image)
    if img.ndim != 3:
        raise ValueError(f"Expected `image` of rank 3 (H, W, C). Received: shape={img.shape}")
    if method not in SEGMENTATIONS:
        raise ValueError(
            f"Expected `method` in {SEGMENTATIONS} or a callable. Received: method={method!r}"
        )
    settings = dict(_SEGMENT_DEFAULTS[method])
    if method == "quickshift":
        scale = max(img.shape[:2]) / 224.0
        settings.update(kernel_size=max(1.0, 4.0 * scale), max_dist=200.0 * scale)
    settings.update(kwargs)
    if method == "grid":
        return grid_segments(img.shape[0], img.shape[1], **settings)
    if img.shape[-1] not in (1, 3):
        raise ValueError(
            f"{method!r} segments images with 1 or 3 channels. Received "
            f"{img.shape[-1]} channels; use segmentation='grid' or a callable."
        )
    from skimage import segmentation as sk

    unit = unit_range(img)
    if method == "quickshift":
        labels = sk.quickshift(unit, rng=seed, **settings)
    elif method == "slic":
        labels = sk.slic(unit, channel_axis=-1, **settings)
    else:
        labels = sk.felzenszwalb(unit, channel_axis=-1, **settings)
    return np.asarray(labels, dtype=np.int32)


def check_segments(segments, shape: tuple[int, int], name: str = "segments") -> np.ndarray:
    """Integer labels ``(H, W)`` relabelled to ``0 .. S - 1``; at least two segments."""
    seg = np.asarray(segments)
    if seg.dtype == bool or not np.issubdtype(seg.dtype, np.integer):
        raise TypeError(f"Expected `{name}` of an integer dtype. Received: dtype={seg.dtype}")
    if seg.shape != tuple(shape):
        raise ValueError(
            f"Expected `{name}` of shape {tuple(shape)} (H, W). Received: shape={seg.shape}"
        )
    _, labels = np.unique(seg, return_inverse=True)
    labels = labels.reshape(seg.shape).astype(np.int32)
    count = int(labels.max()) + 1
    if count < 2:
        raise ValueError(
            f"`{name}` has a single segment; LIME needs at least 2 superpixels to "
            "switch on and off. Use a finer segmentation."
        )
    return labels


def cosine_kernel(on_counts: np.ndarray, num_segments: int, kernel_width: float) -> np.ndarray:
    """Sample weights ``sqrt(exp(-d^2 / width^2))`` with ``d`` the cosine distance to all-on.

    The cosine distance of a 0/1 row with ``k`` ones to the all-ones row is
    ``1 - sqrt(k / S)`` (``1`` for the all-off row).
    """
    d = 1.0 - np.sqrt(on_counts / float(num_segments))
    return np.sqrt(np.exp(-(d**2) / kernel_width**2))


class Lime(Explainer):
    """LIME (Ribeiro et al. 2016) for image classifiers, compiled and batched.

    Args:
        model: a Keras image classifier.
        segmentation: ``"quickshift"``, ``"slic"``, ``"felzenszwalb"``, ``"grid"`` (a regular
            grid, for tiny images) or a callable ``image (H, W, C) in [0, 1] -> labels (H, W)``.
            Segmenters see each image mapped to [0, 1] (see `unit_range`). Pre-computed segments
            may be passed to `explain` instead.
        segmentation_args: settings of the segmenter (``{"n_segments": 30}`` for SLIC,
            ``{"cells": 4}`` for the grid), overriding kerasviz's defaults.
        num_samples: perturbed samples per image (>= 2); the first is the image itself.
        fill: what a hidden superpixel shows: ``"mean"`` (its own mean colour, as ``lime`` does
            by default), ``"blur"`` (the image under a Gaussian blur, reflected at the border),
            or a reference in the model's input range: a number, a ``(C,)`` colour, an
            ``(H, W, C)`` image or an ``(N, H, W, C)`` batch like the inputs (see
            `kerasviz.attribution._references`).
        blur_sigma: the blur's standard deviation in pixels; ``None`` for the one rule of
            `kerasviz.attribution._references`, ``max(H, W) / 16``.
        kernel_width: width of the distance kernel over samples (``lime``'s default, 0.25).
        alpha: ridge penalty of the linear fit (``lime``'s default, 1.0).
        batch_size: perturbed images per forward pass.
        seed: seeds the segmentation and the sampling; the same seed gives the same result.
            Every image of a call uses the same random stream, so an image gets the same
            explanation alone or within a batch. ``None`` draws a fresh seed each call.
        output: ``"probability"`` or ``"logit"`` (see `Explainer`).
        progress: deprecated: pass ``progress=`` to `explain` / `explain_full`. When given it
            turns the progress bar on (``True``) for every call.
        strategy: as `kerasviz.attribution.Scorer`.

    >>> Lime(model, segmentation="slic", num_samples=500).explain(images).shape
    (4, 64, 64)
    """

    method = "lime"

    def __init__(
        self,
        model,
        segmentation: str | Callable = "quickshift",
        segmentation_args: dict | None = None,
        num_samples: int = 1000,
        fill="mean",
        blur_sigma: float | None = None,
        kernel_width: float = 0.25,
        alpha: float = 1.0,
        batch_size: int = 64,
        seed: int | None = 0,
        output: str = "probability",
        progress: bool | None = None,
        strategy=None,
        score=None,
    ):
        super().__init__(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        if not callable(segmentation) and segmentation not in SEGMENTATIONS:
            raise ValueError(
                f"Expected `segmentation` in {SEGMENTATIONS} or a callable. "
                f"Received: segmentation={segmentation!r}"
            )
        if segmentation_args is not None and not isinstance(segmentation_args, dict):
            raise TypeError(
                "Expected `segmentation_args` to be a dict or None. "
                f"Received: {type(segmentation_args)!r}"
            )
        self.segmentation = segmentation
        self.segmentation_args = dict(segmentation_args or {})
        self.num_samples = _checks.check_positive_int(num_samples, "num_samples", minimum=2)
        fill = _references.check_reference(fill, "fill", names=FILLS)
        if isinstance(fill, np.ndarray) and fill.shape == (1,):
            fill = fill.reshape(())  # one value in a list: the same for every channel
        self.fill = fill
        self.blur_sigma = _references.check_sigma(blur_sigma)
        self.kernel_width = _checks.check_positive_float(kernel_width, "kernel_width")
        self.alpha = _checks.check_positive_float(alpha, "alpha")
        if seed is not None:
            seed = _checks.check_positive_int(seed, "seed", minimum=0)
        self.seed = seed
        self._progress = False
        if progress is not None:
            warnings.warn(
                "Lime(progress=...) is deprecated; pass progress= to explain() or explain_full()",
                DeprecationWarning,
                stacklevel=2,
            )
            self._progress = bool(progress)
        self._steps: dict[tuple, Callable] = {}

    # -- pieces -----------------------------------------------------------------------------

    def segment(self, batch: np.ndarray, seed: int) -> np.ndarray:
        """Superpixels ``(N, H, W)`` int32 of a batch with this explainer's segmentation."""
        out = np.empty(batch.shape[:3], np.int32)
        for i, image in enumerate(batch):
            if callable(self.segmentation):
                labels = self.segmentation(unit_range(image), **self.segmentation_args)
            else:
                labels = segment(image, self.segmentation, seed=seed, **self.segmentation_args)
            out[i] = check_segments(labels, batch.shape[1:3], name="segmentation output")
        return out

    def fills(self, batch: np.ndarray, segments: np.ndarray) -> np.ndarray:
        """What hidden superpixels show, ``(N, H, W, C)`` float32.

        >>> Lime(model, fill="blur").fills(images, segments).shape
        (4, 64, 64, 3)
        """
        batch = np.asarray(batch, np.float32)
        if not (isinstance(self.fill, str) and self.fill == "mean"):  # blur or a reference
            return _references.reference(self.fill, batch, "fill", sigma=self.blur_sigma)
        out = np.empty_like(batch)
        for i, (image, seg) in enumerate(zip(batch, segments, strict=True)):
            count = int(seg.max()) + 1
            flat = seg.ravel()
            sums = np.stack(
                [np.bincount(flat, image[..., c].ravel(), count) for c in range(image.shape[-1])],
                axis=-1,
            )  # (S, C)
            means = sums / np.bincount(flat, minlength=count)[:, None]
            out[i] = means[seg]
        return out

    def _step(self, shape: tuple[int, int, int]) -> Callable:
        """The compiled step for images of ``shape``: built and traced once."""
        if shape in self._steps:
            return self._steps[shape]
        tf = _compute.tf()
        h, w, c = shape
        model = self.scored

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, h, w, c), tf.float32),  # images
                tf.TensorSpec((None, h, w, c), tf.float32),  # images - fills
                tf.TensorSpec((None, h, w), tf.int32),  # segments
                tf.TensorSpec((None,), tf.int32),  # image of each sample (B,)
                tf.TensorSpec((None, None), tf.float32),  # on/off rows (B, S)
            ]
        )
        def step(fills, deltas, segments, ids, rows):
            seg = tf.gather(segments, ids)  # (B, H, W)
            on = tf.gather(rows, seg, batch_dims=1)[..., None]  # (B, S) -> (B, H, W, 1)
            x = tf.gather(fills, ids) + on * tf.gather(deltas, ids)  # hidden = fill
            return model(x, training=False)  # (B, K)

        step = self.distributed(step, split=(3, 4))  # samples split, images whole
        self._steps[shape] = step
        return step

    # -- public -----------------------------------------------------------------------------

    def explain(self, inputs, targets=None, progress: bool = False, *, segments=None) -> np.ndarray:
        """LIME maps ``(N, H, W)`` float32: each pixel takes its superpixel's weight.

        Args:
            inputs: images ``(N, H, W, C)`` or one image ``(H, W, C)``.
            targets: class to explain: ``None`` (top class), one int, or one per image.
            progress: show a progress bar over the perturbed samples.
            segments: pre-computed superpixels ``(N, H, W)`` (or ``(H, W)`` for one image);
                when given, the explainer's segmentation is not run.

        >>> Lime(model).explain(images, targets=1).shape
        (4, 64, 64)
        """
        return super().explain(inputs, targets, progress, segments=segments)

    def explain_full(
        self, inputs, targets=None, progress: bool = False, *, segments=None
    ) -> Explanation:
        """Like `explain`, with the segments, weights, intercepts, fit R^2 and timings.

        Returns:
            An `kerasviz.attribution.Explanation` (batch first, also for a single image) with
            ``method="lime"``, ``segments`` int32 ``(N, H, W)``, ``weights`` (one float32
            ``(S_i,)`` array per image), ``intercepts`` and ``fit_r2`` ``(N,)`` and ``timings``
            (seconds in ``"segmentation"``, ``"sampling"``, ``"model"``, building and scoring
            the perturbed images, and ``"fit"``).

        >>> result = Lime(model).explain_full(images)
        >>> result.weights[0].shape, result.fit_r2.shape
        ((37,), (4,))
        """
        if not isinstance(progress, bool | np.bool_ | int):
            raise TypeError(
                "Expected `progress` to be a bool. Received: progress of type "
                f"{type(progress).__name__}; pass pre-computed superpixels as "
                "`segments=`."
            )
        progress = bool(progress) or self._progress
        batch, targets, single = self.prepare(inputs, targets)
        n, h, w, c = batch.shape
        seed = (
            self.seed if self.seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        )
        timings = {}

        t0 = time.perf_counter()
        if segments is None:
            segs = self.segment(batch, seed)
        else:
            given = np.asarray(segments)
            if single and given.ndim == 2:
                given = given[None]
            if given.ndim != 3 or given.shape[0] != n:
                raise ValueError(
                    f"Expected `segments` of shape ({n}, {h}, {w}). "
                    f"Received: segments.shape={given.shape}"
                )
            segs = np.stack([check_segments(s, (h, w)) for s in given])
        counts = segs.reshape(n, -1).max(axis=1) + 1  # (N,) superpixels per image
        timings["segmentation"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        rows = self._sample(counts, seed)  # (N, num_samples, S_max) 0/1
        timings["sampling"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        fills = self.fills(batch, segs)
        tf = _compute.tf()
        args = (tf.constant(fills), tf.constant(batch - fills), tf.constant(segs))
        step = self._step((h, w, c))
        ids = np.repeat(np.arange(n, dtype=np.int32), self.num_samples)  # (N * num_samples,)
        flat_rows = rows.reshape(n * self.num_samples, -1).astype(np.float32)
        # The step's batch axis is dynamic, so the last chunk runs unpadded without a retrace.
        total = ids.shape[0]
        bar = _progress.Progress(total, label="LIME samples", enabled=progress)
        parts = []
        for start, stop in _compute.padded_chunks(total, self.batch_size):
            parts.append(np.asarray(step(*args, ids[start:stop], flat_rows[start:stop])))
            bar.update(stop)
        # (N * samples, K) -> (N, samples, K)
        scores = np.concatenate(parts, axis=0).reshape(n, self.num_samples, -1)
        timings["model"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        weights, intercepts, fit_r2 = [], np.empty(n, np.float32), np.empty(n, np.float32)
        maps = np.empty((n, h, w), np.float32)
        for i in range(n):
            s = int(counts[i])
            z = rows[i, :, :s].astype(np.float64)
            y = scores[i, :, targets[i]].astype(np.float64)
            coef, intercepts[i], fit_r2[i] = self._fit(z, y, s)
            weights.append(coef.astype(np.float32))
            maps[i] = coef[segs[i]]
        timings["fit"] = time.perf_counter() - t0

        return Explanation(
            maps,
            targets,
            method=self.method,
            segments=segs,
            weights=weights,
            intercepts=intercepts,
            fit_r2=fit_r2,
            timings=timings,
        )

    def _sample(self, counts: np.ndarray, seed: int) -> np.ndarray:
        """0/1 rows ``(N, num_samples, S_max)``; row 0 keeps every superpixel on.

        Every image draws from a fresh generator with the same seed, so its rows do not depend
        on the other images of the call. Columns past an image's own count stay 1 (unused).
        """
        n, s_max = counts.shape[0], int(counts.max())
        rows = np.ones((n, self.num_samples, s_max), np.uint8)
        for i, s in enumerate(counts):
            rng = np.random.default_rng(seed)
            rows[i, 1:, :s] = rng.integers(0, 2, (self.num_samples - 1, int(s)), dtype=np.uint8)
        return rows

    def _fit(self, z: np.ndarray, y: np.ndarray, s: int) -> tuple[np.ndarray, float, float]:
        """Weighted ridge of scores ``y`` on rows ``z``: ``(coef (S,), intercept, R^2)``."""
        from sklearn.linear_model import Ridge

        sample_weight = cosine_kernel(z.sum(axis=1), s, self.kernel_width)
        reg = Ridge(alpha=self.alpha, fit_intercept=True)
        reg.fit(z, y, sample_weight=sample_weight)
        return reg.coef_, float(reg.intercept_), float(reg.score(z, y, sample_weight=sample_weight))
