"""GA-Softmax, the generalized angular softmax of "Deep Hyperspherical Learning" (Liu et al., NeurIPS 2017, §3).

As OpenSphere's ``GAsoftmax`` computes it (its in-place aliasing makes the margin a detached offset)::

    theta = arccos(clip(cos)),   psi = m theta_y (target) or theta_j,
    logits = s (1 - 0.63662 (theta + sg(psi - theta))),   loss = CE

so the gradient flows through arccos with slope -0.63662 s for every entry. OpenSphere trains it with
gradient clipping at 5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.common import angle, cosine, softmax_cross_entropy, target

SLOPE = 0.63662


class GASoftmax(Head):
    name = "gasoftmax"
    defaults = {"s": 30.0, "m": 1.5}

    def forward(self, params, state, x, labels, step, axis):
        cos = cosine(x, params["w"])
        onehot = axis.one_hot(labels, cos.dtype)
        theta = angle(cos)
        psi = theta * (1.0 + (self.m - 1.0) * onehot)
        logits = self.s * (1.0 - SLOPE * (theta + jax.lax.stop_gradient(psi - theta)))
        loss = jnp.mean(softmax_cross_entropy(logits, onehot, axis))
        return loss, state, {"cos_target": jnp.mean(target(cos, onehot, axis)), **feature_norm_aux(x)}
