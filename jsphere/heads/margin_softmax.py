"""The margin-softmax template: the heads that are a cross-entropy over logits made from the cosine matrix.

Most heads of the family differ only in how they turn the cosines into logits (usually a margin on the target
column)::

    cos_ij = x^_i . w^_j                  ``cosines`` (clipped to [-1, 1] with ``clip_cos``; sub-centres may pool)
    logits = f(cos, Y, ...)               ``logits``: the head's formula
    loss   = weighted_ce(CE(logits, y)) + penalty  (the batch mean unless a head weights or caps it)

A head subclasses ``MarginSoftmax`` and writes ``logits(cos, onehot, ctx)``. One that keeps running state, logs
more metrics or adds a regulariser writes ``margined(cos, onehot, ctx)`` and returns a ``Margined`` instead. The
template does the one-hot, the cross-entropy through the ``ClassAxis`` (so every such head also runs
class-sharded) and the aux metrics every head reports: ``cos_target`` and the feature-norm mean and std.

A head whose logits draw random numbers sets ``stochastic = True`` and reads its PRNG key as ``ctx.key`` (see
``base.Head``); the same key reaches every device of a class-sharded head, so draws of per-sample values (shape
[B]) are the dense head's.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jsphere.heads.base import Head, Params, State, feature_norm_aux
from jsphere.heads.common import ClassAxis, softmax_cross_entropy, target


@dataclasses.dataclass(frozen=True)
class MarginContext:
    """What logits may depend on besides the cosines and the one-hot labels."""

    x: jax.Array  # [B, D] embeddings, float32 or wider
    labels: jax.Array  # [B]
    step: jax.Array  # updates done so far
    state: State  # running values before this step
    params: Params
    axis: ClassAxis  # every reduction over classes goes through it
    key: jax.Array | None = None  # a PRNG key of this step for a ``stochastic`` head; None for the others


@dataclasses.dataclass(frozen=True)
class Margined:
    """The logits [B, C], and what a head adds to the plain cross-entropy."""

    logits: jax.Array
    state: State | None = None  # running values after this step; None keeps them
    aux: dict[str, jax.Array] = dataclasses.field(default_factory=dict)
    penalty: jax.Array | None = None  # added to the loss


class MarginSoftmax(Head):
    """A head whose loss is the softmax cross-entropy of ``logits(cos, onehot, ctx)``; see the module docstring."""

    clip_cos: ClassVar[bool] = False

    def cosines(self, params: Params, x: jax.Array) -> jax.Array:
        cos = self.cosine(x, params["w"])
        return jnp.clip(cos, -1.0, 1.0) if self.clip_cos else cos

    def logits(self, cos: jax.Array, onehot: jax.Array, ctx: MarginContext) -> jax.Array:
        raise NotImplementedError(f"head {self.name!r} defines neither logits() nor margined()")

    def margined(self, cos: jax.Array, onehot: jax.Array, ctx: MarginContext) -> Margined:
        return Margined(self.logits(cos, onehot, ctx))

    def weighted_ce(self, ce: jax.Array) -> jax.Array:
        """The loss from the per-sample cross-entropies [B]: their mean (some heads weight or cap it)."""
        return jnp.mean(ce)

    def forward(self, params: Params, state: State, x: jax.Array, labels: jax.Array, step: jax.Array,
                axis: ClassAxis, key: jax.Array | None = None) -> tuple[jax.Array, State, dict[str, jax.Array]]:
        cos = self.cosines(params, x)
        onehot = axis.one_hot(labels, cos.dtype)
        out = self.margined(cos, onehot, MarginContext(x, labels, step, state, params, axis, key))
        loss = self.weighted_ce(softmax_cross_entropy(out.logits, onehot, axis))
        if out.penalty is not None:
            loss = loss + out.penalty
        aux = {"cos_target": jnp.mean(target(cos, onehot, axis)), **out.aux, **feature_norm_aux(x)}
        return loss, state if out.state is None else out.state, aux
