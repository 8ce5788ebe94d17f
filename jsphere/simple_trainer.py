"""SimPLE's proxy-free trainer (OpenSphere v2 ``ProxyFreeTrainer``): an EMA encoder and a feature bank.

Each step: the EMA copy of the backbone (parameters updated as ``ema = m ema + (1 - m) online``; its BatchNorm
statistics from its own train-mode forward) embeds the global batch; those features and labels are enqueued
into a FIFO bank (``config.simple.num_bank`` entries, a multiple of the batch) at the bank pointer; the online
backbone's features are scored against the whole bank by the ``simple`` head, the batch's own bank copies
excluded from the positives; then the optimizer updates the online backbone and the head's bias.

Differences from OpenSphere v2: empty bank slots carry label -1 (OpenSphere fills them with random integers
that could collide with real labels); the own-copy mask follows the bank pointer (OpenSphere assumes pointer
0); no cross-device batch shuffle — BatchNorm statistics are global under jit unless ``bn_per_device``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jsphere.train_state import Setup, global_norm


def extend_state(setup: Setup, state: dict) -> dict:
    """Add the EMA encoder (a copy of the backbone) and the bank (0.1 N(0, 1) features, label -1) to ``state``."""
    cfg = setup.config
    key = jax.random.fold_in(jax.random.key(cfg.seed), 3)
    state = {
        **state,
        "ema": {"params": jax.tree.map(jnp.copy, state["params"]["backbone"]),
                "batch_stats": jax.tree.map(jnp.copy, state["batch_stats"])},
        "bank": {"features": 0.1 * jax.random.normal(key, (cfg.simple.num_bank, cfg.model.embed_dim), jnp.float32),
                 "labels": jnp.full((cfg.simple.num_bank,), -1, jnp.int32),
                 "ptr": jnp.zeros((), jnp.int32)},
    }
    state = jax.device_put(state, setup.shardings_like(state))
    setup.state_shardings = setup.shardings_like(state)
    return state


def make_train_step(setup: Setup):
    head, tx, schedule = setup.head, setup.tx, setup.schedule
    momentum = float(setup.config.simple.encoder_momentum)

    def train_step(state, batch):
        step = state["step"]
        ema_model = setup.merge(state["ema"]["params"], state["frozen"], state["ema"]["batch_stats"])
        keys = jax.lax.stop_gradient(ema_model(batch["image"]).astype(jnp.float32))
        ema_stats = nnx.to_pure_dict(nnx.state(ema_model, nnx.BatchStat))
        ptr = state["bank"]["ptr"]
        bank = jax.lax.dynamic_update_slice_in_dim(state["bank"]["features"], keys, ptr, axis=0)
        bank_labels = jax.lax.dynamic_update_slice_in_dim(state["bank"]["labels"], batch["label"], ptr, axis=0)

        def loss_fn(params):
            model = setup.merge(params["backbone"], state["frozen"], state["batch_stats"])
            queries = model(batch["image"])
            loss, head_state, aux = head.loss(params["head"], state["head_state"], queries, batch["label"], step,
                                              bank_features=bank, bank_labels=bank_labels, self_offset=ptr)
            return loss, (nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)), head_state, aux)

        params = state["params"]
        (loss, (batch_stats, head_state, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, state["opt"], params)
        params = optax.apply_updates(params, updates)
        ema_params = jax.tree.map(lambda e, p: momentum * e + (1.0 - momentum) * p, state["ema"]["params"],
                                  params["backbone"])
        metrics = {"loss": loss, "lr": schedule(step), "grad_norm": global_norm(grads),
                   "bkb_grad": global_norm(grads["backbone"]), "head_grad": global_norm(grads["head"]),
                   **{f"head/{k}": v for k, v in aux.items()}}
        new_state = {**state, "step": step + 1, "params": params, "batch_stats": batch_stats, "head_state": head_state,
                     "opt": opt_state, "ema": {"params": ema_params, "batch_stats": ema_stats},
                     "bank": {"features": bank, "labels": bank_labels,
                              "ptr": (ptr + keys.shape[0]) % bank.shape[0]}}
        return new_state, metrics

    return jax.jit(train_step, donate_argnums=0, out_shardings=(setup.state_shardings, setup.replicated))
