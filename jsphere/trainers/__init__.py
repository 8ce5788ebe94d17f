"""Trainers: one step builder (``make_step``), one state (``TrainState``), one setup (``Setup``); each trainer
supplies only its loss, the state it adds and what it updates after the optimizer.

* ``proxy``: a classifier head over the backbone's embeddings (every margin loss of the family);
* ``simple``: SimPLE's proxy-free trainer (EMA encoder + feature bank).

A new trainer (e.g. distillation) is one module with a ``loss`` function, registered in ``TRAINERS`` as a
``Trainer`` (which also says the head it needs, if it trains one head only).
"""

from __future__ import annotations

from jsphere.trainers import proxy, simple
from jsphere.trainers.state import DTYPES, Setup, TrainState, init_state, make_setup
from jsphere.trainers.step import LossOutput, Trainer, make_step

__all__ = ["DTYPES", "TRAINERS", "LossOutput", "Setup", "TrainState", "Trainer", "get", "init_state", "make_setup",
           "make_step"]


TRAINERS = {
    "proxy": Trainer(loss=proxy.loss),
    "simple": Trainer(loss=simple.loss, init_extra=simple.init_extra, prepare=simple.prepare, finish=simple.finish,
                      head="simple"),
}


def get(name: str) -> Trainer:
    """The trainer registered as ``name`` (``config.trainer``)."""
    if name not in TRAINERS:
        raise ValueError(f"config.trainer={name!r} is not one of {tuple(TRAINERS)}")
    return TRAINERS[name]
