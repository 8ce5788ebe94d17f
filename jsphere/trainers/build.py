"""A run's setup from a model, a head and an optimizer, with no config (``build_setup``), and its initial state
(``init_state``). The config path (``trainers.make_setup``) builds its setup here too.

The state is created directly in its declared shardings (``jit`` with ``out_shardings``, as big_vision does), so
no leaf ever sits unsharded on one device: the model is therefore given as a function that builds it, called
under ``nnx.eval_shape`` (shapes only) and under that jit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from jsphere import models, parallel
from jsphere.heads.base import Head
from jsphere.heads.sharded import ShardedHead
from jsphere.trainers import proxy
from jsphere.trainers.state import SPLIT, Setup, Trainer, TrainState, initial_extra


def _param_dtype(tree: Any) -> jnp.dtype:
    """The dtype of the widest floating leaf, at least float32 (the head's centres and the optimizer state follow
    the backbone's parameters: float64 in a float64 run)."""
    floats = [leaf.dtype for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return jnp.result_type(jnp.float32, *floats)


def build_setup(model: Callable[[], nnx.Module], head: Head | ShardedHead, tx: optax.GradientTransformation, *,
                num_classes: int, trainer: Trainer | None = None, mesh: jax.sharding.Mesh | None = None,
                seed: int = 0, schedule: Callable[[Any], Any] | None = None,
                config: ml_collections.ConfigDict | None = None) -> Setup:
    """The setup of a run, without a config.

    ``model``: a function returning the backbone, an NNX module taking the batch's images and returning embeddings
    [B, embed_dim] that says its ``embed_dim`` (every ``jsphere.models.Backbone`` does), e.g.
    ``lambda: models.build('sfnet4_bn', embed_dim=512, rngs=nnx.Rngs(0))``. ``head``: a ``jsphere.heads`` head
    (its centres [num_classes, embed_dim] are initialised from ``seed``) or a ``ShardedHead`` over ``mesh``.
    ``tx``: an optax transformation over ``{'backbone': ..., 'head': ...}``. ``trainer``: the loss and hooks (None:
    the proxy trainer, a classifier head over the embeddings). ``mesh``: the devices (None: the sharded head's
    mesh, else every device, ``parallel.make_mesh``). ``schedule(step)``: the learning rate the step reports as
    ``lr`` (None: not reported). ``config``: handed to the trainer's ``init_extra`` and kept as ``setup.config``.
    """
    trainer = proxy.TRAINER if trainer is None else trainer
    if mesh is None:
        mesh = head.mesh if isinstance(head, ShardedHead) else parallel.make_mesh()
    abstract = nnx.eval_shape(model)
    embed_dim = getattr(abstract, "embed_dim", None)
    if not isinstance(embed_dim, int):
        raise TypeError(f"build_setup: the model ({type(abstract).__name__}) must say its embedding size as an int "
                        "attribute embed_dim (every jsphere.models.Backbone does)")
    abstract.train()
    graphdef = nnx.split(abstract, *SPLIT)[0]
    abstract.eval()
    eval_graphdef = nnx.split(abstract, *SPLIT)[0]

    def create() -> TrainState:
        module = model()
        module.train()
        _, params, frozen, batch_stats, rest = nnx.split(module, *SPLIT)
        key = jax.random.key(seed)
        if isinstance(head, ShardedHead):
            head_params, head_state = head.init(jax.random.fold_in(key, 1))
        else:
            head_params, head_state = head.init(jax.random.fold_in(key, 1), embed_dim, num_classes)
        wide = _param_dtype(params)  # heads draw float32 centres
        head_params = jax.tree.map(lambda a: a.astype(wide) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                                   head_params)
        trainable = {"backbone": nnx.to_pure_dict(params), "head": head_params}
        batch_stats = nnx.to_pure_dict(batch_stats)
        return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(jax.random.fold_in(key, 2)),
                          params=trainable, frozen=nnx.to_pure_dict(frozen), batch_stats=batch_stats,
                          head_state=head_state, opt=tx.init(trainable),
                          extra=initial_extra(trainer, config, seed, trainable["backbone"], batch_stats), rest=rest)

    shapes = jax.eval_shape(create)
    replicated = parallel.replicated(mesh)
    if isinstance(head, ShardedHead):
        shardings = jax.tree_util.tree_map_with_path(lambda path, leaf: head.sharding_of(path, leaf.shape), shapes)
    else:
        shardings = jax.tree.map(lambda _: replicated, shapes)
    return Setup(mesh=mesh, num_classes=num_classes, head=head, tx=tx, trainer=trainer, graphdef=graphdef,
                 eval_graphdef=eval_graphdef, param_count=models.param_count(abstract), embed_dim=embed_dim,
                 seed=seed, create=create, shardings=shardings, schedule=schedule, config=config)


def init_state(setup: Setup) -> TrainState:
    """The initial ``TrainState`` of ``setup``, created in its declared shardings (``setup.shardings``)."""
    return jax.jit(setup.create, out_shardings=setup.shardings)()
