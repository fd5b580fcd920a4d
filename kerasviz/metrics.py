"""How much to trust an explanation: faithfulness, localisation and sanity checks.

Three families of figures, all numpy in, numpy out:

* **Faithfulness** (`Faithfulness`, `deletion`, `insertion`; Petsiuk et al., "RISE", BMVC
  2018): remove (or add) pixels in the order the explanation ranks them and watch the target
  score. A faithful map makes the score fall fast under deletion (small area) and rise fast
  under insertion (large area).
* **Localisation against ground truth** (`pointing_game`, `energy_in_mask`, `top_k_iou`): does
  the map point at the object a mask marks?
* **Sanity check** (`randomization_check`; Adebayo et al., "Sanity Checks for Saliency Maps",
  NeurIPS 2018): randomise the model's weights from the top layer down, on a copy, and measure
  how much the explanation changes. A map that does not change does not explain the model.

`random_map` and `edge_map` are baselines that ignore the model; any method worth using must
beat them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kerasviz import _checks, _compute, inspect

OUTPUTS = ("probability", "logit")
FILLS = ("blur", "mean")


# --------------------------------------------------------------------------------------------
# Input checks shared by every metric
# --------------------------------------------------------------------------------------------


def _as_maps(explanations, name: str = "explanations") -> tuple[np.ndarray, bool]:
    """``(N, H, W)`` float32 maps (a trailing axis of size 1 is dropped) and whether single."""
    arr = _checks.real_array(explanations, name)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    arr, single = _checks.as_batch(arr, "N, H, W", name)
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr, single


def _maps_for(explanations, batch: np.ndarray, single: bool) -> np.ndarray:
    """Maps checked against the images they explain: one ``(H, W)`` map per image."""
    maps, _ = _as_maps(explanations)
    want = batch.shape[:3]
    if maps.shape != want:
        shown = f"({want[1]}, {want[2]})" if single else str(tuple(want))
        raise ValueError(f"Expected `explanations` of shape {shown} (one (H, W) map per image "
                         f"of `inputs`). Received: explanations.shape="
                         f"{np.shape(explanations)}")
    return maps


def _masks_for(masks, maps: np.ndarray) -> np.ndarray:
    """Boolean ``(N, H, W)`` masks matching ``maps``, none of them empty."""
    try:
        arr = np.asarray(masks)
    except Exception as err:
        raise ValueError(f"`masks` could not be read as an array: {err}") from None
    if arr.ndim == maps.ndim - 1:
        arr = arr[None]
    if arr.shape != maps.shape:
        raise ValueError(f"Expected `masks` of the explanations' shape {maps.shape} (or "
                         f"{maps.shape[1:]} for one map). Received: masks.shape={np.shape(masks)}")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.number) and np.all(np.isin(arr, (0, 1)))):
            raise ValueError("Expected `masks` of booleans or of 0/1 values. Received values "
                             f"{np.unique(arr)[:5].tolist()}...")
        arr = arr.astype(bool)
    empty = np.flatnonzero(~arr.reshape(arr.shape[0], -1).any(axis=1))
    if empty.size:
        raise ValueError(f"`masks` must mark at least one pixel per image; the masks of images "
                         f"{empty.tolist()} are empty.")
    return arr


def _check_model(model) -> None:
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected `model` to be a keras.Model. Received: {type(model)!r}")


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"Expected `output` in {OUTPUTS}. Received: output={output!r}")
    return output


def _rank(maps: np.ndarray) -> np.ndarray:
    """Importance rank of each pixel, 0 = most important; ties keep row-major order.

    ``(N, H, W)`` float -> ``(N, H, W)`` int32.
    """
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")  # (N, P): pixel indices, best first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(flat.shape[1])[None].repeat(n, 0), axis=1)
    return rank.reshape(maps.shape).astype(np.int32)


# --------------------------------------------------------------------------------------------
# Deletion and insertion
# --------------------------------------------------------------------------------------------


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


def _blur(batch: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    # Smooth rows and columns only, never across images or channels.
    return ndimage.gaussian_filter(batch, sigma=(0, sigma, sigma, 0), mode="reflect").astype(
        np.float32)


def _reference(value, batch: np.ndarray, name: str, sigma: float) -> np.ndarray:
    """The image a pixel takes when it is deleted (or before it is inserted), ``(N, H, W, C)``."""
    if isinstance(value, str):
        if value == "blur":
            return _blur(batch, sigma)
        if value == "mean":
            return np.broadcast_to(batch.mean(axis=(1, 2), keepdims=True), batch.shape).astype(
                np.float32)
        raise ValueError(f"Expected `{name}` to be a number, an image, or one of {FILLS}. "
                         f"Received: {name}={value!r}")
    if isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be a number, an image or a string. "
                        f"Received: {name}={value!r}")
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 0 or arr.shape in (batch.shape[1:], batch.shape, batch.shape[-1:]):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` contains NaN or infinite values.")
        return np.ascontiguousarray(np.broadcast_to(arr, batch.shape), dtype=np.float32)
    raise ValueError(f"Expected `{name}` to be a number, a (C,) colour, an (H, W, C) image or "
                     f"an (N, H, W, C) batch like `inputs` {batch.shape}. Received: "
                     f"{name}.shape={arr.shape}")


class Faithfulness:
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

    Args:
        model: a Keras image classifier.
        steps: number of chunks; the curve has ``steps + 1`` points.
        deletion_fill: what a deleted pixel becomes: a number (default 0.0), a ``(C,)`` colour,
            an ``(H, W, C)`` image, an ``(N, H, W, C)`` batch, ``"mean"`` (each image's channel
            means) or ``"blur"``.
        insertion_canvas: where insertion starts, same forms as ``deletion_fill``; default
            ``"blur"``.
        blur_sigma: Gaussian sigma in pixels for ``"blur"``; ``None`` uses ``max(H, W) / 16``
            (4 px at 64 px, about 14 px at 224 px).
        output: ``"probability"`` scores the model's output; ``"logit"`` scores the logits
            (`kerasviz.inspect.logits_model`; the user's model is untouched).
        batch_size: forward passes per call.

    >>> faith = Faithfulness(model, steps=16)
    >>> faith.deletion(images, maps, targets).scores.shape
    (8, 17)
    """

    def __init__(self, model, steps: int = 32, deletion_fill=0.0, insertion_canvas="blur",
                 blur_sigma: float | None = None, output: str = "probability",
                 batch_size: int = 64):
        _check_model(model)
        self.model = model
        self.steps = _checks.check_positive_int(steps, "steps")
        self.output = _check_output(output)
        self.batch_size = _checks.check_positive_int(batch_size, "batch_size")
        if blur_sigma is not None and (isinstance(blur_sigma, bool) or not isinstance(
                blur_sigma, int | float) or not blur_sigma > 0):
            raise ValueError(f"Expected `blur_sigma` to be None or a number > 0. "
                             f"Received: blur_sigma={blur_sigma!r}")
        self.blur_sigma = blur_sigma
        for name, value in (("deletion_fill", deletion_fill),
                            ("insertion_canvas", insertion_canvas)):
            if isinstance(value, str) and value not in FILLS:
                raise ValueError(f"Expected `{name}` to be a number, an image, or one of "
                                 f"{FILLS}. Received: {name}={value!r}")
        self.deletion_fill = deletion_fill
        self.insertion_canvas = insertion_canvas
        self.scored = (inspect.logits_model(model) if output == "logit"
                       else inspect.flat_model(model))
        self.num_classes = inspect.num_outputs(self.scored)
        self._step = None
        self._forward = None

    # -- the compiled step ------------------------------------------------------------------

    def _compiled(self):
        if self._step is None:
            tf = _compute.tf()
            scored = self.scored

            @tf.function(reduce_retracing=False)
            def step(start, end, rank, k, target):
                # start, end (B, H, W, C); rank (B, H, W) int32; k, target (B,) int32
                switched = rank < k[:, None, None]  # (B, H, W): the first k pixels switch
                x = tf.where(switched[..., None], end, start)  # (B, H, W, C)
                scores = scored(x, training=False)  # (B, K)
                return tf.gather(scores, target, axis=1, batch_dims=1)  # (B,)

            self._step = step
        return self._step

    def _targets(self, batch, targets) -> np.ndarray:
        resolved = _checks.check_targets(targets, batch.shape[0], self.num_classes)
        if resolved is None:
            if self._forward is None:
                self._forward = _compute.compiled_forward(self.scored)
            scores = _compute.run_batched(self._forward, (batch,), self.batch_size)[0]
            resolved = np.argmax(scores, axis=-1).astype(np.int32)
        return resolved

    def _curve(self, kind, inputs, explanations, targets) -> Curve:
        batch, single = inspect.check_inputs(self.model, inputs)
        maps = _maps_for(explanations, batch, single)
        n, h, w = maps.shape
        pixels = h * w
        if self.steps > pixels:
            raise ValueError(f"Expected `steps` <= the number of pixels {pixels}. "
                             f"Received: steps={self.steps}")
        resolved = self._targets(batch, targets)
        sigma = self.blur_sigma if self.blur_sigma is not None else max(h, w) / 16.0
        if kind == "deletion":
            start = batch
            end = _reference(self.deletion_fill, batch, "deletion_fill", sigma)
        else:
            start = _reference(self.insertion_canvas, batch, "insertion_canvas", sigma)
            end = batch
        rank = _rank(maps)
        # Pixels switched after each step: round(s * P / steps), s = 0..steps.
        ks = np.rint(np.arange(self.steps + 1) * pixels / self.steps).astype(np.int32)
        fractions = (ks / pixels).astype(np.float32)
        # One row per (image, step) pair; the images themselves are gathered one chunk at a
        # time, so memory stays at batch_size images.
        image_of = np.repeat(np.arange(n, dtype=np.int32), self.steps + 1)  # (N*(S+1),)
        k_of = np.tile(ks, n)  # (N*(S+1),)
        step = self._compiled()

        def run(idx, k):
            return step(start[idx], end[idx], rank[idx], k, resolved[idx])

        scores = _compute.run_batched(run, (image_of, k_of), self.batch_size)[0]
        scores = scores.reshape(n, self.steps + 1).astype(np.float32)  # (N*(S+1),) -> (N, S+1)
        # Trapezoid rule over the fractions (np.trapezoid needs numpy >= 2).
        auc = ((scores[:, 1:] + scores[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)
        auc = auc.astype(np.float32)  # (N,)
        return Curve(kind=kind, fractions=fractions,
                     scores=_checks.restore_single(scores, single),
                     auc=_checks.restore_single(auc, single), targets=resolved)

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


# --------------------------------------------------------------------------------------------
# Localisation
# --------------------------------------------------------------------------------------------


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2


def pointing_game(explanations, masks, tolerance: int = 0) -> np.ndarray:
    """Whether each map's maximum falls inside the object (Zhang et al., ECCV 2016).

    When several pixels share the maximum, the hit is the share of them inside the mask, so a
    flat map scores the mask's area rather than a free hit. The mean over images is the
    pointing-game accuracy.

    Args:
        explanations: ``(N, H, W)`` maps or one ``(H, W)`` map.
        masks: boolean (or 0/1) masks of the same shape; each must mark a pixel.
        tolerance: the mask is grown by this many pixels (a disk) before testing; Zhang et
            al. use 15 px at 224 px.

    Returns:
        ``(N,)`` float32 hits in [0, 1] (a 0-d array for one map).

    Raises:
        ValueError: shapes differ, an empty mask, a negative tolerance.

    >>> pointing_game(maps, masks).mean()  # accuracy over the batch
    0.9375
    """
    maps, single = _as_maps(explanations)
    marks = _masks_for(masks, maps)
    tol = _checks.check_positive_int(tolerance, "tolerance", minimum=0)
    if tol:
        from scipy import ndimage

        disk = _disk(tol)
        marks = np.stack([ndimage.binary_dilation(m, structure=disk) for m in marks])
    top = maps == maps.max(axis=(1, 2), keepdims=True)  # (N, H, W) the maxima
    hits = (top & marks).sum(axis=(1, 2)) / top.sum(axis=(1, 2))
    return _checks.restore_single(hits.astype(np.float32), single)


def energy_in_mask(explanations, masks) -> np.ndarray:
    """Share of the positive attribution that lies inside the mask.

    ``sum(max(e, 0) * mask) / sum(max(e, 0))`` per image ("energy-based pointing game",
    Wang et al., Score-CAM, 2020). A map with no positive value has no energy to place: NaN.

    Args:
        explanations: ``(N, H, W)`` maps or one ``(H, W)`` map.
        masks: boolean (or 0/1) masks of the same shape; each must mark a pixel.

    Returns:
        ``(N,)`` float32 in [0, 1] or NaN (a 0-d array for one map).

    >>> energy_in_mask(np.array([[1., 3.], [0., -2.]]), np.array([[0, 1], [1, 1]]))
    array(0.75, dtype=float32)
    """
    maps, single = _as_maps(explanations)
    marks = _masks_for(masks, maps)
    positive = np.maximum(maps, 0.0).astype(np.float64)
    total = positive.sum(axis=(1, 2))
    inside = (positive * marks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    return _checks.restore_single(share.astype(np.float32), single)


def top_k_iou(explanations, masks, fraction: float | None = None) -> np.ndarray:
    """Intersection over union of each map's top pixels with the mask.

    Args:
        explanations: ``(N, H, W)`` maps or one ``(H, W)`` map.
        masks: boolean (or 0/1) masks of the same shape; each must mark a pixel.
        fraction: share of the pixels kept (the top-k%), in (0, 1]; ``None`` keeps as many
            pixels as each mask has, so a map that ranks the mask first scores exactly 1.
            Ties keep row-major order.

    Returns:
        ``(N,)`` float32 IoU in [0, 1] (a 0-d array for one map).

    >>> top_k_iou(maps, masks, fraction=0.1).shape
    (16,)
    """
    maps, single = _as_maps(explanations)
    marks = _masks_for(masks, maps)
    n, h, w = maps.shape
    if fraction is None:
        k = marks.reshape(n, -1).sum(axis=1)
    else:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not (
                0 < fraction <= 1):
            raise ValueError(f"Expected `fraction` in (0, 1] or None. "
                             f"Received: fraction={fraction!r}")
        k = np.full(n, max(1, int(round(fraction * h * w))))
    top = _rank(maps) < k[:, None, None]  # (N, H, W)
    inter = (top & marks).sum(axis=(1, 2))
    union = (top | marks).sum(axis=(1, 2))
    return _checks.restore_single((inter / union).astype(np.float32), single)


# --------------------------------------------------------------------------------------------
# Baselines that ignore the model
# --------------------------------------------------------------------------------------------


def random_map(inputs, seed: int = 0) -> np.ndarray:
    """Uniform noise shaped like the images: the floor every method must beat.

    >>> random_map(np.zeros((2, 8, 8, 3))).shape
    (2, 8, 8)
    """
    batch, single = _checks.check_images(inputs)
    rng = np.random.default_rng(seed)
    maps = rng.random(batch.shape[:3], dtype=np.float32)
    return _checks.restore_single(maps, single)


def edge_map(inputs) -> np.ndarray:
    """Sobel gradient magnitude of the channel-mean image: a map from the image alone.

    Edge maps look like saliency maps yet never consult the model (Adebayo et al. 2018); the
    randomisation check must fail them.

    >>> edge_map(np.zeros((2, 8, 8, 3))).shape
    (2, 8, 8)
    """
    from scipy import ndimage

    batch, single = _checks.check_images(inputs)
    gray = batch.mean(axis=-1)  # (N, H, W)
    gy = ndimage.sobel(gray, axis=1, mode="reflect")
    gx = ndimage.sobel(gray, axis=2, mode="reflect")
    return _checks.restore_single(np.hypot(gx, gy).astype(np.float32), single)


# --------------------------------------------------------------------------------------------
# Model parameter randomisation (sanity check)
# --------------------------------------------------------------------------------------------


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

    x, _ = _as_maps(a, "a")
    y, _ = _as_maps(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"Expected `a` and `b` of the same shape. Received: {x.shape} and "
                         f"{y.shape}")
    n = x.shape[0]
    rx = rankdata(x.reshape(n, -1), axis=1)
    ry = rankdata(y.reshape(n, -1), axis=1)
    out = np.zeros(n, np.float64)
    for i in range(n):
        cx, cy = rx[i] - rx[i].mean(), ry[i] - ry[i].mean()
        den = np.sqrt((cx ** 2).sum() * (cy ** 2).sum())
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

    x, _ = _as_maps(a, "a")
    y, _ = _as_maps(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"Expected `a` and `b` of the same shape. Received: {x.shape} and "
                         f"{y.shape}")
    side = min(x.shape[1:])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"SSIM needs maps of at least 3x3 pixels. Received: {x.shape[1:]}")
    return np.array([structural_similarity(_unit(p), _unit(q), data_range=1.0, win_size=win)
                     for p, q in zip(x, y, strict=True)], np.float32)


def _explain_fn(explain, explainer_kwargs) -> Callable:
    """Turn a callable ``(model, images, targets) -> maps`` or an explainer class into one."""
    if isinstance(explain, type):
        if not hasattr(explain, "explain"):
            raise TypeError(f"Expected `explain` to be a callable (model, images, targets) -> "
                            f"maps or a class with an `explain` method. Received: the class "
                            f"{explain.__name__}")
        kwargs = dict(explainer_kwargs or {})
        return lambda model, images, targets: explain(model, **kwargs).explain(images, targets)
    if explainer_kwargs:
        raise ValueError("`explainer_kwargs` is only used when `explain` is an explainer class.")
    if not callable(explain):
        raise TypeError(f"Expected `explain` to be a callable (model, images, targets) -> maps "
                        f"or an explainer class. Received: {type(explain)!r}")
    return explain


def _copy(model):
    """An independent copy of ``model``: same graph and weights, new variables."""
    import keras

    try:
        twin = keras.models.clone_model(model)
    except Exception as err:
        raise ValueError(f"Model {model.name!r} could not be copied with "
                         f"keras.models.clone_model ({err}); the sanity check never touches "
                         "the user's model, so it needs a copy.") from None
    twin.set_weights(model.get_weights())
    return twin


def _weighted_layers(model) -> list[str]:
    """Paths of the layers that own weights, in execution order (nested models descended)."""
    paths = []
    for row in inspect.layer_table(model):
        layer = inspect.find_layer(model, row.path)
        if row.type in ("Functional", "Sequential") or not layer.weights:
            continue
        paths.append(row.path)
    return paths


def _randomize(layer, rng: np.random.Generator) -> None:
    """Re-initialise every weight of ``layer`` from its own initializer (seeded).

    A variable named ``kernel``, ``bias``, ``gamma``... uses the layer's
    ``kernel_initializer``, ``bias_initializer``...; one without an initializer attribute is
    drawn from a normal with its current standard deviation.
    """
    import keras

    new = []
    for var in layer.weights:
        name = var.path.split("/")[-1]
        shape = tuple(var.shape)
        init = getattr(layer, f"{name}_initializer", None)
        value = None
        if init is not None:
            config = keras.initializers.serialize(init)
            inner = config.get("config", {}) if isinstance(config, dict) else {}
            if "seed" in inner:
                inner["seed"] = int(rng.integers(2 ** 31 - 1))
            value = np.asarray(keras.initializers.get(config)(shape, dtype=var.dtype))
        if value is None:
            std = float(np.std(np.asarray(var)))
            value = rng.normal(0.0, std if std > 0 else 0.05, shape)
        new.append(np.asarray(value, dtype=np.asarray(var).dtype))
    layer.set_weights(new)


def randomization_check(model, explain, inputs, targets=None, layers: Sequence | None = None,
                        explainer_kwargs: dict | None = None, bound: float = 0.5,
                        seed: int = 0) -> SanityResult:
    """Cascading model-parameter randomisation (Adebayo et al., NeurIPS 2018).

    A copy of ``model`` (``keras.models.clone_model`` + ``set_weights``; the user's model is
    never changed) has its layers re-initialised one at a time from the top (the output layer)
    down, cumulatively. After each layer the explanation is computed again for the same
    targets and compared with the original by Spearman rank correlation and SSIM. A method
    that explains the model must change: it passes when the mean ``|spearman|`` over the
    images, once every listed layer is random, is below ``bound``.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        explain: a callable ``(model, images, targets) -> (N, H, W) maps``, or an explainer
            class (such as ``kerasviz.attribution.GradCAM``) built as
            ``explain(model, **explainer_kwargs)`` and called with ``.explain(images,
            targets)``.
        inputs: ``(N, H, W, C)`` images or one image.
        targets: the class to explain; ``None`` takes each image's top class on the trained
            model, and the same classes are explained at every stage.
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
    _check_model(model)
    fn = _explain_fn(explain, explainer_kwargs)
    if isinstance(bound, bool) or not isinstance(bound, int | float) or not 0 < bound <= 1:
        raise ValueError(f"Expected `bound` in (0, 1]. Received: bound={bound!r}")
    batch, _ = inspect.check_inputs(model, inputs)  # results stay batched: stages x images
    num_classes = inspect.num_outputs(model)
    resolved = _checks.check_targets(targets, batch.shape[0], num_classes)
    if resolved is None:
        forward = _compute.compiled_forward(model)
        scores = _compute.run_batched(forward, (batch,), 64)[0]
        resolved = np.argmax(scores, axis=-1).astype(np.int32)

    order = _weighted_layers(model)
    if layers is None:
        chosen = order
    else:
        wanted = {inspect.layer_path(model, inspect.find_layer(model, ref))
                  for ref in ([layers] if isinstance(layers, str | int) else layers)}
        unweighted = sorted(wanted - set(order))
        if unweighted:
            raise ValueError(f"`layers` {unweighted} have no weights to randomise. Layers with "
                             f"weights: {order}")
        chosen = [p for p in order if p in wanted]
    if not chosen:
        raise ValueError(f"Model {model.name!r} has no layer with weights to randomise.")
    top_down = chosen[::-1]

    original = _maps_for(fn(model, batch, resolved), batch, False)
    twin = _copy(model)
    rng = np.random.default_rng(seed)
    rhos, ssims, maps = [], [], []
    for path in top_down:
        _randomize(inspect.find_layer(twin, path), rng)
        current = _maps_for(fn(twin, batch, resolved), batch, False)
        maps.append(current)
        rhos.append(spearman(original, current))
        ssims.append(ssim(original, current))
    rho = np.stack(rhos)  # (L, N)
    final = float(np.mean(np.abs(rho[-1])))
    return SanityResult(layers=top_down, spearman=rho, ssim=np.stack(ssims),
                        original=original, randomized=np.stack(maps), bound=float(bound),
                        passed=final < bound)
