"""Incremental inference for occlusion: recompute only the window a patch changes (Krypton).

Nakandala, Kumar and Papakonstantinou, "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations" (SIGMOD 2019).

Full re-inference runs the whole network for every patch position, yet a patch changes only a
small window of each early feature map. The clean image is run once and every layer's output is
kept. For a patch position, each layer's *changed window* is the set of output rows and columns
whose receptive field meets the changed window of its input: it grows by the kernel's reach and
shrinks with stride and pooling. Only that window is recomputed, from a slice of the cached clean
input map with the input's changed window pasted in, so the result is exact.

Window geometry is planned once per image shape and set of patch positions, in numpy, one axis at
a time (rows depend only on a patch's top, columns only on its left edge): every layer gets a
static window size (the largest over positions, so one compiled graph serves every position) and
a per-position offset table. A compiled ``tf.function`` then runs a chunk of ``batch_size``
positions through the plan: gathers of cached slices, a paste of the changed window (index
arithmetic and ``where``), and the layer's own operation in ``"valid"`` mode on the slice.

A layer switches to full computation (the clean map with the window pasted in, then the layer
itself) when its window covers at least ``full_threshold`` of its map, at layers that mix every
position (``Flatten``, global pooling, ``Dense``), and after any layer the window logic does not
know (one warning names it); everything after a full layer is full.

Windowed layers: ``Conv2D``, ``DepthwiseConv2D``, ``SeparableConv2D`` (``"same"``/``"valid"``
padding, any stride and dilation), ``MaxPooling2D`` (both paddings), ``AveragePooling2D``
(``"valid"``), ``BatchNormalization`` (inference), ``Activation``, ``ReLU``, ``LeakyReLU``,
``ELU``, ``Softmax`` over channels, ``Rescaling``, ``ZeroPadding2D``, ``Add``, ``Subtract``,
``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Concatenate`` over channels, and the
``Dropout`` family (the identity at inference).

Approximations (off by default):

* ``projective_threshold=tau``: a window may not grow beyond ``tau`` of its map along an axis
  (Krypton's projective-field threshold); values outside the truncated window are taken from the
  clean map. Smaller ``tau`` is faster and less exact.
* ``adaptive=fraction``: coarse-to-fine. Positions on every other row and column of the patch
  grid are scored exactly; the rest are interpolated from them, and only the ``fraction`` of
  interpolated positions with the largest interpolated score change is then scored exactly.

The package, by concern:

* ``_graph``: the call graph (one node per leaf layer call, recorded through
  `kerasviz.inspect.replay`'s ``on_call`` hook) and how windows pass through each node;
* ``_plan``: window geometry per node and patch position (`plan`, `flops`);
* ``_kernels``: the graph pieces of the compiled clean pass and one-chunk step;
* ``_explainer``: `IncrementalOcclusion`.
"""

from kerasviz.attribution.incremental._explainer import IncrementalOcclusion
from kerasviz.attribution.incremental._graph import call_graph
from kerasviz.attribution.incremental._plan import IncrementalFallbackWarning, flops, plan

__all__ = ["IncrementalFallbackWarning", "IncrementalOcclusion", "call_graph", "flops", "plan"]
