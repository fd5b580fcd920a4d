"""Rewired views for other modules: ReLUs that follow a backward rule, with linear twins.

Guided backpropagation and the deconvnet change what a ReLU passes back, not what it computes.
`relu_rule_model` replays a view of the model (`kerasviz.inspect.replay`) with every ReLU
replaced by a layer that computes the same forward value and applies the rule on the way back.
The user's model is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kerasviz import _checks
from kerasviz.inspect._model import _keras, find_layer, iter_layers
from kerasviz.inspect._replay import flat_model, graph_model, replay

RULES = ("guided", "deconvnet")
_RELU_NAMES = ("relu", "relu6")


def _is_relu(fn) -> bool:
    """True for the ``relu`` and ``relu6`` activation functions (by name)."""
    name = getattr(fn, "__name__", None) or getattr(fn, "name", None)
    return name in _RELU_NAMES


def _rule_layer_class():
    """A Keras layer applying ``fn`` forward and a ReLU rule backward (built lazily)."""
    import tensorflow as tf

    keras = _keras()

    class _ReluRule(keras.layers.Layer):
        def __init__(self, fn, rule, **kwargs):
            super().__init__(**kwargs)
            self.fn = fn
            self.rule = rule

        def call(self, x):
            fn, rule = self.fn, self.rule

            @tf.custom_gradient
            def apply(z):
                y = fn(z)

                def backward(dy):
                    up = tf.nn.relu(dy)  # both rules pass only positive gradients back
                    if rule == "deconvnet":
                        return up  # ... and ignore where the forward unit was off
                    with tf.GradientTape() as tape:  # guided: also the unit's own mask
                        tape.watch(z)
                        again = fn(z)
                    return tape.gradient(again, z, output_gradients=up)

                return y, backward

            return apply(x)

        def compute_output_shape(self, input_shape):
            return input_shape

    return _ReluRule


@dataclass
class RuleModel:
    """A copy of a model's graph whose ReLUs follow a backward rule (see `relu_rule_model`).

    Attributes:
        network: a Functional ``keras.Model`` from a fresh input to the scores ``(N, K)``, or
            to ``layer``'s output ``(N, h, w, C)`` for a unit projection.
        units: ``K`` (classes) or ``C`` (the layer's channels): the valid targets.
        layer: the projected layer, or ``None``.
        twins: ``(twin, original)`` pairs: linear copies of the layers whose ReLU was fused
            (``Conv2D(..., activation="relu")``); `refresh` copies the originals' weights.
    """

    network: Any
    units: int
    layer: Any = None
    twins: list[tuple[Any, Any]] = field(default_factory=list)

    def refresh(self) -> None:
        """Copy the user's current weights into the linear twins (call before each use)."""
        for twin, original in self.twins:
            twin.set_weights(original.get_weights())


def relu_rule_model(model, rule: str, layer=None, view=None) -> RuleModel:
    """A rewired copy of ``model``'s graph whose ReLUs apply ``rule`` on the way back.

    Every ReLU (a ``ReLU`` layer, an ``Activation("relu")``/``"relu6"`` or a layer with a fused
    ``activation="relu"``/``"relu6"``) computes its usual forward value; backwards it passes
    only positive gradients (``"deconvnet"``), and only at units that were on (``"guided"``).
    A layer with a fused ReLU is computed by a linear twin (same config, the original's weights,
    refreshed by `RuleModel.refresh`) followed by the rule. Other activations keep their
    gradient. The user's layers are called as they are (weights shared); the model is unchanged.

    Args:
        model: a Keras model (Functional, Sequential or nested); ``layer`` is looked up in it.
        rule: ``"guided"`` (guided backpropagation) or ``"deconvnet"``.
        layer: ``None`` for the scores; a layer reference (see `find_layer`) whose output
            ``(N, h, w, C)`` the network returns instead (Zeiler and Fergus's unit projection).
        view: the view of ``model`` to rewire (for example `logits_model` of it); ``None`` for
            `flat_model`.

    Returns:
        A `RuleModel`.

    Raises:
        ValueError: an unknown ``rule``, or a ``layer`` without a spatial output.
        KeyError: an unknown ``layer`` (the closest names are listed).

    >>> relu_rule_model(model, "guided").network.outputs[0].shape
    (None, 10)
    """
    keras = _keras()
    rule = _checks.check_choice(rule, "rule", RULES)
    target = None if layer is None else find_layer(model, layer)
    view = flat_model(model) if view is None else view
    rule_cls = _rule_layer_class()
    twins: list[tuple[Any, Any]] = []
    overrides = {}
    for _, lay in iter_layers(view):
        if isinstance(lay, keras.layers.ReLU) or (
            isinstance(lay, keras.layers.Activation) and _is_relu(lay.activation)
        ):
            fn = lay.call if isinstance(lay, keras.layers.ReLU) else lay.activation
            overrides[id(lay)] = _wrap(rule_cls(fn, rule), None)
        elif _is_relu(getattr(lay, "activation", None)) and lay.built:
            config = lay.get_config()
            config["activation"] = "linear"
            config["name"] = f"{lay.name}_linear_twin"
            twin = type(lay).from_config(config)
            twins.append((twin, lay))
            overrides[id(lay)] = _wrap(rule_cls(lay.activation, rule), twin)
    inputs, prediction, walk = replay(view, overrides)
    result = RuleModel(network=None, units=0, layer=target, twins=twins)
    result.refresh()  # the twins were built by the replay; give them the user's weights
    if target is None:
        result.network = graph_model(inputs, prediction, f"{model.name}_{rule}", owner=model)
        result.units = int(prediction.shape[-1])
        return result
    tap = walk.output_of(target)
    if tap is None or len(tap.shape) != 4:
        shape = None if tap is None else tuple(tap.shape)
        raise ValueError(
            f"Expected `layer` with a spatial (N, h, w, C) output. Received: "
            f"layer={target.name!r} with output shape {shape}"
        )
    result.network = graph_model(inputs, tap, f"{model.name}_{rule}_unit", owner=model)
    result.units = int(tap.shape[-1])
    return result


def _wrap(rule_layer, twin):
    """The override called instead of a layer: the rule, after the linear twin if any."""
    if twin is None:
        return lambda x, *args, **kwargs: rule_layer(x)
    return lambda x, *args, **kwargs: rule_layer(twin(x))
