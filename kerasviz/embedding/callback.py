"""Exports feature vectors to the projector during training: a Keras callback.

This is the one part of `kerasviz.embedding` that imports Keras when loaded (it subclasses
``keras.callbacks.Callback``); `kerasviz.embedding` loads it on first use of
`ProjectorCallback`.
"""

from __future__ import annotations

from pathlib import Path

import keras

from kerasviz import _checks
from kerasviz.embedding.extraction import FeatureExtractor
from kerasviz.embedding.projector import _metadata_rows, export_projector


class ProjectorCallback(keras.callbacks.Callback):
    """Exports feature vectors of fixed inputs to the projector during training.

    The built-in ``keras.callbacks.TensorBoard`` lost its ``embeddings_*`` options in TF2 /
    Keras 3; this brings them back. Each export is a run folder ``log_dir/epoch_NNNN`` (the
    epoch count after which it was taken), so several exports can be compared in the
    projector's run menu: every ``every`` epochs when given, and always after the last epoch.

    Args:
        log_dir: the parent folder of the exports (may be the TensorBoard callback's folder).
        inputs: the images to embed, ``(N, H, W, C)``.
        labels: metadata for `export_projector` (one value per image, or a mapping).
        layer: the feature layer (default: the input of the last ``Dense`` layer).
        reduce: reduction of spatial maps (see `FeatureExtractor`).
        every: export every this many epochs; ``None`` only at the end of training.
        sprite: use ``inputs`` as sprite thumbnails.
        batch_size: images per forward pass.
        overwrite: replace exports left by an earlier run; otherwise training refuses to start
            when ``log_dir`` already holds ``epoch_*`` exports.

    >>> model.fit(x, y, epochs=10, callbacks=[ProjectorCallback("logs", x[:500], y[:500])])
    """

    def __init__(
        self,
        log_dir,
        inputs,
        labels=None,
        layer=None,
        reduce: str = "flatten",
        every: int | None = None,
        sprite: bool = True,
        batch_size: int = 64,
        overwrite: bool = False,
    ):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.inputs, _ = _checks.check_images(inputs, name="inputs")
        n = self.inputs.shape[0]
        if labels is not None:
            _metadata_rows(labels, n)  # fail now, not after the training
        self.labels = labels
        self.layer = layer
        self.reduce = reduce
        self.every = None if every is None else _checks.check_positive_int(every, "every")
        self.sprite = sprite
        self.batch_size = batch_size
        self.overwrite = overwrite
        self.exported: list[Path] = []
        self._extractor = None
        self._epoch = 0
        self._last_export = None

    def on_train_begin(self, logs=None):
        if self.log_dir.exists() and not self.overwrite:
            existing = sorted(p.name for p in self.log_dir.glob("epoch_*"))
            if existing:
                raise FileExistsError(
                    f"{self.log_dir} already holds projector exports "
                    f"{existing[:3]}; pass overwrite=True or another log_dir."
                )
        self._extractor = FeatureExtractor(
            self.model, layer=self.layer, reduce=self.reduce, batch_size=self.batch_size
        )

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        if self.every is not None and self._epoch % self.every == 0:
            self._export()

    def on_train_end(self, logs=None):
        if self._last_export != self._epoch:
            self._export()

    def _export(self):
        vectors = self._extractor.extract(self.inputs)
        path = export_projector(
            self.log_dir / f"epoch_{self._epoch:04d}",
            vectors,
            labels=self.labels,
            images=self.inputs if self.sprite else None,
            overwrite=True,
        )
        self._last_export = self._epoch
        self.exported.append(path)
