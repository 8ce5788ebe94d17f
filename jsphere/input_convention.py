"""What a backbone takes as input: ``InputConvention`` (channel order, per-channel mean and std in pixel units, and
the 5-point alignment its training faces were cropped with).

jsphere's own pixels (``JSPHERE``: RGB, ``(x - 127.5) / 127.5``) are insightface's and OpenSphere's too; a model
imported from a toolkit that feeds something else records its convention in the checkpoint metadata
(``meta['input']``), and whoever embeds with it (``jsphere.inference.Embedder``) converts the faces to it.
``CONVENTIONS`` names the ones the importers know (``--input-convention rgb|bgr|imagenet``).

The alignment (``ALIGNMENTS``, the styles of ``jsphere.data.landmark_align``) is part of the convention: insightface's
(``arcface``: Umeyama's similarity onto the ArcFace template) for every insightface / arcface_torch release and the
models trained on its MS1M crops, OpenSphere's own (``opensphere``: MATLAB cp2tform's fit) for OpenSphere's. The
converters record it from the source layout and a jsphere run from its data (``config.data.alignment``);
``jsphere.embed --detect``, ``jsphere.align --ckpt`` and ``Embedder.align`` crop faces that way unless told
otherwise. ``None``: not recorded.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ALIGNMENTS = ("arcface", "opensphere")  # jsphere.data.landmark_align.STYLES
ALIGNMENT_NAMES = {"arcface": "insightface's", "opensphere": "OpenSphere's"}
FIELDS = ("channels", "mean", "std", "alignment")


@dataclasses.dataclass(frozen=True)
class InputConvention:
    """What a model takes: ``channels`` order ('RGB' or 'BGR') and per-channel ``mean`` / ``std`` in 0-255 pixel
    units, listed in the model's channel order (input = (pixel - mean) / std); ``alignment``: how its faces were
    aligned (one of ``ALIGNMENTS``, None when not recorded)."""

    channels: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    alignment: str | None = None

    def __post_init__(self):
        if self.alignment is not None and self.alignment not in ALIGNMENTS:
            raise ValueError(f"input convention: alignment must be one of {', '.join(ALIGNMENTS)}, got "
                             f"{self.alignment!r}")
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
        if not isinstance(meta, dict) or set(meta) - set(FIELDS):
            raise ValueError(f"input convention {meta!r}: expected {{'channels', 'mean', 'std'[, 'alignment']}}")
        return cls(**meta)

    def to_meta(self) -> dict:
        meta = {"channels": self.channels, "mean": list(self.mean), "std": list(self.std)}
        return meta if self.alignment is None else {**meta, "alignment": self.alignment}

    @property
    def pixels(self) -> tuple:
        """What reaches the model from a face's pixels (everything but the alignment)."""
        return self.channels, self.mean, self.std

    def with_alignment(self, alignment: str | None) -> InputConvention:
        return dataclasses.replace(self, alignment=alignment)

    def describe_pixels(self) -> str:
        if len(set(self.mean)) == 1 and len(set(self.std)) == 1:
            return f"{self.channels}, (x - {self.mean[0]:g}) / {self.std[0]:g}"
        return f"{self.channels}, (x - mean) / std with mean {list(self.mean)}, std {list(self.std)}"

    def describe(self) -> str:
        if self.alignment is None:
            return f"{self.describe_pixels()}, alignment not recorded"
        return f"{self.describe_pixels()}, {ALIGNMENT_NAMES[self.alignment]} alignment ({self.alignment})"

    def apply(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB pixels, or float RGB in jsphere's form, as the float32 input this convention describes."""
        if self.pixels == JSPHERE.pixels:
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
