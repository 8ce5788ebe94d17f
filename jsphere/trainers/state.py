"""The training state and the static setup of a run.

``Setup`` is immutable: the NNX graph definitions, the head (class-sharded or not), the optimizer and the
schedule, and the sharding of every state leaf, declared from ``jax.eval_shape`` of the state's creation and
the head's specs. ``init_state`` creates the state directly in those shardings (``jit`` with
``out_shardings``, as big_vision does), so no leaf ever sits unsharded on one device.

``config.model.dtype`` is the trunk's compute dtype; every trainable parameter (the head's too) and the
optimizer state are stored in ``models.param_dtype`` of it: float32, or float64 for ``'float64'`` (which needs
64-bit JAX: ``JAX_ENABLE_X64=1`` or ``jax.enable_x64(True)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx, struct

from jsphere import heads as heads_lib
from jsphere import models, optim, parallel
from jsphere.heads.sharded import ShardedHead

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}
SPLIT = (nnx.Param, models.FrozenParam, nnx.BatchStat, ...)


@struct.dataclass
class TrainState:
    """Everything a step reads and writes. ``extra`` holds a trainer's own state (SimPLE: EMA encoder, bank);
    ``rest`` the model's non-weight variables (dropout RNG streams), never saved."""

    step: jax.Array
    rng: jax.Array  # raw key data
    params: dict  # {'backbone': ..., 'head': ...}: what the optimizer updates
    frozen: dict
    batch_stats: dict
    head_state: dict
    opt: Any
    extra: dict
    rest: Any


ExtraInit = Callable[[ml_collections.ConfigDict, dict, dict, jax.Array], dict]


@dataclasses.dataclass(frozen=True)
class Setup:
    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    num_classes: int
    head: heads_lib.Head | ShardedHead
    tx: optax.GradientTransformation
    schedule: Callable[[Any], Any]
    graphdef: nnx.GraphDef
    eval_graphdef: nnx.GraphDef
    param_count: int
    create: Callable[[], TrainState]  # builds the initial state (traced under jit)
    shardings: TrainState

    def merge(self, params: dict, frozen: dict, batch_stats: dict, rest: Any, *, train: bool = True,
              dropout_key: jax.Array | None = None) -> nnx.Module:
        """The backbone as an NNX module; ``dropout_key`` reseeds its RNG streams (dropout), so a step that
        passes a new key draws new masks."""
        model = nnx.merge(self.graphdef if train else self.eval_graphdef, params, frozen, batch_stats, rest, copy=True)
        if dropout_key is not None:
            tags = {node.tag for _, node in nnx.iter_graph(model) if isinstance(node, nnx.RngStream)}
            if tags:  # dropout layers draw from the stream they were built with ('default' here)
                nnx.reseed(model, **{tag: jax.random.fold_in(dropout_key, i) for i, tag in enumerate(sorted(tags))})
        return model

    @property
    def replicated(self) -> jax.sharding.NamedSharding:
        return parallel.replicated(self.mesh)


def build_backbone(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> models.Backbone:
    model = models.build(config.model.name, embed_dim=config.model.embed_dim, rngs=nnx.Rngs(config.seed),
                         dtype=DTYPES[config.model.dtype], **config.model.kwargs.to_dict())
    if config.model.bn_per_device:
        models.set_bn_stat_groups(model, mesh.devices.size)
    return model


def build_head(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_classes: int,
               saved_rows: int | None = None) -> heads_lib.Head | ShardedHead:
    head = heads_lib.from_config(config.head)
    if config.head.sharded:
        head = ShardedHead(head, mesh, num_classes, config.model.embed_dim, sample_rate=config.head.sample_rate,
                           seed=config.seed, rows=saved_rows)
    return head


def make_setup(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_classes: int,
               init_extra: ExtraInit | None = None, saved_head_rows: int | None = None) -> Setup:
    """The setup of a run; ``init_extra(config, backbone_params, batch_stats, key)`` adds a trainer's state."""
    head = build_head(config, mesh, num_classes, saved_head_rows)
    tx, schedule = optim.make_optimizer(config.optim, config.total_steps)
    abstract = nnx.eval_shape(lambda: build_backbone(config, mesh))
    abstract.train()
    graphdef = nnx.split(abstract, *SPLIT)[0]
    abstract.eval()
    eval_graphdef = nnx.split(abstract, *SPLIT)[0]

    def create() -> TrainState:
        model = build_backbone(config, mesh)
        model.train()
        _, params, frozen, batch_stats, rest = nnx.split(model, *SPLIT)
        key = jax.random.key(config.seed)
        if isinstance(head, ShardedHead):
            head_params, head_state = head.init(jax.random.fold_in(key, 1))
        else:
            head_params, head_state = head.init(jax.random.fold_in(key, 1), config.model.embed_dim, num_classes)
        wide = models.param_dtype(DTYPES[config.model.dtype])  # heads draw float32 centres
        head_params = jax.tree.map(lambda a: a.astype(wide) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                                   head_params)
        trainable = {"backbone": nnx.to_pure_dict(params), "head": head_params}
        batch_stats = nnx.to_pure_dict(batch_stats)
        extra = init_extra(config, trainable["backbone"], batch_stats, jax.random.fold_in(key, 3)) \
            if init_extra else {}
        return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(jax.random.fold_in(key, 2)),
                          params=trainable, frozen=nnx.to_pure_dict(frozen), batch_stats=batch_stats,
                          head_state=head_state, opt=tx.init(trainable), extra=extra, rest=rest)

    shapes = jax.eval_shape(create)
    replicated = parallel.replicated(mesh)
    if isinstance(head, ShardedHead):
        shardings = jax.tree_util.tree_map_with_path(lambda path, leaf: head.sharding_of(path, leaf.shape), shapes)
    else:
        shardings = jax.tree.map(lambda _: replicated, shapes)
    return Setup(config=config, mesh=mesh, num_classes=num_classes, head=head, tx=tx, schedule=schedule,
                 graphdef=graphdef, eval_graphdef=eval_graphdef, param_count=models.param_count(abstract),
                 create=create, shardings=shardings)


def init_state(setup: Setup) -> TrainState:
    """The initial state, created in its declared shardings."""
    return jax.jit(setup.create, out_shardings=setup.shardings)()
