"""Optimizers and learning-rate schedules of the reference recipes, as optax transformations.

* OpenSphere: SGD (momentum 0.9, coupled weight decay on every parameter), MultiStepLR stepped every
  iteration; v1 clips the backbone and head gradients separately, v2 clips them together; v2 may give the
  backbone and the head their own lr / weight decay (``bkb_lr``, ``bkb_wd``, ``head_lr``, ``head_wd``).
* arcface_torch: SGD with ``PolynomialLRWarmup`` (linear warm-up, then polynomial decay to 0; power 1),
  gradient clipping on the backbone only; AdamW for ViTs.

Order of operations equals ``torch.nn.utils.clip_grad_norm_`` followed by ``torch.optim.SGD.step``: clip the
raw gradient (by ``max_norm / (norm + 1e-6)`` when that is below 1, as torch does), add ``wd * param``,
accumulate momentum, scale by the learning rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

global_norm = getattr(getattr(optax, "tree", None), "norm", None) or optax.global_norm
SCHEDULES = ("multistep", "poly", "cosine", "constant")
OPTIMIZERS = ("sgd", "adamw")
CLIP_SCOPES = ("joint", "per_module", "backbone")
GROUPS = ("backbone", "head")


def lr_schedule(cfg: Mapping[str, Any], base_lr: float, total_steps: int) -> optax.Schedule:
    """The learning rate at (0-based) update ``i`` for ``cfg.schedule``.

    multistep: ``base * gamma ** #{milestone <= i}`` (torch MultiStepLR stepped after every update);
    poly: arcface_torch's ``PolynomialLRWarmup`` stepped after every update: ``base`` at i = 0 (the scheduler's
    first value is the optimizer's own lr, also during warm-up), ``base * i / warmup`` for 1 <= i <= warmup, then
    ``base * (1 - (i - warmup) / (total - warmup)) ** power``, 0 from ``total`` on;
    cosine: linear warm-up then cosine decay to ``end_lr``; constant: ``base``.
    """
    name = cfg["schedule"]
    warmup = int(cfg.get("warmup_steps", 0) or 0)
    if name == "multistep":
        milestones = sorted(int(m) for m in cfg["milestones"])
        gamma = float(cfg.get("gamma", 0.1))
        return optax.piecewise_constant_schedule(base_lr, {m: gamma for m in milestones})
    if name == "poly":
        power = float(cfg.get("power", 1.0))
        decay_steps = max(total_steps - warmup, 1)

        def poly(step):
            step = jnp.asarray(step, jnp.result_type(float))
            warm = base_lr * step / max(warmup, 1)
            decay = base_lr * jnp.maximum(1.0 - (step - warmup) / decay_steps, 0.0) ** power
            return jnp.where(step == 0, base_lr, jnp.where(step <= warmup, warm, decay))

        return poly
    if name == "cosine":
        # warmup 0: no warm-up, the first update at base_lr; a 1-step run is one update at base_lr
        return optax.warmup_cosine_decay_schedule(
            0.0, base_lr, warmup, max(total_steps, warmup + 1), float(cfg.get("end_lr", 0.0))
        )
    if name == "constant":
        return optax.constant_schedule(base_lr)
    raise ValueError(f"config.optim.schedule={name!r} is not one of {SCHEDULES}")


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """``torch.nn.utils.clip_grad_norm_``: scale every gradient by ``min(1, max_norm / (norm + 1e-6))``, ``norm``
    the 2-norm of all of them together (optax's own divides by the norm exactly, a 1e-6 relative difference)."""

    def update(updates, state, params=None):
        del params
        norm = global_norm(updates)
        coef = jnp.minimum(max_norm / (norm + 1e-6), 1.0)
        return jax.tree.map(lambda g: g * coef.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _group_tx(cfg: Mapping[str, Any], group: str, total_steps: int) -> tuple[optax.GradientTransformation,
                                                                             optax.Schedule]:
    prefix = "bkb" if group == "backbone" else "head"
    lr = cfg.get(f"{prefix}_lr")
    wd = cfg.get(f"{prefix}_wd")
    lr = float(cfg["lr"] if lr is None else lr)
    wd = float(cfg["weight_decay"] if wd is None else wd)
    schedule = lr_schedule(cfg, lr, total_steps)
    name = cfg["name"]
    if name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(wd) if wd else optax.identity(),
            optax.sgd(schedule, momentum=float(cfg.get("momentum", 0.9)) or None,
                      nesterov=bool(cfg.get("nesterov", False))),
        )
    elif name == "adamw":
        tx = optax.adamw(schedule, b1=float(cfg.get("b1", 0.9)), b2=float(cfg.get("b2", 0.999)),
                         eps=float(cfg.get("eps", 1e-8)), weight_decay=wd)
    else:
        raise ValueError(f"config.optim.name={name!r} is not one of {OPTIMIZERS}")
    clip = cfg.get("clip_grad_norm")
    scope = cfg.get("clip_scope", "joint")
    if clip and (scope == "per_module" or (scope == "backbone" and group == "backbone")):
        tx = optax.chain(clip_by_global_norm(float(clip)), tx)
    return tx, schedule


def make_optimizer(cfg: Mapping[str, Any], total_steps: int) -> tuple[optax.GradientTransformation,
                                                                      Callable[[Any], Any]]:
    """Optimizer over ``{'backbone': ..., 'head': ...}`` parameter trees, and the backbone lr schedule.

    ``cfg`` is ``config.optim``: ``name`` (sgd|adamw), ``lr``, ``momentum``, ``weight_decay``, ``schedule``
    (+ ``milestones``, ``gamma`` | ``warmup_steps``, ``power``, ``end_lr``), optional ``bkb_lr``, ``bkb_wd``,
    ``head_lr``, ``head_wd``, ``clip_grad_norm`` (None = no clipping) with ``clip_scope`` joint (OpenSphere
    v2), per_module (OpenSphere v1) or backbone (arcface_torch).
    """
    scope = cfg.get("clip_scope", "joint")
    if scope not in CLIP_SCOPES:
        raise ValueError(f"config.optim.clip_scope={scope!r} is not one of {CLIP_SCOPES}")
    txs, schedules = {}, {}
    for group in GROUPS:
        txs[group], schedules[group] = _group_tx(cfg, group, total_steps)
    tx = optax.multi_transform(txs, {"backbone": "backbone", "head": "head"})
    clip = cfg.get("clip_grad_norm")
    if clip and scope == "joint":
        tx = optax.chain(clip_by_global_norm(float(clip)), tx)
    return tx, schedules["backbone"]
