"""ElasticFace: ArcFace and CosFace with a margin drawn afresh for every sample at every step.

Boutros et al., "ElasticFace: Elastic Margin Loss for Deep Face Recognition", CVPR Workshops 2022
(fdbtrs/ElasticFace, ``utils/losses.py``). Each sample i of the batch draws its own margin::

    m_i ~ N(m, std)                                                          (i = 1 .. B, every step)
    ElasticFace-Arc:  logits_ij = s cos(clip(theta_ij + m_i [j = y_i], 1e-5, 3.14159))
    ElasticFace-Cos:  logits_ij = s (cos theta_ij - m_i [j = y_i])
    loss = CE(logits, y),   cos clipped to [-1, 1]

ElasticFace+ (``plus=True``) keeps the B draws but hands them out by the target cosines (no gradient): the
draws sorted ascending, ``sorted_m``, and the samples' order by descending ``cos theta_{i, y_i}``, ``order``.
``plus_order='released'`` computes what the released code computes, ``m_i = sorted_m[order[i]]``;
``plus_order='ranked'`` gives the k-th closest sample to its centre the k-th smallest margin,
``m_{order[k]} = sorted_m[k]`` (the paper's wording: the farther a sample from its centre, the larger its
margin). The two differ unless ``order`` is its own inverse.

The margins are drawn with the head's PRNG key (the head is ``stochastic``): reproducible for a seed, and the same
on 1 or N devices and class-sharded, since every device draws the B margins of the global batch with one key.
Defaults: m 0.5 (Arc) / 0.35 (Cos), std 0.05, as the released ``config/config.py``. ElasticFace-Arc takes the
true gradient of ``cos(theta + m_i)`` as the released code does (``detach_margin=True``: OpenSphere's detached
form); the angle is clipped as jsphere's ArcFace clips it, where the released code lets ``theta_y + m_i`` pass pi.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsphere.heads.bounds import ANGLE, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import THETA_MAX, angle, detached, target
from jsphere.heads.margin_softmax import MarginContext, Margined, MarginSoftmax

PLUS_ORDERS = ("released", "ranked")


def elastic_margins(key: jax.Array, m: float, std: float, batch: int, dtype: jnp.dtype) -> jax.Array:
    """The margins [batch] ~ N(m, std) that ``key`` draws, in ``dtype``. The standard normals are drawn in float32
    whatever ``dtype`` (a float64 draw takes other bits), so a float64 run draws the float32 run's margins."""
    return m + std * jax.random.normal(key, (batch,), jnp.float32).astype(dtype)


def plus_margins(margins: jax.Array, cos_target: jax.Array, order_rule: str) -> jax.Array:
    """ElasticFace+'s assignment of ``margins`` [B] by the target cosines [B] (see the module docstring)."""
    sorted_m = jnp.sort(margins)
    order = jnp.argsort(-jax.lax.stop_gradient(cos_target))
    if order_rule == "released":
        return sorted_m[order]
    return jnp.zeros_like(margins).at[order].set(sorted_m)


class _Elastic(MarginSoftmax):
    stochastic = True
    clip_cos = True
    choices = {"plus": (False, True), "plus_order": PLUS_ORDERS}

    def margins(self, cos: jax.Array, onehot: jax.Array, ctx: MarginContext) -> jax.Array:
        """This step's margin of each sample, [B]."""
        margins = elastic_margins(ctx.key, self.m, self.std, cos.shape[0], cos.dtype)
        if self.plus:
            margins = plus_margins(margins, target(cos, onehot, ctx.axis), self.plus_order)
        return margins

    def margined(self, cos, onehot, ctx):
        margins = self.margins(cos, onehot, ctx)
        return Margined(self.elastic_logits(cos, onehot * margins[:, None]),
                        aux={"margin_mean": jnp.mean(margins), "margin_std": jnp.std(margins)})

    def elastic_logits(self, cos: jax.Array, margin: jax.Array) -> jax.Array:
        """The logits [B, C] of the cosines with ``margin`` [B, C] (zero off the target column)."""
        raise NotImplementedError


class ElasticArcFace(_Elastic):
    name = "elastic_arcface"
    defaults = {"s": 64.0, "m": 0.5, "std": 0.05, "plus": False, "plus_order": "released", "detach_margin": False}
    bounds = {"s": POSITIVE, "m": ANGLE, "std": NON_NEGATIVE}

    def elastic_logits(self, cos, margin):
        mu = jnp.clip(angle(cos) + margin, 1e-5, THETA_MAX)
        return self.s * detached(cos, jnp.cos(mu), self.detach_margin)


class ElasticCosFace(_Elastic):
    name = "elastic_cosface"
    defaults = {"s": 64.0, "m": 0.35, "std": 0.05, "plus": False, "plus_order": "released"}
    bounds = {"s": POSITIVE, "m": NON_NEGATIVE, "std": NON_NEGATIVE}

    def elastic_logits(self, cos, margin):
        return self.s * (cos - margin)
