"""A backbone of one's own for the tests (``tinynet``), its PyTorch twin, and ``registered``: a context that
registers them (either or both) and restores both registries afterwards, so no other test sees them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import torch
from flax import nnx
from torch import nn

from converters.torch_reference import backbones as torch_backbones
from jsphere import models
from jsphere.models import layers, registry
from jsphere.models.base import flatten_channel_major

NAME = "tinynet"


class TinyNet(models.Backbone):
    """conv 3->8 3x3/2 -> BN -> ReLU -> conv 8->16 3x3/4 -> BN -> ReLU -> Linear -> BatchNorm1d."""

    def __init__(self, *, embed_dim: int = 512, dtype=jnp.float32, rngs: nnx.Rngs):
        self.embed_dim = embed_dim
        self.conv1 = layers.conv(3, 8, 3, stride=2, padding=1, dtype=dtype, rngs=rngs)
        self.bn1 = layers.BatchNorm(8, dtype=dtype)
        self.conv2 = layers.conv(8, 16, 3, stride=4, padding=1, dtype=dtype, rngs=rngs)
        self.bn2 = layers.BatchNorm(16, dtype=dtype)
        self.fc = layers.linear(16 * 14 * 14, embed_dim, dtype=dtype, rngs=rngs)
        self.features = layers.BatchNorm(embed_dim, dtype=dtype)

    def forward(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = jax.nn.relu(self.bn2(self.conv2(x)))
        return self.features(self.fc(flatten_channel_major(x)))


class TorchTinyNet(nn.Module):
    def __init__(self, embed_dim: int = 512):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, 4, 1, bias=False), nn.BatchNorm2d(16)
        self.fc, self.features = nn.Linear(16 * 14 * 14, embed_dim), nn.BatchNorm1d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return self.features(self.fc(torch.flatten(x, 1)))


@contextlib.contextmanager
def registered(jax_side: bool = True, torch_side: bool = True) -> Iterator[None]:
    """``tinynet`` registered in jsphere (``jax_side``) and its PyTorch twin (``torch_side``), for the block."""
    saved_jax, saved_torch = dict(registry._REGISTRY), dict(torch_backbones._REGISTERED)
    try:
        if jax_side:
            models.register(NAME)(TinyNet)
        if torch_side:
            torch_backbones.register(NAME)(TorchTinyNet)
        yield
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved_jax)
        torch_backbones._REGISTERED.clear()
        torch_backbones._REGISTERED.update(saved_torch)
