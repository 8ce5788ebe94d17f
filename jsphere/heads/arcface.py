"""ArcFace: additive angular margin, OpenSphere's form.

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019::

    mu = clip(theta_ij + m [j = y], 1e-5, 3.14159),   logits = s (cos + sg(cos mu - cos)),   loss = CE

No "easy margin" fallback: when theta_y + m > pi the target logit saturates at about -s (OpenSphere and
current arcface_torch). ``detach_margin=False`` gives the true gradient of ``cos(theta + m)`` (original
insightface / paper).
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.common import THETA_MAX, angle, cosine, detached, softmax_cross_entropy, target


def arcface_logits(cos, onehot, s, m, detach=True):
    mu = jnp.clip(angle(cos) + m * onehot, 1e-5, THETA_MAX)
    return s * detached(cos, jnp.cos(mu), detach)


class ArcFace(Head):
    name = "arcface"
    defaults = {"s": 64.0, "m": 0.5, "detach_margin": True}

    def forward(self, params, state, x, labels, step, axis):
        cos = cosine(x, params["w"])
        onehot = axis.one_hot(labels, cos.dtype)
        logits = arcface_logits(cos, onehot, self.s, self.m, self.detach_margin)
        loss = jnp.mean(softmax_cross_entropy(logits, onehot, axis))
        return loss, state, {"cos_target": jnp.mean(target(cos, onehot, axis)), **feature_norm_aux(x)}
