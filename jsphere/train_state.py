"""The training state and the jit-compiled functional train step (proxy heads), and how checkpoints map to it.

The state is a tree of plain dicts (what the checkpoints hold)::

    {'step', 'rng', 'params': {'backbone', 'head'}, 'frozen', 'batch_stats', 'head_state', 'opt', ...}

The step is a pure function of (state, batch) under ``jax.jit`` with the state donated: the backbone is rebuilt
with ``nnx.merge`` inside, the class centres are projected onto the unit sphere (OpenSphere's in-place
``w.data = normalize(w.data)``), the head's loss is differentiated, and optax applies the update.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from jsphere import checkpoint, models, optim, parallel
from jsphere import heads as heads_lib
from jsphere.heads.sharded import ShardedHead

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
WEIGHT_KEYS = ("params", "frozen", "batch_stats", "head_state")


# ------------------------------------------------------------------------------------ model and state
def build_backbone(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> models.Backbone:
    return models.build(config.model.name, embed_dim=config.model.embed_dim, rngs=rngs,
                        dtype=DTYPES[config.model.dtype], **config.model.kwargs.to_dict())


def model_meta(config: ml_collections.ConfigDict, num_classes: int, head=None) -> dict[str, Any]:
    """What a checkpoint needs to rebuild the model and head without the training config."""
    rows = {}
    if isinstance(head, ShardedHead):
        rows = {"rows": head.head.centre_rows(num_classes), "padded_rows": head.rows}
    return {
        "model": {"name": config.model.name, "embed_dim": config.model.embed_dim,
                  "kwargs": config.model.kwargs.to_dict()},
        "head": {"name": config.head.name, "hparams": config.head.hparams.to_dict(),
                 "num_classes": int(num_classes), "feat_dim": config.model.embed_dim, **rows},
        "source": {"trainer": "jsphere", "config": config.to_json()},
    }


class Setup:
    """The static parts of a run: the NNX graph definitions, the head, the optimizer and the schedule."""

    def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_classes: int,
                 saved_head_rows: int | None = None):
        self.config = config
        self.mesh = mesh
        self.num_classes = num_classes
        self.head = heads_lib.build(config.head.name, **config.head.hparams.to_dict())
        if config.head.sharded:
            self.head = ShardedHead(self.head, mesh, num_classes, sample_rate=config.head.sample_rate,
                                    seed=config.seed, rows=saved_head_rows)
        self.tx, self.schedule = optim.make_optimizer(config.optim, config.total_steps)
        model = build_backbone(config, nnx.Rngs(config.seed))
        if config.model.bn_per_device:
            models.set_bn_stat_groups(model, mesh.devices.size)
        self.param_count = models.param_count(model)
        model.train()
        self.graphdef, params, frozen, batch_stats, self.rest = nnx.split(
            model, nnx.Param, models.FrozenParam, nnx.BatchStat, ...)
        model.eval()
        self.eval_graphdef = nnx.split(model, nnx.Param, models.FrozenParam, nnx.BatchStat, ...)[0]
        self._initial = (params, frozen, batch_stats)

    def initial_state(self) -> dict[str, Any]:
        params, frozen, batch_stats = self._initial
        key = jax.random.key(self.config.seed)
        replicated = parallel.replicated(self.mesh)
        if isinstance(self.head, ShardedHead):
            head_params, head_state = self.head.init(jax.random.fold_in(key, 1), self.config.model.embed_dim)
        else:
            head_params, head_state = jax.device_put(
                self.head.init(jax.random.fold_in(key, 1), self.config.model.embed_dim, self.num_classes), replicated)
        trainable = {"backbone": jax.device_put(nnx.to_pure_dict(params), replicated), "head": head_params}
        state = {
            "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.fold_in(key, 2)),
            "params": trainable,
            "frozen": nnx.to_pure_dict(frozen),
            "batch_stats": nnx.to_pure_dict(batch_stats),
            "head_state": head_state,
            "opt": jax.jit(self.tx.init)(trainable),
        }
        state = jax.device_put(state, self.shardings_like(state))
        self.state_shardings = self.shardings_like(state)
        return state

    @property
    def replicated(self):
        return parallel.replicated(self.mesh)

    def shardings_like(self, state: dict) -> dict:
        """Every leaf replicated, except the class-sharded head's per-class arrays (and their optimizer state)."""
        replicated = parallel.replicated(self.mesh)
        return jax.tree.map(lambda x: x.sharding if isinstance(x, jax.Array) and not x.sharding.is_fully_replicated
                            else replicated, state)

    def merge(self, params: dict, frozen: dict, batch_stats: dict, *, train: bool = True) -> nnx.Module:
        graphdef = self.graphdef if train else self.eval_graphdef
        return nnx.merge(graphdef, params, frozen, batch_stats, self.rest)


# ---------------------------------------------------------------------------------------- train step
global_norm = getattr(getattr(optax, "tree", None), "norm", None) or optax.global_norm


def make_train_step(setup: Setup):
    """The functional update ``(state, batch) -> (state, metrics)``, jit-compiled with the state donated."""
    head, tx, schedule = setup.head, setup.tx, setup.schedule
    has_rng_streams = bool(jax.tree.leaves(setup.rest))

    def train_step(state, batch):
        step = state["step"]
        params = {"backbone": state["params"]["backbone"], "head": head.project(state["params"]["head"])}

        def loss_fn(params):
            model = setup.merge(params["backbone"], state["frozen"], state["batch_stats"])
            if has_rng_streams:
                nnx.reseed(model, dropout=jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step))
            embeddings = model(batch["image"])
            loss, head_state, aux = head.loss(params["head"], state["head_state"], embeddings, batch["label"], step)
            batch_stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
            return loss, (batch_stats, head_state, aux, embeddings)

        (loss, (batch_stats, head_state, aux, _)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, state["opt"], params)
        metrics = {
            "loss": loss,
            "lr": schedule(step),
            "grad_norm": global_norm(grads),
            "bkb_grad": global_norm(grads["backbone"]),
            "head_grad": global_norm(grads["head"]),
            **{f"head/{k}": v for k, v in aux.items()},
        }
        new_state = {
            **state,
            "step": step + 1,
            "params": optax.apply_updates(params, updates),
            "batch_stats": batch_stats,
            "head_state": head_state,
            "opt": opt_state,
        }
        return new_state, metrics

    return jax.jit(train_step, donate_argnums=0,
                   out_shardings=(setup.state_shardings, parallel.replicated(setup.mesh)))


# ------------------------------------------------------------------------------------------- restore
def weights_item(setup: Setup, state: dict) -> dict:
    model = setup.merge(state["params"]["backbone"], state["frozen"], state["batch_stats"])
    return {"backbone": models.pure_state(model),
            "head": {"params": state["params"]["head"], "state": state["head_state"]}}


def train_item(state: dict) -> dict:
    """Everything a checkpoint holds besides the weights: optimizer state, step, RNG (+ SimPLE's EMA and bank)."""
    return {k: v for k, v in state.items() if k not in WEIGHT_KEYS}


def with_weights(setup: Setup, state: dict, weights: dict) -> dict:
    """``state`` with the backbone (and the head, if given) replaced by ``weights``."""
    model = setup.merge(state["params"]["backbone"], state["frozen"], state["batch_stats"])
    models.load_pure_state(model, weights["backbone"], source="checkpoint")
    _, params, frozen, batch_stats, _ = nnx.split(model, nnx.Param, models.FrozenParam, nnx.BatchStat, ...)
    shardings = setup.state_shardings
    state = {**state, "params": {**state["params"], "backbone": nnx.to_pure_dict(params)},
             "frozen": nnx.to_pure_dict(frozen), "batch_stats": nnx.to_pure_dict(batch_stats)}
    if weights.get("head"):
        state["params"]["head"] = pad_like(weights["head"]["params"], state["params"]["head"])
        state["head_state"] = weights["head"].get("state", state["head_state"])
    return jax.device_put(state, shardings)


def pad_like(params: dict, template: dict) -> dict:
    """Head params padded with zero rows to the template's (class-sharded) row count."""
    out = {}
    for key, value in params.items():
        target = template[key].shape
        value = np.asarray(value) if not isinstance(value, jax.Array) else value
        if value.shape != target and value.ndim and value.shape[1:] == target[1:] and value.shape[0] < target[0]:
            value = jnp.concatenate([value, jnp.zeros((target[0] - value.shape[0],) + value.shape[1:], value.dtype)])
        out[key] = value
    return out


def init_from_checkpoint(setup: Setup, state: dict, path: str) -> dict:
    """Load backbone weights (and the head when it fits this run) from a jsphere or converted checkpoint."""
    saved = checkpoint.load_weights(path)
    saved_model = saved.meta.get("model", {})
    if saved_model.get("name") and saved_model["name"] != setup.config.model.name:
        raise ValueError(f"config.init_from={path!r} holds a {saved_model['name']!r} backbone but config.model.name "
                         f"is {setup.config.model.name!r}")
    head_meta = saved.meta.get("head") or {}
    head = None
    if saved.head and head_meta.get("name") == setup.config.head.name:
        if int(head_meta.get("num_classes", -1)) != setup.num_classes:
            raise ValueError(f"config.init_from={path!r}: its head has {head_meta.get('num_classes')} classes but the "
                             f"training data has {setup.num_classes}")
        head = saved.head
    logging.info("initialised the backbone%s from %s (step %d)", " and head" if head else "", path, saved.step)
    return with_weights(setup, state, {"backbone": saved.backbone, "head": head})
