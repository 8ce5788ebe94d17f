"""MagFace: magnitude-aware angular margin plus a magnitude regulariser (IrvingMeng/MagFace).

Meng et al., "MagFace: A Universal Representation for Face Recognition and Quality Assessment", CVPR 2021::

    a = clip(||x||, l_a, u_a),   m(a) = l_m + (u_m - l_m)(a - l_a)/(u_a - l_a)
    target: cos(theta_y + m(a))  (easy_margin: only where cos theta_y > 0; otherwise the insightface
            fallback cos theta_y - m sin(pi - m) when theta_y + m > pi)
    loss = CE(s logits) + lambda_g mean(a / u_a^2 + 1 / a)
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.bounds import ANGLE, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import target
from jsphere.heads.margin_softmax import Margined, MarginSoftmax


class MagFace(MarginSoftmax):
    name = "magface"
    defaults = {"s": 64.0, "l_a": 10.0, "u_a": 110.0, "l_m": 0.45, "u_m": 0.8, "lambda_g": 35.0, "easy_margin": False}
    bounds = {"s": POSITIVE, "l_a": POSITIVE, "u_a": POSITIVE, "l_m": ANGLE, "u_m": ANGLE, "lambda_g": NON_NEGATIVE}

    def check_hparams(self):
        if not (self.l_a < self.u_a and self.l_m <= self.u_m):
            raise ValueError(f"head 'magface': needs l_a < u_a and l_m <= u_m, got l_a={self.l_a}, u_a={self.u_a}, "
                             f"l_m={self.l_m}, u_m={self.u_m}")
    clip_cos = True

    def margined(self, cos, onehot, ctx):
        a = jnp.clip(jnp.linalg.norm(ctx.x, axis=-1), self.l_a, self.u_a)
        margin = self.l_m + (self.u_m - self.l_m) * (a - self.l_a) / (self.u_a - self.l_a)
        c_y = target(cos, onehot, ctx.axis)
        sin_y = jnp.sqrt(jnp.maximum(1.0 - c_y**2, 1e-12))
        c_ym = c_y * jnp.cos(margin) - sin_y * jnp.sin(margin)
        if self.easy_margin:
            c_ym = jnp.where(c_y > 0, c_ym, c_y)
        else:
            c_ym = jnp.where(c_y > jnp.cos(jnp.pi - margin), c_ym, c_y - jnp.sin(jnp.pi - margin) * margin)
        regulariser = jnp.mean(a / self.u_a**2 + 1.0 / a)
        return Margined(self.s * jnp.where(onehot > 0, c_ym[:, None], cos),
                        aux={"margin": jnp.mean(margin), "loss_g": regulariser}, penalty=self.lambda_g * regulariser)
