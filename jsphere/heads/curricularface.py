"""CurricularFace: adaptive curriculum on hard negatives (HuangYG123/CurricularFace).

Huang et al., "CurricularFace: Adaptive Curriculum Learning Loss for Deep Face Recognition", CVPR 2020::

    target: cos(theta_y + m), or cos theta_y - m sin m when theta_y + m > pi
    t <- t_momentum mean_i cos theta_iy + (1 - t_momentum) t          (no gradient; state, starts at 0)
    hard negatives (cos theta_j > cos(theta_y + m)): cos theta_j (t + cos theta_j)
    logits = s (...),   loss = CE

The gradient is exact (no detach), as in the reference. Sharding: the target cosine is a class-axis sum.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jsphere.heads.bounds import ANGLE, FRACTION, POSITIVE
from jsphere.heads.common import target
from jsphere.heads.margin_softmax import Margined, MarginSoftmax


class CurricularFace(MarginSoftmax):
    name = "curricularface"
    defaults = {"s": 64.0, "m": 0.5, "t_momentum": 0.01}
    bounds = {"s": POSITIVE, "m": ANGLE, "t_momentum": FRACTION}
    clip_cos = True

    def init_state(self):
        return {"t": jnp.zeros((), jnp.float32)}

    def margined(self, cos, onehot, ctx):
        c_y = target(cos, onehot, ctx.axis)
        sin_y = jnp.sqrt(jnp.maximum(1.0 - c_y**2, 1e-12))
        c_ym = c_y * math.cos(self.m) - sin_y * math.sin(self.m)
        final_target = jnp.where(c_y > math.cos(math.pi - self.m), c_ym, c_y - math.sin(math.pi - self.m) * self.m)
        t = jax.lax.stop_gradient(self.t_momentum * jnp.mean(c_y) + (1.0 - self.t_momentum) * ctx.state["t"])
        hard = cos > c_ym[:, None]
        logits = jnp.where(hard, cos * (t + cos), cos)
        logits = self.s * jnp.where(onehot > 0, final_target[:, None], logits)
        return Margined(logits, state={"t": t.astype(jnp.float32)}, aux={"t": t})
