"""Sub-center ArcFace: K centres per class, the closest one counts (insightface SubCenter-ArcFace).

Deng et al., "Sub-center ArcFace: Boosting Face Recognition by Large-scale Noisy Web Faces", ECCV 2020::

    cos theta_j = max_k  x^ . w^_{j,k},   then ArcFace: s (cos + sg(cos(clip(theta + m Y, 1e-5, 3.14159)) - cos))

``w`` is [num_classes * k, feat_dim] in insightface's layout: row ``j * k + i`` is sub-centre i of class j
(class-major, so sharding by class keeps a class's sub-centres together).
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.arcface import ArcFace
from jsphere.heads.bounds import ANGLE, COUNT, POSITIVE


class SubcenterArcFace(ArcFace):
    name = "subcenter_arcface"
    defaults = {"s": 64.0, "m": 0.5, "k": 3, "detach_margin": True}
    bounds = {"s": POSITIVE, "m": ANGLE, "k": COUNT}

    def centre_rows(self, num_classes):
        return num_classes * int(self.k)

    def num_classes(self, params):
        return params["w"].shape[0] // int(self.k)

    def cosines(self, params, x):
        sub = self.cosine(x, params["w"])
        return jnp.max(sub.reshape(sub.shape[0], -1, int(self.k)), axis=-1)
