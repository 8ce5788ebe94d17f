"""SV-Softmax: support-vector guided softmax (OpenVINO face_recognition ``AMSoftmaxLoss``, mining type 'sv').

Wang et al., "Support Vector Guided Softmax Loss for Face Recognition", 2018. The target gets a cosine or
angular margin, phi_y = cos theta_y - m (``margin_type='cos'``) or cos(theta_y + m) (``'arc'``, falling back to
cos theta_y - m sin m when theta_y + m > pi); every negative that beats it (cos theta_j > phi_y, a "support
vector") is re-weighted::

    h_j = t cos theta_j + t - 1   if cos theta_j > phi_y else cos theta_j
    logits = s (phi_y at y, h_j elsewhere),   loss = CE
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jsphere.heads.bounds import MULTIPLICATIVE, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import target
from jsphere.heads.margin_softmax import Margined, MarginSoftmax


class SVSoftmax(MarginSoftmax):
    name = "svsoftmax"
    defaults = {"s": 30.0, "m": 0.35, "t": 1.1, "margin_type": "cos"}
    bounds = {"s": POSITIVE, "m": NON_NEGATIVE, "t": MULTIPLICATIVE}
    choices = {"margin_type": ("cos", "arc")}
    clip_cos = True

    def margined(self, cos, onehot, ctx):
        c_y = target(cos, onehot, ctx.axis)
        if self.margin_type == "cos":
            phi = c_y - self.m
        else:
            sin_y = jnp.sqrt(jnp.maximum(1.0 - c_y**2, 1e-12))
            arc = c_y * math.cos(self.m) - sin_y * math.sin(self.m)
            phi = jnp.where(c_y > math.cos(math.pi - self.m), arc, c_y - self.m * math.sin(self.m))
        hard = (cos > phi[:, None]) & (onehot == 0)
        others = jnp.where(hard, self.t * cos + self.t - 1.0, cos)
        logits = self.s * jnp.where(onehot > 0, phi[:, None], others)
        return Margined(logits, aux={"support_vectors": jnp.mean(ctx.axis.sum(hard.astype(cos.dtype)))})
