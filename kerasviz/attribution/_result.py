"""The one result every explainer's ``explain_full`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Completeness:
    """How well attributions add up to the score change (Integrated Gradients).

    Attributes:
        attribution_sum: ``(N,)`` sum of each image's attributions.
        score_difference: ``(N,)`` ``f(x) - f(baseline)`` for the target.
        gap: ``(N,)`` ``|attribution_sum - score_difference| / max(|score_difference|, 1e-12)``.
    """

    attribution_sum: np.ndarray
    score_difference: np.ndarray
    gap: np.ndarray


@dataclass
class Explanation:
    """What one ``explain_full`` call computed, batch first (also for a single image).

    Every explainer fills ``explanations``, ``targets`` and ``method``; the other fields hold
    what that method has and are ``None`` where it has nothing of the kind.

    Attributes:
        explanations: float32 ``(N, H, W)`` maps, higher = more important for the target.
        targets: int32 ``(N,)`` the classes explained (resolved top classes for ``None``), or the
            channels for a unit projection (`GuidedBackprop` with ``layer=``) or a unit's
            occlusion (`Occlusion` with ``layer=``).
        method: the registry name of the method (``"occlusion"``, ``"gradcam"``...).
        grid: the raw grid before it was spread over the pixels: occlusion's ``(N, rows,
            cols)`` score drops (entry ``[n, i, j]`` for the patch at ``(tops[i], lefts[j])``),
            a CAM's ``(N, h, w)`` map on its layer.
        positions: occlusion's ``(tops, lefts)`` patch start rows and columns.
        exact: adaptive incremental occlusion's boolean ``(N, rows, cols)`` mask of the grid
            positions scored exactly (the others are interpolated); ``None`` where every
            position was scored.
        layer: the path of the layer a CAM weighed, a unit projection's layer, or the layer of
            a unit's occlusion (`Occlusion` with ``layer=``).
        attributions: float32 ``(N, H, W, C)`` per-channel values before the channel reduction
            (gradients, Integrated Gradients), where the method has them.
        completeness: Integrated Gradients' `Completeness`.
        segments: LIME's int32 ``(N, H, W)`` superpixel labels ``0 .. S_i - 1``.
        weights: LIME's weight of each superpixel, one float32 ``(S_i,)`` array per image.
        intercepts: LIME's ``(N,)`` intercepts of the linear fits.
        fit_r2: LIME's ``(N,)`` weighted R^2 of each fit on its own samples (how linear the
            model looks around the image; low values mean the weights explain little).
        timings: seconds spent per stage (LIME: ``"segmentation"``, ``"sampling"``,
            ``"model"``, ``"fit"``).
        labels: occlusion's int32 ``(N, rows, cols)`` most probable class of the model with
            the patch at each grid position (Zeiler and Fergus, Fig. 7e), from the same
            forward passes as the grid.
        position_scores: occlusion's float32 ``(N, rows, cols, K)`` scores of every class with
            the patch at each grid position (``position_scores[..., c]`` is Fig. 7d for class
            ``c``; ``labels`` is their argmax).
        reference: occlusion's float32 ``(N,)`` unoccluded score of each target (a class's
            score, or a unit's summed activation with ``layer``): ``reference - grid`` is the
            score itself at each position.
    """

    explanations: np.ndarray
    targets: np.ndarray
    method: str = ""
    grid: np.ndarray | None = None
    positions: tuple[np.ndarray, np.ndarray] | None = None
    layer: str | None = None
    attributions: np.ndarray | None = None
    completeness: Completeness | None = None
    segments: np.ndarray | None = None
    weights: list[np.ndarray] | None = None
    intercepts: np.ndarray | None = None
    fit_r2: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    exact: np.ndarray | None = None
    labels: np.ndarray | None = None
    position_scores: np.ndarray | None = None
    reference: np.ndarray | None = None

    def _need_segments(self, what: str) -> None:
        if self.segments is None or self.weights is None:
            raise ValueError(
                f"`{what}` needs superpixel segments and weights; this explanation "
                f"({self.method or 'unknown method'}) has none."
            )

    def mass_maps(self) -> np.ndarray:
        """``(N, H, W)`` maps whose sum over a superpixel is its weight (weight / area per pixel).

        A superpixel's weight is the effect of hiding all of it, so `explanations` (the weight
        on every pixel) counts a large superpixel once per pixel; these maps count it once.
        Use them to measure where attribution *mass* lies (`kerasviz.shortcut`).

        Raises:
            ValueError: the explanation has no segments (only LIME's have).
        """
        self._need_segments("mass_maps")
        out = np.empty_like(self.explanations)
        for i, (w, seg) in enumerate(zip(self.weights, self.segments, strict=True)):
            area = np.bincount(seg.ravel(), minlength=w.shape[0]).astype(np.float32)
            out[i] = (w / area)[seg]
        return out

    def top(self, i: int, k: int = 5, positive: bool = True) -> np.ndarray:
        """Labels of the ``k`` superpixels of image ``i`` with the largest (positive) weights.

        Raises:
            ValueError: the explanation has no segments (only LIME's have).
        """
        self._need_segments("top")
        w = self.weights[i]
        order = np.argsort(-w if positive else -np.abs(w), kind="stable")
        if positive:
            order = order[w[order] > 0]
        return order[:k]
