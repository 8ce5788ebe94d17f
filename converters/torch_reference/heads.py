"""PyTorch versions of the heads that have a PyTorch counterpart, with OpenSphere's semantics.

OpenSphere v1 layout: ``w`` is [feat_dim, num_classes]; ``v2=True`` gives the v2 layout [num_classes, feat_dim]. Each
forward first projects the centres in place (``w.data = normalize(w.data)``) and writes margins in the detached
form, as OpenSphere's ``model/head/*.py`` do. Used to check converted heads and by the benchmarks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jsphere.heads.sphereface2 import initial_bias


class _Proxy(nn.Module):
    def __init__(self, feat_dim, num_class, v2=False):
        super().__init__()
        self.v2 = v2
        self.w = nn.Parameter(torch.empty((num_class, feat_dim) if v2 else (feat_dim, num_class)))
        nn.init.xavier_normal_(self.w)

    def cosine(self, x):
        with torch.no_grad():
            self.w.data = F.normalize(self.w.data, dim=1 if self.v2 else 0)
        w = self.w.t() if self.v2 else self.w
        return F.normalize(x, dim=1).mm(w)

    @staticmethod
    def theta(cos):
        return torch.acos(cos.clamp(-1.0 + 1e-5, 1.0 - 1e-5))


class SoftmaxLoss(nn.Module):
    def __init__(self, feat_dim, num_class):
        super().__init__()
        self.w = nn.Parameter(torch.empty(feat_dim, num_class))
        self.b = nn.Parameter(torch.zeros(1, num_class))
        nn.init.xavier_normal_(self.w)

    def forward(self, x, y):
        return F.cross_entropy(x.mm(self.w) + self.b, y)


class CocoLoss(_Proxy):
    def __init__(self, feat_dim, num_class, s=30.0, v2=False):
        super().__init__(feat_dim, num_class, v2)
        self.s = s

    def forward(self, x, y):
        return F.cross_entropy(self.s * self.cosine(x), y)


class SphereFace(_Proxy):
    def __init__(self, feat_dim, num_class, s=30.0, m=1.5, v2=False):
        super().__init__(feat_dim, num_class, v2)
        self.s, self.m = s, m

    def forward(self, x, y):
        cos = self.cosine(x)
        with torch.no_grad():
            mu = self.theta(cos)
            mu.scatter_(1, y.view(-1, 1), self.m, reduce="multiply")
            k = (mu / math.pi).floor()
            psi = (1 - 2 * torch.remainder(k, 2)) * torch.cos(mu) - 2 * k
            delta = psi - cos
        return F.cross_entropy(self.s * (cos + delta), y)


class CosFace(_Proxy):
    def __init__(self, feat_dim, num_class, s=64.0, m=0.35, v2=False):
        super().__init__(feat_dim, num_class, v2)
        self.s, self.m = s, m

    def forward(self, x, y):
        cos = self.cosine(x)
        delta = torch.zeros_like(cos)
        delta.scatter_(1, y.view(-1, 1), -self.m)
        return F.cross_entropy(self.s * (cos + delta), y)


class ArcFace(_Proxy):
    def __init__(self, feat_dim, num_class, s=64.0, m=0.5, v2=False):
        super().__init__(feat_dim, num_class, v2)
        self.s, self.m = s, m

    def forward(self, x, y):
        cos = self.cosine(x)
        with torch.no_grad():
            mu = self.theta(cos)
            mu.scatter_(1, y.view(-1, 1), self.m, reduce="add")
            delta = torch.cos(mu.clamp(1e-5, 3.14159)) - cos
        return F.cross_entropy(self.s * (cos + delta), y)


class SphereFace2(_Proxy):
    """C/A/M variants; ``b`` [1] initialised by the paper's formula (shared with jsphere's head)."""

    def __init__(self, feat_dim, num_class, magn_type="C", alpha=0.7, r=40.0, m=0.4, t=3.0, lw=50.0, v2=False):
        super().__init__(feat_dim, num_class, v2)
        self.magn_type, self.alpha, self.r, self.m, self.t, self.lw = magn_type, alpha, r, m, t, lw
        self.num_class = num_class
        b0 = initial_bias(num_class, magn_type, alpha, r, m, t)
        self.b = nn.Parameter(torch.full((1,), b0))

    def forward(self, x, y):
        cos = self.cosine(x)
        onehot = torch.zeros_like(cos).scatter_(1, y.view(-1, 1), 1.0)
        with torch.no_grad():
            if self.magn_type == "C":
                psi = 2 * ((cos + 1) / 2) ** self.t - 1 - self.m * (2 * onehot - 1)
            else:
                mu = self.theta(cos)
                mu = mu + self.m * onehot if self.magn_type == "A" else mu * (1 + (self.m - 1) * onehot)
                psi = 2 * ((torch.cos(mu.clamp(1e-5, 3.14159)) + 1) / 2) ** self.t - 1
            delta = psi - cos
        logits = self.r * (cos + delta) + self.b
        weight = self.lw * self.num_class / self.r * (self.alpha * onehot + (1 - self.alpha) * (1 - onehot))
        return F.binary_cross_entropy_with_logits(logits, onehot, weight=weight)


HEADS = {"softmax": SoftmaxLoss, "cocoloss": CocoLoss, "sphereface": SphereFace, "cosface": CosFace,
         "arcface": ArcFace, "sphereface2": SphereFace2}
