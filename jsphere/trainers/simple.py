"""SimPLE's proxy-free trainer (OpenSphere v2 ``ProxyFreeTrainer``): an EMA encoder and a feature bank.

Each step: the EMA copy of the backbone (parameters updated as ``ema = m ema + (1 - m) online`` after the
optimizer; its BatchNorm statistics from its own train-mode forward; its dropout drawn from its own key) embeds
the global batch; those features and labels are enqueued into a FIFO bank (``config.simple.num_bank``
entries, a multiple of the batch) at the bank pointer; the online backbone's features are scored against the
whole bank by the ``simple`` head, the batch's own bank copies excluded from the positives; then the optimizer
updates the online backbone and the head's bias.

Differences from OpenSphere v2: empty bank slots carry label -1 (OpenSphere fills them with random integers
that could collide with real labels); the own-copy mask follows the bank pointer (OpenSphere assumes pointer
0); no cross-device batch shuffle — BatchNorm statistics are global under jit unless ``bn_per_device``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from jsphere.trainers.state import LossOutput, Setup, Trainer, TrainState


def init_extra(config: ml_collections.ConfigDict, backbone: dict, batch_stats: dict, key: jax.Array) -> dict:
    """The EMA encoder (a copy of the backbone) and the bank (0.1 N(0, 1) features, label -1)."""
    return {
        "ema": {"params": jax.tree.map(jnp.copy, backbone), "batch_stats": jax.tree.map(jnp.copy, batch_stats)},
        "bank": {"features": 0.1 * jax.random.normal(key, (config.simple.num_bank, config.model.embed_dim),
                                                     jnp.float32),
                 "labels": jnp.full((config.simple.num_bank,), -1, jnp.int32),
                 "ptr": jnp.zeros((), jnp.int32)},
    }


def prepare(setup: Setup, state: TrainState, batch: dict, key: jax.Array) -> dict:
    """The EMA encoder embeds the batch (its own dropout masks); the features and labels join the bank."""
    ema, bank = state.extra["ema"], state.extra["bank"]
    ema_model = setup.merge(ema["params"], state.frozen, ema["batch_stats"], state.rest, dropout_key=key)
    keys = jax.lax.stop_gradient(ema_model(batch["image"]).astype(jnp.float32))
    ptr = bank["ptr"]
    return {"ema": {"params": ema["params"], "batch_stats": nnx.to_pure_dict(nnx.state(ema_model, nnx.BatchStat))},
            "bank": {"features": jax.lax.dynamic_update_slice_in_dim(bank["features"], keys, ptr, axis=0),
                     "labels": jax.lax.dynamic_update_slice_in_dim(bank["labels"], batch["label"], ptr, axis=0),
                     "ptr": (ptr + keys.shape[0]) % bank["features"].shape[0]}}


def loss(setup: Setup, model: nnx.Module, params: dict, state: TrainState, batch: dict,
         extra: dict) -> tuple[jax.Array, LossOutput]:
    """The online features scored against the whole bank (the batch's own copies excluded from the positives)."""
    bank = extra["bank"]
    queries = model(batch["image"])
    value, head_state, aux = setup.head.loss(params["head"], state.head_state, queries, batch["label"], state.step,
                                             bank_features=bank["features"], bank_labels=bank["labels"],
                                             self_offset=state.extra["bank"]["ptr"])
    return value, LossOutput(head_state=head_state, aux=aux, extra=extra)


def finish(setup: Setup, state: TrainState) -> TrainState:
    """Move the EMA encoder towards the updated online backbone."""
    m = float(setup.config.simple.encoder_momentum)
    ema = state.extra["ema"]
    params = jax.tree.map(lambda e, p: m * e + (1.0 - m) * p, ema["params"], state.params["backbone"])
    return state.replace(extra={**state.extra, "ema": {**ema, "params": params}})


TRAINER = Trainer(loss=loss, init_extra=init_extra, prepare=prepare, finish=finish, head="simple")
