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
        batch_size: images per forward pass; bounds memory.
    """

    def __init__(self, model, output: str = "probability", batch_size: int = 32):
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
        self._forward = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Scores ``(N, K)`` of the scored view, compiled and batched."""
        if self._forward is None:
            self._forward = _compute.compiled_forward(self.scored)
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
