"""What every backbone shares: the input contract and the PyTorch-order flatten."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

INPUT_SHAPE = (112, 112, 3)


def check_input(x: jax.Array, name: str) -> None:
    """Raise a clear error unless ``x`` is an NHWC batch of 112x112 RGB images."""
    if x.ndim == 4 and tuple(x.shape[1:]) == INPUT_SHAPE:
        return
    hint = ""
    if x.ndim == 4 and x.shape[1] == 3 and tuple(x.shape[2:]) == INPUT_SHAPE[:2]:
        hint = " It looks like NCHW: transpose it with x.transpose(0, 2, 3, 1)."
    elif x.ndim == 4 and x.shape[1:3] == (112, 96):
        hint = " 112x96 (SphereFace's original crop) is not supported: align faces to the 112x112 template."
    elif x.ndim == 3:
        hint = " Add a batch axis: x[None]."
    raise ValueError(
        f"{name}: expected an NHWC float batch of shape [N, 112, 112, 3] with values in [-1, 1], "
        f"got shape {tuple(x.shape)}.{hint}"
    )


def flatten_channel_major(x: jax.Array) -> jax.Array:
    """Flatten NHWC feature maps in PyTorch's NCHW order (index c*H*W + h*W + w), as ``torch.flatten`` does."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


class Backbone(nnx.Module):
    """Base class: subclasses set ``embed_dim`` and implement ``forward`` on validated NHWC input."""

    embed_dim: int

    def __call__(self, x: jax.Array) -> jax.Array:
        check_input(x, type(self).__name__)
        return self.forward(x)

    def forward(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError
