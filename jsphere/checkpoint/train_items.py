"""A training run's state as checkpoint items, and back.

* ``weights``: ``{'backbone': the model's pure state (params, frozen params, BatchNorm statistics, nested as the
  module tree), 'head': {'params', 'state'}}``: what inference, the exporters and ``init_from`` read. The backbone
  is the one to evaluate (``Setup.eval_model``): the trainer's ``eval_weights`` (an EMA's) when it has them;
* ``train``: ``{'step', 'rng', 'opt', **extra}``: the rest of the training state (SimPLE's EMA and bank), and,
  when the trainer evaluates other weights than it trains, the trained backbone as ``trained_backbone``;
* ``meta``: the model and head recipe, and the alignment of the training faces when it is known (``model_meta``).

A class-sharded head is saved padded to a multiple of the device count (``model_meta`` records the padding); the
head itself re-pads it when a run resumes on another device count, and ``saved_model.load_weights`` cuts it off for
every other reader.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import logging
from flax import nnx

from jsphere import models
from jsphere.checkpoint.saved_model import load_meta, load_weights
from jsphere.data.training_alignment import training_alignment
from jsphere.heads.sharded import ShardedHead
from jsphere.input_convention import InputConvention
from jsphere.trainers.state import SPLIT, Setup, TrainState

TRAINED_BACKBONE = "trained_backbone"  # train item key: the trained backbone, when the weights item holds another


def model_meta(config: ml_collections.ConfigDict, setup: Setup) -> dict[str, Any]:
    """What a checkpoint needs to rebuild the model and head without the training config."""
    rows = setup.head.layout() if isinstance(setup.head, ShardedHead) else {}
    head = setup.head.head if isinstance(setup.head, ShardedHead) else setup.head
    meta = {
        "model": {"name": config.model.name, "embed_dim": config.model.embed_dim,
                  "kwargs": config.model.kwargs.to_dict()},
        "head": {"name": config.head.name, "hparams": config.head.hparams.to_dict(),
                 "project_centres": head.project_centres, "init_std": head.init_std,
                 "num_classes": int(setup.num_classes), "feat_dim": config.model.embed_dim, **rows},
        "source": {"trainer": "jsphere", "config": config.to_json(),
                   "backbone": f"eval_weights of trainer {config.trainer!r}"
                   if setup.trainer.eval_weights is not None else "trained"},
    }
    alignment = training_alignment(config.data.source, config.data.get("alignment", "auto"))
    if alignment is not None:  # jsphere's pixels, the data's alignment (jsphere.input_convention)
        meta["input"] = InputConvention(alignment=alignment).to_meta()
    return meta


def weights_item(setup: Setup, state: TrainState) -> dict:
    """The backbone to evaluate (the trainer's ``eval_weights`` when it has them) and the head."""
    return {"backbone": models.pure_state(setup.eval_model(state)),
            "head": {"params": state.params["head"], "state": state.head_state}}


def train_item(setup: Setup, state: TrainState) -> dict:
    """The rest of the state; the trained backbone too when the weights item holds other (evaluated) weights."""
    item = {"step": state.step, "rng": state.rng, "opt": state.opt, **state.extra}
    if setup.trainer.eval_weights is not None:
        item[TRAINED_BACKBONE] = models.pure_state(
            setup.merge(state.params["backbone"], state.frozen, state.batch_stats, state.rest))
    return item


def restore_targets(setup: Setup, state: TrainState, saved_rows: int | None) -> tuple[dict, dict]:
    """Abstract ``(weights, train)`` items to restore into: ``state``'s shapes and shardings, except a sharded
    head's per-class arrays when the checkpoint's padding differs (read whole, then re-padded by the head)."""
    def abstract(tree):
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
        if isinstance(setup.head, ShardedHead) and saved_rows is not None:
            target = setup.head.saved_layout(target, saved_rows)
        return target

    return abstract(weights_item(setup, state)), abstract(train_item(setup, state))


def with_items(setup: Setup, state: TrainState, weights: dict, train: dict | None = None) -> TrainState:
    """``state`` with the restored items in place (a head saved with another padding is re-padded). The backbone
    trains on from the train item's ``trained_backbone`` when there is one, else from the weights item's; without
    a train item (``init_from``), the trainer's own state starts again from the loaded weights."""
    head = weights.get("head")
    if isinstance(setup.head, ShardedHead):
        weights, train = setup.head.repad(weights), setup.head.repad(train) if train is not None else None
    model = setup.merge(state.params["backbone"], state.frozen, state.batch_stats, state.rest)
    trained = train.get(TRAINED_BACKBONE) if train is not None else None
    models.load_pure_state(model, weights["backbone"] if trained is None else trained, source="checkpoint")
    _, params, frozen, batch_stats, _ = nnx.split(model, *SPLIT)
    replace = {"params": {**state.params, "backbone": nnx.to_pure_dict(params)}, "frozen": nnx.to_pure_dict(frozen),
               "batch_stats": nnx.to_pure_dict(batch_stats)}
    if head:  # in this run's dtypes (a float32 checkpoint into a float64 run, and back)
        replace["params"]["head"] = jax.tree.map(lambda new, old: jnp.asarray(new, old.dtype),
                                                 dict(weights["head"]["params"]), state.params["head"])
        replace["head_state"] = weights["head"].get("state", state.head_state)
    if train is not None:
        extra = {k: v for k, v in train.items() if k not in ("step", "rng", "opt", TRAINED_BACKBONE)}
        replace.update(step=train["step"], rng=train["rng"], opt=train["opt"], extra=extra)
    else:
        replace["extra"] = setup.initial_extra(replace["params"]["backbone"], replace["batch_stats"])
    return jax.device_put(state.replace(**replace), setup.shardings)


def init_from_checkpoint(setup: Setup, state: TrainState, path: str) -> TrainState:
    """Load backbone weights (and the head when it fits this run) from a jsphere or converted checkpoint."""
    config = setup.config
    saved = load_weights(path)
    saved_model = saved.meta.get("model", {})
    if saved_model.get("name") and saved_model["name"] != config.model.name:
        raise ValueError(f"config.init_from={path!r} holds a {saved_model['name']!r} backbone but config.model.name "
                         f"is {config.model.name!r}")
    head_meta = saved.meta.get("head") or {}
    head = None
    if saved.head and head_meta.get("name") == config.head.name:
        if int(head_meta.get("num_classes", -1)) != setup.num_classes:
            raise ValueError(f"config.init_from={path!r}: its head has {head_meta.get('num_classes')} classes but the "
                             f"training data has {setup.num_classes}")
        head = saved.head
        if isinstance(setup.head, ShardedHead):
            head = {**head, "params": setup.head.pad(head["params"])}
    logging.info("initialised the backbone%s from %s (step %d)", " and head" if head else "", path, saved.step)
    return with_items(setup, state, {"backbone": saved.backbone, "head": head})


def saved_head_rows(workdir: str) -> int | None:
    """The padded row count of the class-sharded head in ``workdir``'s newest checkpoint, if any."""
    try:
        return (load_meta(workdir).get("head") or {}).get("padded_rows")
    except (FileNotFoundError, ValueError):
        return None
