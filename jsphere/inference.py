"""Embedding images with a backbone (live model or checkpoint): ``Embedder(model).embed(images)``.

Input: uint8 [N, 112, 112, 3] aligned RGB faces or float arrays already in jsphere's form ``(x - 127.5) / 127.5``
(RGB, [-1, 1]). They reach the model in its ``InputConvention``: jsphere's own (and insightface's, OpenSphere's)
is that form; a model imported from a toolkit that feeds something else records its convention in the checkpoint
(AdaFace and TreB1eN: BGR; foamliu's MobileFaceNet: ImageNet mean/std), and ``from_checkpoint`` applies it.
``flip='sum'`` adds the embedding of the horizontally flipped image (OpenSphere v1 / insightface flip test-time
augmentation); ``'none'`` does not. Output float32 [N, D], not normalised, rows in input order. Batches are padded
to a fixed size, so the forward compiles once.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jsphere import checkpoint, models, observe

FLIPS = ("sum", "none")


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


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


class Embedder:
    """A backbone in eval mode with a jitted forward."""

    def __init__(self, model: nnx.Module, *, batch_size: int = 64, progress: bool = False,
                 input_convention: InputConvention = JSPHERE):
        """``progress``: show a bar (images, img/s, ETA) on stderr while embedding; ``input_convention``: what
        the model takes (images are converted to it)."""
        model.eval()
        self.input_convention = input_convention
        self.progress = progress
        self.model = model
        self.graphdef, self.state = nnx.split(model)
        self.batch_size = batch_size
        self.embed_dim = int(model.embed_dim)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, step: int | None = None, dtype=jnp.float32,
                        batch_size: int = 64, progress: bool = False) -> Embedder:
        """Rebuild the backbone recorded in a jsphere checkpoint (trained or converted) and load its weights."""
        weights = checkpoint.load_weights(path, step)
        spec = weights.meta.get("model")
        if not spec or "name" not in spec:
            raise ValueError(f"{path}: the checkpoint metadata does not say which model it holds (no 'model.name')")
        model = models.build(spec["name"], embed_dim=int(spec["embed_dim"]), dtype=dtype, **spec.get("kwargs", {}))
        models.load_pure_state(model, weights.backbone, source=f"checkpoint {path} (step {weights.step})")
        try:
            convention = InputConvention.from_meta(weights.meta.get("input"))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: the checkpoint metadata's input convention is unreadable: {e}") from None
        embedder = cls(model, batch_size=batch_size, progress=progress, input_convention=convention)
        embedder.step = weights.step
        return embedder

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(_forward(self.graphdef, self.state, jnp.asarray(x)))

    def embed(self, images: np.ndarray, *, flip: str = "sum", batch_size: int | None = None,
              label: str = "embedded", progress: bool | None = None) -> np.ndarray:
        """Embeddings [N, D] of uint8 or [-1, 1] float images [N, 112, 112, 3]; ``flip='sum'`` adds the mirror's.

        ``progress`` (default: the embedder's setting) shows a bar labelled ``label``.
        """
        if flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != models.INPUT_SHAPE:
            raise ValueError(f"expected images of shape [N, 112, 112, 3], got {images.shape}")
        bs = batch_size or self.batch_size
        out = np.empty((len(images), self.embed_dim), np.float32)
        show = self.progress if progress is None else progress
        with observe.ImageProgress(len(images), label, enabled=show) as bar:
            for start in range(0, len(images), bs):
                chunk = self.input_convention.apply(images[start:start + bs])
                n = len(chunk)
                if n < bs:
                    chunk = np.concatenate([chunk, np.zeros((bs - n,) + chunk.shape[1:], np.float32)])
                feats = self._run(chunk)
                if flip == "sum":
                    feats = feats + self._run(chunk[:, :, ::-1])
                out[start:start + n] = feats[:n]
                bar.advance(n)
        return out
