"""insightface's combined margin (arcface_torch ``CombinedMarginLoss``), with inter-class filtering.

Deng et al., "ArcFace", CVPR 2019, §3.3 (combined margin) and An et al., "Partial FC", CVPR 2022 (filtering)::

    c = clamp(cos, -1, 1),   psi_y = cos(m1 arccos(c_y) + m2) - m3,   logits = s (c + sg(psi - c)),   loss = CE

(m1, m2, m3) = (1, 0.5, 0) is arcface_torch's ArcFace, (1, 0, 0.4) its CosFace; arcface_torch implements only
these two forms (for m3 > 0 it drops m2), this head the general one. As in arcface_torch the angular part is
straight-through and the angle is taken of the cosine clamped to [-1, 1] only (``detach_margin=False``: the
exact gradient, insightface before 2022-12, with OpenSphere's 1e-5 clamp so it stays finite).
``interclass_filtering_threshold > 0`` zeroes (without gradient) every non-target cosine above the threshold,
whose centre likely belongs to the same identity (label noise).

The loss is ``DistCrossEntropy``'s: each sample's cross-entropy capped at -log(1e-30) = 69.08 (its
``clamp_min(1e-30)`` of the target probability) in value, with the uncapped gradient (its hand-written backward).
Class centres follow arcface_torch's Partial FC: N(0, 0.01) at init, never projected, normalised inside the
forward with the gradient through the normalisation (``config.head.project_centres=true`` gives OpenSphere's).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jsphere.heads.bounds import ANGLE, FRACTION, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import angle, detached
from jsphere.heads.margin_softmax import MarginSoftmax

CE_CAP = -math.log(1e-30)  # DistCrossEntropy: log(clamp_min(p_y, 1e-30))


class CombinedMargin(MarginSoftmax):
    name = "combined_margin"
    defaults = {"s": 64.0, "m1": 1.0, "m2": 0.5, "m3": 0.0, "interclass_filtering_threshold": 0.0,
                "detach_margin": True}
    bounds = {"s": POSITIVE, "m1": POSITIVE, "m2": ANGLE, "m3": NON_NEGATIVE,
              "interclass_filtering_threshold": FRACTION}
    PROJECT_CENTRES = False
    CENTRE_INIT_STD = 0.01
    clip_cos = True

    def weighted_ce(self, ce):
        return jnp.mean(ce + jax.lax.stop_gradient(jnp.minimum(ce, CE_CAP) - ce))

    def logits(self, cos, onehot, ctx):
        if self.interclass_filtering_threshold > 0:
            keep = jnp.logical_or(cos <= self.interclass_filtering_threshold, onehot > 0)
            cos = cos * jax.lax.stop_gradient(keep.astype(cos.dtype))
        theta = jnp.arccos(cos) if self.detach_margin else angle(cos)
        psi = jnp.where(onehot > 0, jnp.cos(self.m1 * theta + self.m2) - self.m3, jnp.cos(theta))
        return self.s * detached(cos, psi, self.detach_margin)
