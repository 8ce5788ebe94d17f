"""Embeddings of a PyTorch backbone with the interface of ``jsphere.inference.Embedder.embed``, so that jsphere's
evaluators (``jsphere.eval.evaluators.PairEvaluator``) score the PyTorch model with the same code, the same
images and the same flip test-time augmentation (the sum of the embeddings of the image and its mirror, as
OpenSphere v1 and insightface do; OpenSphere v2's normalised mean has the same direction).
"""

from __future__ import annotations

import numpy as np
import torch

from jsphere.inference import FLIPS


class TorchEmbedder:
    """A torch backbone embedding uint8 RGB faces [N, 112, 112, 3] in eval mode (its mode is restored after)."""

    def __init__(self, model: torch.nn.Module, batch_size: int = 64):
        self.model = model
        self.batch_size = batch_size

    @torch.no_grad()
    def embed(self, images: np.ndarray, *, flip: str = "sum", batch_size: int | None = None, label: str = "",
              progress: bool | None = None) -> np.ndarray:
        if flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
        was_training = self.model.training
        self.model.eval()
        bs = batch_size or self.batch_size
        out = []
        try:
            for start in range(0, len(images), bs):
                chunk = (np.asarray(images[start:start + bs], np.float32) - 127.5) / 127.5
                x = torch.from_numpy(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2)))
                feats = self.model(x)
                if flip == "sum":
                    feats = feats + self.model(torch.flip(x, dims=[3]))
                out.append(feats.numpy().astype(np.float32))
        finally:
            self.model.train(was_training)
        return np.concatenate(out)
