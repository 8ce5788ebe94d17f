"""The head interface: hyper-parameter checking, class-centre init/projection, input checks.

Two recipe families treat the class centres differently, and a head carries which one it follows:

* OpenSphere (``project_centres=True``, the default): centres xavier-normal; before every update the step
  writes them back onto the unit sphere (``w.data = normalize(w.data)``) and the forward uses them as they are,
  so the gradient reaches ``w`` unchanged (straight through the normalisation).
* arcface_torch (``project_centres=False``, the default of ``combined_margin``, its ``CombinedMarginLoss``):
  Partial FC's centres start N(0, 0.01) (``init_std=0.01``), are never written back, and are normalised only
  inside the forward, differentiated through ``normalize(w)``; weight decay and momentum act on the raw rows.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jsphere.heads.bounds import Interval
from jsphere.heads.common import ClassAxis, l2_normalize, unit_rows

Params = dict[str, jax.Array]
State = dict[str, jax.Array]


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


class Head:
    """A loss over embeddings and class centres; pure and jittable.

    ``init(key, feat_dim, num_classes) -> (params, state)``: ``params['w']`` is [num_classes, feat_dim]
    (xavier-normal like OpenSphere, or N(0, ``init_std``)); ``state`` holds running values (empty for most heads).
    ``project(params)``: the class centres on the unit sphere when ``project_centres`` (the training step writes
    this back before every update, as OpenSphere does in place), unchanged otherwise (arcface_torch).
    ``loss(params, state, embeddings, labels, step) -> (loss, new_state, aux)``.
    ``project_centres`` and ``init_std`` default to the class's ``PROJECT_CENTRES`` / ``CENTRE_INIT_STD``.
    ``class_shardable``: whether ``heads.sharded.ShardedHead`` may split the head's classes over devices (its
    ``forward`` does every reduction over classes with ``axis``); a head whose loss needs the whole class axis at
    once, or that has no class centres, says False.
    ``stochastic``: whether the loss draws random numbers (ElasticFace's per-sample margins). Such a head is
    given a PRNG key: ``loss(..., key=key)`` passes it to ``forward(..., axis, key)`` (a ``MarginSoftmax`` head
    reads it as ``ctx.key``). The train step derives it from the state's RNG, the step and a stream of the
    head's own (``trainers.head_key``), so the draws are reproducible and the same on 1 or N devices, dense or
    class-sharded, as long as the head draws per sample (shape [B]), not per class.
    Subclasses set ``name``, ``defaults`` (every hyper-parameter with OpenSphere's default), ``bounds`` (the
    valid range of each numeric hyper-parameter, checked at construction) and implement
    ``forward(params, state, x, labels, step, axis)``, where ``axis`` does every reduction over classes; a head
    that is a softmax cross-entropy over logits made from the cosines subclasses ``MarginSoftmax`` instead and
    writes only its logits.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple]] = {}
    bounds: ClassVar[dict[str, Interval]] = {}
    PROJECT_CENTRES: ClassVar[bool] = True
    CENTRE_INIT_STD: ClassVar[float | None] = None  # None: xavier-normal
    class_shardable: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    def __init__(self, *, project_centres: bool | None = None, init_std: float | None = None, **hparams: Any):
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"head {self.name!r}: unknown hyper-parameter(s) {', '.join(unknown)}; valid: {valid}")
        self.hparams = {**self.defaults, **hparams}
        for key, value in self.hparams.items():
            if key in self.choices and value not in self.choices[key]:
                raise ValueError(f"head {self.name!r}: {key}={value!r} is not one of {self.choices[key]}")
            if key in self.bounds and value not in self.bounds[key]:
                infinite = isinstance(value, float) and math.isinf(value)
                raise ValueError(f"head {self.name!r}: {key}={value!r} " + ("is not finite; it " if infinite else "")
                                 + f"must be {self.bounds[key]}")
            setattr(self, key, value)
        self.check_hparams()
        self.project_centres = self.PROJECT_CENTRES if project_centres is None else bool(project_centres)
        self.init_std = self.CENTRE_INIT_STD if init_std is None else float(init_std)
        if self.init_std is not None and not self.init_std > 0:
            raise ValueError(f"head {self.name!r}: init_std={self.init_std!r} must be > 0 (or None: xavier-normal)")

    def check_hparams(self) -> None:
        """Relations between hyper-parameters that single ranges cannot state (a head overrides it)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"

    # --------------------------------------------------------------------------------------- params
    def init(self, key: jax.Array, feat_dim: int, num_classes: int) -> tuple[Params, State]:
        if int(feat_dim) <= 0 or int(num_classes) <= 0:
            raise ValueError(f"head {self.name!r}: feat_dim and num_classes must be positive, got {feat_dim}, "
                             f"{num_classes}")
        rows = self.centre_rows(num_classes)
        std = math.sqrt(2.0 / (feat_dim + rows)) if self.init_std is None else self.init_std
        w = jax.random.normal(key, (rows, feat_dim), jnp.float32) * std
        return {"w": w, **self.extra_params(num_classes)}, self.init_state()

    def centre_rows(self, num_classes: int) -> int:
        return num_classes

    def extra_params(self, num_classes: int) -> Params:
        return {}

    def init_state(self) -> State:
        return {}

    def project(self, params: Params) -> Params:
        return {**params, "w": l2_normalize(params["w"])} if self.project_centres else params

    def unit_centres(self, w: jax.Array) -> jax.Array:
        """The centres on the unit sphere as the forward uses them: straight through to ``w`` when the step
        projects them (OpenSphere), through ``normalize(w)`` otherwise (arcface_torch)."""
        return unit_rows(w) if self.project_centres else l2_normalize(w)

    def cosine(self, x: jax.Array, w: jax.Array) -> jax.Array:
        """``cos theta_ij = x_i / ||x_i|| . w_j / ||w_j||``, shape [B, C]."""
        return l2_normalize(x) @ self.unit_centres(w).T

    def num_classes(self, params: Params) -> int:
        return params["w"].shape[0]

    # ----------------------------------------------------------------------------------------- loss
    def loss(self, params: Params, state: State, embeddings: jax.Array, labels: jax.Array,
             step: jax.Array | int, key: jax.Array | None = None) -> tuple[jax.Array, State, dict[str, jax.Array]]:
        """(loss [], new state, aux metrics {name: []}) of embeddings [B, D] and integer labels [B]; ``key`` (a
        PRNG key) is required by a ``stochastic`` head and ignored by the others."""
        self.check_inputs(params, embeddings, labels)
        x = embeddings.astype(jnp.promote_types(embeddings.dtype, jnp.float32))
        return self.forward(params, state, x, labels, jnp.asarray(step), ClassAxis(self.num_classes(params)),
                            **self.key_argument(key))

    def key_argument(self, key: jax.Array | None) -> dict[str, jax.Array]:
        """``{'key': key}`` for a stochastic head (which refuses None), ``{}`` for the others, whose ``forward``
        takes no key."""
        if not self.stochastic:
            return {}
        if key is None:
            raise ValueError(f"head {self.name!r} draws random numbers: pass a PRNG key to its loss (loss(..., "
                             "key=...); the train step passes trainers.head_key(state))")
        return {"key": key}

    def forward(self, params: Params, state: State, x: jax.Array, labels: jax.Array, step: jax.Array,
                axis: ClassAxis) -> tuple[jax.Array, State, dict[str, jax.Array]]:
        """The loss of normalised-or-not embeddings ``x`` [B, D]; every reduction over classes goes through
        ``axis``. A ``stochastic`` head's ``forward`` takes one more argument, ``key``."""
        raise NotImplementedError

    def check_inputs(self, params: Params, embeddings: jax.Array, labels: jax.Array) -> None:
        """Shapes and dtypes always; label values when they are concrete (outside jit)."""
        w = params["w"]
        if embeddings.ndim != 2:
            raise ValueError(f"head {self.name!r}: embeddings must be [batch, feat_dim], got shape {embeddings.shape}")
        if embeddings.shape[1] != w.shape[1]:
            raise ValueError(f"head {self.name!r}: embeddings have feature dim {embeddings.shape[1]} but the class "
                             f"centres have {w.shape[1]}")
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"head {self.name!r}: labels must be integers, got dtype {labels.dtype}")
        if labels.shape != (embeddings.shape[0],):
            raise ValueError(f"head {self.name!r}: labels must have shape ({embeddings.shape[0]},), got {labels.shape}")
        if _is_concrete(labels) and labels.size:
            values = np.asarray(labels)
            lo, hi = int(values.min()), int(values.max())
            num = self.num_classes(params)
            if lo < 0 or hi >= num:
                bad = lo if lo < 0 else hi
                raise ValueError(f"head {self.name!r}: label {bad} is outside [0, {num}) (the head has {num} classes)")


def feature_norm_aux(x: jax.Array) -> dict[str, jax.Array]:
    norms = jnp.linalg.norm(x, axis=-1)
    return {"feat_norm_mean": jnp.mean(norms), "feat_norm_std": jnp.std(norms)}
