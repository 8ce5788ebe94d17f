"""What a torch-named state_dict's keys and shapes say, for the shape inference of ``infer`` and ``infer_ir``."""

from __future__ import annotations

import numpy as np


def shape(state_dict: dict, key: str) -> tuple[int, ...]:
    """The shape of tensor ``key``, as ints."""
    return tuple(int(d) for d in np.shape(state_dict[key]))


def count(state_dict: dict, pattern: str) -> int:
    """Number of consecutive indices i (from 0) for which ``pattern.format(i)`` is a key."""
    i = 0
    while pattern.format(i) in state_dict:
        i += 1
    return i


def first_keys(state_dict: dict, n: int = 4) -> str:
    """The first ``n`` keys (``num_batches_tracked`` left out), for an error message."""
    keys = [k for k in state_dict if not k.endswith("num_batches_tracked")]
    return ", ".join(keys[:n]) + (" ..." if len(keys) > n else "")
