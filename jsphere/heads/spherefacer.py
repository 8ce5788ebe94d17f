"""SphereFace-R, three feature-normalisation modes (OpenSphere v1 ``spherefacer.py``).

Liu et al., "SphereFace Revived: Unifying Hyperspherical Face Recognition", TPAMI 2022. With
mu = theta (1 + (m - 1) Y) and the margin ``magn_type``::

    v0: psi = (-1)^k cos(mu) - 2k,  k = floor(mu / pi)      v1: psi = cos(clip(mu, 1e-5, 3.14159))
    v2: psi = cos(mu / m)   (no target margin; every negative angle shrinks to theta_j / m)

* ``sphereface_r_h`` (hard FN): ``logits = s (cos + sg(psi - cos))``, ``loss = lw CE / s``;
* ``sphereface_r_s`` (soft FN): ``logits = ||x|| (cos + sg(psi - cos))``, ``loss = lw CE / s + mean t |‖x‖ - s|``;
* ``sphereface_r_n`` (no FN): ``logits = ||x|| (cos + sg(psi - cos))``, ``loss = lw CE`` (OpenSphere's raises a
  NameError; this one works).

S and N grow the margin on a schedule: ``m = 1 + dm * #{s in steps : s < step + 1}`` (OpenSphere counts calls
from 1; here ``step`` is the number of updates done, so the schedule survives checkpoints).
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.bounds import MULTIPLICATIVE, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import THETA_MAX, angle, detached, multiplicative_psi
from jsphere.heads.margin_softmax import Margined, MarginSoftmax

MAGN_TYPES = ("v0", "v1", "v2")


def spherefacer_psi(cos, onehot, magn_type, m):
    mu = angle(cos) * (1.0 + (m - 1.0) * onehot)
    if magn_type == "v0":
        return multiplicative_psi(mu)
    if magn_type == "v1":
        return jnp.cos(jnp.clip(mu, 1e-5, THETA_MAX))
    return jnp.cos(mu / m)


def scheduled_margin(step, dm, steps):
    """``1 + dm * #{s in steps : s < step + 1}``."""
    count = sum((jnp.asarray(s) < step + 1).astype(jnp.float32) for s in steps) if steps else 0.0
    return 1.0 + dm * count


class SphereFaceRH(MarginSoftmax):
    name = "sphereface_r_h"
    defaults = {"magn_type": "v0", "s": 30.0, "m": 1.5, "lw": 50.0}
    bounds = {"s": POSITIVE, "m": MULTIPLICATIVE, "lw": POSITIVE}
    choices = {"magn_type": MAGN_TYPES}

    def logits(self, cos, onehot, ctx):
        return self.s * detached(cos, spherefacer_psi(cos, onehot, self.magn_type, self.m))

    def weighted_ce(self, ce):
        return self.lw * jnp.mean(ce) / self.s


class _FeatureNormScaled(MarginSoftmax):
    """S and N: logits scaled by the feature norm, with the scheduled margin."""

    choices = {"magn_type": MAGN_TYPES}

    def margined(self, cos, onehot, ctx):
        m = scheduled_margin(ctx.step, self.dm, tuple(self.steps))
        norm = jnp.linalg.norm(ctx.x, axis=-1, keepdims=True)
        logits = norm * detached(cos, spherefacer_psi(cos, onehot, self.magn_type, m))
        return Margined(logits, aux={"margin": m}, penalty=self.norm_penalty(norm))

    def norm_penalty(self, norm):
        return None


class SphereFaceRS(_FeatureNormScaled):
    name = "sphereface_r_s"
    defaults = {"magn_type": "v0", "s": 30.0, "dm": 1.5, "steps": (), "t": 0.01, "lw": 50.0}
    bounds = {"s": POSITIVE, "dm": NON_NEGATIVE, "t": NON_NEGATIVE, "lw": POSITIVE}

    def weighted_ce(self, ce):
        return self.lw * jnp.mean(ce) / self.s

    def norm_penalty(self, norm):
        return jnp.mean(self.t * jnp.abs(norm - self.s))


class SphereFaceRN(_FeatureNormScaled):
    name = "sphereface_r_n"
    defaults = {"magn_type": "v0", "dm": 0.1, "steps": (), "lw": 1.0}
    bounds = {"dm": NON_NEGATIVE, "lw": POSITIVE}

    def weighted_ce(self, ce):
        return self.lw * jnp.mean(ce)
