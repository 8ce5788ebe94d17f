"""The one train step, ``make_step(setup)`` -> ``step(state, batch) -> (state, metrics)``, and the keys each step
draws from (``step_key``, ``head_key``).

Every trainer supplies only its loss (and, optionally, what it computes before the differentiated part and what it
updates after the optimizer). The step projects the class centres onto the unit sphere when the head's recipe does
(``head.project``: OpenSphere's in-place ``w.data = normalize(w.data)``; arcface_torch's Partial FC never does),
rebuilds the backbone with its dropout reseeded from the state's key and the step (so every step draws new masks,
in every trainer), differentiates the loss, applies the optax update and reports the metrics. It is jit-compiled
with the state donated and its shardings declared.

Metrics: ``loss``, ``lr`` (when the setup has a schedule), ``grad_norm``, ``bkb_grad``, ``head_grad``, the head's
metrics as ``head/<name>``, and the trainer's own (``LossOutput.metrics``, and those ``finish`` returns) under
the names it gives them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
from flax import nnx

from jsphere.optim import global_norm
from jsphere.trainers.state import Setup, TrainState

DROPOUT, PREPARE, HEAD = 0, 1, 2  # the key streams of a step


def step_key(state: TrainState, stream: int) -> jax.Array:
    """The PRNG key of this step for ``stream``: the state's key folded with the step, then with the stream
    (``DROPOUT``: the online backbone's dropout; ``PREPARE``: a trainer's ``prepare``; ``HEAD``: the head's draws).
    Replicated, so every device and every device count draws the same numbers."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step), stream)


def head_key(state: TrainState) -> jax.Array:
    """The key a trainer's loss hands the head (``head.loss(..., key=head_key(state))``): a head that draws random
    numbers (ElasticFace's margins) draws them from it."""
    return step_key(state, HEAD)


def _merged_metrics(step_metrics: dict, trainer_metrics: dict) -> dict:
    clash = sorted(set(step_metrics) & set(trainer_metrics))
    if clash:
        raise ValueError(f"the trainer reports metric(s) {', '.join(clash)}, which the step reports itself: "
                         "rename them")
    return {**step_metrics, **trainer_metrics}


def make_step(setup: Setup) -> Callable[[TrainState, dict], tuple[TrainState, dict[str, jax.Array]]]:
    """The jit-compiled step of ``setup``'s trainer: ``step(state, batch) -> (new state, metrics {name: []})``,
    ``batch = {'image': [B, ...], 'label': [B] int32}`` (sharded over the batch, see ``parallel.global_batch``);
    the state passed in is donated (use the returned one)."""
    head, tx, schedule, trainer = setup.head, setup.tx, setup.schedule, setup.trainer

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict[str, jax.Array]]:
        params = {"backbone": state.params["backbone"], "head": head.project(state.params["head"])}
        context = trainer.prepare(setup, state, batch, step_key(state, PREPARE)) if trainer.prepare else None

        def objective(params):
            model = setup.merge(params["backbone"], state.frozen, state.batch_stats, state.rest,
                                dropout_key=step_key(state, DROPOUT))
            loss, out = trainer.loss(setup, model, params, state, batch, context)
            return loss, (nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)), out)

        (loss, (batch_stats, out)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, state.opt, params)
        new_state = state.replace(step=state.step + 1, params=optax.apply_updates(params, updates),
                                  batch_stats=batch_stats, head_state=out.head_state, opt=opt_state, extra=out.extra)
        finished = {}
        if trainer.finish is not None:
            new_state = trainer.finish(setup, new_state)
            if isinstance(new_state, tuple):
                new_state, finished = new_state
        metrics = {"loss": loss, "grad_norm": global_norm(grads), "bkb_grad": global_norm(grads["backbone"]),
                   "head_grad": global_norm(grads["head"]), **{f"head/{k}": v for k, v in out.aux.items()}}
        if schedule is not None:
            metrics["lr"] = schedule(state.step)
        return new_state, _merged_metrics(metrics, {**out.metrics, **finished})

    return jax.jit(train_step, donate_argnums=0, out_shardings=(setup.shardings, setup.replicated))
