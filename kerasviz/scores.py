"""What an explanation explains: score functions that read a model's outputs.

Every explainer, `kerasviz.metrics.Faithfulness` and dataset job explains one number per image,
the *score*. For a classifier it is the target class's probability or logit
(`Category`, the default). Other models need a rule that says which number:

* `Output` picks one output of a model with several (a class head and a box head, a dict of
  outputs) and hands it to another score;
* `Regression` reads one value of a regression output;
* `Region` sums a class over a boolean mask of a dense output (segmentation, edge maps:
  Seg-Grad-CAM, Vinogradova et al. 2020);
* `Custom`, or any callable ``score(outputs, targets) -> (N,)`` written with ``keras.ops`` or
  TensorFlow (a D-RISE-style box score for a detector, a margin between two classes).

A score turns the output it reads into a *score vector* ``(N, T)``: one column per possible
target (classes for `Category`, the values of a `Regression` output, the masks of a `Region`
given one per image). The vector is computed inside the compiled forward pass, so occlusion,
LIME, Score-CAM, the gradient methods and the faithfulness curves all score it the same way and
pick column ``targets[i]`` for image ``i``; ``targets=None`` is the score's own default
(`Score.default_targets`: the top class, the regression index, the region's category).

>>> from kerasviz import scores
>>> Occlusion(detector, score=scores.Output("boxes", scores.Regression(index=2)))
>>> GradCAM(segmenter, layer="block3_conv3", score=scores.Region(mask, category=1))
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import numpy as np

# How to describe one model output in messages: its names and its shape (batch first).
OutputInfo = tuple  # (names: tuple[str, ...], shape: tuple)


def describe_outputs(outputs: list[OutputInfo]) -> str:
    """``'cls' (None, 3), 'box' (None, 4)``: the outputs as messages name them."""
    return ", ".join(f"{names[0]!r} {tuple(shape)}" for names, shape in outputs)


def _shape_text(shape) -> str:
    return str(tuple(shape))


def _hint(name: str, shape: tuple) -> str:
    """The score that fits an output of ``shape``, for messages."""
    if len(shape) == 2:
        return f"Output({name!r}) for its classes or Output({name!r}, Regression(i)) for a value"
    if len(shape) in (3, 4):
        return f"Output({name!r}, Region(mask, category)) for a region"
    return f"Output({name!r}, Regression(i))"


class Score:
    """Base class: a rule that turns the model's output(s) into a score vector ``(N, T)``.

    Subclasses define `bind` (check the outputs, say which one is read and how many targets
    there are) and `vector` (the computation, with ``keras.ops``/TensorFlow on symbolic or
    concrete tensors).
    """

    #: True when `vector` receives the list of every output (a callable reading several).
    reads_all = False

    def select(self, outputs: list[OutputInfo], owner: str) -> int:
        """The index of the output this score reads (the only one, or an error naming
        `Output`)."""
        if len(outputs) == 1:
            return 0
        hints = "; ".join(_hint(names[0], shape) for names, shape in outputs)
        raise ValueError(
            f"Model {owner!r} has {len(outputs)} outputs: {describe_outputs(outputs)}; say "
            f"which one is explained with `score=`: {hints} (kerasviz.scores)."
        )

    def bind(self, shape: tuple, owner: str) -> int:
        """Check the read output's ``shape`` (batch first); return the number of targets."""
        raise NotImplementedError

    def vector(self, output):
        """The score vector ``(N, T)`` of the read output (a tensor)."""
        raise NotImplementedError

    def default_targets(self, vector: np.ndarray) -> np.ndarray:
        """int32 ``(N,)`` targets for ``targets=None`` from the score vectors ``(N, T)``."""
        return np.argmax(vector, axis=-1).astype(np.int32)

    #: True when the score vector is the output itself (no head is added to the view).
    identity = False

    def needs_vector(self) -> bool:
        """Whether `default_targets` reads the score vectors (else only their number)."""
        return True

    def to_dict(self) -> dict:
        """A JSON description (for dataset jobs' job.json and the report)."""
        return {"kind": type(self).__name__}


class Category(Score):
    """The score of a class of a classifier's ``(N, K)`` output (the default).

    ``targets`` are classes; ``None`` is each image's top class. With ``output="logit"`` the
    explainer reads the logits under a final softmax or sigmoid.
    """

    identity = True

    def bind(self, shape: tuple, owner: str) -> int:
        if len(shape) != 2:
            raise ValueError(
                f"Model {owner!r} has an output of shape {_shape_text(shape)}, not class scores "
                "(N, K): say what to explain with `score=`: "
                "kerasviz.scores.Region(mask, category) for a dense (per-position) output, "
                "kerasviz.scores.Regression(index) for values, or a callable "
                "score(outputs, targets) -> (N,)."
            )
        return int(shape[-1])

    def vector(self, output):
        return output


class Regression(Score):
    """One value of a regression output: ``output[i].flatten()[index]``.

    The score vector holds every value of the output (flattened per image), so ``targets`` may
    name another value; ``None`` is ``index``.

    Args:
        index: the value explained by default (an index into the flattened output).
    """

    def __init__(self, index: int = 0):
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ValueError(f"Expected `index` to be an int >= 0. Received: index={index!r}")
        self.index = int(index)
        self._size = None

    def bind(self, shape: tuple, owner: str) -> int:
        size = int(np.prod([int(d) for d in shape[1:]])) if None not in shape[1:] else None
        if size is None:
            raise ValueError(
                f"Expected an output of known size for Regression. Received: model {owner!r} "
                f"output of shape {_shape_text(shape)}"
            )
        if self.index >= size:
            raise ValueError(
                f"Expected `index` < {size} (the values of output {_shape_text(shape)} of model "
                f"{owner!r}). Received: index={self.index}"
            )
        self._size = size
        return size

    def vector(self, output):
        from keras import ops

        return ops.reshape(output, (-1, self._size))

    def needs_vector(self) -> bool:
        return False

    def default_targets(self, vector: np.ndarray) -> np.ndarray:
        return np.full((vector.shape[0],), self.index, np.int32)

    def to_dict(self) -> dict:
        return {"kind": "Regression", "index": self.index}


class Region(Score):
    """The summed score of a class over a boolean mask of a dense output ``(N, H, W, K)``.

    For segmentation and edge models (Seg-Grad-CAM, Vinogradova et al. 2020): "why these
    pixels of this class?". An output ``(N, H, W)`` is one class.

    Args:
        mask: boolean ``(H, W)`` at the output's resolution, shared by every image; or
            ``(M, H, W)``, one per image: explain then exactly ``M`` images, image ``i``
            scored on mask ``i`` (targets default to ``0..M-1``, the image's own mask).
        category: the class summed. ``None`` with a shared mask: ``targets`` choose the class
            (default: the class with the largest sum in the region); with one mask per image it
            is required unless the output has one class.
    """

    def __init__(self, mask, category: int | None = None):
        arr = np.asarray(mask)
        if arr.dtype != bool:
            if not (np.issubdtype(arr.dtype, np.number) and np.isin(arr, (0, 1)).all()):
                raise ValueError(
                    "Expected `mask` to be boolean (or 0/1) of shape (H, W) or (M, H, W). "
                    f"Received: dtype {arr.dtype}"
                )
            arr = arr.astype(bool)
        if arr.ndim not in (2, 3) or 0 in arr.shape:
            raise ValueError(
                "Expected `mask` of shape (H, W) (shared) or (M, H, W) (one per image). "
                f"Received: shape {arr.shape}"
            )
        if not arr.any(axis=(-2, -1)).all():
            raise ValueError("Expected `mask` to select at least one position (of each image)")
        if category is not None and (
            isinstance(category, bool) or not isinstance(category, int | np.integer)
        ):
            raise ValueError(f"Expected `category` to be an int or None. Received: {category!r}")
        self.mask = arr
        self.category = None if category is None else int(category)
        self.per_image = arr.ndim == 3
        self._classes = None

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the mask."""
        return tuple(int(d) for d in self.mask.shape[-2:])

    def matches(self, shape: tuple) -> bool:
        """True when an output of ``shape`` (batch first) is dense at the mask's size."""
        return len(shape) in (3, 4) and tuple(shape[1:3]) == self.size

    def select(self, outputs: list[OutputInfo], owner: str) -> int:
        fits = [i for i, (_, shape) in enumerate(outputs) if self.matches(shape)]
        if len(fits) == 1 and len(outputs) > 1:
            return fits[0]
        if len(outputs) == 1:
            return 0
        if not fits:
            raise ValueError(
                f"Expected `mask` of shape {self.size} to match the (H, W) of an output of "
                f"model {owner!r}. Received outputs: {describe_outputs(outputs)}"
            )
        names = ", ".join(repr(outputs[i][0][0]) for i in fits)
        raise ValueError(
            f"`mask` of shape {self.size} matches several outputs of model {owner!r} "
            f"({names}): pass score=kerasviz.scores.Output(NAME, Region(...))."
        )

    def bind(self, shape: tuple, owner: str) -> int:
        if not self.matches(shape):
            raise ValueError(
                f"Expected `mask` of shape {self.size} to match the (H, W) of a dense output "
                f"(N, H, W[, K]). Received: model {owner!r} output of shape {_shape_text(shape)}"
            )
        classes = 1 if len(shape) == 3 else int(shape[3])
        if self.category is not None and not 0 <= self.category < classes:
            raise ValueError(
                f"Expected `category` in [0, {classes}) (the classes of output "
                f"{_shape_text(shape)}). Received: category={self.category}"
            )
        if self.per_image and self.category is None and classes != 1:
            raise ValueError(
                f"Expected `category` with one mask per image (output {_shape_text(shape)} has "
                f"{classes} classes). Received: category=None"
            )
        self._classes = classes
        if self.per_image:
            return int(self.mask.shape[0])
        return classes

    def vector(self, output):
        from keras import ops

        if self._classes == 1 and len(output.shape) == 3:
            output = ops.expand_dims(output, -1)
        mask = ops.convert_to_tensor(self.mask.astype("float32"))
        output = ops.cast(output, "float32")
        if self.per_image:  # (N, M): image row n scored on every mask m, one class
            category = 0 if self.category is None else self.category
            plane = output[..., category]  # (N, H, W)
            return ops.einsum("nhw,mhw->nm", plane, mask)
        return ops.einsum("nhwk,hw->nk", output, mask)  # (N, K): every class in the region

    def needs_vector(self) -> bool:
        return not self.per_image and self.category is None

    def default_targets(self, vector: np.ndarray) -> np.ndarray:
        n = vector.shape[0]
        if self.per_image:
            m = int(self.mask.shape[0])
            if n != m:
                raise ValueError(
                    f"Expected {m} images, one per mask of `Region(mask)` of shape "
                    f"{self.mask.shape}. Received: {n} images"
                )
            return np.arange(n, dtype=np.int32)
        if self.category is not None:
            return np.full((n,), self.category, np.int32)
        return super().default_targets(vector)

    def to_dict(self) -> dict:
        return {
            "kind": "Region",
            "mask_shape": list(self.mask.shape),
            "mask_pixels": int(self.mask.sum()),
            "category": self.category,
        }


class Output(Score):
    """One output of a model with several (a list or a dict of outputs), read by ``inner``.

    Args:
        name: the output's name (a dict key or the name of the layer that makes it) or its
            index in ``model.outputs``.
        inner: the score of that output (default `Category`).
    """

    def __init__(self, name, inner: Score | Callable | None = None):
        if isinstance(name, bool) or not isinstance(name, str | int | np.integer):
            raise ValueError(
                f"Expected `name` to be an output name (str) or index (int). Received: {name!r}"
            )
        self.name = name if isinstance(name, str) else int(name)
        self.inner = Category() if inner is None else as_score(inner)
        if isinstance(self.inner, Output):
            raise ValueError("Expected `inner` to read one output, not another Output")

    def select(self, outputs: list[OutputInfo], owner: str) -> int:
        if isinstance(self.name, int):
            if not 0 <= self.name < len(outputs):
                raise ValueError(
                    f"Expected an output index in [0, {len(outputs)}) of model {owner!r} "
                    f"({describe_outputs(outputs)}). Received: {self.name}"
                )
            return self.name
        for i, (names, _) in enumerate(outputs):
            if self.name in names:
                return i
        known = [n for names, _ in outputs for n in names]
        close = difflib.get_close_matches(self.name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(
            f"Unknown output {self.name!r} of model {owner!r}; its outputs: "
            f"{describe_outputs(outputs)}.{hint}"
        )

    @property
    def identity(self) -> bool:  # type: ignore[override]
        return self.inner.identity

    def needs_vector(self) -> bool:
        return self.inner.needs_vector()

    def bind(self, shape: tuple, owner: str) -> int:
        return self.inner.bind(shape, owner)

    def vector(self, output):
        return self.inner.vector(output)

    def default_targets(self, vector: np.ndarray) -> np.ndarray:
        return self.inner.default_targets(vector)

    def to_dict(self) -> dict:
        return {"kind": "Output", "name": self.name, "inner": self.inner.to_dict()}


class Custom(Score):
    """Any differentiable score ``fn(outputs, targets) -> (N,)``.

    ``outputs`` is the model's output tensor (a list of tensors for a model with several,
    in ``model.outputs`` order); ``targets`` an int32 ``(N,)`` tensor. The function is traced
    inside the compiled forward pass once per target value ``0..num_targets-1``, so write it
    with ``keras.ops`` or TensorFlow (no numpy on tensors).

    Args:
        fn: the score function.
        num_targets: how many target values ``fn`` understands (``targets`` range over them;
            ``None`` picks the largest score). One for a score that ignores ``targets``.
        name: a name for job files and the report (default: ``fn``'s name).

    >>> def margin(outputs, targets):  # class 3 over class 5, whatever the targets
    ...     return outputs[:, 3] - outputs[:, 5]
    >>> Saliency(model, score=margin)
    """

    reads_all = True

    def __init__(self, fn: Callable, num_targets: int = 1, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"Expected `fn` to be callable. Received: {type(fn).__name__}")
        if isinstance(num_targets, bool) or not isinstance(num_targets, int) or num_targets < 1:
            raise ValueError(
                f"Expected `num_targets` to be an int >= 1. Received: num_targets={num_targets!r}"
            )
        self.fn = fn
        self.num_targets = int(num_targets)
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def select(self, outputs: list[OutputInfo], owner: str) -> int:
        return -1  # every output

    def bind(self, shape, owner: str) -> int:
        """``shape``: the shapes of every output; the function is checked on zeros."""
        from keras import ops

        shapes = shape if isinstance(shape, list) else [shape]
        zeros = [ops.zeros((2, *(1 if d is None else int(d) for d in s[1:]))) for s in shapes]
        arg = zeros if len(zeros) > 1 else zeros[0]
        try:
            value = self.fn(arg, ops.zeros((2,), dtype="int32"))
        except Exception as err:  # the user's code: say whose it is
            raise ValueError(
                f"`score` {self.name!r} failed on outputs of shape "
                f"{[tuple(s) for s in shapes]}: {type(err).__name__}: {err}"
            ) from None
        got = tuple(getattr(value, "shape", np.shape(value)))
        if got != (2,):
            raise ValueError(
                f"Expected `score` {self.name!r} to return one value per image, shape (N,). "
                f"Received: shape {got} for 2 images (outputs of model {owner!r} of shape "
                f"{[tuple(s) for s in shapes]})"
            )
        return self.num_targets

    def vector(self, output):
        from keras import ops

        n = ops.shape(output[0] if isinstance(output, list) else output)[0]
        columns = [
            ops.cast(self.fn(output, ops.full((n,), k, dtype="int32")), "float32")
            for k in range(self.num_targets)
        ]
        return ops.stack(columns, axis=1)

    def to_dict(self) -> dict:
        return {"kind": "Custom", "name": self.name, "num_targets": self.num_targets}


def as_score(score) -> Score:
    """``score`` as a `Score`: ``None`` is `Category`, a callable becomes `Custom`."""
    if score is None:
        return Category()
    if isinstance(score, Score):
        return score
    if callable(score):
        return Custom(score)
    raise TypeError(
        "Expected `score` to be None, a kerasviz.scores.Score (Category, Output, Regression, "
        f"Region, Custom) or a callable score(outputs, targets). Received: {type(score).__name__}"
    )


def parse(spec: str) -> Score:
    """A score from the command line's ``--score``.

    ``category`` (the default), ``regression:INDEX``, ``output:NAME`` (its classes),
    ``output:NAME:regression:INDEX``; ``region:...`` needs a mask and is for the Python API.

    >>> parse("output:boxes:regression:2").to_dict()
    {'kind': 'Output', 'name': 'boxes', 'inner': {'kind': 'Regression', 'index': 2}}
    """
    text = str(spec).strip()
    parts = text.split(":")
    forms = "category, regression:INDEX, output:NAME or output:NAME:regression:INDEX"

    def bad(why: str) -> ValueError:
        return ValueError(f"Expected `--score` as {forms}. Received: {spec!r} ({why})")

    def inner(rest: list[str]) -> Score:
        if rest == ["category"]:
            return Category()
        if len(rest) == 2 and rest[0] == "regression":
            if not rest[1].isdigit():
                raise bad("the index must be an int >= 0")
            return Regression(int(rest[1]))
        raise bad("unknown form")

    if parts[0] == "output":
        if len(parts) < 2 or not parts[1]:
            raise bad("no output name")
        name: Any = int(parts[1]) if parts[1].isdigit() else parts[1]
        return Output(name, inner(parts[2:]) if len(parts) > 2 else Category())
    return inner(parts)
