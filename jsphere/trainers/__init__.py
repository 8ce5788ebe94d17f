"""Trainers: one step builder (``make_step``), one state (``TrainState``), one setup (``Setup``); each trainer
supplies only its loss, the state it adds and what it updates after the optimizer.

* ``proxy``: a classifier head over the backbone's embeddings (every margin loss of the family);
* ``simple``: SimPLE's proxy-free trainer (EMA encoder + feature bank).

A new trainer (e.g. distillation) is one module with a ``loss`` function, registered in ``TRAINERS``.
"""

from __future__ import annotations

import dataclasses

from jsphere.trainers import proxy, simple
from jsphere.trainers.state import DTYPES, ExtraInit, Setup, TrainState, init_state, make_setup
from jsphere.trainers.step import Finish, LossFn, LossOutput, Prepare, make_step

__all__ = ["DTYPES", "TRAINERS", "LossOutput", "Setup", "TrainState", "Trainer", "get", "init_state", "make_setup",
           "make_step"]


@dataclasses.dataclass(frozen=True)
class Trainer:
    loss: LossFn
    init_extra: ExtraInit | None = None
    prepare: Prepare | None = None
    finish: Finish | None = None


TRAINERS = {
    "proxy": Trainer(loss=proxy.loss),
    "simple": Trainer(loss=simple.loss, init_extra=simple.init_extra, prepare=simple.prepare, finish=simple.finish),
}


def get(name: str) -> Trainer:
    if name not in TRAINERS:
        raise ValueError(f"config.trainer={name!r} is not one of {tuple(TRAINERS)}")
    return TRAINERS[name]
