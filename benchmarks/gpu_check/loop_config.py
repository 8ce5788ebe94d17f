"""The training recipe of the ``train5`` and ``loop`` stages:
``--config=benchmarks/gpu_check/loop_config.py:<profile>,<data>``.

One function builds it for both (``jsphere.main`` in the loop, ``trainers.make_step`` in train5 and the loop's
step timing), so the three compile the same step: the persistent compilation cache compiles it once. The
learning rate is constant (no milestones) so the step does not depend on the run's length; nothing is
validated; one checkpoint is written, at the end.
"""

from __future__ import annotations

import ml_collections

from benchmarks.gpu_check import profiles
from configs.base import get_base_config
from configs.opensphere_recipes import V2_HEADS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    profile_name, _, data = (arg or "gpu,").partition(",")
    p = profiles.get(profile_name)
    c = get_base_config()
    c.num_devices = 1
    c.model.name = p.train_model.arch
    c.model.kwargs = ml_collections.ConfigDict(dict(p.train_model.kwargs))
    c.model.dtype = "bfloat16"
    c.head.name = "arcface"
    c.head.hparams = ml_collections.ConfigDict(V2_HEADS["arcface"])  # OpenSphere v2's MS1M ArcFace
    c.data.source = data or None
    c.data.format = "arrayrecord"
    c.data.workers = p.loop_workers
    c.data.threads = p.loop_threads
    c.batch_size = p.train_batch
    c.total_steps = p.loop_steps
    c.optim.milestones = ()
    c.checkpoint.every_steps = 0
    c.log_every = p.loop_log_every
    c.progress_bar = False
    return c
