"""SphereFace2: binary one-vs-all classification with a shared bias (OpenSphere ``sphereface2.py``).

Wen et al., "SphereFace2: Binary Classification is All You Need for Deep Face Recognition", ICLR 2022::

    g(c) = 2 ((c + 1) / 2)^t - 1
    C: psi_ij = g(cos_ij) - m (2 Y_ij - 1)
    A: psi = g(cos(clip(theta + m Y, 1e-5, 3.14159)))      M: psi = g(cos(clip(theta (1 + (m-1) Y), ...)))
    z = r (cos + sg(psi - cos)) + b
    L = (lw / r) mean_i [ alpha log(1 + e^{-z_iy}) + (1 - alpha) sum_{j != y} log(1 + e^{z_ij}) ]

``b`` (shape [1]) starts at ``b0`` (``initial_bias``) so that the initial loss is balanced. The class-axis
sum of binary terms shards directly (each device sums its classes).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.bounds import NON_NEGATIVE, OPEN_FRACTION, POSITIVE
from jsphere.heads.common import THETA_MAX, angle, detached, target


def initial_bias(num_classes: int, magn_type: str, alpha: float, r: float, m: float, t: float) -> float:
    """``b0 = log(2z) - a_n - log(1 - z + sqrt((1 - z)^2 + 4 z e^{a_p - a_n}))``, ``z = alpha/((1-alpha)(C-1))``."""
    z = alpha / ((1.0 - alpha) * (num_classes - 1.0))
    a_n = r * (2.0 * 0.5**t - 1.0 + (m if magn_type == "C" else 0.0))
    if magn_type == "C":
        a_p = r * (2.0 * 0.5**t - 1.0 - m)
    else:
        theta_p = min(math.pi, math.pi / 2.0 + m) if magn_type == "A" else min(math.pi, m * math.pi / 2.0)
        a_p = r * (2.0 * ((math.cos(theta_p) + 1.0) / 2.0) ** t - 1.0)
    return math.log(2.0 * z) - a_n - math.log(1.0 - z + math.sqrt((1.0 - z) ** 2 + 4.0 * z * math.exp(a_p - a_n)))


class SphereFace2(Head):
    name = "sphereface2"
    defaults = {"magn_type": "C", "alpha": 0.7, "r": 40.0, "m": 0.4, "t": 3.0, "lw": 50.0, "detach_margin": True}
    bounds = {"alpha": OPEN_FRACTION, "r": POSITIVE, "m": NON_NEGATIVE, "t": POSITIVE, "lw": POSITIVE}
    choices = {"magn_type": ("C", "A", "M")}

    def extra_params(self, num_classes):
        if num_classes < 2:
            raise ValueError("head 'sphereface2' needs at least 2 classes")
        b0 = initial_bias(num_classes, self.magn_type, self.alpha, self.r, self.m, self.t)
        return {"b": jnp.full((1,), b0, jnp.float32)}

    def psi(self, cos, onehot):
        def g(c):
            return 2.0 * ((c + 1.0) / 2.0) ** self.t - 1.0

        if self.magn_type == "C":
            return g(cos) - self.m * (2.0 * onehot - 1.0)
        theta = angle(cos)
        mu = theta + self.m * onehot if self.magn_type == "A" else theta * (1.0 + (self.m - 1.0) * onehot)
        return g(jnp.cos(jnp.clip(mu, 1e-5, THETA_MAX)))

    def forward(self, params, state, x, labels, step, axis):
        cos = self.cosine(x, params["w"])
        onehot = axis.one_hot(labels, cos.dtype)
        z = self.r * detached(cos, self.psi(cos, onehot), self.detach_margin) + params["b"].astype(cos.dtype)
        terms = self.alpha * onehot * jax.nn.softplus(-z) + (1.0 - self.alpha) * (1.0 - onehot) * jax.nn.softplus(z)
        loss = self.lw / self.r * jnp.mean(axis.sum(terms))
        aux = {"cos_target": jnp.mean(target(cos, onehot, axis)), "bias": params["b"][0], **feature_norm_aux(x)}
        return loss, state, aux
