"""What a backbone takes as input: ``InputConvention`` (channel order, per-channel mean and std in pixel units).

jsphere's own convention (``JSPHERE``: RGB, ``(x - 127.5) / 127.5``) is insightface's and OpenSphere's too; a model
imported from a toolkit that feeds something else records its convention in the checkpoint metadata
(``meta['input']``), and whoever embeds with it (``jsphere.inference.Embedder``) converts the faces to it.
``CONVENTIONS`` names the ones the importers know (``--input-convention rgb|bgr|imagenet``).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class InputConvention:
    """What a model takes: ``channels`` order ('RGB' or 'BGR') and per-channel ``mean`` / ``std`` in 0-255 pixel
    units, listed in the model's channel order (input = (pixel - mean) / std)."""

    channels: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    def __post_init__(self):
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"input convention: channels must be 'RGB' or 'BGR', got {self.channels!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not (isinstance(value, list | tuple) and len(value) == 3
                    and all(isinstance(v, int | float) and np.isfinite(v) for v in value)):
                raise ValueError(f"input convention: {name} must be three finite numbers, got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if min(self.std) <= 0:
            raise ValueError(f"input convention: std must be positive, got {self.std}")

    @classmethod
    def from_meta(cls, meta: dict | None) -> InputConvention:
        """The convention a checkpoint's metadata records (``meta['input']``); jsphere's own when there is none."""
        if meta is None:
            return cls()
        if not isinstance(meta, dict) or set(meta) - {"channels", "mean", "std"}:
            raise ValueError(f"input convention {meta!r}: expected {{'channels', 'mean', 'std'}}")
        return cls(**meta)

    def to_meta(self) -> dict:
        return {"channels": self.channels, "mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        if len(set(self.mean)) == 1 and len(set(self.std)) == 1:
            return f"{self.channels}, (x - {self.mean[0]:g}) / {self.std[0]:g}"
        return f"{self.channels}, (x - mean) / std with mean {list(self.mean)}, std {list(self.std)}"

    def apply(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB pixels, or float RGB in jsphere's form, as the float32 input this convention describes."""
        if self == JSPHERE:
            if batch.dtype == np.uint8:
                return (batch.astype(np.float32) - 127.5) / 127.5
            return batch.astype(np.float32)
        pixels = batch.astype(np.float32) if batch.dtype == np.uint8 else batch.astype(np.float32) * 127.5 + 127.5
        if self.channels == "BGR":
            pixels = pixels[..., ::-1]
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return np.ascontiguousarray((pixels - mean) / std, dtype=np.float32)


JSPHERE = InputConvention()
CONVENTIONS = {
    "rgb": JSPHERE,  # jsphere, insightface, OpenSphere, face.evoLVe, CurricularFace
    "bgr": InputConvention("BGR"),  # AdaFace, TreB1eN's InsightFace_Pytorch
    "imagenet": InputConvention("RGB", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),  # foamliu MobileFaceNet
}
