"""A backbone small enough that a test compiles its train step in a second: jsphere's BatchNorm over 4x4x3 images
(statistics in the model's dtype), then a linear embedding. It says its ``embed_dim``, as
``trainers.build_setup`` requires."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jsphere import models

SIDE = 4  # images [B, 4, 4, 3]


class TinyNet(nnx.Module):
    def __init__(self, embed_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.embed_dim = embed_dim
        self.dtype = dtype
        self.bn = models.BatchNorm(3, dtype=dtype)
        self.fc = nnx.Linear(SIDE * SIDE * 3, embed_dim, rngs=rngs, dtype=dtype, param_dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(self.bn(x.astype(self.dtype)).reshape(x.shape[0], -1))


def batch(size: int, classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images [size, 4, 4, 3] in [-1, 1] and labels [size] (host arrays)."""
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(-1, 1, (size, SIDE, SIDE, 3)).astype(np.float32),
            "label": rng.integers(0, classes, size).astype(np.int32)}
