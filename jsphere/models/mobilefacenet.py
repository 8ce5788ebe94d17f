"""MobileFaceNet, insightface's ``mbf`` (arcface_torch ``backbones/mobilefacenet.py``, adapted from cavaface).

All convs are bias-free; ``ConvBlock`` = conv -> BN -> PReLU, ``LinearBlock`` = conv -> BN,
``DepthWise(in, out, g)`` = ConvBlock 1x1 in->g -> ConvBlock kxk g->g (groups g, stride s) -> LinearBlock 1x1 g->out
(+ identity when residual), ``Residual`` = n residual DepthWise blocks. arcface_torch's ``get_mbf(fp16, num_features,
blocks, scale)`` is ``MobileFaceNet(embed_dim=num_features, blocks=blocks, scale=scale)``: ``mbf`` is
``blocks=(1, 4, 6, 2), scale=2`` (registry name ``mobilefacenet``), ``mbf_large`` is ``blocks=(2, 8, 12, 4), scale=4``
(``mobilefacenet_large``); insightface's MXNet MobileFaceNet (``model-y1-test2``) is ``scale=1`` with 128-d output.
``scale`` multiplies the trunk widths (64 * scale, 128 * scale); when ``blocks[0] > 1`` the second layer is a Residual
of ``blocks[0]`` DepthWise blocks (groups 128) instead of the grouped 3x3 ConvBlock. With ``scale=2, blocks=(1, 4, 6,
2)``::

    layers[0] ConvBlock 3->128 3x3 s2          layers[1] ConvBlock 128->128 3x3 s1 groups 64
    layers[2] DepthWise 128->128 s2 g128       layers[3] Residual(128, 4, g128)
    layers[4] DepthWise 128->256 s2 g256       layers[5] Residual(256, 6, g256)
    layers[6] DepthWise 256->256 s2 g512       layers[7] Residual(256, 2, g256)
    conv_sep ConvBlock 256->512 1x1 (float32)  features = GDC: LinearBlock dw 7x7 -> flatten -> Linear 512->D -> BN1d

112 -> 56 -> 28 -> 14 -> 7 -> 1. Kaiming-normal (fan_out) init for convs and the linear layer. The trunk computes
in ``dtype``, ``conv_sep`` and ``features`` in ``layers.param_dtype(dtype)`` (float32, or float64 for a float64
model).

``output='gnap'`` replaces GDC with insightface's GNAP output (MXNet ``symbol_utils.get_fc1(fc_type='GNAP')``,
"mobilefacenet++"): ``features`` = ``bn6f`` (BatchNorm2d, scale fixed at 1), each position rescaled by the image's
mean feature norm over its own norm, global average pooling, then (``embed_dim`` < 512) ``bn6w`` (BatchNorm1d,
scale fixed at 1), ``pre_fc1`` (Linear, no bias: MXNet's bias is folded into ``fc1`` on import) and ``fc1``
(BatchNorm1d, scale fixed at 1), or (``embed_dim`` = 512) ``fc1`` alone. MXNet's ``mean`` there runs over the whole
batch, so its embeddings depend on the images beside them; jsphere's mean is each image's own, which is MXNet's
at batch size 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import layers
from jsphere.models.base import Backbone

INIT = layers.kaiming_normal_fan_out
VARIANTS = {
    "mobilefacenet": {"blocks": (1, 4, 6, 2), "scale": 2},
    "mobilefacenet_large": {"blocks": (2, 8, 12, 4), "scale": 4},
}


class ConvBlock(nnx.Module):
    def __init__(self, cin, cout, kernel=1, stride=1, padding=0, groups=1, *, act=True, dtype, rngs):
        modules = [
            layers.conv(cin, cout, kernel, stride=stride, padding=padding, groups=groups, kernel_init=INIT,
                        dtype=dtype, rngs=rngs),
            layers.BatchNorm(cout, dtype=dtype),
        ]
        if act:
            modules.append(layers.ChannelPReLU(cout, dtype=dtype))
        self.layers = nnx.List(modules)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


def linear_block(cin, cout, kernel=1, stride=1, padding=0, groups=1, *, dtype, rngs) -> ConvBlock:
    """insightface ``LinearBlock``: conv -> BN (same module tree as ConvBlock without the PReLU)."""
    return ConvBlock(cin, cout, kernel, stride, padding, groups, act=False, dtype=dtype, rngs=rngs)


class DepthWise(nnx.Module):
    def __init__(self, cin, cout, *, residual, stride, groups, dtype, rngs):
        self.residual = residual
        self.layers = nnx.List([
            ConvBlock(cin, groups, dtype=dtype, rngs=rngs),
            ConvBlock(groups, groups, 3, stride, 1, groups=groups, dtype=dtype, rngs=rngs),
            linear_block(groups, cout, dtype=dtype, rngs=rngs),
        ])

    def __call__(self, x: jax.Array) -> jax.Array:
        out = x
        for layer in self.layers:
            out = layer(out)
        return out + x if self.residual else out


class Residual(nnx.Module):
    def __init__(self, c, num_block, groups, *, dtype, rngs):
        self.layers = nnx.List([
            DepthWise(c, c, residual=True, stride=1, groups=groups, dtype=dtype, rngs=rngs) for _ in range(num_block)
        ])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class Flatten(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)


class GDC(nnx.Module):
    """Global depthwise conv head: ``layers`` = [LinearBlock dw7x7, Flatten, Linear (no bias), BatchNorm1d]."""

    def __init__(self, embed_dim: int, *, dtype=jnp.float32, rngs):
        self.layers = nnx.List([
            linear_block(512, 512, 7, groups=512, dtype=dtype, rngs=rngs),
            Flatten(),
            layers.linear(512, embed_dim, bias=False, kernel_init=INIT, dtype=dtype, rngs=rngs),
            layers.BatchNorm(embed_dim, dtype=dtype),
        ])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class GNAP(nnx.Module):
    """insightface's GNAP output over the 512-channel map (see the module docstring)."""

    def __init__(self, embed_dim: int, *, dtype=jnp.float32, rngs):
        if embed_dim > 512:
            raise ValueError(f"MobileFaceNet GNAP output: embed_dim {embed_dim} > 512 (insightface's 'convx' "
                             "widening) is not supported; use 512 or fewer")
        self.bn6f = layers.BatchNorm(512, scale_trainable=False, dtype=dtype)
        self.narrows = embed_dim < 512
        if self.narrows:
            self.bn6w = layers.BatchNorm(512, scale_trainable=False, dtype=dtype)
            self.pre_fc1 = layers.linear(512, embed_dim, bias=False, kernel_init=INIT, dtype=dtype, rngs=rngs)
        self.fc1 = layers.BatchNorm(embed_dim, scale_trainable=False, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn6f(x)
        norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))  # [N, H, W, 1]
        x = x * (jnp.mean(norm, axis=(1, 2), keepdims=True) / norm)
        x = jnp.mean(x, axis=(1, 2))
        if self.narrows:
            x = self.pre_fc1(self.bn6w(x))
        return self.fc1(x)


OUTPUTS = ("gdc", "gnap")


class MobileFaceNet(Backbone):
    def __init__(self, *, embed_dim: int = 512, blocks=(1, 4, 6, 2), scale: int = 2, output: str = "gdc",
                 dtype=jnp.float32, rngs: nnx.Rngs):
        blocks = tuple(blocks)
        if len(blocks) != 4 or not all(isinstance(b, int) and b >= 1 for b in blocks):
            raise ValueError(f"MobileFaceNet blocks must be four positive integers, got {blocks!r}")
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"MobileFaceNet scale must be a positive integer, got {scale!r}")
        if output not in OUTPUTS:
            raise ValueError(f"MobileFaceNet output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.embed_dim = embed_dim
        self.dtype = dtype
        c1, c2 = 64 * scale, 128 * scale
        kw = dict(dtype=dtype, rngs=rngs)
        second = (ConvBlock(c1, c1, 3, 1, 1, groups=64, **kw) if blocks[0] == 1
                  else Residual(c1, blocks[0], 128, **kw))
        self.layers = nnx.List([
            ConvBlock(3, c1, 3, 2, 1, **kw),
            second,
            DepthWise(c1, c1, residual=False, stride=2, groups=128, **kw),
            Residual(c1, blocks[1], 128, **kw),
            DepthWise(c1, c2, residual=False, stride=2, groups=256, **kw),
            Residual(c2, blocks[2], 256, **kw),
            DepthWise(c2, c2, residual=False, stride=2, groups=512, **kw),
            Residual(c2, blocks[3], 256, **kw),
        ])
        tail = layers.param_dtype(dtype)
        self.conv_sep = ConvBlock(c2, 512, dtype=tail, rngs=rngs)
        self.features = (GDC if output == "gdc" else GNAP)(embed_dim, dtype=tail, rngs=rngs)

    def forward(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x.astype(layers.param_dtype(self.dtype))))
