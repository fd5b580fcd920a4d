"""Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018) on the shared `Scorer`.

Remove (or add) pixels in the order the explanation ranks them and watch the target score. A
faithful map makes the score fall fast under deletion (small area) and rise fast under
insertion (large area).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerasviz import _checks, _compute
from kerasviz.attribution import _references
from kerasviz.attribution._base import ReadsScorer, Scorer
from kerasviz.metrics._maps import maps_for, rank

FILLS = ("blur", "mean")


@dataclass
class Curve:
    """A deletion or insertion curve for each image.

    Attributes:
        kind: ``"deletion"`` or ``"insertion"``.
        fractions: ``(S + 1,)`` share of the pixels removed (deletion) or inserted
            (insertion) at each step, from 0 to 1.
        scores: ``(N, S + 1)`` target score at each step (``(S + 1,)`` for one image).
        auc: ``(N,)`` area under each curve (a 0-d array for one image): the trapezoid rule
            over ``fractions`` in [0, 1], so it lies in the range of the scores. Lower is
            better for deletion, higher for insertion.
        targets: ``(N,)`` the class scored for each image.
    """

    kind: str
    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray
    targets: np.ndarray


class Faithfulness(ReadsScorer):
    """Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018).

    Pixels are switched in ``steps`` equal chunks in the order of the explanation (highest
    value first; ties keep row-major order). A pixel switches all its channels at once.

    * Deletion starts from the image and replaces pixels by ``deletion_fill``; a faithful map
      makes the target score drop fast, so a *lower* area is better.
    * Insertion starts from ``insertion_canvas`` (a blurred copy of the image by default) and
      puts the image's pixels back; a *higher* area is better.

    The area is the trapezoid rule over the fraction of pixels switched, in [0, 1].

    The default deletion fill, 0.0 (black), is the paper's. Small models trained on clean
    images can collapse to chance once a few scattered pixels turn black, whatever the map
    (on ``shapes_cnn`` every map, random included, is at chance after 1/16 of the pixels);
    compare against `random_map`, and use ``deletion_fill="blur"`` when the curves coincide.

    Every step of every image goes through one compiled function, ``batch_size`` images per
    call; the step images are built inside that function from the image, the reference image
    and the explanation's rank map, so no stack of ``N * (steps + 1)`` images is ever held.
    The model is reached through a `kerasviz.attribution.Scorer`, as explainers reach it: the
    scored view, the targets of ``targets=None`` and the replicas of ``strategy`` are theirs.

    Args:
        model: a Keras image classifier.
        steps: number of chunks; the curve has ``steps + 1`` points.
        deletion_fill: what a deleted pixel becomes: a number (default 0.0), a ``(C,)`` colour,
            an ``(H, W, C)`` image, an ``(N, H, W, C)`` batch, ``"mean"`` (each image's channel
            means) or ``"blur"`` (see `kerasviz.attribution._references`).
        insertion_canvas: where insertion starts, same forms as ``deletion_fill``; default
            ``"blur"``.
        blur_sigma: Gaussian sigma in pixels for ``"blur"``; ``None`` uses ``max(H, W) / 16``
            (4 px at 64 px, 14 px at 224 px), the one sigma rule of every reference.
        output: ``"probability"`` scores the model's output; ``"logit"`` scores the logits
            (`kerasviz.inspect.logits_model`; the user's model is untouched).
        batch_size: forward passes per call (in all, across the replicas).
        strategy: a ``tf.distribute.Strategy`` whose replicas share the rows of each compiled
            step (see `kerasviz.attribution.Scorer`); ``None``: the active scope's, else one
            device. The curves equal the single-device ones.
        score: what the curves score (`kerasviz.scores`; ``None``: a class), as the
            explainer whose maps are measured.

    >>> faith = Faithfulness(model, steps=16)
    >>> faith.deletion(images, maps, targets).scores.shape
    (8, 17)
    """

    def __init__(
        self,
        model,
        steps: int = 32,
        deletion_fill=0.0,
        insertion_canvas="blur",
        blur_sigma: float | None = None,
        output: str = "probability",
        batch_size: int = 64,
        strategy=None,
        score=None,
    ):
        self.scorer = Scorer(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        self.steps = _checks.check_positive_int(steps, "steps")
        self.blur_sigma = _references.check_sigma(blur_sigma, "blur_sigma")
        _references.check_reference(deletion_fill, "deletion_fill", FILLS)
        _references.check_reference(insertion_canvas, "insertion_canvas", FILLS)
        self.deletion_fill = deletion_fill
        self.insertion_canvas = insertion_canvas
        self._step = None

    # -- the compiled step ------------------------------------------------------------------

    def _compiled(self):
        if self._step is None:
            tf = _compute.tf()
            scored = self.scorer.scored

            @tf.function(reduce_retracing=False)
            def step(start, end, rank, k, target):
                # start, end (B, H, W, C); rank (B, H, W) int32; k, target (B,) int32
                switched = rank < k[:, None, None]  # (B, H, W): the first k pixels switch
                x = tf.where(switched[..., None], end, start)  # (B, H, W, C)
                scores = scored(x, training=False)  # (B, K)
                return tf.gather(scores, target, axis=1, batch_dims=1)  # (B,)

            # Every argument is one row per (image, step): all are split across replicas.
            self._step = self.scorer.distributed(step)
        return self._step

    def _curve(self, kind, inputs, explanations, targets) -> Curve:
        batch, single = self.scorer.check_inputs(inputs)
        maps = maps_for(explanations, batch, single)
        n, h, w = maps.shape
        pixels = h * w
        if self.steps > pixels:
            raise ValueError(
                f"Expected `steps` <= the number of pixels {pixels}. Received: steps={self.steps}"
            )
        resolved = self.scorer.targets(batch, targets)
        if kind == "deletion":
            start = batch
            end = _references.reference(self.deletion_fill, batch, "deletion_fill", self.blur_sigma)
        else:
            start = _references.reference(
                self.insertion_canvas, batch, "insertion_canvas", self.blur_sigma
            )
            end = batch
        ranks = rank(maps)
        # Pixels switched after each step: round(s * P / steps), s = 0..steps.
        ks = np.rint(np.arange(self.steps + 1) * pixels / self.steps).astype(np.int32)
        fractions = (ks / pixels).astype(np.float32)
        # One row per (image, step) pair; the images themselves are gathered one chunk at a
        # time, so memory stays at batch_size images.
        image_of = np.repeat(np.arange(n, dtype=np.int32), self.steps + 1)  # (N*(S+1),)
        k_of = np.tile(ks, n)  # (N*(S+1),)
        step = self._compiled()

        def run(idx, k):
            return step(start[idx], end[idx], ranks[idx], k, resolved[idx])

        scores = _compute.run_batched(run, (image_of, k_of), self.batch_size)[0]
        scores = scores.reshape(n, self.steps + 1).astype(np.float32)  # (N*(S+1),) -> (N, S+1)
        # Trapezoid rule over the fractions (np.trapezoid needs numpy >= 2).
        auc = ((scores[:, 1:] + scores[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)
        auc = auc.astype(np.float32)  # (N,)
        return Curve(
            kind=kind,
            fractions=fractions,
            scores=_checks.restore_single(scores, single),
            auc=_checks.restore_single(auc, single),
            targets=resolved,
        )

    # -- public -----------------------------------------------------------------------------

    def deletion(self, inputs, explanations, targets=None) -> Curve:
        """The deletion curve: the score as the most important pixels are removed first.

        Args:
            inputs: ``(N, H, W, C)`` images or one ``(H, W, C)`` image.
            explanations: ``(N, H, W)`` maps (one ``(H, W)`` map for one image); higher =
                more important.
            targets: the class to score: an int, one per image, or ``None`` for the top
                class of each image.

        Returns:
            A `Curve`; ``auc`` lower is better.

        Raises:
            ValueError: maps not shaped like the images, bad targets, ``steps`` > pixels.
        """
        return self._curve("deletion", inputs, explanations, targets)

    def insertion(self, inputs, explanations, targets=None) -> Curve:
        """The insertion curve: the score as the most important pixels are put back first.

        Same arguments as `deletion`; ``auc`` higher is better.
        """
        return self._curve("insertion", inputs, explanations, targets)


def deletion(model, inputs, explanations, targets=None, **kwargs) -> Curve:
    """One-off deletion curve; ``kwargs`` go to `Faithfulness`.

    >>> deletion(model, images, maps, steps=8).auc.shape
    (4,)
    """
    return Faithfulness(model, **kwargs).deletion(inputs, explanations, targets)


def insertion(model, inputs, explanations, targets=None, **kwargs) -> Curve:
    """One-off insertion curve; ``kwargs`` go to `Faithfulness`.

    >>> insertion(model, images, maps, steps=8).auc.shape
    (4,)
    """
    return Faithfulness(model, **kwargs).insertion(inputs, explanations, targets)
