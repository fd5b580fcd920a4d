"""tf-keras-vis as an independent reference: the model copy it can use.

Imported by the tests that compare kerasviz's maps against tf-keras-vis (``from _tfkv import
tf_keras_vis_model``; ``tests/`` is on ``sys.path`` through its ``conftest.py``).
"""

from __future__ import annotations


def tf_keras_vis_model(model, output: str = "logit"):
    """A standalone Functional copy of ``model``'s scored view that tf-keras-vis can use.

    tf-keras-vis reads ``layer.output``, which on a Sequential model, a nested backbone or one
    of kerasviz's replayed views belongs to another graph ("not connected to inputs"), and its
    ``ReplaceToLinear`` fails on Sequential models. This clones the flat (``"probability"``) or
    logits (``"logit"``) view of `kerasviz.inspect` into fresh layers with copied weights, so
    every layer's ``.output`` belongs to the copy and layer names are the user's. Give
    tf-keras-vis' ``Scorecam`` the logits view: it applies a softmax itself.

    >>> from tf_keras_vis.gradcam import Gradcam
    >>> Gradcam(tf_keras_vis_model(model))  # doctest: +SKIP
    """
    from kerasviz import _checks, inspect

    _checks.check_choice(output, "output", ("probability", "logit"))
    view = inspect.logits_model(model) if output == "logit" else inspect.flat_model(model)
    return inspect.standalone_copy(view)
