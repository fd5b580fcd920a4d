"""Feature maps, their most active channels, and activation maximization.

`activations` reads many layers' outputs in one forward pass of one sub-model
(`kerasviz.inspect.submodel`). `ActivationMaximization` optimises inputs so that chosen units
(conv channels, single neurons, class logits) fire strongly: regularised gradient ascent
(Erhan et al. 2009; Simonyan et al. 2014; Yosinski et al. 2015; Olah et al., "Feature
Visualization", Distill 2017), with all units of a batch optimised together in one compiled step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from kerasviz import _checks, _compute, _progress, inspect

MAX_STEPS_ENV = "KERASVIZ_MAX_STEPS"


def _key(model, ref) -> str:
    """The dictionary key of a layer reference: the string as passed, else the layer's path."""
    if isinstance(ref, str):
        return ref
    return inspect.layer_path(model, inspect.find_layer(model, ref))


def activations(model, inputs, layers, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Outputs of one or many layers for a batch, from a single forward pass per batch.

    Args:
        model: a Keras model (Functional, Sequential or nested).
        inputs: images ``(N, H, W, C)`` (or one image ``(H, W, C)``) in the model's range.
        layers: one layer reference or a sequence of them (names, paths such as
            ``"mobilenetv2_1.00_96/block_3_expand"``, indices or Layer objects).
        batch_size: images per forward pass.

    Returns:
        ``{key: array}`` in the order given. The key is the reference itself when it is a
        string (a name or a path, as you passed it), otherwise the layer's path. Conv layers
        give ``(N, h, w, c)`` float32; other layers keep their own shape, batch first. For a
        single input image the batch axis is dropped.

    Raises:
        KeyError: an unknown layer. ValueError: bad images or an empty `layers`.

    >>> maps = activations(model, images, ["conv1", "conv2"])
    >>> maps["conv1"].shape
    (2, 30, 30, 32)
    """
    refs = inspect.as_refs(layers)
    if not refs:
        raise ValueError(f"Expected at least one layer in `layers`. Received: layers={layers!r}")
    keys = [_key(model, ref) for ref in refs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"`layers` names a layer twice. Received: layers={layers!r}")
    batch, single = inspect.check_inputs(model, inputs)
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    sub = inspect.submodel(model, refs)
    forward = _compute.compiled_forward(sub)

    def taps(x):
        return tuple(forward(x)[: len(refs)])

    outs = _compute.run_batched(taps, (batch,), batch_size)
    return {
        key: _checks.restore_single(out.astype(np.float32), single)
        for key, out in zip(keys, outs, strict=True)
    }


def top_channels(maps: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` channels with the highest mean activation, per image.

    Args:
        maps: ``(N, h, w, c)`` (or ``(h, w, c)`` for one image).
        k: how many channels.

    Returns:
        ``(indices, means)``, each ``(N, k)`` (``(k,)`` for one image), strongest first.

    >>> idx, val = top_channels(maps["conv2"], k=4)
    >>> idx.shape
    (2, 4)
    """
    arr, single = _checks.as_batch(np.asarray(maps, dtype=np.float32), "N, h, w, c", "maps")
    k = _checks.check_positive_int(k, "k")
    if k > arr.shape[-1]:
        raise ValueError(
            f"Expected `k` <= {arr.shape[-1]} (the number of channels). Received: k={k}"
        )
    means = arr.mean(axis=(1, 2))  # (N, c)
    idx = np.argsort(-means, axis=1, kind="stable")[:, :k]
    val = np.take_along_axis(means, idx, axis=1)
    return (idx[0], val[0]) if single else (idx, val)


# --------------------------------------------------------------------------------------------
# Activation maximization
# --------------------------------------------------------------------------------------------


def max_steps(steps: int) -> int:
    """``steps``, lowered to ``$KERASVIZ_MAX_STEPS`` when that is set (for CI and tests)."""
    cap = os.environ.get(MAX_STEPS_ENV)
    if cap:
        try:
            return max(1, min(steps, int(cap)))
        except ValueError:
            raise ValueError(f"${MAX_STEPS_ENV} must be an int. Received: {cap!r}") from None
    return steps


def _opponent_basis(channels: int) -> np.ndarray:
    """A colour basis ``(C, C)``: rows are luminance and two opponent axes, scaled.

    Pixel noise is strongly correlated across R, G, B in natural images; optimising in a
    luminance / red-green / blue-yellow basis (larger step on luminance) gives the colour
    decorrelation of Olah et al. 2017 without fitting a matrix to a data set.
    """
    if channels != 3:
        return np.eye(channels, dtype=np.float32)
    basis = np.array([[1, 1, 1], [1, -1, 0], [1, 1, -2]], dtype=np.float64)
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)
    scales = np.array([1.0, 0.5, 0.5])
    return (basis * scales[:, None]).astype(np.float32)  # (C_param, C_rgb)


class ActivationMaximization:
    """Images that maximise chosen units, optimised many at a time in one compiled graph.

    The objective of each unit is its value at ``layer``: a conv channel's mean activation, a
    single neuron ``(y, x, c)``, a Dense unit, or (``layer=None``) a class logit from
    `kerasviz.inspect.logits_model` (the user's model is not changed). Each step applies random
    jitter, scale and rotation to the image with TensorFlow ops inside the compiled step
    (transformation robustness, Olah et al. 2017), adds total-variation and L2 penalties,
    and takes an Adam step; the image is optionally blurred every ``blur_every`` steps
    (Yosinski et al. 2015). With ``parameterization="pixel"`` the pixels are optimised
    directly (step ``learning_rate`` times the range width) and clipped to ``value_range``;
    with ``"fourier"`` the image is the inverse FFT of a spectrum scaled by ``1/f``, mapped
    from a luminance/opponent-colour basis to RGB and squashed into range by a sigmoid.

    Randomness (start and transforms) is keyed on ``(seed, position of the unit in the list)``,
    so results do not depend on ``batch_size``.

    Args:
        model: a Keras image model.
        layer: the layer whose units are maximised; ``None`` for class logits.
        steps: optimisation steps (capped by ``$KERASVIZ_MAX_STEPS``).
        learning_rate: Adam step: a fraction of the value range per step for "pixel", a step
            in spectrum units for "fourier".
        value_range: ``(low, high)`` of the model's inputs.
        jitter: maximum shift in pixels (0 = off).
        scale: ``(low, high)`` random zoom factors, or ``None``.
        rotate: maximum rotation in degrees (0 = off).
        tv: weight of the total-variation penalty (mean absolute neighbour difference).
        l2: weight of the L2 decay of the centred image (mean square).
        blur_sigma: Gaussian blur (pixels) applied every ``blur_every`` steps (0 = off).
        blur_every: steps between blurs.
        parameterization: ``"pixel"`` or ``"fourier"``.
        decay_power: for ``"fourier"``: spectrum scaled by ``1 / f**decay_power``.
        batch_size: units optimised together.
        seed: random seed.
        progress: deprecated; pass ``progress=`` to `maximize`.

    >>> am = ActivationMaximization(model, "conv3", steps=128)
    >>> am.maximize(range(16)).shape
    (16, 32, 32, 1)
    """

    def __init__(
        self,
        model,
        layer=None,
        steps: int = 256,
        learning_rate: float = 0.1,
        value_range: tuple[float, float] = (0.0, 1.0),
        jitter: int = 2,
        scale: tuple[float, float] | None = (0.95, 1.05),
        rotate: float = 5.0,
        tv: float = 0.05,
        l2: float = 0.0,
        blur_sigma: float = 0.0,
        blur_every: int = 4,
        parameterization: str = "pixel",
        decay_power: float = 1.0,
        batch_size: int = 16,
        seed: int = 0,
        progress: bool | None = None,
    ):

        self.model = model
        self.layer = layer
        self.steps = _checks.check_positive_int(steps, "steps")
        self.batch_size = _checks.check_positive_int(batch_size, "batch_size")
        self.blur_every = _checks.check_positive_int(blur_every, "blur_every")
        if parameterization not in ("pixel", "fourier"):
            raise ValueError(
                "Expected `parameterization` to be 'pixel' or 'fourier'. "
                f"Received: parameterization={parameterization!r}"
            )
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(
                f"Expected `value_range` (low, high) with high > low. "
                f"Received: value_range={value_range!r}"
            )
        if scale is not None:
            scale = tuple(float(s) for s in scale)
            if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
                raise ValueError(
                    f"Expected `scale` (low, high) with 0 < low <= high, or None. "
                    f"Received: scale={scale!r}"
                )
        for name, value in (
            ("jitter", jitter),
            ("rotate", rotate),
            ("tv", tv),
            ("l2", l2),
            ("blur_sigma", blur_sigma),
            ("learning_rate", learning_rate),
        ):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"Expected `{name}` >= 0. Received: {name}={value!r}")
        self.value_range = (low, high)
        self.learning_rate = float(learning_rate)
        self.jitter, self.scale, self.rotate = float(jitter), scale, float(rotate)
        self.tv, self.l2 = float(tv), float(l2)
        self.blur_sigma = float(blur_sigma)
        self.parameterization = parameterization
        self.decay_power = float(decay_power)
        self.seed = int(seed)
        if progress is not None:
            import warnings

            warnings.warn(
                "ActivationMaximization(progress=...) is deprecated: pass it to "
                "maximize(units, progress=...) instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        self._progress = True if progress is None else bool(progress)
        shape = inspect.input_shape(model)
        if len(shape) != 3 or any(s is None for s in shape):
            raise ValueError(
                f"Model {model.name!r} takes inputs {shape}; activation "
                "maximization needs a fixed (H, W, C)."
            )
        self.image_shape = tuple(int(s) for s in shape)
        if layer is None:
            self.scored = inspect.logits_model(model)
            self._unit_shape = tuple(int(s) for s in self.scored.outputs[0].shape[1:])
        else:
            self.scored = inspect.layer_model(model, layer)
            self._unit_shape = tuple(int(s) for s in self.scored.outputs[0].shape[1:])
        self._step = None
        self._values = None

    # ---------------------------------------------------------------- units

    def unit_masks(self, units) -> np.ndarray:
        """Weights ``(N, *unit_shape)`` whose dot product with the layer output is each score.

        An int is a channel (conv: mean over positions; Dense or logits: that unit); a tuple
        ``(y, x, c)`` is one neuron of a conv map.
        """
        if isinstance(units, int | np.integer | tuple):
            units = [units]
        units = list(units)
        if not units:
            raise ValueError("Expected at least one unit in `units`.")
        shape = self._unit_shape
        masks = np.zeros((len(units), *shape), np.float32)
        what = "class" if self.layer is None else f"layer {self.layer!r}"
        for i, unit in enumerate(units):
            if isinstance(unit, bool):
                raise TypeError(f"Expected units as ints or (y, x, c) tuples. Received: {unit!r}")
            if isinstance(unit, int | np.integer):
                c = int(unit)
                if not 0 <= c < shape[-1]:
                    raise ValueError(
                        f"Unit {c} is out of range for {what} with {shape[-1]} "
                        f"channels (0 to {shape[-1] - 1})."
                    )
                masks[i, ..., c] = 1.0 / math.prod(shape[:-1])
            elif isinstance(unit, Sequence) and len(unit) == len(shape):
                index = tuple(int(u) for u in unit)
                if any(not 0 <= u < s for u, s in zip(index, shape, strict=True)):
                    raise ValueError(
                        f"Neuron {index} is out of range for {what} with output shape {shape}."
                    )
                masks[(i, *index)] = 1.0
            else:
                raise TypeError(
                    f"Expected each unit to be an int (channel) or a {len(shape)}-"
                    f"tuple (neuron) for {what} of output shape {shape}. "
                    f"Received: {unit!r}"
                )
        return masks

    def unit_values(self, images, units) -> np.ndarray:
        """The (unregularised) score of each unit on its image: ``(N,)`` float32.

        >>> am.unit_values(am.maximize([0, 1]), [0, 1]).shape
        (2,)
        """
        batch, _ = inspect.check_inputs(self.model, images)
        masks = self.unit_masks(units)
        if len(masks) != len(batch):
            raise ValueError(
                f"Expected one unit per image: {len(batch)} images, {len(masks)} units."
            )
        if self._values is None:
            import tensorflow as tf

            @tf.function(reduce_retracing=False)
            def values(x, m):
                out = self.scored(x, training=False)
                return tf.reduce_sum(tf.reshape(out * m, (tf.shape(x)[0], -1)), axis=1)

            self._values = values
        (out,) = _compute.run_batched(self._values, (batch, masks), self.batch_size)
        return out.astype(np.float32)

    # ---------------------------------------------------------------- the compiled step

    def _build(self):
        import tensorflow as tf

        h, w, c = self.image_shape
        low, high = self.value_range
        basis = tf.constant(_opponent_basis(c))
        radius = 0
        fourier = self.parameterization == "fourier"
        if fourier:
            fy = np.fft.fftfreq(h)[:, None]
            fx = np.fft.rfftfreq(w)[None, :]
            freq = np.sqrt(fx * fx + fy * fy)
            spectrum_scale = 1.0 / np.maximum(freq, 1.0 / max(h, w)) ** self.decay_power
            # unit RMS over the spectrum, times sqrt(h*w) to undo irfft2d's 1/(h*w): an
            # orthonormal transform, so Adam's step moves pixels as much as in "pixel" mode
            spectrum_scale *= math.sqrt(h * w) / np.sqrt(np.mean(spectrum_scale**2))
            spectrum_scale = tf.constant(spectrum_scale[None, None], tf.float32)  # (1,1,h,w')
        sigma = self.blur_sigma
        if sigma > 0:
            radius = max(1, int(math.ceil(2 * sigma)))
            g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
            g /= g.sum()
            blur_kernel = tf.constant(
                np.tile(np.outer(g, g)[:, :, None, None], (1, 1, c, 1)), tf.float32
            )  # (k, k, C, 1) depthwise

        def to_image(params):
            if fourier:
                # params: (B, C, h, w', 2) -> complex spectrum -> (B, C, h, w) -> (B, h, w, C)
                spec = tf.complex(params[..., 0], params[..., 1]) * tf.cast(
                    spectrum_scale, tf.complex64
                )
                pix = tf.transpose(tf.signal.irfft2d(spec, fft_length=[h, w]), (0, 2, 3, 1))
                pix = tf.einsum("bhwk,kc->bhwc", pix, basis)  # decorrelated -> RGB
                return low + (high - low) * tf.sigmoid(pix)
            return params  # (B, h, w, C): the pixels themselves, kept in range by clipping

        def transform(x, rand):
            # rand: (B, 4) uniform in [-1, 1] -> angle, zoom, dx, dy for each image
            b = tf.shape(x)[0]
            angle = rand[:, 0] * (self.rotate * math.pi / 180.0)
            if self.scale is not None:
                lo_s, hi_s = self.scale
                zoom = lo_s + (hi_s - lo_s) * (rand[:, 1] + 1.0) / 2.0
            else:
                zoom = tf.ones([b])
            dx = rand[:, 2] * self.jitter
            dy = rand[:, 3] * self.jitter
            # output pixel (u, v) samples input at A @ (u - cx, v - cy) + (cx + dx, cy + dy)
            cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
            cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
            a0, a1 = cos, -sin
            b0, b1 = sin, cos
            a2 = cx + dx - a0 * cx - a1 * cy
            b2 = cy + dy - b0 * cx - b1 * cy
            zeros = tf.zeros([b])
            transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
            return tf.raw_ops.ImageProjectiveTransformV3(
                images=x,
                transforms=transforms,
                output_shape=[h, w],
                fill_value=0.0,
                interpolation="BILINEAR",
                fill_mode="REFLECT",
            )

        lr = self.learning_rate
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        do_transform = self.jitter > 0 or self.rotate > 0 or self.scale is not None
        mid = (low + high) / 2.0
        span = high - low

        @tf.function(reduce_retracing=False)
        def step(params, m1, m2, masks, rand, t):
            with tf.GradientTape() as tape:
                tape.watch(params)
                img = to_image(params)
                x = transform(img, rand) if do_transform else img
                out = self.scored(x, training=False)
                # (B, *unit_shape) * (B, *unit_shape) -> (B,)
                score = tf.reduce_sum(tf.reshape(out * masks, (tf.shape(x)[0], -1)), axis=1)
                loss = -score
                if self.tv > 0:
                    tv = tf.reduce_mean(
                        tf.abs(img[:, 1:] - img[:, :-1]), axis=[1, 2, 3]
                    ) + tf.reduce_mean(tf.abs(img[:, :, 1:] - img[:, :, :-1]), axis=[1, 2, 3])
                    loss += self.tv * tv / span
                if self.l2 > 0:
                    loss += self.l2 * tf.reduce_mean(((img - mid) / span) ** 2, axis=[1, 2, 3])
                total = tf.reduce_sum(loss)  # images are independent: per-image gradients
            grad = tape.gradient(total, params)
            tf_t = tf.cast(t, tf.float32) + 1.0
            m1 = beta1 * m1 + (1 - beta1) * grad
            m2 = beta2 * m2 + (1 - beta2) * grad * grad
            update = (m1 / (1 - beta1**tf_t)) / (tf.sqrt(m2 / (1 - beta2**tf_t)) + eps)
            # Adam descent on the loss = ascent on the score
            if fourier:
                params = params - lr * update
            else:
                params = tf.clip_by_value(params - lr * span * update, low, high)
            if sigma > 0 and not fourier:

                def blurred():
                    pad = tf.pad(
                        params, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT"
                    )
                    return tf.nn.depthwise_conv2d(pad, blur_kernel, [1, 1, 1, 1], "VALID")

                params = tf.cond(tf.equal((t + 1) % self.blur_every, 0), blurred, lambda: params)
            return params, m1, m2, score

        return step, tf.function(to_image, reduce_retracing=False)

    def _randoms(self, keys: np.ndarray, steps: int) -> np.ndarray:
        """Transform draws ``(steps, N, 4)`` in [-1, 1], keyed on ``(seed, key)`` per unit."""
        out = np.empty((steps, len(keys), 4), np.float32)
        for i, k in enumerate(keys):
            rng = np.random.default_rng([self.seed, int(k), 1])
            out[:, i] = rng.uniform(-1.0, 1.0, (steps, 4))
        return out

    def maximize(self, units, start=None, progress: bool | None = None) -> np.ndarray:
        """Optimise one image per unit.

        Args:
            units: a unit or a list of units: ints (channels, Dense units or classes) or
                ``(y, x, c)`` neurons of a conv layer. A list may mix both kinds.
            start: optional starting images ``(N, H, W, C)`` in ``value_range``, one per unit
                (``parameterization="pixel"`` only); default: grey plus seeded noise (10 % of the
                range).
            progress: a progress line (one tick per step); ``None``: shown, unless the
                deprecated ``progress=False`` was given to the constructor.

        Returns:
            Images ``(N, H, W, C)`` float32 in ``value_range``, one per unit, in order.

        Raises:
            ValueError: a unit out of range. TypeError: a unit of another type.

        >>> ActivationMaximization(model, "conv2", steps=64).maximize([0, 5]).shape
        (2, 32, 32, 1)
        """
        import tensorflow as tf

        masks = self.unit_masks(units)
        n = len(masks)
        if start is not None:
            if self.parameterization != "pixel":
                raise ValueError(
                    "`start` images need parameterization='pixel'. Received: "
                    f"parameterization={self.parameterization!r}"
                )
            start, _ = inspect.check_inputs(self.model, start, "start", self.value_range)
            if len(start) != n:
                raise ValueError(
                    f"Expected one `start` image per unit ({n}). "
                    f"Received: start.shape={start.shape}"
                )
        steps = max_steps(self.steps)
        keys = np.arange(n)
        if self._step is None:
            self._step, self._to_image = self._build()
        size = min(self.batch_size, n)
        chunks = list(_compute.padded_chunks(n, size))
        shown = self._progress if progress is None else bool(progress)
        bar = _progress.Progress(
            steps * len(chunks),
            label=f"activation maximization: {n} units, {steps} steps",
            enabled=shown,
            unit="step",
        )
        images = []
        for done, (start_i, stop) in enumerate(chunks):
            k = _compute.pad_to(keys[start_i:stop], size)
            m = tf.constant(_compute.pad_to(masks[start_i:stop], size))
            if start is None:
                params = tf.constant(self._init_params(k))
            else:
                params = tf.constant(_compute.pad_to(start[start_i:stop], size))
            rand = self._randoms(k, steps)
            m1 = tf.zeros_like(params)
            m2 = tf.zeros_like(params)
            for t in range(steps):
                params, m1, m2, _ = self._step(
                    params, m1, m2, m, tf.constant(rand[t]), tf.constant(t, tf.int32)
                )
                bar.update(done * steps + t + 1)
            images.append(np.asarray(self._to_image(params))[: stop - start_i])
        return np.concatenate(images, axis=0).astype(np.float32)

    def _init_params(self, keys: np.ndarray) -> np.ndarray:
        h, w, c = self.image_shape
        out = []
        for k in keys:
            rng = np.random.default_rng([self.seed, int(k)])
            if self.parameterization == "fourier":
                out.append(rng.normal(0, 0.01, (c, h, w // 2 + 1, 2)))
            else:
                mid, span = sum(self.value_range) / 2, self.value_range[1] - self.value_range[0]
                # 10 % noise: a ReLU unit that is silent on a flat grey image gets a gradient
                noise = rng.normal(0, 0.1, (h, w, c))
                out.append(np.clip(mid + span * noise, *self.value_range))
        return np.asarray(out, np.float32)
