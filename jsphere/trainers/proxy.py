"""The proxy-based trainer (OpenSphere's ``ProxyBasedTrainer``): backbone embeddings scored by a classifier head."""

from __future__ import annotations

import jax
from flax import nnx

from jsphere.trainers.state import LossOutput, Setup, Trainer, TrainState
from jsphere.trainers.step import head_key


def loss(setup: Setup, model: nnx.Module, params: dict, state: TrainState, batch: dict,
         context: None) -> tuple[jax.Array, LossOutput]:
    """The head's loss of the backbone's embeddings of ``batch['image']`` and ``batch['label']``; a head that draws
    random numbers draws them from ``head_key(state)``."""
    embeddings = model(batch["image"])
    value, head_state, aux = setup.head.loss(params["head"], state.head_state, embeddings, batch["label"],
                                             state.step, key=head_key(state))
    return value, LossOutput(head_state=head_state, aux=aux, extra=state.extra)


TRAINER = Trainer(loss=loss)
