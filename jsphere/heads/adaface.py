"""AdaFace: quality-adaptive margin from the feature norm (mk-minchul/AdaFace ``head.py``).

Kim et al., "AdaFace: Quality Adaptive Margin for Face Recognition", CVPR 2022. With ||z|| clipped to
[0.001, 100] and detached, and running batch statistics mu, sigma (EMA with ``t_alpha``; sigma unbiased)::

    z^ = clip(h (||z|| - mu) / (sigma + eps), -1, 1)
    target: s [cos(clip(theta_y - m z^, eps, pi - eps)) - (m + m z^)],   others s cos theta_j
    loss = CE,   cos clipped to [-1 + eps, 1 - eps]

The statistics are updated before use, as in the reference (state ``batch_mean`` 20, ``batch_std`` 100).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsphere.heads.bounds import FRACTION, NON_NEGATIVE, POSITIVE
from jsphere.heads.margin_softmax import Margined, MarginSoftmax


class AdaFace(MarginSoftmax):
    name = "adaface"
    defaults = {"s": 64.0, "m": 0.4, "h": 0.333, "t_alpha": 0.01, "eps": 1e-3}
    bounds = {"s": POSITIVE, "m": NON_NEGATIVE, "h": NON_NEGATIVE, "t_alpha": FRACTION, "eps": POSITIVE}

    def init_state(self):
        return {"batch_mean": jnp.full((), 20.0, jnp.float32), "batch_std": jnp.full((), 100.0, jnp.float32)}

    def cosines(self, params, x):
        return jnp.clip(self.cosine(x, params["w"]), -1.0 + self.eps, 1.0 - self.eps)

    def margined(self, cos, onehot, ctx):
        norms = jax.lax.stop_gradient(jnp.clip(jnp.linalg.norm(ctx.x, axis=-1), 0.001, 100.0))
        mean = self.t_alpha * jnp.mean(norms) + (1.0 - self.t_alpha) * ctx.state["batch_mean"]
        std = self.t_alpha * jnp.std(norms, ddof=1) + (1.0 - self.t_alpha) * ctx.state["batch_std"]
        scaler = jnp.clip(self.h * (norms - mean) / (std + self.eps), -1.0, 1.0)[:, None]
        theta = jnp.clip(jnp.arccos(cos) - onehot * self.m * scaler, self.eps, jnp.pi - self.eps)
        logits = self.s * (jnp.cos(theta) - onehot * (self.m + self.m * scaler))
        new_state = {"batch_mean": mean.astype(jnp.float32), "batch_std": std.astype(jnp.float32)}
        return Margined(logits, state=new_state, aux={"norm_mean": mean, "norm_std": std})
