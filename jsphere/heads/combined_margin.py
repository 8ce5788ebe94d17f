"""insightface's combined margin (arcface_torch ``CombinedMarginLoss``), with inter-class filtering.

Deng et al., "ArcFace", CVPR 2019, §3.3 (combined margin) and An et al., "Partial FC", CVPR 2022 (filtering)::

    psi_y = cos(m1 theta_y + m2) - m3,   logits = s (cos + sg(psi - cos)),   loss = CE

(m1, m2, m3) = (1, 0.5, 0) is arcface_torch's ArcFace, (1, 0, 0.4) its CosFace. As in arcface_torch the
angular part is straight-through (``detach_margin=False``: the exact gradient, insightface before 2022-12).
``interclass_filtering_threshold > 0`` zeroes (without gradient) every non-target cosine above the threshold,
whose centre likely belongs to the same identity (label noise).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsphere.heads.common import angle, detached
from jsphere.heads.margin_softmax import MarginSoftmax


class CombinedMargin(MarginSoftmax):
    name = "combined_margin"
    defaults = {"s": 64.0, "m1": 1.0, "m2": 0.5, "m3": 0.0, "interclass_filtering_threshold": 0.0,
                "detach_margin": True}

    def logits(self, cos, onehot, ctx):
        if self.interclass_filtering_threshold > 0:
            keep = jnp.logical_or(cos <= self.interclass_filtering_threshold, onehot > 0)
            cos = cos * jax.lax.stop_gradient(keep.astype(cos.dtype))
        theta = angle(cos)
        psi = jnp.where(onehot > 0, jnp.cos(self.m1 * theta + self.m2) - self.m3, jnp.cos(theta))
        return self.s * detached(cos, psi, self.detach_margin)
