"""Replaying a model's graph on fresh symbolic inputs, layer by layer, nested models included."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kerasviz.inspect._model import (
    _check_model,
    _keras,
    _sequential_ready,
    as_refs,
    find_layer,
    graph_view,
    is_graph_model,
    is_subclassed,
    iter_layers,
    tracked_layers,
    wrapped_model,
)


@dataclass
class Tap:
    """One layer call seen while replaying: where it is, what it is, what it gave."""

    path: str
    layer: Any
    output: Any


@dataclass
class Call:
    """One call recorded by a `Replay`: handed to its ``on_call`` hook.

    Attributes:
        path: the layer's path (``"backbone/block_1_expand"``).
        layer: the layer, operation or nested model that was called.
        args: the positional arguments (symbolic tensors of the replayed graph).
        kwargs: the keyword arguments.
        output: what the call gave.
        nested: ``True`` for a nested Functional or Sequential model, whose own layers are
            reported before it.
    """

    path: str
    layer: Any
    args: tuple
    kwargs: dict
    output: Any
    nested: bool


class Replay:
    """Walks a (possibly nested) model on new symbolic inputs and records every layer output.

    Args:
        overrides: ``{id(layer): callable}``: call the callable instead of that layer.
        on_call: called with a `Call` after every call, in execution order: how callers
            record more than the outputs (inputs, arguments) without subclassing.
        inner_calls: also report the calls inside a subclassed model to ``on_call`` (their
            arguments are tensors of its traced call, its inputs and tapped outputs replaced by
            this graph's); the model's own call is then reported as ``nested``. Otherwise it
            is one opaque call.
    """

    def __init__(
        self,
        overrides: dict[int, Any] | None = None,
        on_call: Callable[[Call], None] | None = None,
        inner_calls: bool = False,
    ):
        self.overrides = overrides or {}
        self.on_call = on_call
        self.inner_calls = inner_calls
        self.taps: list[Tap] = []
        self._seen: set[int] = set()

    def run(self, model, inputs, prefix: str = ""):
        """Replay ``model`` on ``inputs`` (symbolic tensors); returns its outputs."""
        keras = _keras()
        if isinstance(model, keras.Sequential):
            x = inputs
            for layer in model.layers:
                x = self._call(layer, (x,), {}, prefix)
            return x

        def operation_fn(op):
            return lambda *args, **kwargs: self._call(op, args, kwargs, prefix)

        return model._run_through_graph(inputs, operation_fn=operation_fn)

    def _call(self, layer, args, kwargs, prefix):
        path = prefix + layer.name
        nested = False
        if id(layer) in self.overrides:
            out = self.overrides[id(layer)](*args, **kwargs)
        elif is_graph_model(layer):
            _sequential_ready(layer)
            inner_in = args[0] if len(args) == 1 else list(args)
            out = self.run(layer, inner_in, prefix=path + "/")
            nested = True
        elif is_subclassed(layer) or wrapped_model(layer) is not None:
            op, layer = layer, wrapped_model(layer) or layer
            path = prefix + layer.name
            out, taps, trace = tapped_call(layer, args, kwargs, self.overrides)
            for sub_path, sub, tensor in taps:  # its inner layers, in the order it called them
                if id(sub) not in self._seen:
                    self._seen.add(id(sub))
                    self.taps.append(Tap(f"{path}/{sub_path}", sub, tensor))
            if self.inner_calls and self.on_call is not None:
                self._report_inner(path, layer, args, out, taps, trace)
                nested = True
            # one opaque call to a call-graph walker (its inner calls are not reported)
            if op is not layer:  # a view's tapping call: the graph expects (taps, outputs)
                self._record(layer, path, args, kwargs, out, nested)
                return [t for _, _, t in taps], out
        else:
            out = layer(*args, **kwargs)
        self._record(layer, path, args, kwargs, out, nested)
        return out

    def _report_inner(self, path, model, args, out, taps, trace) -> None:
        """Report the traced inner calls of subclassed ``model`` to ``on_call``."""
        keras = _keras()
        same: dict[int, Any] = {}  # id(tensor of the traced call) -> tensor of this graph
        for traced, outer in zip(
            keras.tree.flatten(trace["inputs"]), keras.tree.flatten(list(args)), strict=False
        ):
            same[id(traced)] = outer
        traced_out = keras.tree.flatten(trace["outputs"])
        for traced, outer in zip(traced_out, keras.tree.flatten(out), strict=False):
            same[id(traced)] = outer
        first = {id(sub): tensor for _, sub, tensor in taps}
        done: set[int] = set()
        paths = {id(sub): sub_path for sub_path, sub in tracked_layers(model)}

        def swap(x):
            return same.get(id(x), x)

        for sub, a, k, result, holds in trace["calls"]:
            if id(sub) in first and id(sub) not in done and not holds:
                same[id(result)] = first[id(sub)]
                done.add(id(sub))
            self.on_call(
                Call(
                    f"{path}/{paths.get(id(sub), sub.name)}",
                    sub,
                    keras.tree.map_structure(swap, tuple(a)),
                    keras.tree.map_structure(swap, dict(k)),
                    swap(result),
                    holds,
                )
            )

    def _record(self, layer, path, args, kwargs, out, nested) -> None:
        if id(layer) not in self._seen:  # a shared layer keeps its first output
            self._seen.add(id(layer))
            self.taps.append(Tap(path, layer, out))
        if self.on_call is not None:
            self.on_call(Call(path, layer, args, kwargs, out, nested))

    def output_of(self, layer):
        for tap in self.taps:
            if tap.layer is layer:
                return tap.output
        return None


def _tap_class():
    """The Keras layer that calls a subclassed model and returns its inner layers' outputs."""
    global _TapCall
    if _TapCall is not None:
        return _TapCall
    keras = _keras()

    class TapCall(keras.layers.Layer):
        """Calls ``model`` with its tracked layers' ``call`` wrapped so that each first output
        is kept; returns ``(outputs of the layers it called, in order, model outputs)``.

        The wrappers are installed only for the duration of each call and removed afterwards,
        also when the call fails; the model is not changed. The layers are the ones the
        first (symbolic) call reached, so every call returns the same structure."""

        def __init__(self, model, overrides=None, **kwargs):
            super().__init__(name=f"kerasviz_tap_{model.name}", **kwargs)
            self.kerasviz_wraps = model
            self.order: list[tuple[str, Any]] | None = None
            object.__setattr__(self, "overrides", dict(overrides or {}))

        def call(self, *args):
            entries = tracked_layers(self.kerasviz_wraps)
            seen: dict[int, Any] = {}
            calls: list[tuple] = []  # (layer, args, kwargs, output, holds layers), as done
            installed = []

            def wrap(layer, original):
                replace = self.overrides.get(id(layer))

                def call(*a, **k):
                    out = original(*a, **k) if replace is None else replace(*a, **k)
                    if id(layer) not in seen and not isinstance(out, list | tuple | dict):
                        seen[id(layer)] = out
                    if self.order is None:
                        holds = bool(layer._flatten_layers(include_self=False))
                        calls.append((layer, a, k, out, holds))
                    return out

                return call

            try:
                for _, layer in entries:
                    if "call" not in vars(layer):
                        object.__setattr__(layer, "call", wrap(layer, layer.call))
                        installed.append(layer)
                outputs = self.kerasviz_wraps(*args)
            finally:
                for layer in installed:
                    object.__delattr__(layer, "call")
            if self.order is None:  # the first call fixes which layers are returned
                order = [(path, layer) for path, layer in entries if id(layer) in seen]
                order.sort(key=lambda e: list(seen).index(id(e[1])))
                object.__setattr__(self, "order", order)  # not state for Keras to track
                trace = {"inputs": list(args), "outputs": outputs, "calls": calls}
                object.__setattr__(self, "trace", trace)
            missing = [path for path, layer in self.order if id(layer) not in seen]
            if missing:
                raise ValueError(
                    f"Model {self.kerasviz_wraps.name!r} did not call {missing} this time; "
                    "kerasviz taps layers that every call reaches."
                )
            return [seen[id(layer)] for _, layer in self.order], outputs

    _TapCall = TapCall
    return TapCall


_TapCall = None


def tapped_call(model, args, kwargs, overrides=None) -> tuple[Any, list, dict]:
    """Call subclassed ``model`` on symbolic ``args`` so that its inner layers' outputs are
    symbolic tensors of the same graph: ``(outputs, [(path, layer, tensor), ...], trace)``;
    ``trace`` holds the traced call's inputs, outputs and inner calls (see `Replay`).

    ``overrides`` (``{id(layer): callable}``, as `Replay`'s) replace inner layers' calls."""
    if kwargs:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("training", "mask")}
    tap = _tap_class()(model, overrides)
    taps, outputs = tap(*args, **kwargs)
    pairs = [(path, layer, t) for (path, layer), t in zip(tap.order, taps, strict=True)]
    return outputs, pairs, tap.trace


def _graph_ops(outputs) -> list:
    """Every operation between the graph's inputs and ``outputs``, each once."""
    keras = _keras()
    seen: dict[int, Any] = {}
    stack = list(keras.tree.flatten(outputs))
    done: set[int] = set()
    while stack:
        tensor = stack.pop()
        if id(tensor) in done:
            continue
        done.add(id(tensor))
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            continue
        op = history.operation
        seen.setdefault(id(op), op)
        node = op._inbound_nodes[history.node_index]
        stack.extend(keras.tree.flatten(node.input_tensors))
    return list(seen.values())


def reaches(output, tensor) -> bool:
    """True when symbolic ``output`` is computed from symbolic ``tensor`` (walking back)."""
    keras = _keras()
    stack = list(keras.tree.flatten(output))
    done: set[int] = set()
    while stack:
        current = stack.pop()
        if current is tensor:
            return True
        if id(current) in done:
            continue
        done.add(id(current))
        history = getattr(current, "_keras_history", None)
        if history is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        if any(t is tensor for t in keras.tree.flatten(node.output_tensors)):
            return True  # made by the same call (an inner layer of a subclassed model)
        stack.extend(keras.tree.flatten(node.input_tensors))
    return False


def graph_model(inputs, outputs, name: str, owner=None):
    """``keras.Model(inputs, outputs, name=name)`` for a graph kerasviz built: never fails on
    names.

    Keras requires the operation names of a model to be unique. A graph kerasviz builds can
    repeat a name that the user's model never repeats: an operation kerasviz adds is named
    automatically by a counter that knows nothing of the names a loaded model brought (a
    reloaded residual net has ``add`` and ``add_1``, and ``x + bias`` in the logits view is
    named ``add`` too), and a replayed nested model puts the inner model's names next to the
    outer one's. Every operation that is not ``owner``'s is renamed for good to a unique
    ``kerasviz_...`` name; the user's own operations (``owner`` ``None``: every operation) are
    renamed only while the model is built and get their names back at once.

    Args:
        inputs: the symbolic inputs.
        outputs: a symbolic tensor or a list of them.
        name: the new model's name.
        owner: the user's model whose operations must keep their names, or ``None``.

    Returns:
        A Functional ``keras.Model`` (the operations are shared, nothing is copied).
    """
    keras = _keras()
    ops = _graph_ops(outputs)
    for inp in keras.tree.flatten(inputs):  # an input that feeds no output still counts
        history = getattr(inp, "_keras_history", None)
        if history is not None and all(op is not history.operation for op in ops):
            ops.append(history.operation)
    users = None if owner is None else {id(op) for _, op in iter_layers(owner)} | {id(owner)}
    taken: set[str] = set()
    temporary: list[tuple[Any, str]] = []
    # the user's operations first, so that they keep their names where they can
    ordered = sorted(ops, key=lambda op: users is not None and id(op) not in users)
    for op in ordered:
        ours = users is not None and id(op) not in users
        if ours and not op.name.startswith("kerasviz_"):
            op.name = _unique(f"kerasviz_{op.name}", taken)  # for good: the operation is ours
        elif op.name in taken:
            old = op.name
            op.name = _unique(f"kerasviz_{old}", taken)
            if not ours:
                temporary.append((op, old))
        taken.add(op.name)
    try:
        return keras.Model(inputs, outputs, name=name)
    finally:
        for op, old in temporary:
            op.name = old


def _unique(base: str, taken) -> str:
    name, i = base, 1
    while name in taken:
        name = f"{base}_{i}"
        i += 1
    return name


def fresh_input(model, size: tuple[int, int] | None = None):
    """A new ``keras.Input`` shaped like the model's single input (``size``: its height and
    width instead of the model's, for a model whose input size is open)."""
    keras = _keras()
    _sequential_ready(model)
    if len(model.inputs) != 1:
        raise ValueError(
            f"kerasviz explains image models with one input; model {model.name!r} has "
            f"{len(model.inputs)} inputs."
        )
    ref = model.inputs[0]
    shape = tuple(ref.shape[1:])
    if size is not None:
        shape = (int(size[0]), int(size[1]), *shape[2:])
    return keras.Input(shape=shape, dtype=ref.dtype, name="kerasviz_input")


def replay(model, overrides=None, on_call: Callable[[Call], None] | None = None):
    """Walk ``model`` on a fresh symbolic input, recording every layer call.

    Args:
        model: a Functional or Sequential model (nested models are walked too).
        overrides: ``{id(layer): callable}``: call the callable instead of that layer (how the
            logits view and guided backprop change a layer without touching the model).
        on_call: called with a `Call` after every layer call (see `Replay`).

    Returns:
        ``(inputs, prediction, walk)``: the new ``keras.Input``, the prediction tensor and the
        `Replay` whose ``taps`` list every layer's path, object and output in execution order.

    >>> inputs, prediction, walk = replay(model)
    >>> walk.taps[0].path
    'conv1'
    """
    _check_model(model)
    if not is_graph_model(model):  # walk its Functional view; paths inside it as its own
        inputs, outputs, walk = replay(graph_view(model), overrides, on_call)
        own = model.name + "/"
        walk.taps = [
            Tap(t.path[len(own) :], t.layer, t.output) for t in walk.taps if t.path.startswith(own)
        ]
        return inputs, outputs, walk
    inputs = fresh_input(model)
    walk = Replay(overrides, on_call)
    outputs = walk.run(model, inputs)
    if isinstance(outputs, list | tuple):
        if len(outputs) != 1:
            raise ValueError(
                f"kerasviz explains models with one output; model {model.name!r} has "
                f"{len(outputs)} outputs."
            )
        outputs = outputs[0]
    return inputs, outputs, walk


def submodel(model, layers=()) -> Any:
    """A Functional model returning several intermediate outputs and the prediction.

    One forward pass of the returned model gives every requested layer's output, followed by
    the model's prediction, for Functional, Sequential and nested models alike. The layers are
    the user's own (weights are shared, nothing is copied or changed).

    Args:
        model: a Keras model (Functional, Sequential, or with nested sub-models).
        layers: one layer reference or a sequence of them (see `find_layer`).

    Returns:
        A ``keras.Model`` whose outputs are ``[output of each layer ..., prediction]``.

    Raises:
        KeyError: an unknown layer (closest names listed).
        ValueError: a Sequential model without input shape; several inputs or outputs.

    >>> sub = submodel(model, ["conv1", "conv2"])
    >>> [tuple(o.shape) for o in sub.outputs]
    [(None, 30, 30, 32), (None, 28, 28, 32), (None, 10)]
    """
    keras = _keras()
    refs = as_refs(layers)
    targets = [find_layer(model, ref) for ref in refs]
    inputs, prediction, walk = replay(model)
    outs = []
    for layer in targets:
        if isinstance(layer, keras.layers.InputLayer):
            outs.append(inputs)
            continue
        out = walk.output_of(layer)
        if out is None:
            raise ValueError(
                f"Layer {layer.name!r} is not reached by a forward pass of model {model.name!r} "
                "(it sits inside a subclassed model or is not used)."
            )
        outs.append(out)
    return graph_model(inputs, [*outs, prediction], f"{model.name}_kerasviz", owner=model)


def flat_model(model) -> Any:
    """A Functional view of any supported model with the same prediction (weights shared).

    Libraries that expect a Functional model (tf-keras-vis, Xplique) can be handed this view
    of a Sequential or nested model.
    """
    inputs, prediction, _ = replay(model)
    return graph_model(inputs, prediction, f"{model.name}_flat", owner=model)


def sized_model(model, height: int, width: int) -> Any:
    """A Functional view of ``model`` on inputs of ``height x width`` pixels (weights shared).

    For a model whose input leaves its size open (``Input((None, None, 3))``): every layer of
    the view has a known output size, which methods that plan by the input size (occlusion
    grids, CAM upsampling) need. Layer objects are the user's, so a layer found in ``model``
    is found in the view too; nested models are flattened (paths become layer names). A
    subclassed model (built at one size, its ``call`` taking others) gets a view that calls it
    at this size; its inner layers are reached as in `replay`.

    Raises:
        ValueError: the model fixes another size.

    >>> sized_model(model, 64, 48).inputs[0].shape
    (None, 64, 48, 3)
    """
    _check_model(model)
    _sequential_ready(model)
    if is_subclassed(model):  # its call decides what sizes it takes: try it at this one
        keras = _keras()
        channels = graph_view(model).inputs[0].shape[-1]
        inputs = keras.Input((int(height), int(width), channels), name="kerasviz_input")
        outputs = model(inputs)
        return graph_model(inputs, outputs, f"{model.name}_{int(height)}x{int(width)}", owner=model)
    fixed = tuple(model.inputs[0].shape[1:3])
    for side, want in zip(fixed, (height, width), strict=True):
        if side is not None and side != int(want):
            raise ValueError(
                f"Model {model.name!r} takes inputs of size {fixed}; "
                f"received size ({int(height)}, {int(width)})."
            )
    inputs = fresh_input(model, (height, width))
    outputs = Replay().run(model, inputs)
    if isinstance(outputs, list | tuple) and len(outputs) == 1:
        outputs = outputs[0]
    return graph_model(inputs, outputs, f"{model.name}_{int(height)}x{int(width)}", owner=model)


REDUCTIONS = ("flatten", "gap", "max")


def layer_model(model, layer) -> Any:
    """A Functional model whose one output is ``layer``'s output (weights shared).

    Raises:
        KeyError: an unknown layer (closest names listed).

    >>> layer_model(model, "conv2").outputs[0].shape
    (None, 28, 28, 32)
    """
    sub = submodel(model, [layer])
    return graph_model(sub.inputs, sub.outputs[0], f"{model.name}_unit", owner=model)


def reduced_model(model, reduce: str) -> Any:
    """``model`` (one input, one output) with its output reduced to vectors ``(N, D)``.

    Args:
        model: a Functional model with one output, e.g. from `layer_model`.
        reduce: for an output of rank > 2, ``"flatten"`` gives ``(N, h*w*c)``, ``"gap"`` the
            mean and ``"max"`` the maximum over every axis between the batch and the channels,
            ``(N, c)``. A rank-2 output is returned as it is.

    Raises:
        ValueError: an unknown ``reduce``.

    >>> reduced_model(layer_model(model, "conv2"), "gap").outputs[0].shape
    (None, 32)
    """
    keras = _keras()
    if reduce not in REDUCTIONS:
        raise ValueError(f"Expected `reduce` in {REDUCTIONS}. Received: reduce={reduce!r}")
    out = model.outputs[0]
    rank = len(out.shape)
    if rank > 2:
        if reduce == "flatten" and any(d is None for d in out.shape[1:]):
            raise ValueError(
                f"Expected `reduce` to be 'gap' or 'max' for an output of shape "
                f"{tuple(out.shape)}: its size depends on the image size, so flattening gives "
                "vectors of different lengths. Received: reduce='flatten'"
            )
        if reduce == "flatten":
            out = keras.layers.Flatten(name="kerasviz_flatten")(out)
        else:
            axes = tuple(range(1, rank - 1))  # every axis between the batch and the channels
            out = (keras.ops.mean if reduce == "gap" else keras.ops.max)(out, axis=axes)
    return graph_model(model.inputs, out, f"{model.name}_features", owner=model)
