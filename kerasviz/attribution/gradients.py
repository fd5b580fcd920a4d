"""Gradient explanations: saliency, gradient x input, SmoothGrad, Integrated Gradients, and the
ReLU backward rules of guided backpropagation and the deconvnet.

Every method differentiates one scalar per image (the target class score, or one channel of a
layer) with respect to the input pixels. The gradient step is one ``tf.function`` built once per
explainer and traced once: batches are padded to ``batch_size`` rows. Methods that evaluate the
gradient at many points per image (noisy copies, points on a path) flatten ``(image, point)``
into rows and stream them in chunks of ``batch_size``, so memory stays bounded and the result does
not depend on the chunking.

``explain_full`` returns an `kerasviz.attribution.Explanation` whose ``attributions`` hold the
signed per-channel values ``(N, H, W, C)`` before the channel reduction that gives the maps.
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks, _compute, _progress, inspect
from kerasviz.attribution import _references
from kerasviz.attribution._base import Explainer
from kerasviz.attribution._result import Completeness, Explanation

BASELINES = _references.NAMED


def _gather_scores(tf, scores, targets):
    """``scores[i, targets[i]]`` for each row: ``(B, K), (B,) -> (B,)``."""
    return tf.gather(scores, targets, axis=1, batch_dims=1)


def _max_abs(attributions: np.ndarray) -> np.ndarray:
    """``(N, H, W, C) -> (N, H, W)``: the largest magnitude over channels."""
    return np.abs(attributions).max(axis=-1).astype(np.float32)


def _channel_sum(attributions: np.ndarray) -> np.ndarray:
    """``(N, H, W, C) -> (N, H, W)``: the signed sum over channels."""
    return attributions.sum(axis=-1).astype(np.float32)


class _GradientExplainer(Explainer):
    """Shared machinery: a compiled ``(x, t) -> (d score_t / dx, score_t)`` step, batched.

    Subclasses set `method` (the registry name) and define `_attributions` (the signed
    per-channel values of a checked batch) and `_reduce` (their channel reduction).
    """

    method = ""

    def __init__(
        self, model, output: str = "logit", batch_size: int = 32, strategy=None, score=None
    ):
        super().__init__(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        self._step = None

    # Subclasses change what is differentiated (a rewired network, a channel instead of a class).
    def _network(self):
        return self.scored

    def _score(self, outputs, targets):
        return _gather_scores(_compute.tf(), outputs, targets)

    def _gradient_step(self):
        if self._step is None:
            tf = _compute.tf()
            net = self._network()

            @tf.function(reduce_retracing=False)
            def step(x, t):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    score = self._score(net(x, training=False), t)  # (B,)
                # Images are independent (inference mode), so d(sum)/dx is the per-image gradient.
                return tape.gradient(score, x), score

            self._step = self.distributed(step)
        return self._step

    def _batch_gradients(self, batch, targets, progress: bool = False) -> np.ndarray:
        """float32 ``(N, H, W, C)`` gradients of a checked batch, one compiled step per chunk."""
        grads, _ = _compute.run_batched(
            self._gradient_step(),
            (batch, targets),
            self.batch_size,
            progress=progress,
            label=self.method or None,
        )
        return grads.astype(np.float32, copy=False)

    def gradients(self, inputs, targets=None) -> np.ndarray:
        """The raw input gradients ``(N, H, W, C)`` of each image's target score.

        >>> Saliency(model).gradients(images).shape
        (8, 64, 64, 3)
        """
        batch, targets, single = self.prepare(inputs, targets)
        return _checks.restore_single(self._batch_gradients(batch, targets), single)

    def _attributions(self, batch, targets, progress: bool) -> np.ndarray:
        return self._batch_gradients(batch, targets, progress)

    _reduce = staticmethod(_max_abs)

    def explain_full(self, inputs, targets=None, progress: bool = False) -> Explanation:
        """Maps ``(N, H, W)``, targets and signed per-channel ``attributions`` (batch first).

        >>> Saliency(model).explain_full(images).attributions.shape
        (8, 64, 64, 3)
        """
        batch, targets, _ = self.prepare(inputs, targets)
        attributions = self._attributions(batch, targets, progress)
        return Explanation(
            self._reduce(attributions), targets, method=self.method, attributions=attributions
        )

    def _point_gradients(self, batch, targets, points: int, make_rows, progress: bool = False):
        """Gradients at ``points`` inputs per image, summed per image.

        ``make_rows(images_idx, point_idx)`` returns the ``(R, H, W, C)`` inputs of those rows.
        Rows ``(image, point)`` are streamed in chunks of ``batch_size`` (the last one padded).

        Returns:
            ``(sums (N, H, W, C) float64, scores (N, points) float64)``.
        """
        step = self._gradient_step()
        n = batch.shape[0]
        total = n * points
        size = min(self.batch_size, total)
        sums = np.zeros(batch.shape, np.float64)
        scores = np.zeros((n, points), np.float64)
        bar = _progress.Progress(total, label=self.method, enabled=progress)
        for start, stop in _compute.padded_chunks(total, size):
            rows = np.arange(start, stop)
            image, point = np.divmod(rows, points)
            x = _compute.pad_to(make_rows(image, point).astype(np.float32, copy=False), size)
            t = _compute.pad_to(targets[image], size)
            grads, score = step(x, t)
            grads = np.asarray(grads, np.float64)[: stop - start]
            scores[image, point] = np.asarray(score)[: stop - start]
            # Rows are ordered by image: add each image's run of rows at once.
            first = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
            sums[image[first]] += np.add.reduceat(grads, first, axis=0)
            bar.update(stop)
        return sums, scores


class Saliency(_GradientExplainer):
    """Vanilla gradient saliency: ``max_c |d score / d x_c|`` per pixel.

    Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps", ICLR workshop 2014. ``explain_full`` gives the
    signed gradients as ``attributions``.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        output: ``"logit"`` (default; softmax saturation does not flatten the gradient) or
            ``"probability"``.
        batch_size: images per gradient step.
        strategy: as `kerasviz.attribution.Scorer`.

    >>> Saliency(model).explain(images).shape
    (8, 64, 64)
    """

    method = "saliency"


class GradientInput(_GradientExplainer):
    """Signed gradient x input, summed over channels: ``sum_c x_c * d score / d x_c``.

    Shrikumar et al., "Not Just a Black Box: Learning Important Features Through Propagating
    Activation Differences", 2016. For a linear model it is each pixel's exact contribution.
    ``explain_full`` gives the per-channel products ``x_c * d score / d x_c`` as
    ``attributions``.

    Args: as `Saliency`.

    >>> GradientInput(model).explain(images).shape
    (8, 64, 64)
    """

    method = "gradient_input"
    _reduce = staticmethod(_channel_sum)

    def _attributions(self, batch, targets, progress: bool) -> np.ndarray:
        return self._batch_gradients(batch, targets, progress) * batch


class SmoothGrad(_GradientExplainer):
    """SmoothGrad: the gradient averaged over noisy copies of the image, then ``max_c |.|``.

    Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017. The noise is Gaussian
    with standard deviation ``noise * (high - low)``, where ``(low, high)`` is ``value_range`` or,
    when it is ``None``, each image's own min and max (the paper's noise level). Noise for image
    ``i`` and sample ``s`` is drawn from a generator seeded with ``(seed, i, s)``, so results do not
    depend on ``batch_size``. With ``noise=0`` the result equals `Saliency`. ``explain_full``
    gives the signed noise-averaged gradients as ``attributions``.

    Args:
        model: a Keras image classifier.
        noise: noise level relative to the input range (the paper suggests 0.1 to 0.2).
        samples: noisy copies per image.
        seed: seed of the noise.
        value_range: ``(low, high)`` of the model's inputs, or ``None`` for per-image ranges.
        output: ``"logit"`` (default) or ``"probability"``.
        batch_size: noisy images per gradient step (over all images and samples).
        strategy: as `kerasviz.attribution.Scorer`.

    >>> SmoothGrad(model, noise=0.15, samples=16).explain(images).shape
    (8, 64, 64)
    """

    method = "smoothgrad"

    def __init__(
        self,
        model,
        noise: float = 0.15,
        samples: int = 25,
        seed: int = 0,
        value_range: tuple[float, float] | None = None,
        output: str = "logit",
        batch_size: int = 32,
        strategy=None,
        score=None,
    ):
        super().__init__(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        self.noise = _checks.check_positive_float(noise, "noise", allow_zero=True)
        self.samples = _checks.check_positive_int(samples, "samples")
        self.seed = _checks.check_positive_int(seed, "seed", minimum=0)
        self.value_range = None if value_range is None else _value_range(value_range)

    def _sigma(self, batch: np.ndarray) -> np.ndarray:
        if self.value_range is not None:
            spread = np.full(batch.shape[0], self.value_range[1] - self.value_range[0])
        else:
            spread = np.ptp(batch.reshape(batch.shape[0], -1), axis=1)
        return (self.noise * spread).astype(np.float32)  # (N,)

    def _attributions(self, batch, targets, progress: bool) -> np.ndarray:
        sigma = self._sigma(batch)
        shape = batch.shape[1:]

        def make_rows(image, sample):
            rows = batch[image].copy()
            for r, (i, s) in enumerate(zip(image, sample, strict=True)):
                rng = np.random.default_rng((self.seed, int(i), int(s)))
                rows[r] += sigma[i] * rng.standard_normal(shape, dtype=np.float32)
            return rows

        sums, _ = self._point_gradients(batch, targets, self.samples, make_rows, progress)
        return (sums / self.samples).astype(np.float32)

    def mean_gradients(self, inputs, targets=None) -> np.ndarray:
        """The noise-averaged gradients ``(N, H, W, C)`` (signed, before the channel reduction).

        >>> SmoothGrad(model).mean_gradients(images).shape
        (8, 64, 64, 3)
        """
        batch, targets, single = self.prepare(inputs, targets)
        return _checks.restore_single(self._attributions(batch, targets, False), single)


def _value_range(value) -> tuple[float, float]:
    """``(low, high)`` finite numbers with ``high > low``, as floats."""
    arr = _checks.real_array(value, "value_range")
    if arr.shape != (2,) or not np.all(np.isfinite(arr)) or not arr[1] > arr[0]:
        raise ValueError(
            "Expected `value_range` to be (low, high), finite, with high > low. "
            f"Received: value_range={value!r}"
        )
    return float(arr[0]), float(arr[1])


class IntegratedGradients(_GradientExplainer):
    """Integrated Gradients: ``(x - b) * mean of the gradients on the straight path b -> x``.

    Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017. The path
    integral is the midpoint rule with ``steps`` points ``b + (k + 1/2) / steps * (x - b)``, all
    images' points streamed through one compiled gradient step in chunks of ``batch_size``. The
    map sums attributions over channels (signed), so its total approximates
    ``f(x) - f(b)`` (completeness); ``explain_full`` reports the gap as ``completeness`` and the
    per-channel attributions as ``attributions``.

    Args:
        model: a Keras image classifier.
        baseline: ``"zeros"`` (black), ``"mean"`` (each image's mean colour), ``"blur"`` (the
            image under a Gaussian blur of sigma ``max(H, W) / 16``), a number, a ``(C,)``
            colour, an ``(H, W, C)`` image or an ``(N, H, W, C)`` batch (see
            `kerasviz.attribution._references`).
        steps: points on the path.
        output: ``"logit"`` (default) or ``"probability"``.
        batch_size: path points per gradient step (over all images).
        strategy: as `kerasviz.attribution.Scorer`.

    >>> result = IntegratedGradients(model, steps=64).explain_full(images)
    >>> result.explanations.shape, result.completeness.gap.shape
    ((8, 64, 64), (8,))
    """

    method = "integrated_gradients"
    _reduce = staticmethod(_channel_sum)

    def __init__(
        self,
        model,
        baseline="zeros",
        steps: int = 64,
        output: str = "logit",
        batch_size: int = 32,
        strategy=None,
        score=None,
    ):
        super().__init__(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        self.baseline = _references.check_reference(baseline, "baseline")
        self.steps = _checks.check_positive_int(steps, "steps")

    def baselines(self, batch: np.ndarray) -> np.ndarray:
        """The ``(N, H, W, C)`` float32 baseline of each image of ``batch``.

        >>> IntegratedGradients(model, baseline="blur").baselines(images).shape
        (8, 64, 64, 3)
        """
        return _references.reference(self.baseline, np.asarray(batch, np.float32), "baseline")

    def _integrate(self, batch, targets, progress: bool) -> tuple[np.ndarray, Completeness]:
        """float32 ``(N, H, W, C)`` attributions of a checked batch and their completeness."""
        base = self.baselines(batch)
        delta = batch - base
        alphas = ((np.arange(self.steps) + 0.5) / self.steps).astype(np.float32)

        def make_rows(image, step):
            return base[image] + alphas[step][:, None, None, None] * delta[image]

        sums, _ = self._point_gradients(batch, targets, self.steps, make_rows, progress)
        attr = delta * (sums / self.steps)
        rows = np.arange(len(targets))
        end = self.predict(batch)[rows, targets]
        start = self.predict(base)[rows, targets]
        total = attr.reshape(len(attr), -1).sum(axis=1)
        diff = end.astype(np.float64) - start
        gap = np.abs(total - diff) / np.maximum(np.abs(diff), 1e-12)
        report = Completeness(
            total.astype(np.float32), diff.astype(np.float32), gap.astype(np.float32)
        )
        return attr.astype(np.float32), report

    def _attributions(self, batch, targets, progress: bool) -> np.ndarray:
        return self._integrate(batch, targets, progress)[0]

    def attributions(self, inputs, targets=None) -> np.ndarray:
        """Per-channel attributions ``(N, H, W, C)`` (``explain_full`` adds completeness).

        >>> IntegratedGradients(model).attributions(images).shape
        (8, 64, 64, 3)
        """
        batch, targets, single = self.prepare(inputs, targets)
        return _checks.restore_single(self._attributions(batch, targets, False), single)

    def explain_full(self, inputs, targets=None, progress: bool = False) -> Explanation:
        """Maps, targets, per-channel ``attributions`` and their ``completeness``.

        >>> IntegratedGradients(model).explain_full(images).completeness.gap.shape
        (8,)
        """
        batch, targets, _ = self.prepare(inputs, targets)
        attributions, report = self._integrate(batch, targets, progress)
        return Explanation(
            self._reduce(attributions),
            targets,
            method=self.method,
            attributions=attributions,
            completeness=report,
        )


# --------------------------------------------------------------------------------------------
# Guided backpropagation and deconvnet: ReLU backward rules in a rewired copy of the graph
# --------------------------------------------------------------------------------------------


class _RuleGradients(_GradientExplainer):
    """Gradients through a copy of the graph whose ReLUs follow ``rule`` on the way back.

    The user's model is not changed: `kerasviz.inspect.relu_rule_model` rewires a replay of the
    scored view (every ReLU, also one fused into a layer, follows the rule backwards; other
    activations keep their gradient). Linear twins of fused layers follow the user's weights:
    they are refreshed at every call.

    With ``layer`` set, the score is one channel's strongest activation in that layer (Zeiler and
    Fergus's projection of a unit) and ``targets`` are channel indices (``None``: each image's
    most active channel).
    """

    rule = "guided"

    def __init__(
        self,
        model,
        layer=None,
        output: str = "logit",
        batch_size: int = 32,
        strategy=None,
        score=None,
    ):
        super().__init__(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        self._rules = inspect.relu_rule_model(model, self.rule, layer=layer, view=self.scored)
        self.layer = self._rules.layer
        self.layer_path = None if self.layer is None else inspect.layer_path(model, self.layer)
        self._forward = None

    @property
    def num_units(self) -> int:
        """The valid targets: classes, or the channels of ``layer``."""
        return self._rules.units

    def _network(self):
        return self._rules.network

    def _score(self, outputs, targets):
        tf = _compute.tf()
        if self.layer is None:
            return _gather_scores(tf, outputs, targets)
        strongest = tf.reduce_max(outputs, axis=(1, 2))  # (B, h, w, C) -> (B, C)
        return _gather_scores(tf, strongest, targets)

    def prepare(self, inputs, targets):
        self._rules.refresh()  # follow the user's weights if they changed
        if self.layer is None:
            return super().prepare(inputs, targets)
        batch, single = self.scorer.check_inputs(inputs)
        resolved = _checks.check_targets(targets, batch.shape[0], self.num_units)
        if resolved is None:
            if self._forward is None:
                self._forward = self.distributed(_compute.compiled_forward(self._network()))
            acts = _compute.run_batched(self._forward, (batch,), self.batch_size)[0]
            resolved = acts.max(axis=(1, 2)).argmax(axis=-1).astype(np.int32)
        return batch, resolved, single

    def explain_full(self, inputs, targets=None, progress: bool = False) -> Explanation:
        """Maps ``max_c |gradient|``, targets (channels with ``layer``) and signed gradients.

        The signed ``attributions`` ``(N, H, W, C)`` are the picture the papers show.
        """
        result = super().explain_full(inputs, targets, progress=progress)
        result.layer = self.layer_path
        return result


class GuidedBackprop(_RuleGradients):
    """Guided backpropagation: through each ReLU only positive gradients at active units.

    Springenberg et al., "Striving for Simplicity: The All Convolutional Net", ICLR workshop
    2015. Applied to a copy of the graph; the user's model is untouched.

    Args:
        model: a Keras image classifier.
        layer: ``None`` to explain a class; a layer reference (see `kerasviz.inspect.find_layer`)
            to project one of its channels (``targets`` are then channel indices).
        output: ``"logit"`` (default) or ``"probability"``.
        batch_size: images per gradient step.
        strategy: as `kerasviz.attribution.Scorer`.

    >>> GuidedBackprop(model).gradients(images).shape
    (8, 64, 64, 3)
    """

    method = "guided_backprop"
    rule = "guided"


class Deconvnet(_RuleGradients):
    """Deconvnet: through each ReLU only positive gradients, whatever the unit's forward state.

    Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014: the
    backward pass of a network is their deconvnet (transposed filters, unpooling by the forward
    switches) when ReLUs rectify the signal going back instead of masking it.

    Args:
        model: a Keras image classifier.
        layer: ``None`` to explain a class; a layer reference to project one of its channels
            (``targets`` are then channel indices; ``None`` picks each image's most active one).
        output: ``"logit"`` (default) or ``"probability"``.
        batch_size: images per gradient step.
        strategy: as `kerasviz.attribution.Scorer`.

    >>> Deconvnet(model, layer="conv3").gradients(images, targets=5).shape
    (8, 64, 64, 3)
    """

    method = "deconvnet"
    rule = "deconvnet"
