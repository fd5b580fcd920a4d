"""Feature maps, their most active channels, and activation maximization.

`activations` reads many layers' outputs in one forward pass of one sub-model
(`kerasviz.inspect.submodel`). `ActivationMaximization` optimises inputs so that chosen units
(conv channels, single neurons, class logits) fire strongly: regularised gradient ascent
(Erhan et al. 2009; Simonyan et al. 2014; Yosinski et al. 2015; Olah et al., "Feature
Visualization", Distill 2017), with all units of a batch optimised together in one compiled step.
`top_patches` (`TopPatchFinder`) finds, in one pass over a data set, the images and positions
where each unit fires most and cuts them out on the unit's exact receptive field, and
`project_patches` projects each of those activations with the deconvnet or guided rule (Zeiler
and Fergus, ECCV 2014, Fig. 2).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kerasviz import _checks, _compute, _progress, inspect
from kerasviz.inspect import _fields

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


# --------------------------------------------------------------------------------------------
# What units respond to in real data: top patches on exact receptive fields (Zeiler & Fergus)
# --------------------------------------------------------------------------------------------

RULES = ("deconvnet", "guided")


@dataclass
class TopPatches:
    """The strongest activations of some units of a layer over a data set, with their patches.

    Entries are sorted by value, strongest first. Arrays are unit-major: entry ``[u, j]`` is the
    ``j``-th strongest activation of unit ``units[u]``.

    Attributes:
        layer: the layer's path.
        units: int64 ``(U,)`` the channels.
        indices: int64 ``(U, k)`` position of the image in the data (0-based, in data order).
        positions: int64 ``(U, k, 2)`` ``(row, col)`` of the activation in the layer's map.
        values: float32 ``(U, k)`` the activations.
        patches: float32 ``(U, k, fh, fw, C)`` the activations' receptive fields cut from their
            images (`kerasviz.inspect._fields.ReceptiveField.crops`); a border field is padded
            with ``fill`` where it leaves the image.
        valid: bool ``(U, k, fh, fw)``: ``True`` on the pixels inside the image (the clipped
            window), ``False`` on the padding.
        boxes: int64 ``(U, k, 4)`` ``(top, left, height, width)`` of the clipped window in the
            image.
        field: the layer's `ReceptiveField`.
        images_seen: how many images the data had.
        projections: float32 ``(U, k, fh, fw, C)`` the deconvnet (or guided backprop) projection
            of each activation onto its patch (`project_patches`), or ``None``.
        rule: the projection's rule, or ``None``.
    """

    layer: str
    units: np.ndarray
    indices: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    patches: np.ndarray
    valid: np.ndarray
    boxes: np.ndarray
    field: Any
    images_seen: int
    projections: np.ndarray | None = None
    rule: str | None = None


def _spatial_output(model, layer) -> tuple[str, Any, Any]:
    """``(path, layer object, view)`` of a layer whose output is a spatial map; ``view`` is a
    Functional model from the input to that output."""
    target = inspect.find_layer(model, layer)
    path = layer if isinstance(layer, str) else inspect.layer_path(model, target)
    sub = inspect.submodel(model, [target])
    shape = tuple(sub.outputs[0].shape)
    if len(shape) != 4:
        raise ValueError(
            f"Expected `layer` with a spatial (N, h, w, C) output. Received: layer={path!r} "
            f"with output shape {shape}"
        )
    view = inspect.graph_model(sub.inputs[0], sub.outputs[0], f"{model.name}_top", owner=model)
    return path, target, view


def _check_units(units, channels: int, path: str) -> np.ndarray:
    if units is None:
        return np.arange(channels, dtype=np.int64)
    values = np.atleast_1d(np.asarray(units))
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(
            f"Expected `units` to be an int, a sequence of ints or None. Received: units={units!r}"
        )
    bad = values[(values < 0) | (values >= channels)]
    if bad.size:
        raise ValueError(
            f"Expected `units` in [0, {channels - 1}] (layer {path!r} has {channels} "
            f"channels). Received: units={units!r}"
        )
    return values.astype(np.int64)


def _image_batches(model, data, batch_size: int):
    """Yield float32 ``(B, H, W, C)`` batches of an array or a ``tf.data.Dataset`` (elements
    images or ``(images, ...)`` tuples, batched or not), each checked against the model."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                "`data` is an infinite tf.data.Dataset (a `.repeat()` without count?); take a "
                "finite part with `.take(n)`."
            )
        spec = data.element_spec
        if isinstance(spec, tuple) and spec and isinstance(spec[0], tf.TensorSpec):
            data, spec = data.map(lambda *parts: parts[0]), spec[0]
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank not in (3, 4):
            raise TypeError(
                "Expected a tf.data.Dataset whose elements are images (H, W, C), batches "
                f"(N, H, W, C) or tuples starting with them. Received: element_spec={spec}"
            )
        if spec.shape.rank == 3:
            data = data.batch(batch_size)
        for batch in data.prefetch(1):
            yield inspect.check_inputs(model, batch.numpy(), name="data")[0]
        return
    if isinstance(data, str | bytes | dict):
        raise TypeError(
            "Expected `data` to be images (N, H, W, C) or a tf.data.Dataset. "
            f"Received: data of type {type(data).__name__}"
        )
    arr = np.asarray(data)
    if arr.ndim == 4 and arr.shape[0] == 0:
        return
    for start in range(0, arr.shape[0] if arr.ndim == 4 else 1, batch_size):
        chunk = arr[start : start + batch_size] if arr.ndim == 4 else arr
        yield inspect.check_inputs(model, chunk, name="data")[0]


def _top_step(view, units: np.ndarray, per_image: int):
    """Compiled ``images -> (values, flat positions)`` ``(B, U, per_image)``: the strongest
    activations of each unit in each image, computed next to the forward pass."""
    tf = _compute.tf()
    chosen = tf.constant(units, tf.int32)
    every = len(units) == view.outputs[0].shape[-1] and np.array_equal(units, np.arange(len(units)))

    @tf.function(input_signature=[tf.TensorSpec(view.inputs[0].shape, tf.float32)])
    def step(x):
        maps = view(x, training=False)  # (B, h, w, C)
        if not every:
            maps = tf.gather(maps, chosen, axis=-1)  # (B, h, w, U)
        shape = tf.shape(maps)
        if per_image == 1:
            flat = tf.reshape(maps, (shape[0], -1, shape[3]))  # (B, h*w, U), no copy
            return tf.reduce_max(flat, 1)[..., None], tf.argmax(flat, 1, tf.int32)[..., None]
        flat = tf.reshape(tf.transpose(maps, (0, 3, 1, 2)), (shape[0], shape[3], -1))  # (B,U,hw)
        top = tf.math.top_k(flat, k=per_image, sorted=True)
        return top.values, top.indices

    return step


class TopPatchFinder:
    """Finds the top activations of units of one layer in data sets; built once, called often.

    The compiled pass and the receptive field are made once in ``__init__``; every `find` streams
    its data through them (see `top_patches`, the one-off form, for what is computed).

    Args:
        model, layer, units, k, batch_size, distinct_images, fill: as `top_patches`.

    Attributes:
        layer: the layer's path.
        units: int64 ``(U,)`` the channels.
        field: the layer's `kerasviz.inspect._fields.ReceptiveField`.

    >>> finder = TopPatchFinder(model, "conv2", units=[0, 5], k=9)
    >>> finder.find(images).values.shape
    (2, 9)
    """

    def __init__(
        self,
        model,
        layer,
        units=None,
        k: int = 9,
        batch_size: int = 64,
        distinct_images: bool = True,
        fill: float = 0.0,
    ):
        self.model = model
        self.k = _checks.check_positive_int(k, "k")
        self.batch_size = _checks.check_positive_int(batch_size, "batch_size")
        self.fill = float(fill)
        self.layer, target, view = _spatial_output(model, layer)
        self.size = tuple(view.outputs[0].shape[1:3])
        self.units = _check_units(units, view.outputs[0].shape[-1], self.layer)
        self.field = _fields.receptive_field(model, target)
        self.per_image = 1 if distinct_images else min(self.k, self.size[0] * self.size[1])
        self._step = _top_step(view, self.units, self.per_image)

    def find(self, data, projection: str | None = None, progress: bool = False) -> TopPatches:
        """The top activations of ``data`` (see `top_patches`)."""
        if projection is not None:
            projection = _checks.check_choice(projection, "projection", RULES)
        k, per_image, fill = self.k, self.per_image, self.fill
        fh, fw = self.field.size
        n_units = len(self.units)
        width = self.size[1]
        # k slots per unit, unordered while streaming; sorted at the end
        values = np.full((n_units, k), -np.inf, np.float32)
        indices = np.full((n_units, k), -1, np.int64)
        flat = np.zeros((n_units, k), np.int64)
        patches = None
        valid = np.zeros((n_units, k, fh, fw), bool)
        unit_axis = np.arange(n_units)[:, None]
        seen = 0
        bar = _progress.Progress(None, label="top patches", enabled=progress)
        for batch in _image_batches(self.model, data, self.batch_size):
            got, where = self._step(batch)
            got = np.asarray(got).transpose(1, 0, 2).reshape(n_units, -1)  # (U, B * per_image)
            where = np.asarray(where).transpose(1, 0, 2).reshape(n_units, -1)
            if patches is None:
                patches = np.full((n_units, k, fh, fw, batch.shape[-1]), fill, np.float32)
            # candidates: the slots first (ties keep the earlier image), then the batch's entries
            order = np.argsort(-np.concatenate([values, got], 1), axis=1, kind="stable")[:, :k]
            entering = np.sort(np.where(order >= k, order - k, np.iinfo(np.int64).max), axis=1)
            kept = np.zeros((n_units, k), bool)
            ku, kj = np.nonzero(order < k)
            kept[ku, order[ku, kj]] = True
            freed = np.argsort(kept, axis=1, kind="stable")  # free slots first, per unit
            count = (order >= k).sum(axis=1)  # entries entering, = slots freed, per unit
            us, js = np.nonzero(np.arange(k)[None, :] < count[:, None])
            if len(us):
                source = entering[us, js]  # index into the batch's candidates
                slot = freed[us, js]
                values[us, slot] = got[us, source]
                indices[us, slot] = seen + source // per_image
                flat[us, slot] = where[us, source]
                rows, cols = np.divmod(flat[us, slot], width)
                cut, inside = self.field.crops(
                    batch, rows, cols, fill=fill, index=source // per_image
                )
                patches[us, slot], valid[us, slot] = cut, inside
            seen += batch.shape[0]
            bar.update(seen)
        bar.update(seen, finalize=True)
        if seen == 0:
            raise ValueError("`data` is empty: expected at least one image.")
        keep = min(k, seen * per_image)
        order = np.lexsort((indices, -values), axis=1)[:, :keep]  # by value, then image
        values, indices, flat = (np.take_along_axis(a, order, 1) for a in (values, indices, flat))
        rows, cols = np.divmod(flat, width)
        field = self.field
        boxes = np.stack(
            [
                field.rows[rows, 0],
                field.cols[cols, 0],
                field.rows[rows, 1] - field.rows[rows, 0],
                field.cols[cols, 1] - field.cols[cols, 0],
            ],
            axis=-1,
        )
        result = TopPatches(
            layer=self.layer,
            units=self.units,
            indices=indices,
            positions=np.stack([rows, cols], axis=-1),
            values=values,
            patches=patches[unit_axis, order],
            valid=valid[unit_axis, order],
            boxes=boxes,
            field=field,
            images_seen=seen,
        )
        if projection is not None:
            result.projections = project_patches(
                self.model, result, rule=projection, batch_size=self.batch_size
            )
            result.rule = projection
        return result


def top_patches(
    model,
    layer,
    data,
    units=None,
    k: int = 9,
    batch_size: int = 64,
    distinct_images: bool = True,
    fill: float = 0.0,
    projection: str | None = None,
    progress: bool = False,
) -> TopPatches:
    """The ``k`` strongest activations of each unit over a data set, cut out on their receptive
    fields: Zeiler and Fergus's top-9 patches (ECCV 2014, Fig. 2).

    ``data`` is read once, batch by batch, through one compiled pass up to ``layer`` whose graph
    also finds each image's strongest positions per unit, so only ``(B, U)`` numbers per batch
    come back. A running top-k per unit keeps the best entries and the patches of those entries
    (cut when they enter): memory depends on ``U * k`` and the patch size, not on the data size,
    and a ``tf.data.Dataset`` is never read twice. Ties keep the earlier image. To search
    several data sets with one compiled pass, build a `TopPatchFinder` once.

    Each patch is the exact receptive field of its position (`kerasviz.inspect._fields
    .receptive_field`): all patches of a layer have the field's full size ``(fh, fw)``; a field
    that leaves the image is padded with ``fill`` and marked in ``valid``.

    Args:
        model: a Keras image model (Functional, Sequential or nested).
        layer: a layer reference with a spatial output ``(N, h, w, C)``.
        data: images ``(N, H, W, C)`` (or one ``(H, W, C)``) in the model's range, or a
            ``tf.data.Dataset`` of images, of batches of them, or of tuples starting with them
            (``(images, labels)``).
        units: an int, a sequence of channel indices, or ``None`` for every channel.
        k: entries per unit (fewer when the data has fewer).
        batch_size: images per compiled pass (a dataset of single images is batched by it;
            a batched dataset keeps its batches).
        distinct_images: ``True`` (the paper's figure): at most one entry per image and unit,
            at the image's strongest position; ``False``: the ``k`` strongest positions
            anywhere, several possibly from one image.
        fill: the value of the padding of border patches.
        projection: ``None``, ``"deconvnet"`` or ``"guided"``: also project each entry onto its
            patch (`project_patches`).
        progress: show a progress line.

    Returns:
        A `TopPatches`.

    Raises:
        ValueError: a layer whose output is not spatial or whose receptive field is unknown;
            ``units`` out of range; ``k`` < 1; empty or infinite ``data``; images of the wrong
            shape.
        KeyError: an unknown layer.
        TypeError: ``data`` or ``units`` of another type.

    >>> top = top_patches(model, "conv2", images, units=[0, 5], k=9)
    >>> top.patches.shape  # 2 units x 9 entries x a 7 x 7 receptive field of RGB pixels
    (2, 9, 7, 7, 3)
    """
    if projection is not None:
        projection = _checks.check_choice(projection, "projection", RULES)
    finder = TopPatchFinder(
        model,
        layer,
        units=units,
        k=k,
        batch_size=batch_size,
        distinct_images=distinct_images,
        fill=fill,
    )
    return finder.find(data, projection=projection, progress=progress)


def project_patches(model, top: TopPatches, rule: str = "deconvnet", batch_size: int = 64):
    """The deconvnet (or guided backprop) projection of each top activation onto its patch.

    Zeiler and Fergus project one activation back to pixel space: the gradient of that single
    activation, with every ReLU passing only positive signal back (``"deconvnet"``; the rewired
    graph of `kerasviz.attribution.Deconvnet`, `kerasviz.inspect.relu_rule_model`) or only
    positive signal at units that were on (``"guided"``). An activation depends only on the
    pixels of its receptive field, so the projection is computed on the patch itself, placed at
    its place in an otherwise empty image: the result equals the projection computed on the
    whole image, restricted to the patch, and the images need not be read again.

    Args:
        model: the model `top_patches` ran on.
        top: a `TopPatches`.
        rule: ``"deconvnet"`` or ``"guided"``.
        batch_size: entries per gradient step.

    Returns:
        float32 ``(U, k, fh, fw, C)`` like ``top.patches`` (0 on the padding).

    >>> project_patches(model, top_patches(model, "conv2", images, units=[0, 5])).shape
    (2, 9, 7, 7, 3)
    """
    rule = _checks.check_choice(rule, "rule", RULES)
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    tf = _compute.tf()
    rules = inspect.relu_rule_model(model, rule, layer=top.layer)
    rules.refresh()
    network = rules.network
    field = top.field
    height, width = field.input_size
    n_units, k = top.values.shape
    fh, fw = field.size
    channels = top.patches.shape[-1]
    # place each patch in an empty image: (U * k, H, W, C) built per chunk
    entries = [(u, j) for u in range(n_units) for j in range(k)]

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, height, width, channels), tf.float32),
            tf.TensorSpec((None, 2), tf.int32),
            tf.TensorSpec((None,), tf.int32),
        ]
    )
    def step(x, where, unit):
        with tf.GradientTape() as tape:
            tape.watch(x)
            maps = network(x, training=False)  # (B, h, w, C_all)
            index = tf.concat([tf.range(tf.shape(x)[0])[:, None], where, unit[:, None]], 1)
            total = tf.reduce_sum(tf.gather_nd(maps, index))  # sum of B independent entries
        return tape.gradient(total, x)

    out = np.zeros((n_units, k, fh, fw, channels), np.float32)
    for start in range(0, len(entries), batch_size):
        chunk = entries[start : start + batch_size]
        canvas = np.zeros((len(chunk), height, width, channels), np.float32)
        where = np.zeros((len(chunk), 2), np.int32)
        unit = np.zeros(len(chunk), np.int32)
        for i, (u, j) in enumerate(chunk):
            r, c = top.positions[u, j]
            (t0, _), (l0, _) = field.full_rows[r], field.full_cols[c]
            (r0, r1), (c0, c1) = field.rows[r], field.cols[c]
            canvas[i, r0:r1, c0:c1] = top.patches[u, j, r0 - t0 : r1 - t0, c0 - l0 : c1 - l0]
            where[i], unit[i] = (r, c), top.units[u]
        grads = np.asarray(step(tf.constant(canvas), tf.constant(where), tf.constant(unit)))
        cut, inside = field.crops(grads, where[:, 0], where[:, 1], fill=0.0)
        for i, (u, j) in enumerate(chunk):
            out[u, j] = np.where(inside[i, ..., None], cut[i], 0.0)
    return out
