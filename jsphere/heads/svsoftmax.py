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

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.common import cosine, softmax_cross_entropy, target


class SVSoftmax(Head):
    name = "svsoftmax"
    defaults = {"s": 30.0, "m": 0.35, "t": 1.1, "margin_type": "cos"}
    choices = {"margin_type": ("cos", "arc")}

    def forward(self, params, state, x, labels, step, axis):
        cos = jnp.clip(cosine(x, params["w"]), -1.0, 1.0)
        onehot = axis.one_hot(labels, cos.dtype)
        c_y = target(cos, onehot, axis)
        if self.margin_type == "cos":
            phi = c_y - self.m
        else:
            sin_y = jnp.sqrt(jnp.maximum(1.0 - c_y**2, 1e-12))
            arc = c_y * math.cos(self.m) - sin_y * math.sin(self.m)
            phi = jnp.where(c_y > math.cos(math.pi - self.m), arc, c_y - self.m * math.sin(self.m))
        hard = (cos > phi[:, None]) & (onehot == 0)
        others = jnp.where(hard, self.t * cos + self.t - 1.0, cos)
        logits = self.s * jnp.where(onehot > 0, phi[:, None], others)
        loss = jnp.mean(softmax_cross_entropy(logits, onehot, axis))
        aux = {"cos_target": jnp.mean(c_y), "support_vectors": jnp.mean(axis.sum(hard.astype(cos.dtype))),
               **feature_norm_aux(x)}
        return loss, state, aux
