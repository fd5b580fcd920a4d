"""`IncrementalOcclusion`: occlusion scored by incremental inference (see the package)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from kerasviz import _checks, _progress
from kerasviz.attribution._patches import NO_PATCH, PatchExplainer, check_mode
from kerasviz.attribution._result import Explanation
from kerasviz.attribution.incremental._graph import call_graph
from kerasviz.attribution.incremental._kernels import _clean_fn, _forward, _step_fn
from kerasviz.attribution.incremental._plan import IncrementalFallbackWarning, _Plan, plan


class IncrementalOcclusion(PatchExplainer):
    """Occlusion computed by incremental inference (Krypton, Nakandala et al., SIGMOD 2019).

    Same maps as `Occlusion` (exact up to float rounding, typically < 1e-5 on probabilities),
    fewer operations: each patch position recomputes only the window of every feature map that
    the patch can change, reading the rest from one clean pass per image (see the module
    docstring for the layers with window rules). All other arguments are those of `Occlusion`.

    Args:
        model: a Keras image classifier (Functional, Sequential or nested).
        patch: patch size, an int or ``(h, w)`` (as in `Occlusion`).
        stride: step between patches (as in `Occlusion`).
        full_threshold: a layer whose window covers at least this fraction of its map is
            computed in full (with every layer after it); in ``(0, 1]``. On VGG16 at 224 px
            (2 CPU cores) 0.3, 0.5, 0.75 and 1 timed within the machine's noise of each other
            (``benchmarks/incremental.py``): a window over half its map saves about what its
            gathers and pastes cost.
        projective_threshold: approximate. ``None`` (exact) or ``tau`` in ``(0, 1]``: a window
            may not grow beyond ``tau`` of its map along an axis; what lies beyond is taken
            from the clean map.
        adaptive: approximate. ``None`` (exact) or a fraction in ``(0, 1]``: score every other
            row and column of the patch grid, interpolate the rest, and score exactly only that
            fraction of the interpolated positions (those with the largest change).
        mode: deprecated. ``"incremental"`` is accepted with a `DeprecationWarning`;
            ``"full"`` raises a ValueError naming `Occlusion`.
        **settings: the other arguments of `Occlusion` (``fill``, ``output``, ``batch_size``,
            ``jit_compile``, ``blur_sigma``, ``strategy``). The incremental step runs on one
            device.

    Attributes:
        nodes: the model's call graph (`call_graph`).
        traces: how many times the one-chunk step has been traced.

    The window plan of an image size is `plan` (``flops(plan(H, W))`` gives the FLOPs; its
    ``notices`` name the layers that made the rest of the graph fall back to full computation,
    also issued as `IncrementalFallbackWarning` when the plan is first made). With ``adaptive``
    set, `explain_full`'s ``exact`` marks the grid positions that were scored exactly.

    >>> maps = IncrementalOcclusion(model, patch=8, stride=4).explain(images)  # (2, 64, 64, 3)
    >>> maps.shape
    (2, 64, 64)
    """

    method = "occlusion_incremental"

    def __init__(
        self,
        model,
        patch=16,
        stride=None,
        *,
        full_threshold: float = 0.5,
        projective_threshold: float | None = None,
        adaptive: float | None = None,
        mode: str | None = None,
        **settings,
    ):
        check_mode(mode, "incremental", "IncrementalOcclusion")
        super().__init__(model, patch=patch, stride=stride, **settings)
        self.full_threshold = _checks.check_fraction(full_threshold, "full_threshold")
        self.projective_threshold = (
            None
            if projective_threshold is None
            else _checks.check_fraction(projective_threshold, "projective_threshold")
        )
        self.adaptive = None if adaptive is None else _checks.check_fraction(adaptive, "adaptive")
        self.nodes = call_graph(self.scored)
        from kerasviz import inspect

        if inspect.is_subclassed(model):
            warnings.warn(
                f"Model {model.name!r} is subclassed: its call graph is not known, so each "
                "occluded image is computed in full (the maps equal Occlusion's, without the "
                "incremental saving).",
                IncrementalFallbackWarning,
                stacklevel=2,
            )
        self._plans: dict[tuple, _Plan] = {}
        self._compiled: dict[tuple, tuple] = {}

    def _check_fixed_size(self) -> None:
        from kerasviz import inspect

        if None in inspect.input_shape(self.model)[:2]:
            raise ValueError(
                f"IncrementalOcclusion plans its windows for one input size, and model "
                f"{self.model.name!r} takes any size: use attribution.create("
                '"occlusion_incremental", model), which builds it for each image size, or '
                "pass inspect.sized_model(model, height, width)."
            )

    def plan(self, height: int, width: int, tops=None, lefts=None) -> _Plan:
        """The window plan for images ``(height, width)`` and these patch starts.

        Args:
            height, width: the image size.
            tops, lefts: patch start rows and columns (default: the grid of `positions`).

        Returns:
            The plan: per node of ``nodes`` its ``mode`` (``"win"`` or ``"full"``) and window
            ``axes``, and the ``notices`` of layers that made the rest fall back to full
            computation. Cached; a new plan issues its notices as `IncrementalFallbackWarning`.

        >>> IncrementalOcclusion(model, patch=8, stride=4).plan(64, 64).mode[:2]
        ['win', 'win']
        """
        self._check_fixed_size()
        if tops is None or lefts is None:
            tops, lefts = self.positions(height, width)
        key = (height, width, tuple(int(t) for t in tops), tuple(int(v) for v in lefts))
        if key not in self._plans:
            made = plan(
                self.nodes,
                np.asarray(tops),
                np.asarray(lefts),
                self.patch,
                self.full_threshold,
                self.projective_threshold,
            )
            for notice in made.notices:
                warnings.warn(notice, IncrementalFallbackWarning, stacklevel=3)
            self._plans[key] = made
        return self._plans[key]

    def _functions(self, made: _Plan, shape: tuple[int, int, int], fill_hw: tuple[int, int]):
        import tensorflow as tf

        key = (made.key, shape, fill_hw)
        if key not in self._compiled:

            def on_trace():
                self.traces += 1

            self._compiled[key] = (
                _clean_fn(tf, made, shape),
                _step_fn(tf, made, shape, self.patch, fill_hw, self.jit_compile, on_trace),
            )
        return self._compiled[key]

    def score(
        self,
        batch: np.ndarray,
        tasks: np.ndarray,
        fills: np.ndarray | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Scores ``(T, K)`` of the occluded copies described by ``tasks`` ``(T, 3)``.

        Same contract as `Occlusion.score`; rows with ``top = NO_PATCH`` get the clean score.
        Images are processed in groups small enough that their cached feature maps stay within
        about ``batch_size`` images' worth of activations.
        """
        import tensorflow as tf

        from kerasviz import _compute

        n, height, width, _ = batch.shape
        fill = self.fills(batch) if fills is None else np.asarray(fills, dtype=np.float32)
        if fill.ndim != 4 or fill.shape[0] != n or fill.shape[1:3] not in ((1, 1), (height, width)):
            raise ValueError(
                f"Expected `fills` of shape ({n}, 1, 1, C) or ({n}, {height}, "
                f"{width}, C). Received: fills.shape={fill.shape}"
            )
        tasks = np.ascontiguousarray(tasks, dtype=np.int32)
        real = tasks[:, 1] != NO_PATCH
        tops = np.unique(tasks[real, 1])
        lefts = np.unique(tasks[real, 2])
        if real.any() and (
            tops.min() < 0
            or tops.max() + self.patch[0] > height
            or lefts.min() < 0
            or lefts.max() + self.patch[1] > width
        ):
            raise ValueError(
                f"Patch positions must lie inside the {height}x{width} image. "
                f"Received tops {tops.min()}..{tops.max()}, lefts "
                f"{lefts.min()}..{lefts.max()} for patch {self.patch}."
            )
        grid_tops, grid_lefts = self.positions(height, width)
        if np.isin(tops, grid_tops).all() and np.isin(lefts, grid_lefts).all():
            tops, lefts = grid_tops, grid_lefts  # one plan (and trace) for any subset of the grid
        made = self.plan(height, width, tops if len(tops) else [0], lefts if len(lefts) else [0])
        clean, step = self._functions(made, tuple(batch.shape[1:]), tuple(fill.shape[1:3]))
        row_table = np.zeros((len(made.nodes), max(1, len(tops))), np.int32)
        col_table = np.zeros((len(made.nodes), max(1, len(lefts))), np.int32)
        for i, axes in enumerate(made.axes):
            if axes is not None:
                row_table[i], col_table[i] = axes[0].offset, axes[1].offset
        row_table, col_table = tf.constant(row_table), tf.constant(col_table)
        local = np.stack(
            [tasks[:, 0], np.searchsorted(tops, tasks[:, 1]), np.searchsorted(lefts, tasks[:, 2])],
            axis=1,
        ).astype(np.int32)
        per_image = max(1, int(real.sum()) // n)
        group = max(1, min(n, -(-self.batch_size // per_image)))
        out = np.zeros((len(tasks), self.num_classes), np.float32)
        bar = _progress.Progress(len(tasks), label="incremental occlusion", enabled=progress)
        done = 0
        for first in range(0, n, group):
            last = min(n, first + group)
            maps, prediction = clean(tf.constant(batch[first:last]))
            prediction = prediction.numpy()
            fill_group = tf.constant(fill[first:last])
            mine = (tasks[:, 0] >= first) & (tasks[:, 0] < last)
            reference = np.flatnonzero(mine & ~real)
            out[reference] = prediction[tasks[reference, 0] - first]
            todo = np.flatnonzero(mine & real)
            for start, stop in _compute.padded_chunks(len(todo), self.batch_size):
                rows = todo[start:stop]
                chunk = local[rows] - np.array([first, 0, 0], np.int32)
                out[rows] = step(maps, fill_group, tf.constant(chunk), row_table, col_table).numpy()
            done += int(mine.sum())
            bar.update(done)
        return out

    def explain_full(self, inputs, targets=None, progress: bool = False) -> Explanation:
        """Occlusion maps with their grid and positions, as `Occlusion.explain_full` (exact
        unless an approximation was chosen).

        With ``adaptive`` set, the result's ``exact`` is the ``(N, rows, cols)`` boolean mask of
        the grid positions that were scored exactly (the others are interpolated); without it
        every position is scored and ``exact`` is ``None``.

        >>> result = IncrementalOcclusion(model, patch=8, stride=4).explain_full(images)
        >>> result.explanations.shape, result.grid.shape  # images (2, 64, 64, 3)
        ((2, 64, 64), (2, 15, 15))
        """
        self._check_fixed_size()
        if self.adaptive is None:
            return super().explain_full(inputs, targets, progress=progress)
        batch, chosen, tops, lefts = self._start(inputs, targets)
        n, height, width, _ = batch.shape
        rows, cols = len(tops), len(lefts)
        coarse_r = np.unique(np.r_[np.arange(0, rows, 2), rows - 1])
        coarse_c = np.unique(np.r_[np.arange(0, cols, 2), cols - 1])
        first = self.tasks(n, tops[coarse_r], lefts[coarse_c])
        scores = self.score(batch, first, progress=progress)
        scores = scores.reshape(n, len(coarse_r) * len(coarse_c) + 1, -1)  # (N, P' + 1, K)
        drops, chosen = self._drops(scores, chosen)
        reference = scores[np.arange(n), 0, chosen]  # (N,) clean scores of the targets
        coarse = drops.reshape(n, len(coarse_r), len(coarse_c))
        along_r = _linear(coarse_r, rows)  # (rows, r')
        along_c = _linear(coarse_c, cols)  # (cols, c')
        grid = np.einsum("ia,nab,jb->nij", along_r, coarse, along_c).astype(np.float32)
        exact = np.zeros((n, rows, cols), bool)
        exact[:, coarse_r[:, None], coarse_c[None, :]] = True
        grid[:, coarse_r[:, None], coarse_c[None, :]] = coarse
        picks = []
        for image in range(n):
            candidates = np.flatnonzero(~exact[image].ravel())
            keep = math.ceil(self.adaptive * len(candidates))
            if keep == 0:
                continue
            order = np.argsort(-np.abs(grid[image].ravel()[candidates]), kind="stable")
            for flat in np.sort(candidates[order[:keep]]):
                picks.append((image, *divmod(int(flat), cols)))
        if picks:
            picks = np.asarray(picks, dtype=np.int64)  # (M, 3) image, row, col
            second = np.stack([picks[:, 0], tops[picks[:, 1]], lefts[picks[:, 2]]], axis=1)
            drops = self.score(batch, second.astype(np.int32), progress=progress)
            drops = reference[picks[:, 0]] - drops[np.arange(len(picks)), chosen[picks[:, 0]]]
            grid[picks[:, 0], picks[:, 1], picks[:, 2]] = drops
            exact[picks[:, 0], picks[:, 1], picks[:, 2]] = True
        return self._result(grid, chosen, tops, lefts, (height, width), exact=exact)

    def layer_times(
        self, batch: np.ndarray, repeats: int = 2
    ) -> list[tuple[str, str, float, float]]:
        """Where the time goes: per layer, seconds for one chunk of ``batch_size`` positions.

        Runs the first ``batch_size`` patch positions of the first image eagerly, node by node,
        once incrementally and once with every layer in full (plain re-inference), and keeps the
        fastest of ``repeats`` runs of each.

        Returns:
            rows ``(path, mode, incremental seconds, full seconds)`` in execution order;
            ``mode`` is ``"win"`` (windowed) or ``"full"``.
        """
        import time

        import tensorflow as tf

        batch, _ = self.scorer.check_inputs(batch)
        image = batch[:1]
        height, width = image.shape[1:3]
        made = self.plan(height, width)
        tops, lefts = self.positions(height, width)
        fill = self.fills(image)
        tasks = self.tasks(1, tops, lefts)[1 : self.batch_size + 1]
        local = np.stack(
            [tasks[:, 0], np.searchsorted(tops, tasks[:, 1]), np.searchsorted(lefts, tasks[:, 2])],
            axis=1,
        ).astype(np.int32)
        every = plan(self.nodes, tops, lefts, self.patch, 1e-12, None)
        every.mode = ["win"] + ["full"] * (len(self.nodes) - 1)
        every.axes = [every.axes[0]] + [None] * (len(self.nodes) - 1)
        every.cleans = [(0, ((0, 0), (0, 0)), 0.0)]
        timings = []
        for which in (made, every):
            maps, _ = _clean_fn(tf, which, tuple(image.shape[1:]))(tf.constant(image))
            tables = []
            for size, axis in ((len(tops), 0), (len(lefts), 1)):
                table = np.zeros((len(self.nodes), size), np.int32)
                for i, axes in enumerate(which.axes):
                    if axes is not None:
                        table[i] = axes[axis].offset
                tables.append(tf.constant(table))
            best = np.full(len(self.nodes), np.inf)
            for _ in range(max(1, repeats)):
                seen = np.zeros(len(self.nodes))
                last = [time.perf_counter()]

                def clock(node, value, seen=seen, last=last):
                    np.asarray(value)  # wait for the result
                    now = time.perf_counter()
                    seen[node.index] = now - last[0]
                    last[0] = now

                _forward(
                    tf,
                    which,
                    self.patch,
                    tuple(fill.shape[1:3]),
                    image.shape[3],
                    maps,
                    tf.constant(fill),
                    tf.constant(local),
                    *tables,
                    clock=clock,
                )
                best = np.minimum(best, seen)
            timings.append(best)
        return [
            (
                node.path,
                made.mode[node.index],
                float(timings[0][node.index]),
                float(timings[1][node.index]),
            )
            for node in self.nodes[1:]
        ]


def _linear(known: np.ndarray, length: int) -> np.ndarray:
    """``(length, len(known))`` weights of linear interpolation from the ``known`` indices."""
    weights = np.zeros((length, len(known)), np.float64)
    for i in range(length):
        j = int(np.searchsorted(known, i, side="right")) - 1
        if j >= len(known) - 1 or known[j] == i:
            weights[i, min(j, len(known) - 1)] = 1.0
            continue
        t = (i - known[j]) / (known[j + 1] - known[j])
        weights[i, j], weights[i, j + 1] = 1.0 - t, t
    return weights
