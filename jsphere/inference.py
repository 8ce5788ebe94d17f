"""Embedding images with a backbone (live model or checkpoint): ``Embedder(model).embed(images)``.

Input: uint8 [N, 112, 112, 3] aligned RGB faces or float arrays already in jsphere's form ``(x - 127.5) / 127.5``
(RGB, [-1, 1]). They reach the model in its ``InputConvention``: jsphere's own (and insightface's, OpenSphere's)
is that form; a model imported from a toolkit that feeds something else records its convention in the checkpoint
(AdaFace and TreB1eN: BGR; foamliu's MobileFaceNet: ImageNet mean/std), and ``from_checkpoint`` applies it. The
convention also records how the model's training faces were aligned (``alignment``): ``align`` crops a photo's face
from its landmarks that way, as ``jsphere.embed --detect`` does.
``flip='sum'`` adds the embedding of the horizontally flipped image (OpenSphere v1 / insightface flip test-time
augmentation); ``'none'`` does not. Output float32 [N, D], not normalised, rows in input order. Batches are padded
to a fixed size, so the forward compiles once.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jsphere import checkpoint, models, observe
from jsphere.data.landmark_align import align_face
from jsphere.input_convention import JSPHERE, InputConvention
from jsphere.memory import available_memory

FLIPS = ("sum", "none")
INPUT_BYTES = int(np.prod(models.INPUT_SHAPE)) * 4  # one face as the model's float32 input
BATCH_COPIES = 4  # the converted batch, its padded copy, the mirrored copy, the device's copy


def check_batch_size(batch_size: int, flag: str = "batch_size") -> None:
    """A batch size (named ``flag`` in errors) that is >= 1 and whose inputs fit in the memory available now."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"{flag} {batch_size}: must be an integer >= 1")
    memory = available_memory()
    if memory is not None and batch_size * BATCH_COPIES * INPUT_BYTES > memory:
        most = max(1, memory // (BATCH_COPIES * INPUT_BYTES))
        raise ValueError(f"{flag} {batch_size:,}: the inputs of a batch of {batch_size:,} faces alone need "
                         f"{batch_size * BATCH_COPIES * INPUT_BYTES / 2**30:,.1f} GiB, and this machine has "
                         f"{memory / 2**30:,.1f} GiB available; give at most {most:,}")


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


class Embedder:
    """A backbone in eval mode with a jitted forward: ``embed(images [N, 112, 112, 3]) -> float32 [N, D]``."""

    def __init__(self, model: nnx.Module, *, batch_size: int = 64, progress: bool = False,
                 input_convention: InputConvention = JSPHERE):
        """``progress``: show a bar (images, img/s, ETA) on stderr while embedding; ``input_convention``: what
        the model takes (images are converted to it)."""
        check_batch_size(batch_size)
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

    @property
    def alignment(self) -> str | None:
        """How the model's training faces were aligned (``arcface`` or ``opensphere``, recorded in its checkpoint),
        None when not recorded."""
        return self.input_convention.alignment

    def align(self, image: np.ndarray, landmarks: np.ndarray, *, style: str | None = None) -> np.ndarray:
        """A 112x112 crop of ``image`` (uint8 RGB [H, W, 3]) from its 5 landmarks [5, 2], aligned as the model's
        training faces were (``style``, else the recorded ``alignment``, else insightface's ``arcface``), ready for
        ``embed``."""
        return align_face(image, landmarks, 112, style=style or self.alignment or "arcface")

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
        if batch_size is not None:
            check_batch_size(batch_size)
        bs = max(1, min(batch_size or self.batch_size, len(images)))  # never padded past the images given
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
