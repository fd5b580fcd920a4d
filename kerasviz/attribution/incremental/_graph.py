"""The call graph of a model for incremental occlusion.

One node per leaf layer call, in execution order, with how a changed window passes through it.
The graph and the per-layer geometry are `kerasviz.inspect`'s (``inspect._fields``), the same
that gives every layer's receptive fields: incremental occlusion walks it forwards (which outputs
a changed input window reaches), receptive fields walk it backwards.
"""

from __future__ import annotations

from kerasviz.inspect._fields import _Node, _Ref
from kerasviz.inspect._fields import call_graph as _call_graph

__all__ = ["_Node", "_Ref", "call_graph"]


def call_graph(model) -> list[_Node]:
    """The leaf layer calls of ``model`` in execution order; node 0 is the input.

    Nested Functional and Sequential models are walked (see `kerasviz.inspect`), so a backbone
    inside an outer model contributes its own layers.
    """
    return _call_graph(model, purpose="incremental occlusion")
