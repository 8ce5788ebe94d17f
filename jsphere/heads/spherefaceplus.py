"""SphereFace+: SphereFace plus a mini-batch minimum-hyperspherical-energy (MHE) term on the class centres.

Liu et al., "Learning towards Minimum Hyperspherical Energy", NeurIPS 2018 (OpenSphere ``spherefaceplus.py``)::

    loss = CE(SphereFace logits) + lambda_mhe * MHE
    MHE  = sum_{a<b} arccos(clip(v_a . v_b))^-2 / (n (n - 1) / 2)

over the n distinct labels of the batch (v = their unit centres; the gradient reaches the centres). A batch
with a single distinct label has no pair and MHE = 0 (OpenSphere divides by zero there). Sharding: the
centres of the batch's labels are collected with ``axis.take`` (a psum of each shard's rows).
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.bounds import MULTIPLICATIVE, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import angle
from jsphere.heads.margin_softmax import Margined, MarginSoftmax
from jsphere.heads.sphereface import sphereface_logits


def mhe(centres: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Mean inverse squared angle over pairs of distinct labels; ``centres[i]`` is the centre of ``labels[i]``."""
    b = labels.shape[0]
    same = labels[:, None] == labels[None, :]
    earlier = jnp.tril(jnp.ones((b, b), bool), k=-1)
    first = ~jnp.any(same & earlier, axis=1)  # first occurrence of each distinct label
    pairs = first[:, None] & first[None, :] & jnp.triu(jnp.ones((b, b), bool), k=1)
    theta = angle(centres @ centres.T)
    energy = jnp.sum(jnp.where(pairs, theta ** -2.0, 0.0))
    n = jnp.sum(first).astype(centres.dtype)
    return jnp.where(n > 1, energy / jnp.maximum(n * (n - 1) / 2, 1.0), 0.0)


class SphereFacePlus(MarginSoftmax):
    name = "spherefaceplus"
    defaults = {"s": 30.0, "m": 1.5, "lambda_mhe": 1.0}
    bounds = {"s": POSITIVE, "m": MULTIPLICATIVE, "lambda_mhe": NON_NEGATIVE}

    def margined(self, cos, onehot, ctx):
        energy = mhe(ctx.axis.take(self.unit_centres(ctx.params["w"]), ctx.labels), ctx.labels)
        return Margined(sphereface_logits(cos, onehot, self.s, self.m), aux={"mhe": energy},
                        penalty=self.lambda_mhe * energy)
