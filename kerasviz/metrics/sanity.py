"""Sanity check of an explanation method: does its map depend on the model's weights?

Cascading model-parameter randomisation (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018): randomise the weights from the top layer down, on a copy, and measure how much
the explanation changes with `spearman` and `ssim`. A map that does not change does not explain
the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kerasviz import _checks, inspect
from kerasviz.attribution._base import Scorer
from kerasviz.metrics._maps import maps_for


@dataclass
class SanityResult:
    """Outcome of `randomization_check`.

    Attributes:
        layers: the layer randomised at each stage, top layer first; stage ``i`` has layers
            ``layers[: i + 1]`` randomised (cascading).
        spearman: ``(L, N)`` Spearman rank correlation between each image's original map and
            its map at each stage.
        ssim: ``(L, N)`` structural similarity of the same pairs (maps scaled to [0, 1]).
        original: ``(N, H, W)`` maps of the trained model.
        randomized: ``(L, N, H, W)`` maps at each stage.
        bound: the pass bound on the final stage's mean ``|spearman|``.
        passed: ``True`` when the maps of the fully randomised model are unlike the original
            ones: mean ``|spearman|`` at the last stage < ``bound``.
    """

    layers: list[str]
    spearman: np.ndarray
    ssim: np.ndarray
    original: np.ndarray
    randomized: np.ndarray
    bound: float
    passed: bool

    @property
    def final_correlation(self) -> float:
        """Mean ``|spearman|`` over the images at the last (fully randomised) stage."""
        return float(np.mean(np.abs(self.spearman[-1])))


def spearman(a, b) -> np.ndarray:
    """Spearman rank correlation between paired maps (average ranks for ties).

    A constant map has no ranking: two constant maps correlate 1 if equal, else 0; a constant
    map against a varying one correlates 0.

    >>> spearman(np.arange(4.).reshape(1, 2, 2), np.arange(4.).reshape(1, 2, 2) ** 2)
    array([1.], dtype=float32)
    """
    from scipy.stats import rankdata

    x, _ = _checks.check_maps(a, "a")
    y, _ = _checks.check_maps(b, "b")
    if x.shape != y.shape:
        raise ValueError(
            f"Expected `a` and `b` of the same shape. Received: {x.shape} and {y.shape}"
        )
    n = x.shape[0]
    rx = rankdata(x.reshape(n, -1), axis=1)
    ry = rankdata(y.reshape(n, -1), axis=1)
    out = np.zeros(n, np.float64)
    for i in range(n):
        cx, cy = rx[i] - rx[i].mean(), ry[i] - ry[i].mean()
        den = np.sqrt((cx**2).sum() * (cy**2).sum())
        if den > 0:
            out[i] = (cx * cy).sum() / den
        else:
            both_flat = np.ptp(x[i]) == 0 and np.ptp(y[i]) == 0
            out[i] = 1.0 if both_flat and np.array_equal(x[i], y[i]) else 0.0
    return out.astype(np.float32)


def _unit(m: np.ndarray) -> np.ndarray:
    span = float(m.max() - m.min())
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def ssim(a, b) -> np.ndarray:
    """Structural similarity (scikit-image) between paired maps, each scaled to [0, 1].

    >>> ssim(maps, maps)
    array([1., 1.], dtype=float32)
    """
    from skimage.metrics import structural_similarity

    x, _ = _checks.check_maps(a, "a")
    y, _ = _checks.check_maps(b, "b")
    if x.shape != y.shape:
        raise ValueError(
            f"Expected `a` and `b` of the same shape. Received: {x.shape} and {y.shape}"
        )
    side = min(x.shape[1:])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"SSIM needs maps of at least 3x3 pixels. Received: {x.shape[1:]}")
    return np.array(
        [
            structural_similarity(_unit(p), _unit(q), data_range=1.0, win_size=win)
            for p, q in zip(x, y, strict=True)
        ],
        np.float32,
    )


def _explain_fn(explain, explainer_kwargs) -> Callable:
    """Turn a callable ``(model, images, targets) -> maps`` or an explainer class into one."""
    if isinstance(explain, type):
        if not hasattr(explain, "explain"):
            raise TypeError(
                f"Expected `explain` to be a callable (model, images, targets) -> "
                f"maps or a class with an `explain` method. Received: the class "
                f"{explain.__name__}"
            )
        kwargs = dict(explainer_kwargs or {})
        return lambda model, images, targets: explain(model, **kwargs).explain(images, targets)
    if explainer_kwargs:
        raise ValueError("`explainer_kwargs` is only used when `explain` is an explainer class.")
    if not callable(explain):
        raise TypeError(
            f"Expected `explain` to be a callable (model, images, targets) -> maps "
            f"or an explainer class. Received: {type(explain)!r}"
        )
    return explain


def randomization_check(
    model,
    explain,
    inputs,
    targets=None,
    layers: Sequence | None = None,
    explainer_kwargs: dict | None = None,
    bound: float = 0.5,
    seed: int = 0,
) -> SanityResult:
    """Cascading model-parameter randomisation (Adebayo et al., NeurIPS 2018).

    A copy of ``model`` (`kerasviz.inspect.standalone_copy`; the user's model is never
    changed) has its layers re-initialised (`kerasviz.inspect.reinitialize`) one at a time from
    the top (the output layer) down, cumulatively. After each layer the explanation is
    computed again for the same targets and compared with the original by Spearman rank
    correlation and SSIM. A method that explains the model must change: it passes when the
    mean ``|spearman|`` over the images, once every listed layer is random, is below
    ``bound``.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        explain: a callable ``(model, images, targets) -> (N, H, W) maps``, or an explainer
            class (such as ``kerasviz.attribution.GradCAM``) built as
            ``explain(model, **explainer_kwargs)`` and called with ``.explain(images,
            targets)``.
        inputs: ``(N, H, W, C)`` images or one image.
        targets: the class to explain; ``None`` takes each image's top class on the trained
            model (through a `kerasviz.attribution.Scorer`), and the same classes are
            explained at every stage.
        layers: the layers to randomise, by name or path, in any order (they are processed
            top-down); ``None`` takes every layer with weights.
        explainer_kwargs: keyword arguments for an explainer class.
        bound: the pass bound on the final mean ``|spearman|`` (Adebayo et al. report rank
            correlations near 0 for methods that depend on the weights).
        seed: seed of the random weights.

    Returns:
        A `SanityResult`.

    Raises:
        ValueError: bad images or targets, a model that cannot be copied, maps not shaped
            like the images.
        KeyError: an unknown layer.

    >>> result = randomization_check(model, GradCAM, images)
    >>> result.spearman.shape, result.passed
    ((5, 4), True)
    """
    scorer = Scorer(model, batch_size=64)  # the trained model's view, for the targets
    fn = _explain_fn(explain, explainer_kwargs)
    bound = _checks.check_fraction(bound, "bound")
    batch, _ = scorer.check_inputs(inputs)  # results stay batched: stages x images
    resolved = scorer.targets(batch, targets)

    order = inspect.weighted_layers(model)
    if layers is None:
        chosen = order
    else:
        wanted = {
            inspect.layer_path(model, inspect.find_layer(model, ref))
            for ref in ([layers] if isinstance(layers, str | int) else layers)
        }
        unweighted = sorted(wanted - set(order))
        if unweighted:
            raise ValueError(
                f"`layers` {unweighted} have no weights to randomise. Layers with weights: {order}"
            )
        chosen = [p for p in order if p in wanted]
    if not chosen:
        raise ValueError(f"Model {model.name!r} has no layer with weights to randomise.")
    top_down = chosen[::-1]

    original = maps_for(fn(model, batch, resolved), batch, False)
    twin = inspect.standalone_copy(model)
    rng = np.random.default_rng(seed)
    rhos, ssims, maps = [], [], []
    for path in top_down:
        inspect.reinitialize(inspect.find_layer(twin, path), rng)
        current = maps_for(fn(twin, batch, resolved), batch, False)
        maps.append(current)
        rhos.append(spearman(original, current))
        ssims.append(ssim(original, current))
    rho = np.stack(rhos)  # (L, N)
    final = float(np.mean(np.abs(rho[-1])))
    return SanityResult(
        layers=top_down,
        spearman=rho,
        ssim=np.stack(ssims),
        original=original,
        randomized=np.stack(maps),
        bound=bound,
        passed=final < bound,
    )
