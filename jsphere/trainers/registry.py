"""Trainers by name (``config.trainer``): ``get(name)``, and ``register(name, trainer)`` for a trainer of one's
own (e.g. from a config file, before ``jsphere.main`` checks the config)."""

from __future__ import annotations

from jsphere.trainers import proxy, simple
from jsphere.trainers.state import Trainer

TRAINERS: dict[str, Trainer] = {"proxy": proxy.TRAINER, "simple": simple.TRAINER}


def register(name: str, trainer: Trainer) -> Trainer:
    """Make ``trainer`` the one ``config.trainer=name`` selects; returns it."""
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainers.register({name!r}, ...): expected a jsphere.trainers.Trainer, got "
                        f"{type(trainer).__name__}")
    TRAINERS[name] = trainer
    return trainer


def get(name: str) -> Trainer:
    """The trainer registered as ``name`` (``config.trainer``)."""
    if name not in TRAINERS:
        raise ValueError(f"config.trainer={name!r} is not one of {tuple(TRAINERS)}")
    return TRAINERS[name]
