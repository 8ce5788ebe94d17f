"""One recipe's starting point in both frameworks: jsphere's initial state at a seed, and its PyTorch twin.

``jsphere_initial`` builds exactly what ``python -m jsphere.main`` builds for the same config (``trainers.make_setup``
on a one-device mesh, ``trainers.init_state``), so the backbone and the class centres copied into PyTorch
(``converters.mapping`` for the backbone) are the weights the jsphere run starts from. ``torch_twin`` builds the
reference's modules around them: OpenSphere's head (v2 layout, ``converters.torch_reference.heads``) for the
``opensphere_v2`` family, arcface_torch's ``PartialFC_V2`` + ``CombinedMarginLoss`` for ``arcface_torch``; and
``torch_loop`` the family's training loop (``converters.torch_reference.loops``) with the config's values.
"""

from __future__ import annotations

from collections.abc import Iterator

import ml_collections
import numpy as np
import torch

from converters.core import mapping
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference import heads as torch_heads
from converters.torch_reference.loops import CombinedMarginLoss, PartialFC, arcface_torch_loop, opensphere_v2_loop
from jsphere import models, parallel, trainers


def jsphere_initial(config: ml_collections.ConfigDict, num_classes: int) -> tuple[trainers.Setup, trainers.TrainState]:
    """The setup and initial state ``jsphere.main`` creates for ``config`` (one device)."""
    setup = trainers.make_setup(config, parallel.make_mesh(1), num_classes)
    return setup, trainers.init_state(setup)


def torch_backbone(config: ml_collections.ConfigDict, setup: trainers.Setup,
                   state: trainers.TrainState) -> torch.nn.Module:
    """The reference backbone holding jsphere's weights and BatchNorm statistics of ``state``, in train mode."""
    jsphere_model = setup.merge(state.params["backbone"], state.frozen, state.batch_stats, state.rest)
    weights = mapping.pure_to_torch(jsphere_model, models.pure_state(jsphere_model))
    backbone = torch_backbones.build(config.model.name, config.model.embed_dim, **config.model.kwargs.to_dict())
    missing, unexpected = backbone.load_state_dict(
        {k: torch.from_numpy(np.array(v, np.float32)) for k, v in weights.items()}, strict=False)
    if unexpected or not all(k.endswith("num_batches_tracked") for k in missing):
        raise RuntimeError(f"the torch twin of {config.model.name} does not match jsphere's: missing {missing}, "
                           f"unexpected {unexpected}")
    return backbone.train()


def torch_head(config: ml_collections.ConfigDict, family: str, state: trainers.TrainState,
               num_classes: int) -> torch.nn.Module:
    """The reference head holding jsphere's initial class centres (and SphereFace2's bias)."""
    params = state.params["head"]
    w = np.array(params["w"], np.float32)
    hparams = config.head.hparams.to_dict()
    if family == "arcface_torch":
        return PartialFC(CombinedMarginLoss(**hparams), w)
    head = torch_heads.HEADS[config.head.name](config.model.embed_dim, num_classes, v2=True, **hparams)
    with torch.no_grad():
        head.w.copy_(torch.from_numpy(w))
        if "b" in params:
            head.b.copy_(torch.from_numpy(np.array(params["b"], np.float32).reshape(head.b.shape)))
    return head


def torch_loop(family: str, config: ml_collections.ConfigDict, backbone: torch.nn.Module, head: torch.nn.Module,
               batches: Iterator) -> Iterator[tuple[float, float]]:
    """The reference codebase's training loop over ``batches``, yielding (loss, lr) after every update."""
    o = config.optim
    if o.name != "sgd" or o.momentum != 0.9 or o.nesterov or any(
            o[k] is not None for k in ("bkb_lr", "bkb_wd", "head_lr", "head_wd")):
        raise ValueError("the reference loops train with one SGD (momentum 0.9, no Nesterov), one lr and one weight "
                         "decay for backbone and head")
    if family == "arcface_torch":
        if o.clip_scope != "backbone" or o.clip_grad_norm != 5.0 or o.schedule != "poly" or o.power != 1.0:
            raise ValueError("arcface_torch's loop clips the backbone at 5 and decays the lr linearly (poly, power 1)")
        return arcface_torch_loop(backbone, head, batches, lr=o.lr, weight_decay=o.weight_decay,
                                  warmup=o.warmup_steps, total=config.total_steps)
    if o.clip_scope != "joint" or o.schedule != "multistep" or o.gamma != 0.1 or o.warmup_steps:
        raise ValueError("OpenSphere v2's loop clips backbone and head jointly under a MultiStepLR (gamma 0.1, "
                         "no warm-up)")
    return opensphere_v2_loop(backbone, head, batches, lr=o.lr, weight_decay=o.weight_decay,
                              milestones=o.milestones, clip=o.clip_grad_norm)
