"""GA-Softmax, the generalized angular softmax of "Deep Hyperspherical Learning" (Liu et al., NeurIPS 2017, §3).

As OpenSphere's ``GAsoftmax`` computes it (its in-place aliasing makes the margin a detached offset)::

    theta = arccos(clip(cos)),   psi = m theta_y (target) or theta_j,
    logits = s (1 - 0.63662 (theta + sg(psi - theta))),   loss = CE

so the gradient flows through arccos with slope -0.63662 s for every entry. OpenSphere trains it with
gradient clipping at 5.
"""

from __future__ import annotations

import jax

from jsphere.heads.bounds import MULTIPLICATIVE, POSITIVE
from jsphere.heads.common import angle
from jsphere.heads.margin_softmax import MarginSoftmax

SLOPE = 0.63662


class GASoftmax(MarginSoftmax):
    name = "gasoftmax"
    defaults = {"s": 30.0, "m": 1.5}
    bounds = {"s": POSITIVE, "m": MULTIPLICATIVE}

    def logits(self, cos, onehot, ctx):
        theta = angle(cos)
        psi = theta * (1.0 + (self.m - 1.0) * onehot)
        return self.s * (1.0 - SLOPE * (theta + jax.lax.stop_gradient(psi - theta)))
