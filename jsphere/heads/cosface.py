"""CosFace / AM-Softmax: additive cosine margin.

Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018; Wang et al.,
"Additive Margin Softmax for Face Verification", 2018::

    logits = s (cos theta_j - m [j = y]),   loss = CE(logits, y)
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.common import cosine, softmax_cross_entropy, target


class CosFace(Head):
    name = "cosface"
    defaults = {"s": 64.0, "m": 0.35}

    def forward(self, params, state, x, labels, step, axis):
        cos = cosine(x, params["w"])
        onehot = axis.one_hot(labels, cos.dtype)
        loss = jnp.mean(softmax_cross_entropy(self.s * (cos - self.m * onehot), onehot, axis))
        return loss, state, {"cos_target": jnp.mean(target(cos, onehot, axis)), **feature_norm_aux(x)}
