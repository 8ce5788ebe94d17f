"""A tiny training recipe for the tests: ``--config=tests/train_config.py:<synthetic data dir>``."""

import ml_collections

from configs.base import get_base_config


def get_config(arg=None):
    data = arg or "data/synthetic"
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
    return c
