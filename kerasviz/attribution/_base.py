"""What every explainer shares: the `Scorer` (the scored model view, its compiled batched
forward pass and target resolution) and the `Explainer` base class with its result contract.
"""

from __future__ import annotations

import warnings

import numpy as np

from kerasviz import _checks, _compute, inspect

OUTPUTS = ("probability", "logit")


class Scorer:
    """The model as every perturbation or gradient method scores it.

    One object answers what explainers, faithfulness curves, the sanity check, the shortcut
    finder and dataset jobs all need from a classifier: the scored view (probabilities or
    logits), the number of classes, a compiled forward pass run in padded batches (traced once)
    on one device or across the replicas of a ``tf.distribute`` strategy, and the targets of a
    batch (``None`` = each image's top class).

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        output: ``"probability"`` scores the model's own output; ``"logit"`` scores the
            pre-softmax logits (a view built by `kerasviz.inspect.logits_model`; the user's model
            is untouched). A model whose head is already linear gives the same in both.
        batch_size: images per forward pass; bounds memory. With several replicas each
            compiled step still sees ``batch_size`` rows in all, ``batch_size / R`` per replica
            (rounded up); raise it with the number of devices.
        strategy: a ``tf.distribute.Strategy`` whose replicas share each batch (see
            `kerasviz._compute.distribute`): ``tf.distribute.MirroredStrategy()`` for the GPUs of
            one machine, ``tf.distribute.TPUStrategy(resolver)`` for a TPU. ``None``: the
            strategy whose ``scope()`` is active when the scorer is built, else the default
            (one device). Build or load the model inside ``strategy.scope()`` so that every
            replica holds a copy of its weights; results are in input order and equal the
            single-device ones.

    >>> scorer = Scorer(model, output="logit")
    >>> scorer.predict(images).shape, scorer.targets(images, None).shape
    ((8, 10), (8,))
    """

    def __init__(self, model, output: str = "probability", batch_size: int = 32, strategy=None):
        import keras

        if not isinstance(model, keras.Model):
            raise TypeError(f"Expected `model` to be a keras.Model. Received: {type(model)!r}")
        if inspect.is_subclassed(model):
            if output == "logit":  # its softmax is inside its call: nothing to strip
                warnings.warn(
                    f"Model {model.name!r} is subclassed: a softmax inside its call cannot be "
                    "removed, so its outputs are scored as they are (output='probability').",
                    UserWarning,
                    stacklevel=3,
                )
                output = "probability"
            model = inspect.graph_view(model)  # forward passes and input gradients only
        self.model = model
        self.output = _checks.check_choice(output, "output", OUTPUTS)
        self.batch_size = _checks.check_positive_int(batch_size, "batch_size")
        self.scored = (
            inspect.logits_model(model) if output == "logit" else inspect.flat_model(model)
        )
        shape = tuple(self.scored.outputs[0].shape)
        if len(shape) != 2:  # one flattened pixel-class would be explained: a silent guess
            raise ValueError(
                f"Expected a classifier whose output is class scores (N, K). Received: model "
                f"{model.name!r} with output shape {shape} (a dense, per-position output); "
                "kerasviz's explainers score one class per image."
            )
        self.num_classes = inspect.num_outputs(self.scored)
        self.strategy = _compute.resolve_strategy(strategy)
        self._forward = None

    def distributed(self, fn, split=None, rows: int | None = None):
        """``fn``, a one-batch step, run across the replicas of `strategy`.

        See `kerasviz._compute.distribute`; ``rows`` defaults to ``batch_size``. With the default
        strategy ``fn`` itself is returned.
        """
        rows = self.batch_size if rows is None else rows
        return _compute.distribute(fn, self.strategy, split=split, rows=rows)

    def check_inputs(self, inputs, name: str = "inputs") -> tuple[np.ndarray, bool]:
        """``inputs`` checked against the model: float32 ``(N, H, W, C)`` and whether single."""
        return inspect.check_inputs(self.model, inputs, name=name)

    def predict(self, batch: np.ndarray, progress: bool = False) -> np.ndarray:
        """Scores ``(N, K)`` of the scored view, compiled and batched (float32 ``batch``)."""
        if self._forward is None:
            self._forward = self.distributed(_compute.compiled_forward(self.scored))
        return _compute.run_batched(
            self._forward, (batch,), self.batch_size, progress=progress, label="forward"
        )[0]

    def targets(self, batch: np.ndarray, targets, name: str = "targets") -> np.ndarray:
        """int32 ``(N,)`` classes: ``targets`` checked, or each image's top class for ``None``."""
        resolved = _checks.check_targets(targets, batch.shape[0], self.num_classes, name)
        if resolved is None:
            resolved = np.argmax(self.predict(batch), axis=-1).astype(np.int32)
        return resolved

    def score(self, batch: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``(N,)`` the score of each image's target class."""
        scores = self.predict(batch)
        return scores[np.arange(batch.shape[0]), np.asarray(targets)]


class ReadsScorer:
    """Reads the model, output, scored view, classes, strategy and batch size of ``scorer``.

    For the classes that score through a `Scorer` (explainers, `kerasviz.metrics.Faithfulness`)
    so that those settings live in one place.
    """

    scorer: Scorer

    model = property(lambda self: self.scorer.model)
    output = property(lambda self: self.scorer.output)
    scored = property(lambda self: self.scorer.scored)
    num_classes = property(lambda self: self.scorer.num_classes)
    strategy = property(lambda self: self.scorer.strategy)

    @property
    def batch_size(self) -> int:
        """Rows per compiled step; may be changed between calls."""
        return self.scorer.batch_size

    @batch_size.setter
    def batch_size(self, value) -> None:
        self.scorer.batch_size = _checks.check_positive_int(value, "batch_size")


class Explainer(ReadsScorer):
    """Base class: settings in ``__init__``, data in ``explain(inputs, targets)``.

    Every explainer answers two calls:

    * ``explain(inputs, targets=None, progress=False)``: float32 maps ``(N, H, W)``
      (``(H, W)`` for one image), higher = more important for the target;
    * ``explain_full(inputs, targets=None, progress=False)``: an
      `kerasviz.attribution.Explanation` holding the maps, the explained targets and what the
      method computed on the way (always batch first).

    Nothing about a call is kept on the explainer: two calls never share results.

    Args:
        model, output, batch_size, strategy: as `Scorer`.
    """

    def __init__(self, model, output: str = "probability", batch_size: int = 32, strategy=None):
        self.scorer = Scorer(model, output=output, batch_size=batch_size, strategy=strategy)

    def distributed(self, fn, split=None, rows: int | None = None):
        """See `Scorer.distributed`."""
        return self.scorer.distributed(fn, split=split, rows=rows)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Scores ``(N, K)`` of the scored view, compiled and batched."""
        return self.scorer.predict(batch)

    def prepare(self, inputs, targets) -> tuple[np.ndarray, np.ndarray, bool]:
        """Validate ``inputs`` and resolve ``targets`` (``None`` = each image's top class).

        Returns ``(batch, targets, single)`` with ``batch`` float32 ``(N, H, W, C)`` and
        ``targets`` int32 ``(N,)``.
        """
        batch, single = self.scorer.check_inputs(inputs)
        return batch, self.scorer.targets(batch, targets), single

    def explain_full(self, inputs, targets=None, progress: bool = False):
        """The maps with what the method computed: an `Explanation` (batch first)."""
        raise NotImplementedError(f"{type(self).__name__} does not define explain_full")

    def explain(self, inputs, targets=None, progress: bool = False, **options) -> np.ndarray:
        """Maps ``(N, H, W)`` float32 (``(H, W)`` for one image); see `explain_full`.

        ``options`` are the method's own call arguments (LIME's ``segments=``).
        """
        single = np.ndim(inputs) == 3
        maps = self.explain_full(inputs, targets, progress=progress, **options).explanations
        return _checks.restore_single(maps, single)

    def _maps_and_grid(self, inputs, targets, progress: bool, old: str):
        """``(maps, grid)`` for the deprecated ``old`` call (one image: no batch axis)."""
        warnings.warn(
            f"{type(self).__name__}.{old} is deprecated: use explain_full(inputs, targets), "
            "whose `explanations` and `grid` are the maps and the grid.",
            DeprecationWarning,
            stacklevel=3,
        )
        single = np.ndim(inputs) == 3
        result = self.explain_full(inputs, targets, progress=progress)
        return (
            _checks.restore_single(result.explanations, single),
            _checks.restore_single(result.grid, single),
        )
