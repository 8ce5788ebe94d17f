"""SphereFace (A-Softmax), OpenSphere's form: multiplicative angular margin with feature normalisation.

Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017; the detached form of
Liu et al., "SphereFace Revived", TPAMI 2022 (OpenSphere ``sphereface.py``)::

    mu_ij = m theta_ij if j = y_i else theta_ij,   k = floor(mu / pi)
    psi = (-1)^k cos(mu) - 2k,   logits = s (cos + sg(psi - cos)),   loss = CE(logits, y)

``detach_margin=False`` differentiates psi itself.
"""

from __future__ import annotations

from jsphere.heads.bounds import MULTIPLICATIVE, POSITIVE
from jsphere.heads.common import angle, detached, multiplicative_psi
from jsphere.heads.margin_softmax import MarginSoftmax


def sphereface_logits(cos, onehot, s, m, detach=True):
    mu = angle(cos) * (1.0 + (m - 1.0) * onehot)
    return s * detached(cos, multiplicative_psi(mu), detach)


class SphereFace(MarginSoftmax):
    name = "sphereface"
    defaults = {"s": 30.0, "m": 1.5, "detach_margin": True}
    bounds = {"s": POSITIVE, "m": MULTIPLICATIVE}

    def logits(self, cos, onehot, ctx):
        return sphereface_logits(cos, onehot, self.s, self.m, self.detach_margin)
