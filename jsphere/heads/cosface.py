"""CosFace / AM-Softmax: additive cosine margin.

Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018; Wang et al.,
"Additive Margin Softmax for Face Verification", 2018::

    logits = s (cos theta_j - m [j = y]),   loss = CE(logits, y)
"""

from __future__ import annotations

from jsphere.heads.bounds import NON_NEGATIVE, POSITIVE
from jsphere.heads.margin_softmax import MarginSoftmax


class CosFace(MarginSoftmax):
    name = "cosface"
    defaults = {"s": 64.0, "m": 0.35}
    bounds = {"s": POSITIVE, "m": NON_NEGATIVE}

    def logits(self, cos, onehot, ctx):
        return self.s * (cos - self.m * onehot)
