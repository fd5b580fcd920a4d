"""Models the way users have them, each with a card that says how to feed and read it.

A model is named by one of:

* a shipped name (``"digits_cnn"``): the small models in ``saved_models/``, trained by
  ``examples/train_models.py``;
* a file path: a Keras 3 ``.keras`` file or a legacy (Keras 2) HDF5 ``.h5``/``.hdf5`` model;
* ``"keras.applications.NAME"`` (``"keras.applications.MobileNetV2"``): a Keras application
  built with ``weights="imagenet"``; Keras downloads the weights once into
  ``$KERAS_HOME/models`` (default ``~/.keras/models``).

The card is a JSON object. For a shipped name or a file it is ``NAME.json`` beside the model
file (``{}`` if there is none); for an application kerasviz writes it (`application_card`). The
keys kerasviz reads, all optional:

* ``class_names``: one name per model output;
* ``preprocessing``: how 8-bit pixels become inputs, `kerasviz._preprocess.Preprocessing`'s
  card form: ``{"mode": "tf"|"torch"|"caffe"}`` or ``{"mode": "scale", "scale": s,
  "offset": o}`` (``v * s + o``; an entry without ``mode`` is mode ``"scale"``);
* ``input_shape`` ``[H, W, C]`` or ``input_size`` ``[H, W]``: the size images are resized to,
  needed for a model that accepts any size;
* ``resize``: how images of another aspect are fitted, one of `RESIZE`;
* ``channel_order``: ``"RGB"`` or ``"BGR"`` (it must agree with ``preprocessing``).
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import zipfile
from importlib import resources
from pathlib import Path

from kerasviz._preprocess import MODES, RESIZE_MODES, Preprocessing

SHIPPED = ("digits_cnn", "shapes_cnn", "snow_biased", "snow_fair")

# Files `keras.saving.load_model` opens: the Keras 3 format and legacy (Keras 2) HDF5.
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

APPLICATIONS_PREFIX = "keras.applications."

RESIZE = RESIZE_MODES  # the resize modes a card may name

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Every application Keras 3 ships: its module in keras.applications, its default input size
# and the preprocessing of that module's `preprocess_input` (None: the model rescales inside
# and takes 0-255 pixels, its `preprocess_input` is the identity).
_SCALE_INSIDE = None
_APPLICATIONS: dict[str, tuple[str, int, str | None]] = {
    "Xception": ("xception", 299, "tf"),
    "VGG16": ("vgg16", 224, "caffe"),
    "VGG19": ("vgg19", 224, "caffe"),
    **{f"ResNet{d}": ("resnet", 224, "caffe") for d in (50, 101, 152)},
    **{f"ResNet{d}V2": ("resnet_v2", 224, "tf") for d in (50, 101, 152)},
    "InceptionV3": ("inception_v3", 299, "tf"),
    "InceptionResNetV2": ("inception_resnet_v2", 299, "tf"),
    "MobileNet": ("mobilenet", 224, "tf"),
    "MobileNetV2": ("mobilenet_v2", 224, "tf"),
    "MobileNetV3Small": ("mobilenet_v3", 224, _SCALE_INSIDE),
    "MobileNetV3Large": ("mobilenet_v3", 224, _SCALE_INSIDE),
    **{f"DenseNet{d}": ("densenet", 224, "torch") for d in (121, 169, 201)},
    "NASNetMobile": ("nasnet", 224, "tf"),
    "NASNetLarge": ("nasnet", 331, "tf"),
    **{
        f"EfficientNetB{i}": ("efficientnet", size, _SCALE_INSIDE)
        for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
    },
    **{
        f"EfficientNetV2{v}": ("efficientnet_v2", size, _SCALE_INSIDE)
        for v, size in (
            ("B0", 224),
            ("B1", 240),
            ("B2", 260),
            ("B3", 300),
            ("S", 384),
            ("M", 480),
            ("L", 480),
        )
    },
    **{
        f"ConvNeXt{s}": ("convnext", 224, _SCALE_INSIDE)
        for s in ("Tiny", "Small", "Base", "Large", "XLarge")
    },
}


class WeightsUnavailable(FileNotFoundError):
    """An application's pretrained weights are neither in Keras' cache nor downloadable."""


def models_dir() -> Path:
    """Where shipped models live: ``$KERASVIZ_MODELS`` or the repository's ``saved_models/``."""
    env = os.environ.get("KERASVIZ_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "saved_models"


def applications() -> tuple[str, ...]:
    """The ``keras.applications`` names kerasviz knows (every ImageNet classifier Keras ships)."""
    return tuple(sorted(_APPLICATIONS))


def application_name(ref) -> str | None:
    """``NAME`` of a ``"keras.applications.NAME"`` reference, ``None`` for anything else.

    Raises:
        ValueError: ``NAME`` is not a Keras application (the closest names are listed).

    >>> application_name("keras.applications.MobileNetV2")
    'MobileNetV2'
    """
    ref = str(ref)
    if not ref.startswith(APPLICATIONS_PREFIX):
        return None
    name = ref[len(APPLICATIONS_PREFIX) :]
    if name in _APPLICATIONS:
        return name
    by_lower = {n.lower(): n for n in _APPLICATIONS}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=4, cutoff=0.6)
    hint = (
        f"close matches: {', '.join(APPLICATIONS_PREFIX + by_lower[c] for c in close)}"
        if close
        else f"known: {', '.join(applications())}"
    )
    raise ValueError(f"model: {ref!r} is not a Keras application; {hint}")


def path(name) -> Path:
    """Path of a shipped model's ``.keras`` file (or of any model file path given)."""
    name = str(name)
    if name.lower().endswith(MODEL_SUFFIXES):
        return Path(name)
    if name not in SHIPPED:
        raise KeyError(
            f"Unknown shipped model {name!r}. Shipped: {list(SHIPPED)}; or give a .keras, .h5 "
            f"or .hdf5 file, or {APPLICATIONS_PREFIX}NAME"
        )
    return models_dir() / f"{name}.keras"


def check_model_file(p) -> Path:
    """``p`` as a Path after checking that it holds a whole Keras model Keras can open: a zip
    archive for ``.keras``, HDF5 with a model config for ``.h5``/``.hdf5``.

    Raises:
        FileNotFoundError: no file at ``p``.
        ValueError: another kind of file (the message says which and what to do), or an HDF5
            file that holds weights only.
    """
    p = Path(p)
    if p.is_dir():
        raise ValueError(
            f"model: {p} is a folder (a TensorFlow SavedModel?); Keras 3 loads .keras, .h5 "
            "and .hdf5 files"
        )
    if not p.is_file():
        raise FileNotFoundError(f"model: no such file: {p}")
    suffix = p.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(
            f"model: expected a .keras, .h5 or .hdf5 file, a shipped name or "
            f"{APPLICATIONS_PREFIX}NAME; got {p}"
        )
    with open(p, "rb") as f:
        head = f.read(16)
    is_zip = head.startswith(_ZIP_MAGIC) and zipfile.is_zipfile(p)
    is_hdf5 = head.startswith(_HDF5_MAGIC) or (not is_zip and _is_hdf5(p))
    if suffix == ".keras" and is_hdf5:
        raise ValueError(f"model: {p} is an HDF5 file with a .keras name; rename it to .h5")
    if suffix != ".keras" and is_zip:
        raise ValueError(
            f"model: {p} is a zip archive (a Keras 3 model) with an HDF5 name; rename it to .keras"
        )
    if not (is_zip or is_hdf5):
        kind = "a zip archive" if suffix == ".keras" else "an HDF5 file"
        raise ValueError(
            f"model: {p} is not a Keras model: a {suffix} file is {kind}, and this one "
            f"starts with {head!r}"
        )
    if is_hdf5:
        _check_hdf5_model(p)
    return p


def _is_hdf5(p: Path) -> bool:
    import h5py  # HDF5 files may carry a user block before the signature

    try:
        return bool(h5py.is_hdf5(p))
    except OSError:
        return False


def _check_hdf5_model(p: Path) -> None:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            has_config = "model_config" in f.attrs
            weights = "layer_names" in f.attrs or "model_weights" in f or "layers" in f
    except OSError as err:
        raise ValueError(f"model: {p} is not a readable HDF5 file ({err})") from None
    if has_config:
        return
    if weights:
        raise ValueError(
            f"model: {p} holds weights only, no model architecture: build the model in "
            f"Python and call model.load_weights({str(p)!r}), then pass the model"
        )
    raise ValueError(f"model: {p} is an HDF5 file without a Keras model in it")


def load(name):
    """A model by shipped name, by ``.keras``/``.h5``/``.hdf5`` path, or
    ``"keras.applications.NAME"`` (built with ImageNet weights, see `load_application`).

    Raises:
        KeyError: an unknown shipped name.
        FileNotFoundError: the file is missing (train the shipped models with
            ``examples/train_models.py``); `WeightsUnavailable` for an application.
        ValueError: the file is not a whole Keras model, or an unknown application name.

    >>> load("digits_cnn").output_shape
    (None, 10)
    """
    app = application_name(name)
    if app is not None:
        return load_application(app)
    ref = str(name)
    p = Path(ref) if ref not in SHIPPED and Path(ref).exists() else path(ref)
    if not p.exists():
        hint = (
            " (train the shipped models with `python examples/train_models.py`)"
            if ref in SHIPPED
            else ""
        )
        raise FileNotFoundError(f"model: no such file: {p}{hint}")
    check_model_file(p)
    import keras

    try:
        return keras.saving.load_model(p, compile=False)
    except Exception as err:  # zip errors, bad configs: all mean "not a Keras model"
        reason = " ".join(str(err).split())[:300]
        raise ValueError(f"model: {p} could not be loaded as a Keras model: {reason}") from None


def _keras_cache_dir(cache_dir=None) -> str:
    """The folder `keras.utils.get_file` downloads into (before its ``cache_subdir``)."""
    if cache_dir is None:
        try:
            from keras.src.backend.config import keras_home

            cache_dir = keras_home()
        except ImportError:  # pragma: no cover - a Keras without the accessor
            cache_dir = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    base = os.path.expanduser(cache_dir)
    if not os.access(base, os.W_OK):  # Keras falls back to a temporary folder
        import tempfile

        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return base


def load_application(name: str):
    """``keras.applications.NAME(weights="imagenet")``, through Keras' own download and cache.

    Keras keeps the weights file in ``$KERAS_HOME/models`` (default ``~/.keras/models``) and
    downloads it there the first time. Without network, put the file there by hand: the error
    names the file and the address Keras downloads it from.

    Raises:
        ValueError: ``name`` is not a Keras application.
        WeightsUnavailable: the weights are not cached and cannot be downloaded, or the cached
            file cannot be read.
    """
    name = application_name(APPLICATIONS_PREFIX + str(name))
    import inspect as pyinspect

    import keras
    from keras.src.utils import file_utils  # Keras' downloader, watched to name its file

    original = file_utils.get_file
    signature = pyinspect.signature(original)
    calls: list[dict] = []

    def watched(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        calls.append(call)
        call["path"] = original(*args, **kwargs)
        return call["path"]

    ref = APPLICATIONS_PREFIX + name
    file_utils.get_file = watched
    try:
        return getattr(keras.applications, name)(weights="imagenet")
    except Exception as err:
        if not calls:
            raise
        call = calls[-1]
        reason = " ".join(str(err).split())
        if " -- " in reason:  # "URL fetch failure on URL: code -- reason"
            reason = reason.split(" -- ", 1)[1]
        reason = reason[:200]
        target = os.path.join(
            _keras_cache_dir(call.get("cache_dir")), call["cache_subdir"], call["fname"]
        )
        if "path" in call:
            raise WeightsUnavailable(
                f"model: {ref}: the weights file {call['path']} could not be read ({reason}); "
                f"delete it so Keras downloads it again, or replace it with {call['origin']}"
            ) from None
        exact = (
            " (Keras checks its hash: it must be that exact file)" if call.get("file_hash") else ""
        )
        raise WeightsUnavailable(
            f"model: {ref}: its ImageNet weights could not be downloaded ({reason}). Keras "
            f"looks for {target}: download {call['origin']} where there is network and put "
            f"it there{exact}; $KERAS_HOME sets the folder (default ~/.keras)"
        ) from None
    finally:
        file_utils.get_file = original


@functools.lru_cache(maxsize=1)
def _imagenet_table() -> tuple[tuple[str, str, str], ...]:
    text = resources.files("kerasviz").joinpath("data", "imagenet_classes.tsv").read_text()
    rows = tuple(
        tuple(line.split("\t"))
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )
    if len(rows) != 1000 or any(len(r) != 3 for r in rows):
        raise RuntimeError("kerasviz/data/imagenet_classes.tsv is damaged: reinstall kerasviz")
    return rows


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in the order Keras' ImageNet classifiers predict them
    (Keras' names: ``"tench"``, ``"goldfish"``, ..., ``"toilet_tissue"``), shipped with
    kerasviz (Keras downloads them at run time). Source and licence: ``kerasviz/data/README.md``.
    """
    return [row[1] for row in _imagenet_table()]


def imagenet_wnids() -> list[str]:
    """The WordNet IDs (``"n01440764"``, ...) of `imagenet_classes`, in the same order."""
    return [row[0] for row in _imagenet_table()]


def application_card(name: str) -> dict:
    """The card of ``keras.applications.NAME`` with ImageNet weights: its default input size,
    the preprocessing of its module's ``preprocess_input``, centre-crop resizing (how ImageNet
    models are evaluated) and the 1000 ImageNet class names.

    >>> application_card("ResNet50")["preprocessing"]
    {'mode': 'caffe'}
    """
    name = application_name(APPLICATIONS_PREFIX + str(name))
    module, size, mode = _APPLICATIONS[name]
    prep = Preprocessing("scale", 1.0, 0.0) if mode is _SCALE_INSIDE else Preprocessing(mode)
    card = {
        "name": APPLICATIONS_PREFIX + name,
        "source": f"keras.applications.{module}.{name}(weights='imagenet'), ImageNet-1k",
        "input_size": [size, size],
        "preprocessing": prep.to_dict(),
        "resize": "crop",
        "class_names": imagenet_classes(),
    }
    if prep.channel_order != "RGB":
        card["channel_order"] = prep.channel_order
    return card


def card_path(name) -> Path:
    """Where the card of a shipped model or model file is: ``NAME.json`` beside the file."""
    return path(name).with_suffix(".json")


def card(name, model=None) -> dict:
    """The card of a model (see the module docstring): ``NAME.json`` beside a shipped model or
    model file (``{}`` if absent), the built-in card of ``keras.applications.NAME``.

    Args:
        name: what `load` takes.
        model: the loaded model, to check the card against (class count, input size).

    Raises:
        ValueError: a card that is not valid JSON or has a bad entry; the message names the
            file and the key.
    """
    app = application_name(name)
    if app is not None:
        found, source = application_card(app), APPLICATIONS_PREFIX + app
    else:
        p = card_path(name)
        if not p.is_file():
            return {}
        source = str(p)
        try:
            found = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"card {p}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"card {p}: cannot be read ({err})") from None
    return check_card(found, source, model)


def _bad(source, key, expected, value) -> ValueError:
    return ValueError(f"card {source}: key {key!r}: expected {expected}; got {value!r}")


def _is_size(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def card_size(card: dict) -> tuple[int, int] | None:
    """``(H, W)`` from a card's ``input_size`` or ``input_shape`` (``None`` if it names none)."""
    if card.get("input_size") is not None:
        h, w = card["input_size"]
        return int(h), int(w)
    shape = card.get("input_shape")
    if shape is not None and shape[0] is not None and shape[1] is not None:
        return int(shape[0]), int(shape[1])
    return None


def check_card(card, source="card", model=None) -> dict:
    """``card`` after checking the keys kerasviz reads (and, given ``model``, that the class
    names and input size fit it).

    Raises:
        ValueError: one line naming ``source`` (the card's file) and the key.
    """
    if not isinstance(card, dict):
        raise ValueError(f"card {source}: expected a JSON object; got {type(card).__name__}")
    names = card.get("class_names")
    if names is not None and (
        not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
    ):
        raise _bad(source, "class_names", "a non-empty list of strings", names)
    prep = card.get("preprocessing")
    if prep is not None:
        if not isinstance(prep, dict):
            raise _bad(source, "preprocessing", 'an object such as {"mode": "tf"}', prep)
        mode = prep.get("mode", "scale")
        if mode not in MODES:
            raise _bad(source, "preprocessing.mode", f"one of {', '.join(MODES)}", mode)
        for key in ("scale", "offset"):
            value = prep.get(key)
            if value is None:
                continue
            if mode != "scale":
                raise ValueError(
                    f"card {source}: key 'preprocessing.{key}': applies to mode 'scale' only; "
                    f"the mode is {mode!r}"
                )
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or (key == "scale" and value == 0)
            ):
                what = "a finite non-zero number" if key == "scale" else "a finite number"
                raise _bad(source, f"preprocessing.{key}", what, value)
    shape = card.get("input_shape")
    if shape is not None and (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(v is None or _is_size(v) for v in shape)
    ):
        raise _bad(source, "input_shape", "[H, W, C] (H and W may be null)", shape)
    size = card.get("input_size")
    if size is not None and (
        not isinstance(size, list) or len(size) != 2 or not all(_is_size(v) for v in size)
    ):
        raise _bad(source, "input_size", "[H, W], two positive integers", size)
    resize = card.get("resize")
    if resize is not None and resize not in RESIZE:
        raise _bad(source, "resize", f"one of {', '.join(RESIZE)}", resize)
    order = card.get("channel_order")
    if order is not None:
        if order not in ("RGB", "BGR"):
            raise _bad(source, "channel_order", "RGB or BGR", order)
        implied = Preprocessing.from_card(card).channel_order
        if order != implied:
            raise ValueError(
                f"card {source}: key 'channel_order': {order!r} disagrees with the "
                f"preprocessing, which gives {implied} inputs"
            )
    if model is not None:
        _check_card_fits(card, source, model)
    return card


def _check_card_fits(card: dict, source, model) -> None:
    from kerasviz import inspect

    names = card.get("class_names")
    if names is not None:
        n = inspect.num_outputs(model)
        if len(names) != n:
            raise ValueError(
                f"card {source}: key 'class_names': {len(names)} names, but the model has "
                f"{n} outputs"
            )
    h, w, c = inspect.input_shape(model)
    key = "input_size" if card.get("input_size") is not None else "input_shape"
    size = card_size(card)
    if size is not None and h is not None and w is not None and size != (h, w):
        raise ValueError(
            f"card {source}: key {key!r}: {size[0]}x{size[1]}, but the model takes {h}x{w} images"
        )
    shape = card.get("input_shape")
    if shape is not None and c is not None and shape[2] is not None and shape[2] != c:
        raise ValueError(
            f"card {source}: key 'input_shape': {shape[2]} channels, but the model takes {c}"
        )


def preprocessing(
    card: dict, scale: float | None = None, offset: float | None = None
) -> tuple[float, float]:
    """``(scale, offset)`` mapping 8-bit pixels to model inputs: given values win, then the
    card's ``preprocessing``, then ``1/255`` and ``0``. For cards of mode ``"scale"`` only;
    `kerasviz._preprocess.Preprocessing.from_card` reads every mode.

    Raises:
        ValueError: the card's preprocessing is not a ``scale * v + offset`` mapping.
    """
    prep = Preprocessing.from_card(card, scale, offset)
    if prep.mode != "scale":
        raise ValueError(
            f"The card's preprocessing is mode {prep.mode!r}, not v * scale + offset; "
            "read it with Preprocessing.from_card"
        )
    return prep.scale, prep.offset
