"""The one train step, ``make_step(setup, trainer)`` -> ``(state, batch) -> (state, metrics)``, and what a trainer
supplies to it (``Trainer``).

Every trainer supplies only its loss (and, optionally, what it computes before the differentiated part and what it
updates after the optimizer). The step projects
the class centres onto the unit sphere when the head's recipe does (``head.project``: OpenSphere's in-place
``w.data = normalize(w.data)``; arcface_torch's Partial FC never does), rebuilds the
backbone with its dropout reseeded from the state's key and the step (so every step draws new masks, in every
trainer), differentiates the loss, applies the optax update and reports the metrics. It is jit-compiled with
the state donated and its shardings declared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import nnx, struct

from jsphere.optim import global_norm
from jsphere.trainers.state import ExtraInit, Setup, TrainState


@struct.dataclass
class LossOutput:
    """What a trainer's loss returns besides the scalar: the head's new state, metrics, its new extra state."""

    head_state: dict
    aux: dict[str, jax.Array]
    extra: dict


# prepare(setup, state, batch, key) -> context: what a trainer computes before the differentiated part (SimPLE:
# the EMA encoder's features), with ``key`` a fresh key of this step for the trainer.
Prepare = Callable[[Setup, TrainState, dict, jax.Array], Any]
# loss_fn(setup, model, params, state, batch, context) -> (loss, LossOutput); ``model`` is the online backbone in
# train mode, ``params`` the projected trainable parameters.
LossFn = Callable[[Setup, nnx.Module, dict, TrainState, dict, Any], tuple[jax.Array, LossOutput]]
Finish = Callable[[Setup, TrainState], TrainState]


@dataclasses.dataclass(frozen=True)
class Trainer:
    """A trainer: its ``loss``; optionally the state it adds (``init_extra``, see ``make_setup``), what it computes
    before the differentiated part (``prepare``) and what it updates after the optimizer (``finish``). ``head``: the
    one head it trains (None: any classifier head); that head then trains with this trainer only."""

    loss: LossFn
    init_extra: ExtraInit | None = None
    prepare: Prepare | None = None
    finish: Finish | None = None
    head: str | None = None


def step_key(state: TrainState, stream: int) -> jax.Array:
    """A key for this step, one per ``stream`` (0: the online backbone's dropout)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step), stream)


def make_step(setup: Setup, trainer: Trainer) -> Callable[[TrainState, dict], Any]:
    """The jit-compiled step of ``trainer`` for the run ``setup`` describes (state donated)."""
    head, tx, schedule = setup.head, setup.tx, setup.schedule
    loss_fn, prepare, finish = trainer.loss, trainer.prepare, trainer.finish

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict[str, jax.Array]]:
        params = {"backbone": state.params["backbone"], "head": head.project(state.params["head"])}
        context = prepare(setup, state, batch, step_key(state, 1)) if prepare is not None else None

        def objective(params):
            model = setup.merge(params["backbone"], state.frozen, state.batch_stats, state.rest,
                                dropout_key=step_key(state, 0))
            loss, out = loss_fn(setup, model, params, state, batch, context)
            return loss, (nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)), out)

        (loss, (batch_stats, out)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, state.opt, params)
        new_state = state.replace(step=state.step + 1, params=optax.apply_updates(params, updates),
                                  batch_stats=batch_stats, head_state=out.head_state, opt=opt_state, extra=out.extra)
        if finish is not None:
            new_state = finish(setup, new_state)
        metrics = {"loss": loss, "lr": schedule(state.step), "grad_norm": global_norm(grads),
                   "bkb_grad": global_norm(grads["backbone"]), "head_grad": global_norm(grads["head"]),
                   **{f"head/{k}": v for k, v in out.aux.items()}}
        return new_state, metrics

    return jax.jit(train_step, donate_argnums=0, out_shardings=(setup.shardings, setup.replicated))
