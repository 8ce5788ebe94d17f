"""The proxy-based trainer (OpenSphere's ``ProxyBasedTrainer``): backbone embeddings scored by a classifier head."""

from __future__ import annotations

import jax
from flax import nnx

from jsphere.trainers.state import Setup, TrainState
from jsphere.trainers.step import LossOutput


def loss(setup: Setup, model: nnx.Module, params: dict, state: TrainState, batch: dict,
         context: None) -> tuple[jax.Array, LossOutput]:
    embeddings = model(batch["image"])
    value, head_state, aux = setup.head.loss(params["head"], state.head_state, embeddings, batch["label"],
                                             state.step)
    return value, LossOutput(head_state=head_state, aux=aux, extra=state.extra)
