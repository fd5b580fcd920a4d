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
        score: what is explained (`kerasviz.scores`): ``None`` is `~kerasviz.scores.Category`,
            a class of an ``(N, K)`` output; `~kerasviz.scores.Output` picks one output of
            several, `~kerasviz.scores.Regression` a value, `~kerasviz.scores.Region` a class
            over a mask of a dense output; any callable ``score(outputs, targets) -> (N,)``.
            The scored view returns score vectors ``(N, T)`` (``T`` targets: classes, values,
            masks) computed inside the compiled pass; ``output="logit"`` strips a final
            softmax or sigmoid of the output the score reads (not of several read together).

    >>> scorer = Scorer(model, output="logit")
    >>> scorer.predict(images).shape, scorer.targets(images, None).shape
    ((8, 10), (8,))
    """

    def __init__(
        self,
        model,
        output: str = "probability",
        batch_size: int = 32,
        strategy=None,
        score=None,
    ):
        import keras

        from kerasviz import scores

        if not isinstance(model, keras.Model):
            hint = (
                "; wrap a function with kerasviz.inspect.callable_model(fn, input_shape)"
                if callable(model)
                else ""
            )
            raise TypeError(
                f"Expected `model` to be a keras.Model. Received: {type(model)!r}{hint}"
            )
        self.score_fn = scores.as_score(score)
        self.output = _checks.check_choice(output, "output", OUTPUTS)
        self.batch_size = _checks.check_positive_int(batch_size, "batch_size")
        user = model
        if inspect.is_subclassed(model):
            if output == "logit":  # its softmax is inside its call: nothing to strip
                warnings.warn(
                    f"Model {model.name!r} is subclassed: a softmax inside its call cannot be "
                    "removed, so its outputs are scored as they are (output='probability').",
                    UserWarning,
                    stacklevel=3,
                )
                output = self.output = "probability"
            model = inspect.graph_view(model)  # forward passes and input gradients only
        self.model = model
        self.scored = self._scored_view(user, model)
        self.num_classes = inspect.num_outputs(self.scored)
        self.strategy = _compute.resolve_strategy(strategy)
        self._forward = None

    def _scored_view(self, user, model):
        """images -> score vectors ``(N, T)``: the output the score reads (its logits where
        asked), followed by the score's head (none for a classifier's own classes)."""
        score = self.score_fn
        entries = inspect.output_entries(model)
        if score.reads_all and len(entries) > 1:  # a callable reading every output
            self.output = "probability"  # several outputs are read as the model gives them
            score.bind([shape for _, shape in entries], user.name)
            self.read_view = model
            outputs = list(model.outputs)
            head = _score_head(score)
            return inspect.graph_model(
                model.inputs, head(outputs), f"{user.name}_scored", owner=model
            )
        index = 0 if score.reads_all else score.select(entries, user.name)
        score.bind(entries[index][1], user.name)
        single = inspect.output_model(model, index)
        self.read_view = single  # the user's layers up to the read output
        logit = self.output == "logit"
        base = inspect.logits_model(single) if logit else inspect.flat_model(single)
        if score.identity:
            return base
        head = _score_head(score)
        return inspect.graph_model(
            base.inputs, head(base.outputs[0]), f"{user.name}_scored", owner=model
        )

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
            vector = (
                self.predict(batch)
                if self.score_fn.needs_vector()
                else np.zeros((batch.shape[0], self.num_classes), np.float32)
            )
            resolved = self.default_targets(vector)
        return resolved

    def default_targets(self, vector: np.ndarray) -> np.ndarray:
        """int32 ``(N,)``: the score's targets for ``targets=None`` from score vectors
        ``(N, T)`` (the top class for a classifier)."""
        return np.asarray(self.score_fn.default_targets(vector), np.int32)

    def score(self, batch: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``(N,)`` the score of each image's target class."""
        scores = self.predict(batch)
        return scores[np.arange(batch.shape[0]), np.asarray(targets)]


def _score_head(score):
    """A Keras layer computing ``score.vector`` (a new layer object per view)."""
    import keras

    class ScoreHead(keras.layers.Layer):
        def call(self, outputs):
            return score.vector(outputs)

    return ScoreHead(name="kerasviz_score")


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
    score_fn = property(lambda self: self.scorer.score_fn)
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
        model, output, batch_size, strategy, score: as `Scorer`.
    """

    def __init__(
        self,
        model,
        output: str = "probability",
        batch_size: int = 32,
        strategy=None,
        score=None,
    ):
        self.scorer = Scorer(
            model, output=output, batch_size=batch_size, strategy=strategy, score=score
        )

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
