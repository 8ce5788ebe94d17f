"""Valid ranges of the heads' hyper-parameters: each head declares ``bounds = {name: Interval(...)}`` and
``Head.__init__`` refuses a value outside, so a config such as ``--config.head.hparams.m=-5`` fails before
training instead of training to a meaningless loss."""

from __future__ import annotations

import dataclasses
import math
import numbers


@dataclasses.dataclass(frozen=True)
class Interval:
    """``lo <= v <= hi`` (``<`` on an open end) for a finite ``v`` (an infinite hyper-parameter only makes the loss
    NaN); ``integer`` also requires a whole number."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        if self.integer and int(value) != value:
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def __str__(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.hi == math.inf:
            return f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        if self.lo == -math.inf:
            return f"{kind} {'<' if self.hi_open else '<='} {self.hi:g}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"{kind} in {left}{self.lo:g}, {self.hi:g}{right}"


POSITIVE = Interval(0.0, lo_open=True)
NON_NEGATIVE = Interval(0.0)
FRACTION = Interval(0.0, 1.0)  # a rate or probability, both ends allowed
OPEN_FRACTION = Interval(0.0, 1.0, lo_open=True, hi_open=True)
ANGLE = Interval(0.0, math.pi, hi_open=True)  # an additive angular margin, radians
MULTIPLICATIVE = Interval(1.0)  # SphereFace's m in cos(m theta)
COUNT = Interval(1.0, integer=True)
COSINE = Interval(-1.0, 1.0)
