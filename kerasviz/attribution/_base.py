"""What every explainer shares: the scored model view, input checks and target resolution."""

from __future__ import annotations

import numpy as np

from kerasviz import _compute, inspect

OUTPUTS = ("probability", "logit")


class Explainer:
    """Base class: settings in ``__init__``, data in ``explain(inputs, targets)``.

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
            strategy whose ``scope()`` is active when the explainer is built, else the default
            (one device). Build or load the model inside ``strategy.scope()`` so that every
            replica holds a copy of its weights; results are in input order and equal the
            single-device ones.
    """

    def __init__(self, model, output: str = "probability", batch_size: int = 32,
                 strategy=None):
        import keras

        if not isinstance(model, keras.Model):
            raise TypeError(f"Expected `model` to be a keras.Model. Received: {type(model)!r}")
        if output not in OUTPUTS:
            raise ValueError(f"Expected `output` in {OUTPUTS}. Received: output={output!r}")
        self.model = model
        self.output = output
        self.batch_size = inspect.check_positive_int(batch_size, "batch_size")
        self.scored = inspect.logits_model(model) if output == "logit" else inspect.flat_model(
            model)
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

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Scores ``(N, K)`` of the scored view, compiled and batched."""
        if self._forward is None:
            self._forward = self.distributed(_compute.compiled_forward(self.scored))
        return _compute.run_batched(self._forward, (batch,), self.batch_size)[0]

    def prepare(self, inputs, targets) -> tuple[np.ndarray, np.ndarray, bool]:
        """Validate ``inputs`` and resolve ``targets`` (``None`` = each image's top class).

        Returns ``(batch, targets, single)`` with ``batch`` float32 ``(N, H, W, C)`` and
        ``targets`` int32 ``(N,)``.
        """
        batch, single = inspect.check_images(inputs, self.model)
        resolved = inspect.check_targets(targets, batch.shape[0], self.num_classes)
        if resolved is None:
            resolved = np.argmax(self.predict(batch), axis=-1).astype(np.int32)
        return batch, resolved, single
