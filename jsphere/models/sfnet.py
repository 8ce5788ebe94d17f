"""SFNet, OpenSphere's plain residual network for SphereFace (``sfnet{4,10,20,36,64}``, ``_bn``, ``_deprecated``).

Three variants with one module tree (OpenSphere ``model/backbone/sfnet.py`` and ``sfnet_deprecated.py``):

* ``sfnet*`` (no BN): conv with bias; block ``relu(conv2(relu(conv1(x))) + x)`` (ReLU after the add);
  ``dropout`` then ``fc``; no ``features``.
* ``sfnet*_bn``: conv without bias, BatchNorm after every conv (``bn1``/``bn2``), ``features`` BatchNorm1d after
  ``fc`` (scale init 1.0 as in OpenSphere v1; v2 uses 0.1: ``features_scale_init``).
* ``sfnet*_deprecated`` (OpenSphere v1 "SFNet w/o BN", every VGGFace2 config and released model): block
  ``relu(conv2(relu(conv1(x)))) + x`` (ReLU *before* the add); no dropout, no ``features``; xavier-normal convs.

Stage ``s`` (channels 64/128/256/512) is ``layer{s}.0`` = stride-2 3x3 ConvBlock, then ``depth[s]`` BasicBlocks:
112 -> 56 -> 28 -> 14 -> 7, flatten (channel-major, 25088) -> ``fc`` -> embedding. ``width`` scales every
stage's channels (jsphere's own knob for small, fast models such as the quickstart's ``width=0.5``; OpenSphere's
layout, and so its ``.pth`` files, is ``width=1``). The trunk computes in ``dtype``; ``fc`` and ``features`` in
``layers.param_dtype(dtype)`` (float32, or float64 for a float64 model).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import layers
from jsphere.models.base import Backbone, flatten_channel_major

DEPTHS = {4: (0, 0, 0, 0), 10: (0, 1, 2, 0), 20: (1, 2, 4, 1), 36: (2, 4, 8, 2), 64: (3, 8, 16, 3)}
CHANNELS = (64, 128, 256, 512)


def stage_channels(width: float = 1.0) -> tuple[int, ...]:
    """The four stages' channels at ``width`` (1: OpenSphere's 64/128/256/512)."""
    if not width > 0:
        raise ValueError(f"SFNet width must be > 0, got {width}")
    return tuple(max(1, round(c * width)) for c in CHANNELS)


class ConvBlock(nnx.Module):
    """``layer{s}.0``: stride-2 3x3 conv (+ BN) + ReLU."""

    def __init__(self, cin: int, cout: int, *, norm: bool, kernel_init, dtype, rngs: nnx.Rngs):
        self.conv1 = layers.conv(cin, cout, 3, stride=2, padding=1, bias=not norm, kernel_init=kernel_init,
                                 dtype=dtype, rngs=rngs)
        self.bn1 = layers.BatchNorm(cout, dtype=dtype) if norm else layers.Identity()

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.bn1(self.conv1(x)))


class BasicBlock(nnx.Module):
    """``layer{s}.{b}`` for b >= 1: two 3x3 convs and an identity shortcut."""

    def __init__(self, c: int, *, norm: bool, relu_before_add: bool, kernel_init, dtype, rngs: nnx.Rngs):
        self.relu_before_add = relu_before_add
        self.conv1 = layers.conv(c, c, 3, padding=1, bias=not norm, kernel_init=kernel_init, dtype=dtype,
                                 rngs=rngs)
        self.bn1 = layers.BatchNorm(c, dtype=dtype) if norm else layers.Identity()
        self.conv2 = layers.conv(c, c, 3, padding=1, bias=not norm, kernel_init=kernel_init, dtype=dtype,
                                 rngs=rngs)
        self.bn2 = layers.BatchNorm(c, dtype=dtype) if norm else layers.Identity()

    def __call__(self, x: jax.Array) -> jax.Array:
        out = self.bn2(self.conv2(nnx.relu(self.bn1(self.conv1(x)))))
        if self.relu_before_add:
            return nnx.relu(out) + x
        return nnx.relu(out + x)


class SFNet(Backbone):
    """SFNet-``depth`` in one of the three OpenSphere variants ('plain', 'bn', 'deprecated')."""

    def __init__(
        self,
        depth: int,
        *,
        variant: str = "plain",
        embed_dim: int = 512,
        dropout: float = 0.0,
        features_scale_init: float = 1.0,
        width: float = 1.0,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if depth not in DEPTHS:
            raise ValueError(f"SFNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        if variant not in ("plain", "bn", "deprecated"):
            raise ValueError(f"SFNet variant must be 'plain', 'bn' or 'deprecated', got {variant!r}")
        channels = stage_channels(width)
        self.embed_dim = embed_dim
        self.dtype = dtype
        norm = variant == "bn"
        deprecated = variant == "deprecated"
        kernel_init = layers.xavier_normal if deprecated else layers.kaiming_normal_fan_out
        cin = 3
        for stage, (cout, blocks) in enumerate(zip(channels, DEPTHS[depth], strict=True), start=1):
            stage_modules = [ConvBlock(cin, cout, norm=norm, kernel_init=kernel_init, dtype=dtype, rngs=rngs)]
            stage_modules += [
                BasicBlock(cout, norm=norm, relu_before_add=deprecated, kernel_init=kernel_init, dtype=dtype,
                           rngs=rngs)
                for _ in range(blocks)
            ]
            setattr(self, f"layer{stage}", nnx.List(stage_modules))
            cin = cout
        tail = layers.param_dtype(dtype)
        self.dropout = layers.Identity() if deprecated else layers.dropout(dropout, rngs=rngs)
        self.fc = layers.linear(channels[-1] * 7 * 7, embed_dim, dtype=tail, rngs=rngs)
        self.features = (
            layers.BatchNorm(embed_dim, scale_init=features_scale_init, dtype=tail) if norm else layers.Identity()
        )

    def forward(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        x = self.dropout(flatten_channel_major(x).astype(layers.param_dtype(self.dtype)))
        return self.features(self.fc(x))
