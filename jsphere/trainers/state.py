"""What a training run is made of: its state (``TrainState``), its static setup (``Setup``) and its trainer
(``Trainer``: a loss function and optional hooks; ``LossOutput``: what the loss returns besides the scalar).

``Setup`` is immutable: the backbone's NNX graph definitions, the head (class-sharded or not), the optimizer, the
trainer, and the sharding of every state leaf. ``trainers.build_setup`` makes one from a model, a head and an
optimizer; ``trainers.make_setup`` from a run's config, through ``build_setup``.

A step rebuilds the backbone from the state's arrays with ``Setup.merge``, which merges with ``copy=True``: a
hand-written ``jax.jit`` function that calls ``nnx.merge`` on traced arrays without it fails with
``TraceContextError: Cannot mutate BatchStat from a different trace level`` as soon as BatchNorm updates its
statistics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import optax
from flax import nnx, struct

from jsphere import models, parallel
from jsphere.heads.base import Head
from jsphere.heads.sharded import ShardedHead

SPLIT = (nnx.Param, models.FrozenParam, nnx.BatchStat, ...)


@struct.dataclass
class TrainState:
    """Everything a step reads and writes. ``params``: ``{'backbone': ..., 'head': ...}``, what the optimizer
    updates (nested dicts of arrays); ``batch_stats``: the backbone's BatchNorm statistics; ``extra``: a trainer's
    own state (SimPLE: EMA encoder, bank; an EMA of the weights); ``rest``: the model's non-weight variables
    (dropout RNG streams), never saved; ``rng``: raw key data every step's keys derive from."""

    step: jax.Array  # [] int32: updates done so far
    rng: jax.Array  # raw key data
    params: dict
    frozen: dict
    batch_stats: dict
    head_state: dict
    opt: Any
    extra: dict
    rest: Any


@struct.dataclass
class LossOutput:
    """What a trainer's loss returns besides the scalar: the head's new state, the head's metrics (reported as
    ``head/<name>``), its new extra state, and metrics of its own (reported under their own names)."""

    head_state: dict
    aux: dict[str, jax.Array]
    extra: dict
    metrics: dict[str, jax.Array] = struct.field(default_factory=dict)


# init_extra(config, backbone_params, batch_stats, key) -> extra: a trainer's own state at step 0 (``config`` is
# the run's config, None when the setup was built without one).
ExtraInit = Callable[[ml_collections.ConfigDict | None, dict, dict, jax.Array], dict]
# prepare(setup, state, batch, key) -> context: what a trainer computes before the differentiated part (SimPLE:
# the EMA encoder's features), with ``key`` a fresh key of this step for the trainer.
Prepare = Callable[["Setup", TrainState, dict, jax.Array], Any]
# loss(setup, model, params, state, batch, context) -> (loss, LossOutput); ``model`` is the online backbone in
# train mode, ``params`` the projected trainable parameters.
LossFn = Callable[["Setup", nnx.Module, dict, TrainState, dict, Any], tuple[jax.Array, LossOutput]]
# finish(setup, state) -> state, or (state, metrics): what a trainer updates after the optimizer.
Finish = Callable[["Setup", TrainState], "TrainState | tuple[TrainState, dict[str, jax.Array]]"]
# eval_weights(setup, state) -> {'params': backbone params, 'batch_stats': its statistics (optional)}: the
# backbone weights to evaluate and export, in the layout of ``state.params['backbone']`` / ``state.batch_stats``.
EvalWeights = Callable[["Setup", TrainState], dict]


@dataclasses.dataclass(frozen=True)
class Trainer:
    """A trainer: its ``loss``; optionally the state it adds (``init_extra``), what it computes before the
    differentiated part (``prepare``), what it updates after the optimizer and the metrics that adds (``finish``),
    and the backbone weights to evaluate and export (``eval_weights``: an EMA's; validation during training,
    ``--mode=eval``, ``jsphere.embed``, the exporters and ``Embedder.from_checkpoint`` all see them, since
    checkpoints save them as the run's weights). ``head``: the one head it trains (None: any classifier head);
    that head then trains with this trainer only. The hooks' signatures are the aliases of this module."""

    loss: LossFn
    init_extra: ExtraInit | None = None
    prepare: Prepare | None = None
    finish: Finish | None = None
    eval_weights: EvalWeights | None = None
    head: str | None = None


def initial_extra(trainer: Trainer, config: ml_collections.ConfigDict | None, seed: int, backbone: dict,
                  batch_stats: dict) -> dict:
    """The trainer's own state at step 0 for these backbone weights (its ``init_extra``; {} without it), drawn
    from the run's ``seed``."""
    if trainer.init_extra is None:
        return {}
    return trainer.init_extra(config, backbone, batch_stats, jax.random.fold_in(jax.random.key(seed), 3))


@dataclasses.dataclass(frozen=True)
class Setup:
    """The static part of a run: see the module docstring. ``create()`` builds the initial ``TrainState`` (traced
    under jit, see ``trainers.init_state``); ``schedule(step)`` is the learning rate reported as ``lr`` (None:
    none reported); ``config`` the run's config (None when built without one)."""

    mesh: jax.sharding.Mesh
    num_classes: int
    head: Head | ShardedHead
    tx: optax.GradientTransformation
    trainer: Trainer
    graphdef: nnx.GraphDef
    eval_graphdef: nnx.GraphDef
    param_count: int
    embed_dim: int
    seed: int
    create: Callable[[], TrainState]
    shardings: TrainState
    schedule: Callable[[Any], Any] | None = None
    config: ml_collections.ConfigDict | None = None

    def merge(self, params: dict, frozen: dict, batch_stats: dict, rest: Any, *, train: bool = True,
              dropout_key: jax.Array | None = None) -> nnx.Module:
        """The backbone as an NNX module (merged with ``copy=True``, so it may run inside any jit); ``train=False``
        gives it in eval mode; ``dropout_key`` reseeds its RNG streams (dropout), so a step that passes a new key
        draws new masks."""
        model = nnx.merge(self.graphdef if train else self.eval_graphdef, params, frozen, batch_stats, rest, copy=True)
        if dropout_key is not None:
            tags = {node.tag for _, node in nnx.iter_graph(model) if isinstance(node, nnx.RngStream)}
            if tags:  # dropout layers draw from the stream they were built with ('default' here)
                nnx.reseed(model, **{tag: jax.random.fold_in(dropout_key, i) for i, tag in enumerate(sorted(tags))})
        return model

    def eval_model(self, state: TrainState) -> nnx.Module:
        """The backbone to evaluate and export, in eval mode: the trainer's ``eval_weights`` when it has them (an
        EMA's), the trained weights otherwise."""
        params, batch_stats = state.params["backbone"], state.batch_stats
        if self.trainer.eval_weights is not None:
            chosen = self.trainer.eval_weights(self, state)
            params, batch_stats = chosen["params"], chosen.get("batch_stats", batch_stats)
        return self.merge(params, state.frozen, batch_stats, state.rest, train=False)

    def initial_extra(self, backbone: dict, batch_stats: dict) -> dict:
        """The trainer's own state for these backbone weights, as at step 0 (``config.init_from`` replaces the
        weights after the state was created)."""
        return initial_extra(self.trainer, self.config, self.seed, backbone, batch_stats)

    @property
    def replicated(self) -> jax.sharding.NamedSharding:
        return parallel.replicated(self.mesh)
