"""Argument checks shared by every module: numpy in, a clear error out. No Keras here.

Every check names the argument, what was expected and what was received, and raises
``ValueError`` (wrong value, shape or range), ``TypeError`` (wrong kind) or ``KeyError`` (an
unknown name among known ones). Checks that need the model (its input shape, its number of
classes) take those numbers; `kerasviz.inspect.check_inputs` reads them from a model.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np


def real_array(value, name: str) -> np.ndarray:
    """``value`` as a numpy array of a real numeric dtype (int or float), unconverted.

    Raises:
        ValueError: it cannot be read as an array (ragged lists and the like).
        TypeError: booleans, strings, objects, complex numbers.

    >>> real_array([1, 2], "x").dtype
    dtype('int64')
    """
    try:
        arr = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"`{name}` could not be read as an array: {err}") from None
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"Expected `{name}` of a real numeric dtype (float or int). "
            f"Received: {name}.dtype={arr.dtype}"
        )
    return arr


def finite(arr: np.ndarray, name: str, what: str = "") -> np.ndarray:
    """``arr`` unchanged if every value is finite, else a ValueError counting the bad values."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{name}` contains {bad} NaN or infinite values{what}.")
    return arr


def as_batch(arr: np.ndarray, axes: str, name: str) -> tuple[np.ndarray, bool]:
    """``arr`` with a leading batch axis, and whether it was given as one item.

    ``axes`` names the batched axes, e.g. ``"N, H, W, C"``: an array of one rank less is one
    item and gains the batch axis; an array of that rank is returned as is.

    Raises:
        ValueError: any other rank, naming ``name`` and both accepted layouts.

    >>> as_batch(np.zeros((4, 4)), "N, H, W", "maps")[0].shape
    (1, 4, 4)
    """
    names = axes.split(", ")
    if arr.ndim == len(names) - 1:
        return arr[None], True
    if arr.ndim == len(names):
        return arr, False
    raise ValueError(
        f"Expected `{name}` of rank {len(names) - 1} ({', '.join(names[1:])}) or "
        f"{len(names)} ({axes}). Received: {name}.shape={arr.shape}"
    )


def check_images(
    inputs,
    name: str = "inputs",
    value_range: tuple[float, float] | None = None,
    shape: tuple | None = None,
    owner: str = "the model",
) -> tuple[np.ndarray, bool]:
    """Validate images and return them as a float32 batch.

    Args:
        inputs: ``(N, H, W, C)`` or one image ``(H, W, C)``; numpy, a tensor or nested lists.
        name: the argument's name used in messages.
        value_range: when given, every value must lie in ``[low, high]``.
        shape: when given, the expected ``(H, W, C)`` (``None`` entries match any size).
        owner: who expects ``shape``, for messages (``"model 'digits_cnn'"``).

    Returns:
        ``(batch, single)``: the float32 ``(N, H, W, C)`` array and whether one image was given
        (pass ``single`` to `restore_single` to drop the batch axis again).

    Raises:
        TypeError: not numeric (strings, objects, complex numbers).
        ValueError: wrong rank, empty batch, NaN or inf, shape not matching ``shape``, values
            outside ``value_range``.

    >>> batch, single = check_images(np.zeros((32, 32, 1)))
    >>> batch.shape, single
    ((1, 32, 32, 1), True)
    """
    arr, single = as_batch(real_array(inputs, name), "N, H, W, C", name)
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` is an empty batch. Received: {name}.shape={arr.shape}")
    if min(arr.shape[1:]) == 0:
        raise ValueError(f"`{name}` has an empty axis. Received: {name}.shape={arr.shape}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        arr = arr.astype(np.float32, copy=False)
    finite(arr, name, " (or values too large for float32)")
    if shape is not None:
        expected = tuple(shape)
        if len(expected) != 3:
            raise ValueError(
                f"{owner[0].upper()}{owner[1:]} takes inputs of shape {expected}; kerasviz "
                "needs image models with inputs (H, W, C)."
            )
        for got, want in zip(arr.shape[1:], expected, strict=True):
            if want is not None and got != want:
                raise ValueError(
                    f"Expected `{name}` of shape (N, {', '.join(str(s) for s in expected)}) for "
                    f"{owner}. Received: {name}.shape={arr.shape}"
                )
    if value_range is not None:
        low, high = value_range
        lo, hi = float(arr.min()), float(arr.max())
        if lo < low - 1e-6 or hi > high + 1e-6:
            raise ValueError(
                f"Expected `{name}` values in [{low}, {high}]. Received values in [{lo:g}, {hi:g}]."
            )
    return np.ascontiguousarray(arr), single


def restore_single(result: np.ndarray, single: bool) -> np.ndarray:
    """Drop the batch axis again when a check received a single item."""
    return result[0] if single else result


def check_maps(explanations, name: str = "explanations") -> tuple[np.ndarray, bool]:
    """``(N, H, W)`` float32 maps (a trailing axis of size 1 is dropped) and whether single.

    >>> check_maps(np.zeros((4, 4)))[0].shape
    (1, 4, 4)
    """
    arr = real_array(explanations, name)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    arr, single = as_batch(arr, "N, H, W", name)
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr, single


def check_masks(masks, maps: np.ndarray, name: str = "masks") -> np.ndarray:
    """Boolean ``(N, H, W)`` masks matching ``maps``, none of them empty."""
    try:
        arr = np.asarray(masks)
    except Exception as err:
        raise ValueError(f"`{name}` could not be read as an array: {err}") from None
    if arr.ndim == maps.ndim - 1:
        arr = arr[None]
    if arr.shape != maps.shape:
        raise ValueError(
            f"Expected `{name}` of the explanations' shape {maps.shape} (or "
            f"{maps.shape[1:]} for one map). Received: {name}.shape={np.shape(masks)}"
        )
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.number) and np.all(np.isin(arr, (0, 1)))):
            raise ValueError(
                f"Expected `{name}` of booleans or of 0/1 values. Received values "
                f"{np.unique(arr)[:5].tolist()}..."
            )
        arr = arr.astype(bool)
    empty = np.flatnonzero(~arr.reshape(arr.shape[0], -1).any(axis=1))
    if empty.size:
        raise ValueError(
            f"`{name}` must mark at least one pixel per image; the masks of images "
            f"{empty.tolist()} are empty."
        )
    return arr


def check_features(values, name: str = "features") -> np.ndarray:
    """Feature vectors as float32 ``(N, D)`` with N, D >= 1, all finite."""
    arr = real_array(values, name)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(
            f"Expected `{name}` of shape (N, D) with N, D >= 1. Received: {name}.shape={arr.shape}"
        )
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def check_targets(targets, n: int, num_classes: int, name: str = "targets") -> np.ndarray | None:
    """Validate class targets: ``None`` (top class), one int, or one int per image.

    Returns:
        ``None``, or an int32 array of shape ``(n,)``.

    Raises:
        TypeError: non-integer targets.
        ValueError: a wrong number of targets or a class out of range.

    >>> check_targets(3, n=2, num_classes=10)
    array([3, 3], dtype=int32)
    """
    if targets is None:
        return None
    arr = np.asarray(targets)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if (
            np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"Expected `{name}` to be None, an int or a sequence of ints. "
                f"Received: {name}={targets!r}"
            )
    if arr.ndim == 0:
        arr = np.full((n,), int(arr))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"Expected `{name}` to be None, one int, or {n} ints (one per image). "
            f"Received: {name} of shape {arr.shape}"
        )
    if arr.min() < 0 or arr.max() >= num_classes:
        raise ValueError(
            f"`{name}` out of range: the model has {num_classes} classes "
            f"(0 to {num_classes - 1}). Received: {arr.tolist()}"
        )
    return arr.astype(np.int32)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum``, or an error naming ``name``.

    >>> check_positive_int(3, "steps")
    3
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"Expected `{name}` to be an int. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"Expected `{name}` >= {minimum}. Received: {name}={value}")
    return int(value)


def _is_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def check_positive_float(value, name: str, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``), as a float, or a ValueError.

    >>> check_positive_float(2, "blur_sigma")
    2.0
    """
    ok = _is_real(value) and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Expected `{name}` to be a number {bound}. Received: {name}={value!r}")
    return float(value)


def check_fraction(value, name: str, low_open: bool = True) -> float:
    """A number in ``(0, 1]`` (``[0, 1]`` with ``low_open=False``), as a float.

    >>> check_fraction(0.25, "fraction")
    0.25
    """
    ok = _is_real(value) and (0 < value <= 1 if low_open else 0 <= value <= 1)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"Expected `{name}` in {interval}. Received: {name}={value!r}")
    return float(value)


def check_choice(value, name: str, choices: Sequence[str]):
    """``value`` if it is one of ``choices``, else a ValueError listing them (closest first).

    >>> check_choice("logit", "output", ("probability", "logit"))
    'logit'
    """
    if isinstance(value, str) and value in choices:
        return value
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Expected `{name}` in {tuple(choices)}. Received: {name}={value!r}.{hint}")


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or an ``(h, w)`` pair of ints >= ``minimum``, returned as a pair.

    >>> pair(3, "patch")
    (3, 3)
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(
                f"Expected `{name}` to be an int or (h, w). Received: {name}={value!r}"
            )
        return (
            check_positive_int(value[0], name, minimum),
            check_positive_int(value[1], name, minimum),
        )
    v = check_positive_int(value, name, minimum)
    return v, v
