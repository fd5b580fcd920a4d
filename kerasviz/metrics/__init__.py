"""How much to trust an explanation: faithfulness, localisation and sanity checks.

Three families of figures, all numpy in, numpy out:

* **Faithfulness** (`Faithfulness`, `deletion`, `insertion`; Petsiuk et al., "RISE", BMVC
  2018): remove (or add) pixels in the order the explanation ranks them and watch the target
  score. A faithful map makes the score fall fast under deletion (small area) and rise fast
  under insertion (large area). The model is scored through the shared
  `kerasviz.attribution.Scorer`, on one device or the replicas of a ``tf.distribute`` strategy.
* **Localisation against ground truth** (`pointing_game`, `energy_in_mask`, `top_k_iou`): does
  the map point at the object a mask marks?
* **Sanity check** (`randomization_check`; Adebayo et al., "Sanity Checks for Saliency Maps",
  NeurIPS 2018): randomise the model's weights from the top layer down, on a copy, and measure
  how much the explanation changes. A map that does not change does not explain the model.

`random_map` and `edge_map` are baselines that ignore the model; any method worth using must
beat them.

Modules: ``faithfulness`` (curves), ``localisation`` (masks), ``sanity`` (randomisation,
`spearman`, `ssim`), ``baselines``.

>>> curve = Faithfulness(model, steps=16).deletion(images, maps)
>>> curve.scores.shape, pointing_game(maps, masks).shape
((8, 17), (8,))
"""

from kerasviz.attribution._base import OUTPUTS
from kerasviz.metrics.baselines import edge_map, random_map
from kerasviz.metrics.faithfulness import FILLS, Curve, Faithfulness, deletion, insertion
from kerasviz.metrics.localisation import energy_in_mask, pointing_game, top_k_iou
from kerasviz.metrics.sanity import SanityResult, randomization_check, spearman, ssim

__all__ = [
    "FILLS",
    "OUTPUTS",
    "Curve",
    "Faithfulness",
    "SanityResult",
    "deletion",
    "edge_map",
    "energy_in_mask",
    "insertion",
    "pointing_game",
    "random_map",
    "randomization_check",
    "spearman",
    "ssim",
    "top_k_iou",
]
