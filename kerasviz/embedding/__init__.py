"""Feature vectors: extraction, nearest neighbours, clusters, 2-D maps, projector export.

The "final feature vector" of a CNN is the input of its classifier (AlexNet's fc7). Images that
differ pixel by pixel but show the same thing lie close together in that space; nearest
neighbours, clusters and 2-D maps make this visible, and the TensorBoard embedding projector
lets a person explore it interactively.

* `FeatureExtractor` / `features` (``extraction``): feature vectors at any layer for numpy
  arrays or a ``tf.data.Dataset``, streamed in fixed-size batches through one compiled forward
  pass, so memory grows with the number of vectors, not with the images.
* `nearest`, `kmeans`, `purity`, `project` (``space``): analysis with scikit-learn.
* `save_features` (``saving``): ``features.npy`` and ``neighbours.csv``, written atomically.
* `export_projector` (``projector``), `ProjectorCallback` (``callback``): a log directory
  TensorBoard's projector opens (checkpoint, ``metadata.tsv``, sprite,
  ``projector_config.pbtxt``), written atomically.

``import kerasviz.embedding`` loads neither Keras nor TensorFlow: they come with the first
extractor, and `ProjectorCallback` (a ``keras.callbacks.Callback``) is loaded on first use.

>>> vectors = features(model, images)            # (N, D) float32
>>> idx, dist = nearest(vectors, [0, 5], k=5)    # (2, 5) neighbours of images 0 and 5
"""

from kerasviz.embedding.extraction import REDUCTIONS, FeatureExtractor, features
from kerasviz.embedding.projector import (
    CONFIG_NAME,
    METADATA_NAME,
    SPRITE_LIMIT,
    SPRITE_NAME,
    export_projector,
    is_export_file,
    sprite_layout,
)
from kerasviz.embedding.saving import FEATURES_NAME, NEIGHBOURS_NAME, save_features
from kerasviz.embedding.space import METRICS, PROJECTIONS, kmeans, nearest, project, purity

__all__ = [
    "CONFIG_NAME",
    "FEATURES_NAME",
    "METADATA_NAME",
    "METRICS",
    "NEIGHBOURS_NAME",
    "PROJECTIONS",
    "REDUCTIONS",
    "SPRITE_LIMIT",
    "SPRITE_NAME",
    "FeatureExtractor",
    "ProjectorCallback",
    "export_projector",
    "features",
    "is_export_file",
    "kmeans",
    "nearest",
    "project",
    "purity",
    "save_features",
    "sprite_layout",
]


def __getattr__(name):
    if name == "ProjectorCallback":  # subclasses keras.callbacks.Callback: imports Keras
        from kerasviz.embedding.callback import ProjectorCallback

        return ProjectorCallback
    raise AttributeError(f"module 'kerasviz.embedding' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "ProjectorCallback"])
