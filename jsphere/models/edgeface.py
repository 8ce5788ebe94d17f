"""EdgeFace (Idiap, the IJCB 2023 efficient face recognition competition's winner; github otroshi/edgeface): timm's
EdgeNeXt with a 512-d classifier, and in the ``_gamma_`` models every Linear a low-rank pair (``LoRaLin``).

The module tree is the released state_dict's: the wrapper's ``model``, then EdgeNeXt's

    stem       [Conv 3->C0 4x4/4 (bias), LayerNorm2d]                               112 -> 28
    stages.i   downsample [LayerNorm2d, Conv 2x2/2 (bias)] for i > 0                28 -> 14 -> 7 -> 3
               blocks.j   conv encoders: x + gamma * mlp(norm(conv_dw(x))), depthwise kernel 3, 5, 7, 9
                          the last block of stages 1-3 a split depth-wise transposed attention (SDTA) block:
                          the channels cut in ``scales`` chunks, chunk k (+ the previous output) through
                          ``convs.k`` (depthwise 3x3), the last chunk kept; tokens (+ stage 1's Fourier
                          positional encoding ``pos_embd``) + gamma_xca * xca(norm_xca(tokens)), where ``xca``
                          attends across channels (L2-normalised over tokens, a learned ``temperature`` per head);
                          then x + gamma * mlp(norm(.))
    head       global average pool -> ``norm`` (LayerNorm) -> ``fc`` (C3 -> D)

``mlp`` is fc1 (C -> 4C), exact GELU, fc2; every LayerNorm has eps 1e-6. With ``rank_ratio`` r, each Linear
(in, out) is ``linear1`` (in -> rank, no bias) then ``linear2`` (rank -> out), rank = max(2, int(min(in, out) r)).
Variants (timm ``edgenext_*`` settings): ``VARIANTS``. Input: jsphere's, RGB (x - 127.5) / 127.5, as EdgeFace's
own pipeline (``Normalize(0.5, 0.5)`` on RGB in [0, 1]). Weights initialised as EdgeNeXt's (truncated normal
std 0.02, zero biases, layer scales 1e-6).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jsphere.models import layers
from jsphere.models.base import Backbone

EPS = 1e-6
KERNELS, SCALES, GLOBAL_BLOCKS, POS_EMB = (3, 5, 7, 9), (2, 2, 3, 4), (0, 1, 1, 1), (False, True, False, False)
VARIANTS = {  # name: depths, dims, heads, rank_ratio (the authors' get_model names; timm's edgenext_* settings)
    "edgeface_xxs": ((2, 2, 6, 2), (24, 48, 88, 168), 4, None),
    "edgeface_xs_gamma_06": ((3, 3, 9, 3), (32, 64, 100, 192), 4, 0.6),
    "edgeface_s_gamma_05": ((3, 3, 9, 3), (48, 96, 160, 304), 8, 0.5),
    "edgeface_base": ((3, 3, 9, 3), (80, 160, 288, 584), 8, None),
}
FOURIER_DIM, FOURIER_TEMPERATURE = 32, 10000.0


def trunc_normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """timm's ``trunc_normal_tf_(std=0.02)``: N(0, 1) truncated to [-2, 2], times 0.02."""
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * 0.02


def rank_of(cin: int, cout: int, ratio: float) -> int:
    """EdgeFace's LoRaLin rank for a Linear (cin, cout)."""
    return max(2, int(min(cin, cout) * ratio))


class LoRaLin(nnx.Module):
    """A low-rank Linear: ``linear1`` (no bias) then ``linear2``."""

    def __init__(self, cin: int, cout: int, rank: int, *, dtype, rngs: nnx.Rngs):
        kw = dict(kernel_init=trunc_normal, bias_init=nnx.initializers.zeros, dtype=dtype, rngs=rngs)
        self.linear1 = layers.linear(cin, rank, bias=False, **kw)
        self.linear2 = layers.linear(rank, cout, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear2(self.linear1(x))


def dense(cin: int, cout: int, ratio: float | None, *, dtype, rngs: nnx.Rngs) -> nnx.Module:
    """A Linear, or its LoRaLin pair when ``ratio`` is given."""
    if ratio is None:
        return layers.linear(cin, cout, kernel_init=trunc_normal, bias_init=nnx.initializers.zeros, dtype=dtype,
                             rngs=rngs)
    return LoRaLin(cin, cout, rank_of(cin, cout, ratio), dtype=dtype, rngs=rngs)


def conv(cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1, dtype, rngs: nnx.Rngs) -> nnx.Conv:
    """EdgeNeXt's convolutions: biased, 'same' padding at stride 1, EdgeNeXt's initialisation."""
    return layers.conv(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 0,
                       groups=groups, bias=True, kernel_init=trunc_normal, bias_init=nnx.initializers.zeros,
                       dtype=dtype, rngs=rngs)


class Mlp(nnx.Module):
    def __init__(self, dim: int, ratio: float | None, *, dtype, rngs: nnx.Rngs):
        self.fc1 = dense(dim, 4 * dim, ratio, dtype=dtype, rngs=rngs)
        self.fc2 = dense(4 * dim, dim, ratio, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class ConvEncoder(nnx.Module):
    """x + gamma * mlp(norm(conv_dw(x)))."""

    torch_params = ("gamma",)

    def __init__(self, dim: int, kernel: int, ratio: float | None, *, dtype, rngs: nnx.Rngs):
        self.gamma = nnx.Param(jnp.full((dim,), 1e-6, layers.param_dtype(dtype)))
        self.conv_dw = conv(dim, dim, kernel, groups=dim, dtype=dtype, rngs=rngs)
        self.norm = layers.LayerNorm(dim, eps=EPS, dtype=dtype)
        self.mlp = Mlp(dim, ratio, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.gamma[...].astype(x.dtype) * self.mlp(self.norm(self.conv_dw(x)))


class CrossCovarianceAttention(nnx.Module):
    """Attention across channels: per head, the [d, d] softmax of L2-normalised (over tokens) q k^T times
    ``temperature``, applied to v; then ``proj``."""

    torch_params = ("temperature",)

    def __init__(self, dim: int, heads: int, ratio: float | None, *, dtype, rngs: nnx.Rngs):
        self.heads = heads
        self.temperature = nnx.Param(jnp.ones((heads, 1, 1), layers.param_dtype(dtype)))
        self.qkv = dense(dim, 3 * dim, ratio, dtype=dtype, rngs=rngs)
        self.proj = dense(dim, dim, ratio, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # [B, N, C]
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).transpose(2, 0, 3, 4, 1)  # [3, B, h, d, N]

        def unit(t):
            return t / jnp.maximum(jnp.linalg.norm(t, axis=-1, keepdims=True), 1e-12)

        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = jax.nn.softmax(unit(q) @ jnp.swapaxes(unit(k), -1, -2) * self.temperature[...].astype(x.dtype), -1)
        return self.proj((attn @ v).transpose(0, 3, 1, 2).reshape(b, n, c))


def fourier_features(height: int, width: int) -> np.ndarray:
    """EdgeNeXt's ``PositionalEncodingFourier`` before its projection: [H, W, 64] (y then x, sin/cos
    interleaved), computed in float32 from the map size alone."""
    scale = np.float32(2 * math.pi)
    y = np.arange(1, height + 1, dtype=np.float32)[:, None] / np.float32(height + 1e-6) * scale
    x = np.arange(1, width + 1, dtype=np.float32)[None, :] / np.float32(width + 1e-6) * scale
    i = np.arange(FOURIER_DIM, dtype=np.float32)
    dim_t = np.float32(FOURIER_TEMPERATURE) ** (2 * np.floor(i / 2) / FOURIER_DIM)

    def encode(e):
        p = np.broadcast_to(e, (height, width))[..., None] / dim_t
        return np.stack((np.sin(p[..., 0::2]), np.cos(p[..., 1::2])), axis=-1).reshape(height, width, -1)

    return np.concatenate((encode(y), encode(x)), axis=-1).astype(np.float32)


class FourierPositions(nnx.Module):
    def __init__(self, dim: int, *, dtype, rngs: nnx.Rngs):
        self.token_projection = conv(2 * FOURIER_DIM, dim, 1, dtype=dtype, rngs=rngs)

    def __call__(self, height: int, width: int, dtype) -> jax.Array:
        return self.token_projection(jnp.asarray(fourier_features(height, width), dtype)[None])


class SplitTransposeBlock(nnx.Module):
    """EdgeNeXt's SDTA block (see the module docstring)."""

    torch_params = ("gamma_xca", "gamma")

    def __init__(self, dim: int, scales: int, heads: int, pos_emb: bool, ratio: float | None, *, dtype,
                 rngs: nnx.Rngs):
        stored = layers.param_dtype(dtype)
        self.width = math.ceil(dim / scales)
        self.gamma_xca = nnx.Param(jnp.full((dim,), 1e-6, stored))
        self.gamma = nnx.Param(jnp.full((dim,), 1e-6, stored))
        self.convs = nnx.List([conv(self.width, self.width, 3, groups=self.width, dtype=dtype, rngs=rngs)
                               for _ in range(max(1, scales - 1))])
        self.pos_embd = FourierPositions(dim, dtype=dtype, rngs=rngs) if pos_emb else None
        self.norm_xca = layers.LayerNorm(dim, eps=EPS, dtype=dtype)
        self.xca = CrossCovarianceAttention(dim, heads, ratio, dtype=dtype, rngs=rngs)
        self.norm = layers.LayerNorm(dim, eps=EPS, dtype=dtype)
        self.mlp = Mlp(dim, ratio, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        cuts = list(range(self.width, c, self.width))[: len(self.convs)]  # torch.chunk's sizes
        chunks = jnp.split(x, cuts, axis=-1)
        out, previous = [], None
        for i, layer in enumerate(self.convs):
            previous = layer(chunks[i] if previous is None else previous + chunks[i])
            out.append(previous)
        tokens = jnp.concatenate(out + chunks[len(self.convs):], axis=-1).reshape(b, h * w, c)
        if self.pos_embd is not None:
            tokens = tokens + self.pos_embd(h, w, tokens.dtype).reshape(1, h * w, c)
        tokens = tokens + self.gamma_xca[...].astype(x.dtype) * self.xca(self.norm_xca(tokens))
        y = self.mlp(self.norm(tokens.reshape(b, h, w, c)))
        return x + self.gamma[...].astype(x.dtype) * y


class Stage(nnx.Module):
    def __init__(self, index: int, cin: int, dim: int, depth: int, heads: int, ratio: float | None, *, dtype,
                 rngs: nnx.Rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        self.downsample = nnx.List([layers.LayerNorm(cin, eps=EPS, dtype=dtype),
                                    conv(cin, dim, 2, stride=2, **kw)]) if index else None
        local = depth - GLOBAL_BLOCKS[index]
        self.blocks = nnx.List([
            ConvEncoder(dim, KERNELS[index], ratio, **kw) if j < local
            else SplitTransposeBlock(dim, SCALES[index], heads, POS_EMB[index], ratio, **kw) for j in range(depth)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.downsample or ():
            x = layer(x)
        for block in self.blocks:
            x = block(x)
        return x


class Head(nnx.Module):
    def __init__(self, dim: int, embed_dim: int, ratio: float | None, *, dtype, rngs: nnx.Rngs):
        self.norm = layers.LayerNorm(dim, eps=EPS, dtype=dtype)
        self.fc = dense(dim, embed_dim, ratio, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(self.norm(jnp.mean(x, axis=(1, 2))))


class EdgeNeXt(nnx.Module):
    def __init__(self, depths, dims, heads: int, ratio: float | None, embed_dim: int, *, dtype, rngs: nnx.Rngs):
        self.stem = nnx.List([conv(3, dims[0], 4, stride=4, dtype=dtype, rngs=rngs),
                              layers.LayerNorm(dims[0], eps=EPS, dtype=dtype)])
        cins = (dims[0], *dims[:-1])
        self.stages = nnx.List([Stage(i, cins[i], dims[i], depths[i], heads, ratio, dtype=dtype, rngs=rngs)
                                for i in range(4)])
        tail = layers.param_dtype(dtype)
        self.head = Head(dims[-1], embed_dim, ratio, dtype=tail, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.stem:
            x = layer(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


class EdgeFace(Backbone):
    """EdgeFace ``variant`` (its depths, widths and heads: a ``VARIANTS`` name) with LoRaLin pairs of
    ``rank_ratio`` (None: plain Linears). The registry's names give each variant its own ratio."""

    def __init__(self, variant: str = "edgeface_xs_gamma_06", *, embed_dim: int = 512,
                 rank_ratio: float | None = None, dtype=jnp.float32, rngs: nnx.Rngs):
        if variant not in VARIANTS:
            raise ValueError(f"EdgeFace variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if rank_ratio is not None and not (isinstance(rank_ratio, int | float) and 0 < rank_ratio <= 1):
            raise ValueError(f"EdgeFace rank_ratio must be a number in (0, 1] or None, got {rank_ratio!r}")
        depths, dims, heads, _ = VARIANTS[variant]
        self.embed_dim, self.dtype = embed_dim, dtype
        self.model = EdgeNeXt(depths, dims, heads, rank_ratio, embed_dim, dtype=dtype, rngs=rngs)

    def forward(self, x: jax.Array) -> jax.Array:
        return self.model(x.astype(self.dtype)).astype(layers.param_dtype(self.dtype))
