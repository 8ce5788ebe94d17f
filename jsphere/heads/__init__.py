"""Margin losses of hyperspherical face recognition, one short file each, as pure jittable functions.

``build(name, **hparams)`` returns a head with ``init``, ``project`` and ``loss``; see ``base.Head``.
"""

from jsphere.heads.base import Head
from jsphere.heads.common import ClassAxis
from jsphere.heads.registry import ALIASES, build, names, register

__all__ = ["ALIASES", "ClassAxis", "Head", "build", "names", "register"]
