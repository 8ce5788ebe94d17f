"""UniFace: unified cross-entropy with one learnt threshold for all classes (CVI-SZU/UniFace).

Zhou et al., "UniFace: Unified Cross-Entropy Loss for Deep Face Recognition", ICCV 2023 (the CosFace-margin
UCE form with the lambda and r options)::

    loss = mean_i [ log(1 + e^{-(s (cos theta_iy - m) - b)}) + lambda sum_{j != y} log(1 + e^{s cos theta_ij - b}) ]

cosines clipped to [-1, 1] (logits within [-s, s]); ``b`` (shape [1]) starts at log(C r 10). The class-axis
sum of binary terms shards directly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.bounds import NON_NEGATIVE, POSITIVE
from jsphere.heads.common import target


class UniFace(Head):
    name = "uniface"
    defaults = {"s": 64.0, "m": 0.4, "lam": 1.0, "r": 1.0}
    bounds = {"s": POSITIVE, "m": NON_NEGATIVE, "lam": POSITIVE, "r": POSITIVE}

    def extra_params(self, num_classes):
        return {"b": jnp.full((1,), math.log(num_classes * self.r * 10.0), jnp.float32)}

    def forward(self, params, state, x, labels, step, axis):
        cos = jnp.clip(self.cosine(x, params["w"]), -1.0, 1.0)
        onehot = axis.one_hot(labels, cos.dtype)
        b = params["b"].astype(cos.dtype)
        positive = jax.nn.softplus(-(self.s * (cos - self.m) - b))
        negative = self.lam * jax.nn.softplus(self.s * cos - b)
        loss = jnp.mean(axis.sum(jnp.where(onehot > 0, positive, negative)))
        return loss, state, {"cos_target": jnp.mean(target(cos, onehot, axis)), "bias": params["b"][0],
                             **feature_norm_aux(x)}
