"""ArcFace: additive angular margin, OpenSphere's form.

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019::

    mu = clip(theta_ij + m [j = y], 1e-5, 3.14159),   logits = s (cos + sg(cos mu - cos)),   loss = CE

No "easy margin" fallback: when theta_y + m > pi the target logit saturates at about -s (OpenSphere and
current arcface_torch). ``detach_margin=False`` gives the true gradient of ``cos(theta + m)`` (original
insightface / paper).
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.bounds import ANGLE, POSITIVE
from jsphere.heads.common import THETA_MAX, angle, detached
from jsphere.heads.margin_softmax import MarginSoftmax


class ArcFace(MarginSoftmax):
    name = "arcface"
    defaults = {"s": 64.0, "m": 0.5, "detach_margin": True}
    bounds = {"s": POSITIVE, "m": ANGLE}

    def logits(self, cos, onehot, ctx):
        mu = jnp.clip(angle(cos) + self.m * onehot, 1e-5, THETA_MAX)
        return self.s * detached(cos, jnp.cos(mu), self.detach_margin)
