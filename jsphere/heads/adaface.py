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

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.common import cosine, softmax_cross_entropy, target


class AdaFace(Head):
    name = "adaface"
    defaults = {"s": 64.0, "m": 0.4, "h": 0.333, "t_alpha": 0.01, "eps": 1e-3}

    def init_state(self):
        return {"batch_mean": jnp.full((), 20.0, jnp.float32), "batch_std": jnp.full((), 100.0, jnp.float32)}

    def forward(self, params, state, x, labels, step, axis):
        norms = jax.lax.stop_gradient(jnp.clip(jnp.linalg.norm(x, axis=-1), 0.001, 100.0))
        mean = self.t_alpha * jnp.mean(norms) + (1.0 - self.t_alpha) * state["batch_mean"]
        std = self.t_alpha * jnp.std(norms, ddof=1) + (1.0 - self.t_alpha) * state["batch_std"]
        scaler = jnp.clip(self.h * (norms - mean) / (std + self.eps), -1.0, 1.0)[:, None]
        cos = jnp.clip(cosine(x, params["w"]), -1.0 + self.eps, 1.0 - self.eps)
        onehot = axis.one_hot(labels, cos.dtype)
        theta = jnp.clip(jnp.arccos(cos) - onehot * self.m * scaler, self.eps, jnp.pi - self.eps)
        logits = self.s * (jnp.cos(theta) - onehot * (self.m + self.m * scaler))
        loss = jnp.mean(softmax_cross_entropy(logits, onehot, axis))
        new_state = {"batch_mean": mean.astype(jnp.float32), "batch_std": std.astype(jnp.float32)}
        aux = {"cos_target": jnp.mean(target(cos, onehot, axis)), "norm_mean": mean, "norm_std": std,
               **feature_norm_aux(x)}
        return loss, new_state, aux
