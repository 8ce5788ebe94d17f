"""The recipes of the real-faces benchmark: one jsphere config per recipe, which the PyTorch side reads too.

Each recipe is a reference codebase's recipe scaled to LFW's ~7,000 training images and to ~15 minutes on two CPU
cores; the jsphere config is the single source of both sides' hyper-parameters (model, head, batch, steps,
learning rate, schedule, weight decay, clipping), so the two frameworks cannot drift apart.

* ``sfnet_sphereface2`` (family ``opensphere_v2``): OpenSphere v2's MS1M SphereFace2 recipe
  (``ms1m_*_sphereface2.yml``: SphereFace2-C alpha 0.8, r 64, m 0.5, t 3, lw 50; SGD 0.1, momentum 0.9, weight
  decay 5e-4 on everything; MultiStepLR x0.1 at 1/3, 7/12 and 5/6 of the run; ``clip_grad_norm_`` 100 over backbone
  and head together; SFNet with BN, ``features`` BatchNorm scale 0.1; flip only). Scaled: SFNet-64-BN -> SFNet-4-BN at
  half width (32/64/128/256 channels: ~4x fewer multiply-adds than full width, ~50x fewer than SFNet-64), batch 512
  -> 64, 240k -> 600 steps (~5.5 epochs of the training list), AMP -> float32 (CPU).
* ``sfnet_arcface`` (family ``arcface_torch``): arcface_torch's ArcFace recipe (``ms1mv3_r50``:
  ``CombinedMarginLoss`` (1, 0.5, 0) at s 64 on ``PartialFC_V2`` with sample rate 1, centres N(0, 0.01) never
  projected; SGD 0.1, momentum 0.9, weight decay 5e-4 on everything; ``PolynomialLRWarmup`` power 1;
  ``clip_grad_norm_`` 5 on the backbone) on the same scaled SFNet as above: batch 1024 -> 64, 20 epochs -> 600
  steps with a warm-up of 60 steps (from scratch at lr 0.1 and s 64 a run this short needs one; arcface_torch's
  large-batch configs warm up for 1-4 epochs), fp16 -> float32. The backbone is not arcface_torch's: its
  MobileFaceNet and IResNet-18 are out of reach of two CPU cores (below).
* ``mbf_arcface`` (same family, ``--recipe mbf_arcface``, not in the default table): the ``ms1mv3_mbf`` recipe
  with ``mbf`` scale 2, blocks 1-4-6-2 -> scale 1, one block per stage, batch 32, 600 steps. Even this small
  MobileFaceNet trains at ~6.7 s/step (jsphere) and ~7.1 s/step (PyTorch) for 32 images on two Zen 5 cores
  (depthwise convolutions and their gradients are memory-bound in both frameworks' CPU kernels): ~70 minutes a
  run, ~7 hours for three seeds in both frameworks. IResNet-18 needs ~15x the multiply-adds of the scaled SFNet.

Both keep the reference's learning rate (0.1) at the smaller batch: linearly scaled (0.013 at 64) it would barely
move in a run this short.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ml_collections

from configs.base import get_base_config
from jsphere.errors import UserError

HELDOUT_NAME = "heldout"
FAMILIES = ("opensphere_v2", "arcface_torch")


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    family: str  # which reference loop the PyTorch side runs (converters.torch_reference.loops)
    build: Callable[[], ml_collections.ConfigDict]
    summary: str  # one line for the table


def _common(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """What every recipe shares: one device, the training list and held-out pairs (paths filled by the runner),
    flip only, decoding in the training process (two cores), validation on the held-out pairs from step 0, a
    checkpoint every 100 steps (a killed run loses little) and a log line every 20."""
    c.num_devices = 1
    c.data.format = "list_v1"
    c.data.flip = 0.5
    c.data.workers = 0
    c.data.threads = 2
    c.checkpoint.keep = 1
    c.checkpoint.every_steps = 100
    c.log_every = 20
    c.val_at_start = True
    c.val = [dict(name=HELDOUT_NAME, type="pairs", path="", data_dir="")]
    return c


def sfnet_sphereface2() -> ml_collections.ConfigDict:
    c = _common(get_base_config())
    c.model.name = "sfnet4_bn"
    c.model.kwargs = ml_collections.ConfigDict(dict(width=0.5, features_scale_init=0.1))
    c.head.name = "sphereface2"
    c.head.hparams = ml_collections.ConfigDict(dict(magn_type="C", alpha=0.8, r=64.0, m=0.5, t=3.0, lw=50.0))
    c.head.project_centres = True
    c.batch_size = 64
    c.total_steps = 600
    c.optim.lr = 0.1
    c.optim.weight_decay = 5e-4
    c.optim.schedule = "multistep"
    c.optim.milestones = (200, 350, 500)
    c.optim.clip_scope = "joint"
    c.optim.clip_grad_norm = 100.0
    c.val_every = 100
    return c


def _arcface_torch(c: ml_collections.ConfigDict, weight_decay: float, warmup_steps: int) -> ml_collections.ConfigDict:
    """arcface_torch's head and optimizer: ArcFace through ``CombinedMarginLoss`` on unprojected centres, SGD with
    a linear (poly, power 1) decay after a linear warm-up, the backbone clipped at 5."""
    c.head.name = "combined_margin"
    c.head.hparams = ml_collections.ConfigDict(dict(s=64.0, m1=1.0, m2=0.5, m3=0.0))
    c.head.project_centres = False
    c.head.init_std = 0.01
    c.optim.lr = 0.1
    c.optim.weight_decay = weight_decay
    c.optim.schedule = "poly"
    c.optim.power = 1.0
    c.optim.warmup_steps = warmup_steps
    c.optim.clip_scope = "backbone"
    c.optim.clip_grad_norm = 5.0
    return c


def sfnet_arcface() -> ml_collections.ConfigDict:
    c = _arcface_torch(_common(get_base_config()), weight_decay=5e-4, warmup_steps=60)
    c.model.name = "sfnet4_bn"
    c.model.kwargs = ml_collections.ConfigDict(dict(width=0.5, features_scale_init=0.1))
    c.batch_size = 64
    c.total_steps = 600
    c.val_every = 100
    return c


def mbf_arcface() -> ml_collections.ConfigDict:
    c = _common(get_base_config())
    c.model.name = "mobilefacenet"
    c.model.kwargs = ml_collections.ConfigDict(dict(scale=1, blocks=(1, 1, 1, 1)))
    c = _arcface_torch(c, weight_decay=1e-4, warmup_steps=60)
    c.batch_size = 32
    c.total_steps = 600
    c.val_every = 200
    return c


RECIPES = {r.name: r for r in (
    Recipe("sfnet_sphereface2", "opensphere_v2", sfnet_sphereface2,
           "SFNet-4-BN (half width) + SphereFace2-C, OpenSphere v2 step"),
    Recipe("sfnet_arcface", "arcface_torch", sfnet_arcface,
           "SFNet-4-BN (half width) + ArcFace, arcface_torch step (Partial FC, poly warm-up)"),
    Recipe("mbf_arcface", "arcface_torch", mbf_arcface,
           "MobileFaceNet (scale 1, blocks 1-1-1-1) + ArcFace, arcface_torch step (Partial FC, poly warm-up)"),
)}

DEFAULT_RECIPES = ("sfnet_sphereface2", "sfnet_arcface")


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def config(name: str, steps: int | None = None) -> ml_collections.ConfigDict:
    """The recipe's config; ``steps`` shortens (or lengthens) the run, every step count of the schedule, the
    validation and the checkpoints scaled with it (a smoke test: ``steps=10``)."""
    c = get(name).build()
    if steps is None or steps == c.total_steps:
        return c
    if steps < 1:
        raise UserError(f"--steps {steps}: give a positive number of steps")

    def scale(n: int, low: int = 1) -> int:
        return max(low, min(steps, round(n * steps / c.total_steps)))

    c.optim.milestones = tuple(scale(m) for m in c.optim.milestones)
    c.optim.warmup_steps = scale(c.optim.warmup_steps, 0) if c.optim.warmup_steps else 0
    if c.optim.warmup_steps >= steps:
        c.optim.warmup_steps = 0
    c.val_every, c.log_every = scale(c.val_every), scale(c.log_every)
    c.checkpoint.every_steps = scale(c.checkpoint.every_steps)
    c.total_steps = steps
    return c
