"""Trainers: one step builder (``make_step``), one state (``TrainState``), one setup (``Setup``); each trainer
(``Trainer``) supplies only its loss, the state it adds, what it updates after the optimizer and, if it wants,
which backbone weights to evaluate and export.

* ``proxy``: a classifier head over the backbone's embeddings (every margin loss of the family);
* ``simple``: SimPLE's proxy-free trainer (EMA encoder + feature bank).

Library use, no config::

    setup = trainers.build_setup(lambda: models.build("sfnet4_bn", embed_dim=512, rngs=nnx.Rngs(0)),
                                 heads.build("arcface"), optax.sgd(0.1, momentum=0.9), num_classes=1000)
    state = trainers.init_state(setup)
    step = trainers.make_step(setup)
    state, metrics = step(state, {"image": images, "label": labels})  # images [B, 112, 112, 3] in [-1, 1]

A run's config gives the same through ``make_setup(config, mesh, num_classes)``. A new trainer (e.g.
distillation, an EMA of the weights) is a ``Trainer`` with a ``loss`` function, given to ``build_setup`` or
registered by name (``register('ema', trainer)``, then ``config.trainer='ema'``).
"""

from jsphere.trainers import proxy, simple
from jsphere.trainers.build import build_setup, init_state
from jsphere.trainers.config_setup import DTYPES, make_setup
from jsphere.trainers.registry import TRAINERS, get, register
from jsphere.trainers.state import LossOutput, Setup, Trainer, TrainState
from jsphere.trainers.step import head_key, make_step, step_key

__all__ = ["DTYPES", "TRAINERS", "LossOutput", "Setup", "TrainState", "Trainer", "build_setup", "get", "head_key",
           "init_state", "make_setup", "make_step", "proxy", "register", "simple", "step_key"]
