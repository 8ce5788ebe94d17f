"""A run's setup from its config (``make_setup``): the backbone, head, optimizer and trainer the config names,
handed to the config-free ``build_setup``.

``config.model.dtype`` is the trunk's compute dtype; every trainable parameter (the head's too) and the optimizer
state are stored in ``models.param_dtype`` of it: float32, or float64 for ``'float64'`` (which needs 64-bit JAX:
``JAX_ENABLE_X64=1`` or ``jax.enable_x64(True)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from jsphere import heads as heads_lib
from jsphere import models, optim
from jsphere.heads.sharded import ShardedHead
from jsphere.trainers import registry
from jsphere.trainers.build import build_setup
from jsphere.trainers.state import Setup

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}


def build_backbone(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> models.Backbone:
    """The backbone ``config.model`` names, with its BatchNorm statistics per device when ``bn_per_device``."""
    model = models.build(config.model.name, embed_dim=config.model.embed_dim, rngs=nnx.Rngs(config.seed),
                         dtype=DTYPES[config.model.dtype], **config.model.kwargs.to_dict())
    if config.model.bn_per_device:
        models.set_bn_stat_groups(model, mesh.devices.size)
    return model


def build_head(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_classes: int,
               saved_rows: int | None = None) -> heads_lib.Head | ShardedHead:
    """The head ``config.head`` names, split over ``mesh`` when ``sharded`` (keeping a checkpoint's padding of
    ``saved_rows`` rows when this mesh can split it)."""
    head = heads_lib.from_config(config.head)
    if config.head.sharded:
        head = ShardedHead(head, mesh, num_classes, config.model.embed_dim, sample_rate=config.head.sample_rate,
                           seed=config.seed, rows=saved_rows)
    return head


def make_setup(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_classes: int,
               saved_head_rows: int | None = None) -> Setup:
    """The setup of the run ``config`` describes, with ``config.trainer``'s trainer (``build_setup`` does the
    rest)."""
    tx, schedule = optim.make_optimizer(config.optim, config.total_steps)
    return build_setup(lambda: build_backbone(config, mesh), build_head(config, mesh, num_classes, saved_head_rows),
                       tx, num_classes=num_classes, trainer=registry.get(config.trainer), mesh=mesh, seed=config.seed,
                       schedule=schedule, config=config)
