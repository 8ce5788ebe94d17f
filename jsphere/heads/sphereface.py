"""SphereFace (A-Softmax), OpenSphere's form: multiplicative angular margin with feature normalisation.

Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017; the detached form of
Liu et al., "SphereFace Revived", TPAMI 2022 (OpenSphere ``sphereface.py``)::

    mu_ij = m theta_ij if j = y_i else theta_ij,   k = floor(mu / pi)
    psi = (-1)^k cos(mu) - 2k,   logits = s (cos + sg(psi - cos)),   loss = CE(logits, y)

``detach_margin=False`` differentiates psi itself.
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.common import angle, cosine, detached, multiplicative_psi, softmax_cross_entropy, target


def sphereface_logits(cos, onehot, s, m, detach=True):
    mu = angle(cos) * (1.0 + (m - 1.0) * onehot)
    return s * detached(cos, multiplicative_psi(mu), detach)


class SphereFace(Head):
    name = "sphereface"
    defaults = {"s": 30.0, "m": 1.5, "detach_margin": True}

    def forward(self, params, state, x, labels, step, axis):
        cos = cosine(x, params["w"])
        onehot = axis.one_hot(labels, cos.dtype)
        logits = sphereface_logits(cos, onehot, self.s, self.m, self.detach_margin)
        loss = jnp.mean(softmax_cross_entropy(logits, onehot, axis))
        return loss, state, {"cos_target": jnp.mean(target(cos, onehot, axis)), **feature_norm_aux(x)}
