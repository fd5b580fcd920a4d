"""Gradient explanations: saliency, gradient x input, SmoothGrad, Integrated Gradients, and the
ReLU backward rules of guided backpropagation and the deconvnet.

Every method differentiates one scalar per image (the target class score, or one channel of a
layer) with respect to the input pixels. The gradient step is one ``tf.function`` built once per
explainer and traced once: batches are padded to ``batch_size`` rows. Methods that evaluate the
gradient at many points per image (noisy copies, points on a path) flatten ``(image, point)``
into rows and stream them in chunks of ``batch_size``, so memory stays bounded and the result does
not depend on the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerasviz import _checks, _compute, inspect
from kerasviz.attribution._base import Explainer

BASELINES = ("zeros", "mean", "blur")
RULES = ("guided", "deconvnet")
_RELU_NAMES = ("relu", "relu6")


def _gather_scores(tf, scores, targets):
    """``scores[i, targets[i]]`` for each row: ``(B, K), (B,) -> (B,)``."""
    return tf.gather(scores, targets, axis=1, batch_dims=1)


class _GradientExplainer(Explainer):
    """Shared machinery: a compiled ``(x, t) -> (d score_t / dx, score_t)`` step, batched."""

    def __init__(self, model, output: str = "logit", batch_size: int = 32, strategy=None):
        super().__init__(model, output=output, batch_size=batch_size, strategy=strategy)
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

    def gradients(self, inputs, targets=None) -> np.ndarray:
        """The raw input gradients ``(N, H, W, C)`` of each image's target score.

        >>> Saliency(model).gradients(images).shape
        (8, 64, 64, 3)
        """
        batch, targets, single = self.prepare(inputs, targets)
        grads, _ = _compute.run_batched(self._gradient_step(), (batch, targets), self.batch_size)
        return _checks.restore_single(grads.astype(np.float32), single)

    def _point_gradients(self, batch, targets, points: int, make_rows):
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
        return sums, scores


class Saliency(_GradientExplainer):
    """Vanilla gradient saliency: ``max_c |d score / d x_c|`` per pixel.

    Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks: Visualising Image
    Classification Models and Saliency Maps", ICLR workshop 2014.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        output: ``"logit"`` (default; softmax saturation does not flatten the gradient) or
            ``"probability"``.
        batch_size: images per gradient step.

    >>> Saliency(model).explain(images).shape
    (8, 64, 64)
    """

    def explain(self, inputs, targets=None) -> np.ndarray:
        """Saliency maps ``(N, H, W)`` float32 (``(H, W)`` for one image)."""
        batch, targets, single = self.prepare(inputs, targets)
        grads, _ = _compute.run_batched(self._gradient_step(), (batch, targets), self.batch_size)
        maps = np.abs(grads).max(axis=-1).astype(np.float32)
        return _checks.restore_single(maps, single)


class GradientInput(_GradientExplainer):
    """Signed gradient x input, summed over channels: ``sum_c x_c * d score / d x_c``.

    Shrikumar et al., "Not Just a Black Box: Learning Important Features Through Propagating
    Activation Differences", 2016. For a linear model it is each pixel's exact contribution.

    >>> GradientInput(model).explain(images).shape
    (8, 64, 64)
    """

    def explain(self, inputs, targets=None) -> np.ndarray:
        """Signed maps ``(N, H, W)`` float32 (``(H, W)`` for one image)."""
        batch, targets, single = self.prepare(inputs, targets)
        grads, _ = _compute.run_batched(self._gradient_step(), (batch, targets), self.batch_size)
        maps = (grads * batch).sum(axis=-1).astype(np.float32)
        return _checks.restore_single(maps, single)


class SmoothGrad(_GradientExplainer):
    """SmoothGrad: the gradient averaged over noisy copies of the image, then ``max_c |.|``.

    Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017. The noise is Gaussian
    with standard deviation ``noise * (high - low)``, where ``(low, high)`` is ``value_range`` or,
    when it is ``None``, each image's own min and max (the paper's noise level). Noise for image
    ``i`` and sample ``s`` is drawn from a generator seeded with ``(seed, i, s)``, so results do not
    depend on ``batch_size``. With ``noise=0`` the result equals `Saliency`.

    Args:
        model: a Keras image classifier.
        noise: noise level relative to the input range (the paper suggests 0.1 to 0.2).
        samples: noisy copies per image.
        seed: seed of the noise.
        value_range: ``(low, high)`` of the model's inputs, or ``None`` for per-image ranges.
        output: ``"logit"`` (default) or ``"probability"``.
        batch_size: noisy images per gradient step (over all images and samples).

    >>> SmoothGrad(model, noise=0.15, samples=16).explain(images).shape
    (8, 64, 64)
    """

    def __init__(self, model, noise: float = 0.15, samples: int = 25, seed: int = 0,
                 value_range: tuple[float, float] | None = None, output: str = "logit",
                 batch_size: int = 32, strategy=None):
        super().__init__(model, output=output, batch_size=batch_size, strategy=strategy)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not (
            0.0 <= noise < np.inf
        ):
            raise ValueError(f"Expected `noise` to be a number >= 0. Received: noise={noise!r}")
        self.noise = float(noise)
        self.samples = _checks.check_positive_int(samples, "samples")
        self.seed = _checks.check_positive_int(seed, "seed", minimum=0)
        if value_range is not None:
            if len(value_range) != 2 or not value_range[1] > value_range[0]:
                raise ValueError("Expected `value_range` to be (low, high) with high > low. "
                                 f"Received: value_range={value_range!r}")
            value_range = (float(value_range[0]), float(value_range[1]))
        self.value_range = value_range

    def _sigma(self, batch: np.ndarray) -> np.ndarray:
        if self.value_range is not None:
            spread = np.full(batch.shape[0], self.value_range[1] - self.value_range[0])
        else:
            spread = np.ptp(batch.reshape(batch.shape[0], -1), axis=1)
        return (self.noise * spread).astype(np.float32)  # (N,)

    def mean_gradients(self, inputs, targets=None) -> np.ndarray:
        """The noise-averaged gradients ``(N, H, W, C)`` (signed, before the channel reduction)."""
        batch, targets, single = self.prepare(inputs, targets)
        sigma = self._sigma(batch)
        shape = batch.shape[1:]

        def make_rows(image, sample):
            rows = batch[image].copy()
            for r, (i, s) in enumerate(zip(image, sample, strict=True)):
                rng = np.random.default_rng((self.seed, int(i), int(s)))
                rows[r] += sigma[i] * rng.standard_normal(shape, dtype=np.float32)
            return rows

        sums, _ = self._point_gradients(batch, targets, self.samples, make_rows)
        return _checks.restore_single((sums / self.samples).astype(np.float32), single)

    def explain(self, inputs, targets=None) -> np.ndarray:
        """SmoothGrad maps ``(N, H, W)`` float32 (``(H, W)`` for one image)."""
        grads = self.mean_gradients(inputs, targets)
        return np.abs(grads).max(axis=-1).astype(np.float32)


@dataclass
class Completeness:
    """How well Integrated Gradients' attributions add up to the score change.

    Attributes:
        attribution_sum: ``(N,)`` sum of each image's attributions.
        score_difference: ``(N,)`` ``f(x) - f(baseline)`` for the target.
        gap: ``(N,)`` ``|attribution_sum - score_difference| / max(|score_difference|, 1e-12)``.
    """

    attribution_sum: np.ndarray
    score_difference: np.ndarray
    gap: np.ndarray


class IntegratedGradients(_GradientExplainer):
    """Integrated Gradients: ``(x - b) * mean of the gradients on the straight path b -> x``.

    Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017. The path
    integral is the midpoint rule with ``steps`` points ``b + (k + 1/2) / steps * (x - b)``, all
    images' points streamed through one compiled gradient step in chunks of ``batch_size``. The
    map sums attributions over channels (signed), so its total approximates
    ``f(x) - f(b)`` (completeness); after each call `last_completeness` reports the gap.

    Args:
        model: a Keras image classifier.
        baseline: ``"zeros"`` (black), ``"mean"`` (each image's mean colour), ``"blur"`` (the
            image blurred with a Gaussian of sigma ``H / 10``), a number, or an array of shape
            ``(H, W, C)`` or ``(N, H, W, C)``.
        steps: points on the path.
        output: ``"logit"`` (default) or ``"probability"``.
        batch_size: path points per gradient step (over all images).

    >>> ig = IntegratedGradients(model, steps=64)
    >>> ig.explain(images).shape, ig.last_completeness.gap.shape
    ((8, 64, 64), (8,))
    """

    def __init__(self, model, baseline="zeros", steps: int = 64, output: str = "logit",
                 batch_size: int = 32, strategy=None):
        super().__init__(model, output=output, batch_size=batch_size, strategy=strategy)
        if isinstance(baseline, str) and baseline not in BASELINES:
            raise ValueError(f"Expected `baseline` in {BASELINES}, a number or an array. "
                             f"Received: baseline={baseline!r}")
        self.baseline = baseline
        self.steps = _checks.check_positive_int(steps, "steps")
        self.last_completeness: Completeness | None = None

    def baselines(self, batch: np.ndarray) -> np.ndarray:
        """The ``(N, H, W, C)`` baseline of each image of ``batch``."""
        b = self.baseline
        if isinstance(b, str):
            if b == "zeros":
                return np.zeros_like(batch)
            if b == "mean":
                return np.broadcast_to(batch.mean(axis=(1, 2), keepdims=True), batch.shape).copy()
            from scipy.ndimage import gaussian_filter

            sigma = batch.shape[1] / 10.0
            return gaussian_filter(batch, sigma=(0, sigma, sigma, 0)).astype(np.float32)
        if isinstance(b, bool):
            raise TypeError(f"Expected `baseline` to be a name, a number or an array. "
                            f"Received: baseline={b!r}")
        arr = np.asarray(b, dtype=np.float32)
        if arr.ndim == 0:
            return np.full_like(batch, float(arr))
        if arr.shape == batch.shape[1:]:
            return np.broadcast_to(arr, batch.shape).copy()
        if arr.shape == batch.shape:
            return arr.copy()
        raise ValueError(f"Expected `baseline` of shape {batch.shape[1:]} or {batch.shape}. "
                         f"Received: baseline.shape={arr.shape}")

    def attributions(self, inputs, targets=None) -> np.ndarray:
        """Per-channel attributions ``(N, H, W, C)``; sets `last_completeness`."""
        batch, targets, single = self.prepare(inputs, targets)
        base = self.baselines(batch)
        delta = batch - base
        alphas = ((np.arange(self.steps) + 0.5) / self.steps).astype(np.float32)

        def make_rows(image, step):
            return base[image] + alphas[step][:, None, None, None] * delta[image]

        sums, _ = self._point_gradients(batch, targets, self.steps, make_rows)
        attr = delta * (sums / self.steps)
        end = self.predict(batch)[np.arange(len(targets)), targets]
        start = self.predict(base)[np.arange(len(targets)), targets]
        total = attr.reshape(len(attr), -1).sum(axis=1)
        diff = end.astype(np.float64) - start
        gap = np.abs(total - diff) / np.maximum(np.abs(diff), 1e-12)
        self.last_completeness = Completeness(
            total.astype(np.float32), diff.astype(np.float32), gap.astype(np.float32)
        )
        return _checks.restore_single(attr.astype(np.float32), single)

    def explain(self, inputs, targets=None) -> np.ndarray:
        """Signed maps ``(N, H, W)`` float32 summed over channels (``(H, W)`` for one image)."""
        return self.attributions(inputs, targets).sum(axis=-1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Guided backpropagation and deconvnet: ReLU backward rules in a rewired copy of the graph
# --------------------------------------------------------------------------------------------


def _relu_kind(fn) -> bool:
    name = getattr(fn, "__name__", None) or getattr(fn, "name", None)
    return name in _RELU_NAMES


def _rule_layer_class():
    """A Keras layer applying ``fn`` forward and a ReLU rule backward (built lazily)."""
    import keras

    tf = _compute.tf()

    class _ReluRule(keras.layers.Layer):
        def __init__(self, fn, rule, **kwargs):
            super().__init__(**kwargs)
            self.fn = fn
            self.rule = rule

        def call(self, x):
            fn, rule = self.fn, self.rule

            @tf.custom_gradient
            def apply(z):
                y = fn(z)

                def backward(dy):
                    up = tf.nn.relu(dy)  # both rules pass only positive gradients back
                    if rule == "deconvnet":
                        return up  # ... and ignore where the forward unit was off
                    with tf.GradientTape() as tape:  # guided: also the unit's own mask
                        tape.watch(z)
                        again = fn(z)
                    return tape.gradient(again, z, output_gradients=up)

                return y, backward

            return apply(x)

        def compute_output_shape(self, input_shape):
            return input_shape

    return _ReluRule


class _RuleGradients(_GradientExplainer):
    """Gradients through a copy of the graph whose ReLUs follow ``rule`` on the way back.

    The user's model is not changed: the graph is replayed (`kerasviz.inspect`) with every ReLU
    (a ``ReLU`` layer, an ``Activation("relu")`` or a layer with ``activation="relu"``/``relu6``)
    replaced by a rule layer. A layer with a fused ReLU is computed by a linear twin (same config,
    weights copied at each `explain`) followed by the rule. Other activations keep their gradient.

    With ``layer`` set, the score is one channel's strongest activation in that layer (Zeiler and
    Fergus's projection of a unit) and ``targets`` are channel indices (``None``: each image's
    most active channel).
    """

    rule = "guided"

    def __init__(self, model, layer=None, output: str = "logit", batch_size: int = 32,
                 strategy=None):
        super().__init__(model, output=output, batch_size=batch_size, strategy=strategy)
        import keras

        rule_cls = _rule_layer_class()
        self._twins: list[tuple] = []
        overrides = {}
        for _, lay in inspect.iter_layers(self.scored):
            if isinstance(lay, keras.layers.ReLU) or (
                isinstance(lay, keras.layers.Activation) and _relu_kind(lay.activation)
            ):
                fn = lay.call if isinstance(lay, keras.layers.ReLU) else lay.activation
                overrides[id(lay)] = self._wrap(rule_cls(fn, self.rule), None)
            elif _relu_kind(getattr(lay, "activation", None)) and lay.built:
                config = lay.get_config()
                config["activation"] = "linear"
                config["name"] = f"{lay.name}_linear_twin"
                twin = type(lay).from_config(config)
                self._twins.append((twin, lay))
                overrides[id(lay)] = self._wrap(rule_cls(lay.activation, self.rule), twin)
        self.layer = None if layer is None else inspect.find_layer(model, layer)
        inputs, prediction, replay = inspect.replay(self.scored, overrides)
        for twin, lay in self._twins:
            twin.set_weights(lay.get_weights())
        if self.layer is None:
            self._net = keras.Model(inputs, prediction, name=f"{model.name}_{self.rule}")
            self.num_units = self.num_classes
        else:
            tap = replay.output_of(self.layer)
            if tap is None or len(tap.shape) != 4:
                shape = None if tap is None else tuple(tap.shape)
                raise ValueError(f"Expected `layer` with a spatial (N, h, w, C) output. Received: "
                                 f"layer={self.layer.name!r} with output shape {shape}")
            self._net = keras.Model(inputs, tap, name=f"{model.name}_{self.rule}_unit")
            self.num_units = int(tap.shape[-1])

    @staticmethod
    def _wrap(rule_layer, twin):
        if twin is None:
            return lambda x, *args, **kwargs: rule_layer(x)
        return lambda x, *args, **kwargs: rule_layer(twin(x))

    def _network(self):
        return self._net

    def _score(self, outputs, targets):
        tf = _compute.tf()
        if self.layer is None:
            return _gather_scores(tf, outputs, targets)
        strongest = tf.reduce_max(outputs, axis=(1, 2))  # (B, h, w, C) -> (B, C)
        return _gather_scores(tf, strongest, targets)

    def prepare(self, inputs, targets):
        for twin, lay in self._twins:  # follow the user's weights if they changed
            twin.set_weights(lay.get_weights())
        if self.layer is None:
            return super().prepare(inputs, targets)
        batch, single = inspect.check_inputs(self.model, inputs)
        resolved = _checks.check_targets(targets, batch.shape[0], self.num_units)
        if resolved is None:
            if self._forward is None:
                self._forward = self.distributed(_compute.compiled_forward(self._net))
            acts = _compute.run_batched(self._forward, (batch,), self.batch_size)[0]
            resolved = acts.max(axis=(1, 2)).argmax(axis=-1).astype(np.int32)
        return batch, resolved, single

    def explain(self, inputs, targets=None) -> np.ndarray:
        """Maps ``(N, H, W)`` float32: ``max_c |gradient|`` (``(H, W)`` for one image).

        Use `gradients` for the signed ``(N, H, W, C)`` picture the papers show.
        """
        grads = self.gradients(inputs, targets)
        return np.abs(grads).max(axis=-1).astype(np.float32)


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

    >>> GuidedBackprop(model).gradients(images).shape
    (8, 64, 64, 3)
    """

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

    >>> Deconvnet(model, layer="conv3").gradients(images, targets=5).shape
    (8, 64, 64, 3)
    """

    rule = "deconvnet"
