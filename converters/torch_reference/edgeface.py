"""EdgeFace in PyTorch without timm: the network of github otroshi/edgeface (``backbones/timmfr.py``: timm's
``EdgeNeXt`` with ``reset_classifier(512)`` under a wrapper's ``model``, and for the ``_gamma_`` models
``replace_linear_with_lowrank_2``), written from its structure with the released state_dict's key names and order,
so that EdgeFace's ``.pt`` files load with ``strict=True`` (``jsphere.models.edgeface`` describes the network).
Checked, outside the suite, to give the authors' classes' keys, shapes and outputs on the same random weights.
Input NCHW, RGB in [-1, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jsphere.models.edgeface import (
    EPS,
    FOURIER_DIM,
    GLOBAL_BLOCKS,
    KERNELS,
    POS_EMB,
    SCALES,
    VARIANTS,
    fourier_features,
    rank_of,
)


class LoRaLin(nn.Module):
    def __init__(self, cin, cout, rank, bias=True):
        super().__init__()
        self.linear1 = nn.Linear(cin, rank, bias=False)
        self.linear2 = nn.Linear(rank, cout, bias=bias)

    def forward(self, x):
        return self.linear2(self.linear1(x))


def dense(cin, cout, ratio):
    return nn.Linear(cin, cout) if ratio is None else LoRaLin(cin, cout, rank_of(cin, cout, ratio))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Mlp(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        self.fc1, self.fc2 = dense(dim, 4 * dim, ratio), dense(4 * dim, dim, ratio)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ConvEncoder(nn.Module):
    def __init__(self, dim, kernel, ratio):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))
        self.conv_dw = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, ratio)

    def forward(self, x):
        y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1)))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class CrossCovarianceAttention(nn.Module):
    def __init__(self, dim, heads, ratio):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv, self.proj = dense(dim, 3 * dim, ratio), dense(dim, dim, ratio)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 4, 1)
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        return self.proj((attn.softmax(-1) @ v).permute(0, 3, 1, 2).reshape(b, n, c))


class FourierPositions(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.token_projection = nn.Conv2d(2 * FOURIER_DIM, dim, 1)

    def forward(self, height, width):
        features = torch.from_numpy(fourier_features(height, width)).permute(2, 0, 1)[None]
        return self.token_projection(features.to(self.token_projection.weight.dtype))


class SplitTransposeBlock(nn.Module):
    def __init__(self, dim, scales, heads, pos_emb, ratio):
        super().__init__()
        width = math.ceil(dim / scales)
        self.gamma_xca = nn.Parameter(torch.full((dim,), 1e-6))
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))
        self.convs = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1, groups=width)
                                    for _ in range(max(1, scales - 1))])
        self.pos_embd = FourierPositions(dim) if pos_emb else None
        self.norm_xca = nn.LayerNorm(dim, eps=EPS)
        self.xca = CrossCovarianceAttention(dim, heads, ratio)
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, ratio)

    def forward(self, x):
        chunks = x.chunk(len(self.convs) + 1, dim=1)
        out, previous = [], None
        for i, conv in enumerate(self.convs):
            previous = conv(chunks[i] if previous is None else previous + chunks[i])
            out.append(previous)
        y = torch.cat(out + [chunks[-1]], 1)
        b, c, h, w = y.shape
        tokens = y.reshape(b, c, h * w).permute(0, 2, 1)
        if self.pos_embd is not None:
            tokens = tokens + self.pos_embd(h, w).reshape(1, c, h * w).permute(0, 2, 1)
        tokens = tokens + self.gamma_xca * self.xca(self.norm_xca(tokens))
        y = self.gamma * self.mlp(self.norm(tokens.reshape(b, h, w, c)))
        return x + y.permute(0, 3, 1, 2)


class Stage(nn.Module):
    def __init__(self, index, cin, dim, depth, heads, ratio):
        super().__init__()
        if index:
            self.downsample = nn.Sequential(LayerNorm2d(cin, eps=EPS), nn.Conv2d(cin, dim, 2, stride=2))
        local = depth - GLOBAL_BLOCKS[index]
        self.blocks = nn.Sequential(*[
            ConvEncoder(dim, KERNELS[index], ratio) if j < local
            else SplitTransposeBlock(dim, SCALES[index], heads, POS_EMB[index], ratio) for j in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x) if hasattr(self, "downsample") else x)


class Head(nn.Module):
    def __init__(self, dim, embed_dim, ratio):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=EPS)
        self.fc = dense(dim, embed_dim, ratio)

    def forward(self, x):
        return self.fc(self.norm(x.mean((2, 3))))


class EdgeNeXt(nn.Module):
    def __init__(self, depths, dims, heads, ratio, embed_dim):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=EPS))
        cins = (dims[0], *dims[:-1])
        self.stages = nn.Sequential(*[Stage(i, cins[i], dims[i], depths[i], heads, ratio) for i in range(4)])
        self.head = Head(dims[-1], embed_dim, ratio)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


class EdgeFace(nn.Module):
    """EdgeFace ``variant`` (a ``jsphere.models.edgeface.VARIANTS`` name) with LoRaLin pairs of ``rank_ratio``."""

    def __init__(self, variant="edgeface_xs_gamma_06", embed_dim=512, rank_ratio=None):
        super().__init__()
        depths, dims, heads, _ = VARIANTS[variant]
        self.model = EdgeNeXt(depths, dims, heads, rank_ratio, embed_dim)

    def forward(self, x):
        return self.model(x)


def build(name: str, embed_dim: int = 512, **kwargs) -> EdgeFace:
    """The EdgeFace registry name ``name`` (its variant's rank ratio unless ``rank_ratio`` is given)."""
    kwargs.setdefault("rank_ratio", VARIANTS[name][3])
    return EdgeFace(name, embed_dim, **kwargs)


def names() -> list[str]:
    return list(VARIANTS)
