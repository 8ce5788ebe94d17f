"""IResNet, insightface's ``iresnet{18,34,50,100,200}`` (arcface_torch ``backbones/iresnet.py``), also OpenSphere's.

Stem ``conv1`` 3x3 -> ``bn1`` -> ``prelu``; four stages of IBasicBlocks (planes 64/128/256/512, the first block of
every stage has stride 2 and a 1x1 ``downsample``)::

    out = bn3(conv2(prelu(bn2(conv1(bn1(x))))))  + downsample(x)     # no activation after the add

then ``bn2`` -> channel-major flatten (25088) -> ``dropout`` -> ``fc`` -> ``features`` (BatchNorm1d). The
``features`` scale is frozen at 1.0 in insightface's layout (``features_scale='frozen'``, default) and trained
with init 0.1 in OpenSphere v2 (``features_scale='trainable'``, ``features_scale_init=0.1``). Convs are N(0, 0.1).
The trunk runs in ``dtype``; ``fc`` and ``features`` stay float32 (insightface casts before ``fc``), or float64
for a float64 model (``layers.param_dtype``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import layers
from jsphere.models.base import Backbone, flatten_channel_major

DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6)}
PLANES = (64, 128, 256, 512)
CONV_INIT = layers.normal(0.1)


class IBasicBlock(nnx.Module):
    def __init__(self, cin: int, planes: int, stride: int, *, dtype, rngs: nnx.Rngs):
        self.bn1 = layers.BatchNorm(cin, dtype=dtype)
        self.conv1 = layers.conv(cin, planes, 3, padding=1, kernel_init=CONV_INIT, dtype=dtype, rngs=rngs)
        self.bn2 = layers.BatchNorm(planes, dtype=dtype)
        self.prelu = layers.ChannelPReLU(planes, dtype=dtype)
        self.conv2 = layers.conv(planes, planes, 3, stride=stride, padding=1, kernel_init=CONV_INIT, dtype=dtype,
                                 rngs=rngs)
        self.bn3 = layers.BatchNorm(planes, dtype=dtype)
        if stride != 1 or cin != planes:
            self.downsample = nnx.List([
                layers.conv(cin, planes, 1, stride=stride, kernel_init=CONV_INIT, dtype=dtype, rngs=rngs),
                layers.BatchNorm(planes, dtype=dtype),
            ])
        else:
            self.downsample = None

    def __call__(self, x: jax.Array) -> jax.Array:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample[1](self.downsample[0](x))
        return out + shortcut


class IResNet(Backbone):
    def __init__(
        self,
        depth: int,
        *,
        embed_dim: int = 512,
        dropout: float = 0.0,
        features_scale: str = "frozen",
        features_scale_init: float = 1.0,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if depth not in DEPTHS:
            raise ValueError(f"IResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        if features_scale not in ("frozen", "trainable"):
            raise ValueError(f"features_scale must be 'frozen' (insightface) or 'trainable' (OpenSphere v2), "
                             f"got {features_scale!r}")
        self.embed_dim = embed_dim
        self.dtype = dtype
        self.conv1 = layers.conv(3, 64, 3, padding=1, kernel_init=CONV_INIT, dtype=dtype, rngs=rngs)
        self.bn1 = layers.BatchNorm(64, dtype=dtype)
        self.prelu = layers.ChannelPReLU(64, dtype=dtype)
        cin = 64
        for stage, (planes, blocks) in enumerate(zip(PLANES, DEPTHS[depth], strict=True), start=1):
            stage_blocks = [IBasicBlock(cin, planes, 2, dtype=dtype, rngs=rngs)]
            stage_blocks += [IBasicBlock(planes, planes, 1, dtype=dtype, rngs=rngs) for _ in range(blocks - 1)]
            setattr(self, f"layer{stage}", nnx.List(stage_blocks))
            cin = planes
        self.bn2 = layers.BatchNorm(512, dtype=dtype)
        self.dropout = layers.dropout(dropout, rngs=rngs)
        tail = layers.param_dtype(dtype)
        self.fc = layers.linear(512 * 7 * 7, embed_dim, dtype=tail, rngs=rngs)
        self.features = layers.BatchNorm(
            embed_dim, scale_init=features_scale_init, scale_trainable=features_scale == "trainable", dtype=tail
        )

    def forward(self, x: jax.Array) -> jax.Array:
        x = self.prelu(self.bn1(self.conv1(x.astype(self.dtype))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        x = flatten_channel_major(self.bn2(x)).astype(layers.param_dtype(self.dtype))
        return self.features(self.fc(self.dropout(x)))
