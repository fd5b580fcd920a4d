"""Class activation maps: Grad-CAM, Grad-CAM++, Layer-CAM and Score-CAM.

Each method weighs the feature maps ``A`` ``(h, w, C)`` of one spatial layer (by default the
last one, found by `kerasviz.inspect.last_spatial_layer`, also inside nested backbones) and
upsamples the weighted sum to the input resolution (bilinear). ``explain_full`` returns an
`kerasviz.attribution.Explanation` with the raw map on the layer as ``grid`` ``(N, h, w)`` and
the layer's path as ``layer``.

Why our own kernels rather than tf-keras-vis 0.8.7's: tf-keras-vis rebuilds a Keras model on
every call, runs eagerly, brings the maps to numpy to weigh and upsample them with
``scipy.ndimage.zoom``, and breaks on Sequential and nested models. Measured in
``benchmarks/cam.py`` (batch 32, MobileNetV2 224 px, 2 CPU cores) it costs several forward
passes per batch, while Grad-CAM needs one forward pass and the backward pass from the score
down to the target layer only. Our step is one ``tf.function`` per explainer, traced once,
that returns the layer's maps and the prediction from a single pass of a sub-model built by
the inspection core. tf-keras-vis stays in the tests as an independent implementation the maps
must agree with.
"""

from __future__ import annotations

import numpy as np

from kerasviz import _checks, _compute, _progress, inspect
from kerasviz.attribution._base import Explainer
from kerasviz.attribution._result import Explanation

PLACEMENTS = ("field", "stretch")  # where grid cells go on the image (see GradCAM)


def _size(tf, model, x):
    """``(H, W)`` to upsample to: the model's input size, or ``x``'s for an any-size model."""
    size = inspect.input_shape(model)[:2]
    return tf.shape(x)[1:3] if None in size else size


def _upsample(tf, grid, size, align_corners=False, placement=None):
    """Bilinear ``(B, h, w) -> (B, H, W)``.

    With ``placement`` (the ``(H, h), (W, w)`` weights of
    `kerasviz.plot.placement.placement_weights`) each cell sits at the centre of its receptive
    field; otherwise the grid is stretched over the image:
    By default grid cells are centred on the pixels they cover (half-pixel centres, as
    ``tf.image.resize``). ``align_corners=True`` maps the corner cells' centres onto the corner
    pixels, as ``scipy.ndimage.zoom(order=1)`` does in tf-keras-vis.
    """
    if placement is not None:
        rows, cols = placement
        grid = tf.cast(grid, tf.float32)  # a mixed-precision model's grid is float16
        return tf.einsum("Yh,nhw,Xw->nYX", tf.constant(rows), grid, tf.constant(cols))
    if align_corners:
        return tf.raw_ops.ResizeBilinear(
            images=grid[..., None], size=size, align_corners=True, half_pixel_centers=False
        )[..., 0]
    return tf.image.resize(grid[..., None], size, method="bilinear")[..., 0]


class _LayerCAM(Explainer):
    """Shared machinery: the target layer, the one-pass sub-model and the batched step."""

    method = ""

    def __init__(
        self,
        model,
        layer=None,
        output: str = "logit",
        batch_size: int = 32,
        align_corners: bool = False,
        strategy=None,
        placement: str = "field",
        score=None,
    ):
        super().__init__(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )
        self.align_corners = bool(align_corners)
        self.placement = _checks.check_choice(placement, "placement", PLACEMENTS)
        # The default: the last spatial layer before the output the score reads.
        if layer is None:
            view = self.scorer.read_view
            self.layer = inspect.find_layer(view, inspect.last_spatial_layer(view, True))
        else:
            self.layer = inspect.find_layer(model, layer)
        self.layer_path = inspect.layer_path(model, self.layer)
        # The scored view (logits or probabilities) replays the user's layers, so the same
        # layer object is found in it; one pass gives [A, scores].
        try:
            self._net = inspect.submodel(self.scored, [self.layer])
        except KeyError:  # the logits view computes the head itself: not a feature layer
            raise ValueError(
                "Expected `layer` with a spatial output (N, h, w, C). Received: layer="
                f"{self.layer_path!r}, the model's output head"
            ) from None
        shape = tuple(self._net.outputs[0].shape)
        if len(shape) != 4 or any(s is not None and s < 2 for s in shape[1:3]):
            raise ValueError(
                "Expected `layer` with a spatial output (N, h, w, C), h and w > 1. Received: "
                f"layer={self.layer_path!r} with output shape {shape}"
            )
        if not inspect.reaches(self._net.outputs[1], self._net.outputs[0]):
            raise ValueError(
                f"Expected `layer` on the way to the explained score. Received: layer="
                f"{self.layer_path!r}, which the score of {self.model.name!r} does not read"
            )
        self.grid_shape = shape[1:3]
        self._placed = self._placement_weights()
        self._step = None

    def _placement_weights(self):
        """The receptive-field placement of the grid, or ``None`` to stretch it: when asked
        (``placement="stretch"`` or ``align_corners``), for an any-size model (its fields
        depend on the image size: `create` builds it per size), and for layers whose fields
        the graph does not give (`kerasviz.inspect.receptive_field` has no rule for them)."""
        from kerasviz.plot.placement import placement_weights

        size = inspect.input_shape(self.model)[:2]
        if self.placement == "stretch" or self.align_corners or None in size:
            return None
        try:
            field = inspect.receptive_field(self.model, self.layer)
        except ValueError:
            return None
        if tuple(field.output_size) != tuple(self.grid_shape):
            return None
        return placement_weights(field)

    def _weights_and_maps(self, tf, acts, grads):
        """``(B, h, w, C), (B, h, w, C) -> (B, h, w)`` before the final ReLU."""
        raise NotImplementedError

    def _gradient_step(self):
        if self._step is None:
            tf = _compute.tf()
            net = self._net

            @tf.function(reduce_retracing=False)
            def step(x, t):
                with tf.GradientTape() as tape:
                    acts, scores = net(x, training=False)  # (B, h, w, C), (B, K)
                    score = tf.gather(scores, t, axis=1, batch_dims=1)  # (B,)
                # Only the backward pass from the score down to the layer is built.
                grads = tape.gradient(score, acts)
                if grads is None:  # the score ignores the layer (found while tracing)
                    self._unread = True
                    grads = tf.zeros_like(acts)
                grid = tf.nn.relu(self._weights_and_maps(tf, acts, grads))  # (B, h, w)
                size = _size(tf, self.model, x)
                return _upsample(tf, grid, size, self.align_corners, self._placed), grid

            self._step = self.distributed(step)
        return self._step

    _unread = False

    def _run(self, batch, targets, progress: bool = False):
        """``(maps (N, H, W), grids (N, h, w))`` of a checked batch."""
        result = _compute.run_batched(
            self._gradient_step(),
            (batch, targets),
            self.batch_size,
            progress=progress,
            label=self.method,
        )
        if self._unread:
            raise ValueError(
                f"Expected `layer` on the way to the explained score. Received: layer="
                f"{self.layer_path!r}, which the score does not depend on (no gradient)"
            )
        return result

    def explain_full(self, inputs, targets=None, progress: bool = False) -> Explanation:
        """Maps at input resolution ``(N, H, W)`` with the raw ``grid`` ``(N, h, w)`` and ``layer``.

        The grid is the map on the layer, before upsampling (float32, batch first).

        >>> result = GradCAM(model).explain_full(images)
        >>> result.explanations.shape, result.grid.shape, result.layer
        ((8, 64, 64), (8, 8, 8), 'conv3')
        """
        batch, targets, _ = self.prepare(inputs, targets)
        maps, grids = self._run(batch, targets, progress)
        return Explanation(
            maps.astype(np.float32),
            targets,
            method=self.method,
            grid=grids.astype(np.float32),
            layer=self.layer_path,
        )

    def explain_with_grid(self, inputs, targets=None) -> tuple[np.ndarray, np.ndarray]:
        """Deprecated: use ``explain_full(inputs, targets)`` and its ``grid``.

        Returns the maps ``(N, H, W)`` and the raw grids ``(N, h, w)`` (``(H, W)`` and
        ``(h, w)`` for one image).
        """
        return self._maps_and_grid(inputs, targets, False, "explain_with_grid")


class GradCAM(_LayerCAM):
    """Grad-CAM: ``ReLU(sum_c mean_ij(d score / d A_ijc) * A_c)``, upsampled.

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        layer: the layer whose maps are weighed (a name, path, index or layer); ``None`` for the
            last spatial layer.
        output: ``"logit"`` (default, the paper's pre-softmax score) or ``"probability"``.
        batch_size: images per compiled step.
        align_corners: upsample with the corner cells on the corner pixels (tf-keras-vis'
            convention) instead of half-pixel centres; implies ``placement="stretch"``.
        strategy: as `kerasviz.attribution.Scorer`.
        placement: ``"field"`` (default): each grid cell at the centre of its receptive field,
            computed from the graph (with "valid" padding the grid covers only the part of the
            image its cells see; with "same" padding this equals stretching);
            ``"stretch"``: the grid stretched over the whole image (tf-keras-vis, the papers).

    >>> GradCAM(model).explain(images).shape
    (8, 64, 64)
    """

    method = "gradcam"

    def _weights_and_maps(self, tf, acts, grads):
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        return tf.reduce_sum(weights * acts, axis=-1)


class GradCAMPlusPlus(_LayerCAM):
    """Grad-CAM++: channel weights from positive gradients, weighted per position.

    Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for Deep Convolutional
    Networks", WACV 2018, with the exponential-score closed form of the higher derivatives.
    The paper's ``exp(score)`` factor multiplies each image's whole map by one positive number
    (it cancels in the per-position weights); we leave it out, since it overflows for large
    logits, so maps are proportional per image to the paper's (and to tf-keras-vis').

    Args: as `GradCAM`.

    >>> GradCAMPlusPlus(model).explain(images).shape
    (8, 64, 64)
    """

    method = "gradcam++"

    def _weights_and_maps(self, tf, acts, grads):
        g2 = grads * grads
        g3 = g2 * grads
        total = tf.reduce_sum(acts, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        denom = 2.0 * g2 + g3 * total
        alphas = tf.math.divide_no_nan(g2, denom)  # (B, h, w, C)
        norm = tf.reduce_sum(alphas, axis=(1, 2), keepdims=True)
        alphas = tf.math.divide_no_nan(alphas, norm)
        weights = tf.reduce_sum(alphas * tf.nn.relu(grads), axis=(1, 2), keepdims=True)
        return tf.reduce_sum(weights * acts, axis=-1)


class LayerCAM(_LayerCAM):
    """Layer-CAM: ``ReLU(sum_c ReLU(d score / d A_c) * A_c)``, a weight per position.

    Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization",
    IEEE TIP 2021. Works on early layers too, where Grad-CAM's averaged weights blur.

    Args: as `GradCAM`.

    >>> LayerCAM(model, layer="conv2").explain(images).shape
    (8, 64, 64)
    """

    method = "layercam"

    def _weights_and_maps(self, tf, acts, grads):
        return tf.reduce_sum(tf.nn.relu(grads) * acts, axis=-1)


class ScoreCAM(_LayerCAM):
    """Score-CAM: each channel weighted by the target score of the image masked by that channel.

    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", CVPR workshops 2020. Each channel's map is upsampled (bilinear), scaled to
    [0, 1] and multiplied into the image; the score of that masked image is the channel's
    weight; the map is ``ReLU(sum_c w_c A_c)``. With ``max_channels`` only each image's
    channels with the largest spatial standard deviation are used (the "Faster Score-CAM"
    option, tf-keras-vis' ``max_N``), chosen per image.

    Costs one forward pass per (image, channel) pair: the pairs are streamed through one
    compiled step in chunks of ``batch_size``.

    Args:
        model: a Keras image classifier.
        layer: as `GradCAM`.
        max_channels: ``None`` for every channel, or the most kept per image (a layer with
            fewer channels uses them all).
        output: ``"probability"`` (default, the paper's) or ``"logit"``.
        batch_size: masked images per forward pass.
        align_corners: as `GradCAM` (for the masks and the map).
        strategy: as `GradCAM`.
        placement: as `GradCAM` (for the masks and the map).

    >>> ScoreCAM(model, max_channels=16).explain(images).shape
    (8, 64, 64)
    """

    method = "scorecam"

    def __init__(
        self,
        model,
        layer=None,
        max_channels: int | None = None,
        output: str = "probability",
        batch_size: int = 32,
        align_corners: bool = False,
        strategy=None,
        placement: str = "field",
        score=None,
    ):
        super().__init__(
            model,
            layer=layer,
            output=output,
            batch_size=batch_size,
            align_corners=align_corners,
            strategy=strategy,
            placement=placement,
            score=score,
        )
        channels = int(self._net.outputs[0].shape[-1])
        if max_channels is not None:
            # An upper bound: one setting serves every layer, and a narrow layer uses them all.
            max_channels = min(_checks.check_positive_int(max_channels, "max_channels"), channels)
        self.max_channels = max_channels
        self._acts_fn = None
        self._mask_step = None

    def _masked_score_step(self):
        if self._mask_step is None:
            tf = _compute.tf()
            scored = self.scored

            @tf.function(reduce_retracing=False)
            def step(x, grid, t):  # (B, H, W, C), (B, h, w), (B,)
                size = _size(tf, self.model, x)
                mask = _upsample(tf, grid, size, self.align_corners, self._placed)
                low = tf.reduce_min(mask, axis=(1, 2), keepdims=True)
                high = tf.reduce_max(mask, axis=(1, 2), keepdims=True)
                mask = (mask - low) / (high - low + 1e-7)  # [0, 1] per channel
                scores = scored(x * mask[..., None], training=False)
                return tf.gather(scores, t, axis=1, batch_dims=1)

            self._mask_step = self.distributed(step)
        return self._mask_step

    def _run(self, batch, targets, progress: bool = False):
        tf = _compute.tf()
        if self._acts_fn is None:
            self._acts_fn = self.distributed(_compute.compiled_forward(self._net))
        acts, _ = _compute.run_batched(self._acts_fn, (batch,), self.batch_size)  # (N, h, w, C)
        n, channels = acts.shape[0], acts.shape[-1]
        keep = self.max_channels or channels
        if keep < channels:
            spread = acts.std(axis=(1, 2))  # (N, C)
            chosen = np.argsort(-spread, axis=1, kind="stable")[:, :keep]
        else:
            chosen = np.broadcast_to(np.arange(channels), (n, channels))
        step = self._masked_score_step()
        total = n * keep
        size = min(self.batch_size, total)
        weights = np.zeros((n, keep), np.float32)
        bar = _progress.Progress(total, label=self.method, enabled=progress)
        for start, stop in _compute.padded_chunks(total, size):
            rows = np.arange(start, stop)
            image, k = np.divmod(rows, keep)
            grid = acts[image, :, :, chosen[image, k]]  # (R, h, w)
            out = step(
                _compute.pad_to(batch[image], size),
                _compute.pad_to(grid, size),
                _compute.pad_to(targets[image], size),
            )
            weights[image, k] = np.asarray(out)[: stop - start]
            bar.update(stop)
        kept = np.take_along_axis(acts, chosen[:, None, None, :], axis=-1)  # (N, h, w, keep)
        grids = np.maximum(np.einsum("nhwk,nk->nhw", kept, weights), 0.0).astype(np.float32)
        size = batch.shape[1:3]
        maps = _upsample(tf, tf.constant(grids), size, self.align_corners, self._placed)
        maps = np.asarray(maps)
        return maps, grids
