"""The model-inspection core: the single package that knows Keras graph internals.

Everything else in kerasviz asks this package for layers, sub-models, views and copies of a
model; numpy argument checks live in `kerasviz._checks`.

Three kinds of model are supported, in any nesting:

* Functional models (``keras.Model(inputs, outputs)``);
* Sequential models, built with an ``Input`` or built by a first call / ``build()``;
* models used as layers inside other models (a ``keras.applications`` backbone inside an outer
  Functional model). A layer of such a backbone is not connected to the outer model's inputs,
  so ``keras.Model(outer.inputs, inner.get_layer(name).output)`` fails. We *replay* the graph
  instead: every Functional or Sequential model found on the way is walked layer by layer on the
  outer tensors, so each inner layer gets an output tensor that is connected to the outer input.

Subclassed models (a custom ``call``) have no graph to walk: `graph_view` wraps a built one in
a Functional model that calls it as one layer, and `replay` calls it through a tapping layer
that wraps the ``call`` of every layer it tracks (attributes, lists, nested blocks) while it
is traced, so their outputs become tensors of the replayed graph (taps, sub-models, the layer
table) and the calls they made its call graph (receptive fields). The wrappers are removed
after each call, also when it fails.

Modules:

* ``_model``: what a model is (kind, layers by name, path, index or object; input and output);
* ``_replay``: replaying the graph on fresh inputs (`replay`, `Replay` and its ``on_call``
  hook, `submodel`, `flat_model`);
* ``_views``: the logits view, the layer table, the default CAM and feature layers;
* ``_surgery``: rewired views for other modules (ReLU backward rules, linear twins);
* ``_copies``: standalone copies of a model and re-initialised weights;
* ``_fields``: exact receptive fields of spatial layers from the call graph.
"""

import warnings

from kerasviz import _checks
from kerasviz.inspect._copies import reinitialize, standalone_copy, weighted_layers
from kerasviz.inspect._fields import ReceptiveField, receptive_field
from kerasviz.inspect._model import (
    CONV_TYPES,
    LayerRef,
    as_refs,
    callable_model,
    check_inputs,
    find_layer,
    graph_operations,
    graph_view,
    input_shape,
    is_graph_model,
    is_raw_op,
    is_subclassed,
    iter_layers,
    layer_path,
    num_outputs,
    output_entries,
    output_model,
)
from kerasviz.inspect._replay import (
    REDUCTIONS,
    Call,
    Replay,
    Tap,
    flat_model,
    fresh_input,
    graph_model,
    layer_model,
    reaches,
    reduced_model,
    replay,
    sized_model,
    submodel,
)
from kerasviz.inspect._surgery import RuleModel, relu_rule_model
from kerasviz.inspect._views import (
    INFERENCE_IDENTITY,
    LayerInfo,
    feature_layer,
    head_activation,
    last_spatial_layer,
    layer_table,
    logits_model,
)

__all__ = [
    "INFERENCE_IDENTITY",
    "REDUCTIONS",
    "CONV_TYPES",
    "callable_model",
    "output_entries",
    "output_model",
    "Call",
    "LayerInfo",
    "LayerRef",
    "ReceptiveField",
    "Replay",
    "RuleModel",
    "Tap",
    "as_refs",
    "check_inputs",
    "feature_layer",
    "find_layer",
    "flat_model",
    "fresh_input",
    "graph_model",
    "reaches",
    "graph_operations",
    "graph_view",
    "head_activation",
    "input_shape",
    "is_graph_model",
    "is_raw_op",
    "is_subclassed",
    "iter_layers",
    "last_spatial_layer",
    "layer_model",
    "layer_path",
    "layer_table",
    "logits_model",
    "num_outputs",
    "receptive_field",
    "reduced_model",
    "reinitialize",
    "relu_rule_model",
    "replay",
    "sized_model",
    "standalone_copy",
    "submodel",
    "weighted_layers",
]

# Argument checks that lived here before they moved to `kerasviz._checks` (kept one release).
_MOVED = ("real_array", "as_batch", "restore_single", "check_targets", "check_positive_int", "pair")


def check_images(inputs, model=None, name: str = "inputs", value_range=None):
    """Deprecated: use `check_inputs` (with a model) or `kerasviz._checks.check_images`."""
    warnings.warn(
        "kerasviz.inspect.check_images is deprecated; use "
        "kerasviz.inspect.check_inputs(model, inputs) or "
        "kerasviz._checks.check_images(inputs)",
        DeprecationWarning,
        stacklevel=2,
    )
    if model is None:
        return _checks.check_images(inputs, name=name, value_range=value_range)
    return check_inputs(model, inputs, name=name, value_range=value_range)


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"kerasviz.inspect.{name} is deprecated; use kerasviz._checks.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_checks, name)
    raise AttributeError(f"module 'kerasviz.inspect' has no attribute {name!r}")
