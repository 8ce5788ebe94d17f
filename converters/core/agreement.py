"""How two frameworks' embeddings of one model are compared: on faces rendered from random identities
(``synthetic_faces``, when no images are given), by the least cosine similarity over the images (``min_cosine``)."""

from __future__ import annotations

import numpy as np

from jsphere.data.synthetic import Identity, render


def synthetic_faces(count: int = 16, seed: int = 0) -> np.ndarray:
    """``count`` aligned 112x112 uint8 RGB faces of random identities, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    return np.stack([render(Identity.sample(rng), rng) for _ in range(count)])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The least cosine similarity between the rows of ``a`` and ``b``."""
    cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min())
