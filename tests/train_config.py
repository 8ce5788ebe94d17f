"""A tiny training recipe for the tests: ``--config=tests/train_config.py:<synthetic data dir>``, or
``<synthetic data dir>,float64`` for ``comparison``'s recipe (the runner needs ``JAX_ENABLE_X64=1``)."""

import ml_collections

from configs.base import get_base_config

VARIANTS = ("float64",)


def get_config(arg=None):
    data, _, variant = (arg or "data/synthetic").partition(",")
    if variant and variant not in VARIANTS:
        raise ValueError(f"tests/train_config.py: unknown variant {variant!r}; valid: {VARIANTS}")
    c = get_base_config()
    c.model.name = "sfnet4_bn"
    c.model.embed_dim = 16
    c.head.name = "arcface"
    c.head.hparams = ml_collections.ConfigDict(dict(s=16.0, m=0.2))
    c.data.source = f"{data}/train_list.txt"
    c.data.data_dir = data
    c.data.workers = 0
    c.data.threads = 1
    c.batch_size = 8
    c.total_steps = 12
    c.optim.lr = 0.02
    c.optim.milestones = (8,)
    c.checkpoint.every_steps = 3
    c.checkpoint.keep = 10
    c.log_every = 3
    c.progress_bar = False
    return comparison(c) if variant == "float64" else c


def comparison(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The recipe of the tests that compare two trainings differing only in summation order (device count,
    process count): float64 parameters, statistics and compute (64-bit JAX: ``JAX_ENABLE_X64=1`` or
    ``jax.enable_x64(True)``), where another summation order moves a result by ~1e-16 of its magnitude instead
    of float32's ~1e-7; the SFNet at a quarter of its width (16-128 channels) keeps float64's steps cheap."""
    c.model.dtype = "float64"
    c.model.kwargs = ml_collections.ConfigDict(dict(width=0.25))
    return c
