"""GB-CosFace: CosFace seen as open-set binary problems around a global boundary (aliyun/GB-CosFace).

Chen et al., "GB-CosFace: Rethinking Softmax-based Face Recognition from the Perspective of Open Set
Classification", ACCV 2022. With p_i = cos_iy and the smooth maximum of the negatives
n_i = (1/s) logsumexp_{j != y}(s cos_ij)::

    v_i = (sg(p_i) + sg(n_i)) / 2,   V <- clip(V, min_v, max_v),   v^_i = (1 - alpha) v_i + alpha V
    loss = 1/2 mean softplus(2s (v^ - p + m)) + 1/2 mean softplus(2s (n - v^ + m))
    then V <- (1 - update_rate) V + update_rate mean_i v_i      (V starts at the first batch's mean v)

With alpha = 0 this is exactly CosFace with scale s and margin 2m. The state holds ``boundary`` (V) and
``initialized``. Sharding: n_i is a class-axis logsumexp (global max and sum).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.bounds import COSINE, FRACTION, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import target


class GBCosFace(Head):
    name = "gbcosface"
    defaults = {"s": 32.0, "m": 0.16, "alpha": 0.15, "update_rate": 0.01, "min_v": 0.5, "max_v": 0.7}
    bounds = {"s": POSITIVE, "m": NON_NEGATIVE, "alpha": FRACTION, "update_rate": FRACTION, "min_v": COSINE,
              "max_v": COSINE}

    def check_hparams(self):
        if self.min_v > self.max_v:
            raise ValueError(f"head 'gbcosface': min_v={self.min_v} is above max_v={self.max_v}")

    def init_state(self):
        return {"boundary": jnp.zeros((), jnp.float32), "initialized": jnp.zeros((), jnp.bool_)}

    def forward(self, params, state, x, labels, step, axis):
        cos = jnp.clip(self.cosine(x, params["w"]), -1.0, 1.0)
        onehot = axis.one_hot(labels, cos.dtype)
        p = target(cos, onehot, axis)
        n = axis.logsumexp(jnp.where(onehot > 0, -jnp.inf, self.s * cos)) / self.s
        v = jax.lax.stop_gradient((p + n) / 2.0)
        boundary = jnp.where(state["initialized"], state["boundary"], jnp.mean(v).astype(jnp.float32))
        boundary = jnp.clip(boundary, self.min_v, self.max_v)
        v_hat = (1.0 - self.alpha) * v + self.alpha * boundary
        loss_p = jnp.mean(jax.nn.softplus(2.0 * self.s * (v_hat - p + self.m)))
        loss_n = jnp.mean(jax.nn.softplus(2.0 * self.s * (n - v_hat + self.m)))
        new_boundary = (1.0 - self.update_rate) * boundary + self.update_rate * jnp.mean(v)
        new_state = {"boundary": new_boundary.astype(jnp.float32), "initialized": jnp.ones((), jnp.bool_)}
        aux = {"cos_target": jnp.mean(p), "boundary": boundary, **feature_norm_aux(x)}
        return 0.5 * loss_p + 0.5 * loss_n, new_state, aux
