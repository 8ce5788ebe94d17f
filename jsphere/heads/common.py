"""Shared head machinery: normalisation, straight-through centres, margins' detach form, class-axis reductions.

Every head computes its loss with reductions over the class axis done by a ``ClassAxis`` object. The dense
``ClassAxis`` here sees every class; a class-sharded one (Partial FC) supplies the same five operations with
cross-device ``psum``/``pmax``, so every head runs sharded without being rewritten.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

COS_CLAMP = 1e-5  # OpenSphere clamps cos to [-1 + 1e-5, 1 - 1e-5] before arccos
THETA_MAX = 3.14159  # and margined angles to [1e-5, 3.14159]


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """``torch.nn.functional.normalize``: ``x / max(||x||, eps)`` (finite gradient at x = 0, like PyTorch)."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps * eps))


def unit_rows(w: jax.Array) -> jax.Array:
    """Rows of ``w`` on the unit sphere, with the gradient passed straight through to ``w``.

    OpenSphere overwrites ``w.data`` with its normalised copy before each forward and differentiates with
    respect to that copy; the training step does the write-back (``head.project``), this does the rest.
    """
    return w + jax.lax.stop_gradient(l2_normalize(w) - w)


def angle(cos: jax.Array) -> jax.Array:
    """``arccos`` of cos clamped to ``[-1 + 1e-5, 1 - 1e-5]`` (OpenSphere)."""
    return jnp.arccos(jnp.clip(cos, -1.0 + COS_CLAMP, 1.0 - COS_CLAMP))


def detached(cos: jax.Array, psi: jax.Array, detach: bool = True) -> jax.Array:
    """``cos + stop_gradient(psi - cos)``: forward value psi, the gradient of plain cos (SphereFace-R's
    characteristic gradient detachment). ``detach=False`` returns psi with its true gradient."""
    return cos + jax.lax.stop_gradient(psi - cos) if detach else psi


def multiplicative_psi(theta: jax.Array) -> jax.Array:
    """SphereFace's monotone extension of cos: ``(-1)^k cos(theta) - 2k`` with ``k = floor(theta / pi)``."""
    k = jnp.floor(theta / jnp.pi)
    sign = 1.0 - 2.0 * jnp.mod(k, 2.0)
    return sign * jnp.cos(theta) - 2.0 * k


class ClassAxis:
    """Reductions over the class axis of [B, C] arrays when every class is local (no sharding).

    ``one_hot``, ``sum``, ``max`` (no gradient: ``pmax`` has none), ``logsumexp`` and ``take`` are all a head may
    use across classes; ``num_classes`` is the global class count.
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def one_hot(self, labels: jax.Array, dtype) -> jax.Array:
        return jax.nn.one_hot(labels, self.num_classes, dtype=dtype)

    def sum(self, x: jax.Array) -> jax.Array:
        return jnp.sum(x, axis=-1)

    def max(self, x: jax.Array) -> jax.Array:
        return jax.lax.stop_gradient(jnp.max(x, axis=-1))

    def logsumexp(self, x: jax.Array) -> jax.Array:
        m = self.max(x)
        return m + jnp.log(self.sum(jnp.exp(x - m[:, None])))

    def take(self, rows: jax.Array, labels: jax.Array) -> jax.Array:
        """``rows[labels]`` for a per-class array (e.g. the centres of the batch's labels)."""
        return rows[labels]


def softmax_cross_entropy(logits: jax.Array, onehot: jax.Array, axis: ClassAxis) -> jax.Array:
    """Per-row ``logsumexp(logits) - logits[y]`` (PyTorch ``F.cross_entropy`` before the batch mean)."""
    return axis.logsumexp(logits) - axis.sum(logits * onehot)


def target(x: jax.Array, onehot: jax.Array, axis: ClassAxis) -> jax.Array:
    """The label column of each row, shape [B]."""
    return axis.sum(x * onehot)
