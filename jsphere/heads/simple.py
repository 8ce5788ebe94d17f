"""SimPLE: proxy-free training against a memory bank of EMA features (OpenSphere v2 ``simple.py``).

Wen et al., "SimPLE: Similar Pseudo Label Exploitation ..." — the OpenSphere v2 head. Features and bank
entries are wrapped (``cartesian``: as is; ``polarlike``: ``softplus(u_0) * normalize(u_1:)``) and scored with
the generalized inner product ``S_ij = x_i . k_j - b_theta ||x_i|| ||k_j||``::

    positives (same label, the sample's own bank copy excluded): (S - m + bias) / r
    negatives (different label):                                 (S + m + bias) * r
    loss = lw [ alpha mean_pos BCE(., 1) + (1 - alpha) mean_neg BCE(., 0) ]

Signature (the bank belongs to the trainer, which owns the EMA encoder)::

    loss(params, state, embeddings, labels, step, *, bank_features, bank_labels, self_offset=0)

``bank_features`` [N, D] raw EMA features, ``bank_labels`` [N]; the batch's own EMA features sit in bank
columns ``self_offset .. self_offset + B - 1``. The only parameter is ``bias`` [1] (init ``init_bias``).
Sharding: the bank, not the classes, is the large axis; this head is not class-sharded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.bounds import FRACTION, NON_NEGATIVE, POSITIVE
from jsphere.heads.common import l2_normalize


def wrap(x: jax.Array, mode: str) -> jax.Array:
    if mode == "cartesian":
        return x
    return jax.nn.softplus(x[..., :1]) * l2_normalize(x[..., 1:])


def generalized_inner_product(a: jax.Array, b: jax.Array, b_theta: float) -> jax.Array:
    """``a_i . b_j - b_theta ||a_i|| ||b_j||`` for all pairs."""
    norms = jnp.linalg.norm(a, axis=-1)[:, None] * jnp.linalg.norm(b, axis=-1)[None, :]
    return a @ b.T - b_theta * norms


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


class SimPLE(Head):
    name = "simple"
    class_shardable = False  # no class centres: the bank, not the classes, is the large axis
    defaults = {"wrap": "cartesian", "b_theta": 0.3, "alpha": 1e-4, "r": 1.0, "m": 0.0, "lw": 1000.0,
                "init_bias": -10.0}
    bounds = {"b_theta": FRACTION, "alpha": FRACTION, "r": POSITIVE, "m": NON_NEGATIVE, "lw": POSITIVE}
    choices = {"wrap": ("cartesian", "polarlike")}

    def init(self, key, feat_dim, num_classes):
        return {"bias": jnp.full((1,), self.init_bias, jnp.float32)}, {}

    def project(self, params):
        return params

    def num_classes(self, params):
        return None

    def check_inputs(self, params, embeddings, labels):
        if embeddings.ndim != 2:
            raise ValueError(f"head 'simple': embeddings must be [batch, feat_dim], got shape {embeddings.shape}")
        if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.shape != (embeddings.shape[0],):
            raise ValueError(f"head 'simple': labels must be integers of shape ({embeddings.shape[0]},), "
                             f"got {labels.dtype} {labels.shape}")

    def loss(self, params, state, embeddings, labels, step, *, bank_features, bank_labels, self_offset=0):
        self.check_inputs(params, embeddings, labels)
        if bank_features.ndim != 2 or bank_features.shape[1] != embeddings.shape[1]:
            raise ValueError(f"head 'simple': bank_features must be [N, {embeddings.shape[1]}], "
                             f"got {bank_features.shape}")
        x = embeddings.astype(jnp.promote_types(embeddings.dtype, jnp.float32))
        bank = bank_features.astype(x.dtype)
        b = x.shape[0]
        positive = labels[:, None] == bank_labels[None, :]
        negative = ~positive
        own = jnp.arange(bank.shape[0])[None, :] == (jnp.arange(b)[:, None] + self_offset)
        positive = positive & ~own
        scores = generalized_inner_product(wrap(x, self.wrap), wrap(bank, self.wrap), self.b_theta)
        bias = params["bias"].astype(x.dtype)
        loss_p = _masked_mean(jax.nn.softplus(-((scores - self.m + bias) / self.r)), positive)
        loss_n = _masked_mean(jax.nn.softplus((scores + self.m + bias) * self.r), negative)
        loss = self.lw * (self.alpha * loss_p + (1.0 - self.alpha) * loss_n)
        return loss, state, {"bias": params["bias"][0], "loss_pos": loss_p, "loss_neg": loss_n,
                             **feature_norm_aux(x)}
