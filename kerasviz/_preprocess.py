"""How 8-bit pixels become model inputs, and back: one `Preprocessing` shared by every reader.

Keras applications use three conventions (``keras.applications.imagenet_utils``): ``"tf"``
(``v / 127.5 - 1``), ``"torch"`` (``v / 255`` minus the ImageNet mean, over its standard
deviation, RGB) and ``"caffe"`` (RGB to BGR, minus the ImageNet mean in BGR, no scaling).
``"scale"`` is ``v * scale + offset``, the shipped models' convention (``1/255``, ``0``) and that
of models whose first layer rescales (``scale=1``: they take 0-255 values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerasviz import _checks

MODES = ("scale", "tf", "torch", "caffe")
# How an image of another aspect ratio is fitted to the model's input: stretched to it,
# shorter side scaled to it and the centre cut out (how ImageNet models are evaluated), or
# longer side scaled to it and the rest padded. Read by `kerasviz.imageio` and model cards.
RESIZE_MODES = ("squash", "crop", "pad")

# ImageNet statistics of 0-255 RGB pixels, as Keras' imagenet_utils uses them.
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass(frozen=True)
class Preprocessing:
    """Maps 0-255 pixels (grey or RGB, last axis = channels) to model inputs and back.

    Attributes:
        mode: one of `MODES`.
        scale, offset: used by mode ``"scale"`` only: ``v * scale + offset``.

    >>> Preprocessing("tf").apply(np.full((1, 1, 3), 255.0))[0, 0]
    array([1., 1., 1.], dtype=float32)
    """

    mode: str = "scale"
    scale: float = 1 / 255
    offset: float = 0.0

    def __post_init__(self):
        _checks.check_choice(self.mode, "preprocessing mode", MODES)
        if self.mode == "scale" and (not np.isfinite(self.scale) or self.scale == 0):
            raise ValueError(
                f"Expected preprocessing `scale` to be a finite non-zero number. "
                f"Received: {self.scale!r}"
            )

    @property
    def channel_order(self) -> str:
        """``"BGR"`` for caffe-style inputs, else ``"RGB"``."""
        return "BGR" if self.mode == "caffe" else "RGB"

    def _needs_rgb(self, channels: int) -> None:
        if self.mode in ("torch", "caffe") and channels != 3:
            raise ValueError(
                f"Preprocessing mode {self.mode!r} is defined for 3-channel RGB images; "
                f"received {channels} channel(s)."
            )

    def apply(self, pixels) -> np.ndarray:
        """0-255 pixels ``(..., C)`` (RGB order) as float32 model inputs."""
        x = np.asarray(pixels, dtype=np.float32)
        if self.mode == "scale":
            return x * np.float32(self.scale) + np.float32(self.offset)
        if self.mode == "tf":
            return x / np.float32(127.5) - np.float32(1.0)
        self._needs_rgb(x.shape[-1])
        if self.mode == "torch":
            return (x / np.float32(255.0) - _TORCH_MEAN) / _TORCH_STD
        return x[..., ::-1] - _CAFFE_MEAN_BGR

    def invert(self, inputs) -> np.ndarray:
        """Model inputs back to 0-255 pixels in RGB order (float32, not clipped)."""
        x = np.asarray(inputs, dtype=np.float32)
        if self.mode == "scale":
            return (x - np.float32(self.offset)) / np.float32(self.scale)
        if self.mode == "tf":
            return (x + np.float32(1.0)) * np.float32(127.5)
        self._needs_rgb(x.shape[-1])
        if self.mode == "torch":
            return (x * _TORCH_STD + _TORCH_MEAN) * np.float32(255.0)
        return (x + _CAFFE_MEAN_BGR)[..., ::-1]

    def display(self, inputs) -> np.ndarray:
        """Model inputs as RGB (or grey) images in [0, 1] for drawing."""
        return np.clip(self.invert(inputs) / np.float32(255.0), 0.0, 1.0)

    def to_dict(self) -> dict:
        """The card form: ``{"mode": ...}`` (with ``scale`` and ``offset`` for mode "scale")."""
        if self.mode == "scale":
            return {"mode": "scale", "scale": float(self.scale), "offset": float(self.offset)}
        return {"mode": self.mode}

    @classmethod
    def from_card(
        cls, card: dict | None, scale: float | None = None, offset: float | None = None
    ) -> Preprocessing:
        """The card's ``preprocessing`` entry; a given ``scale`` or ``offset`` means mode
        ``"scale"`` (the other value from the card's scale mode, else ``1/255`` or ``0``).

        A card entry without ``mode`` is mode ``"scale"`` (the shipped cards' form).
        """
        prep = dict((card or {}).get("preprocessing") or {})
        mode = prep.get("mode", "scale")
        if scale is not None or offset is not None:
            base = prep if mode == "scale" else {}
            return cls(
                "scale",
                base.get("scale", 1 / 255) if scale is None else scale,
                base.get("offset", 0.0) if offset is None else offset,
            )
        if mode == "scale":
            return cls("scale", prep.get("scale", 1 / 255), prep.get("offset", 0.0))
        return cls(mode)
