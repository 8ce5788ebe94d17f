"""State_dicts laid out as released files of architectures jsphere does not have, for the refusal tests: every key
and shape as the authors' code names them (checked, outside the suite, against their classes built with random
weights), the values zeros.

* ``ghostfacenet``: GhostFaceNets' PyTorch port (github Hazqeel09/ellzaf_ml, ``GhostFaceNetsV1``/``V2``): stem
  ``conv_stem``/``bn1``/``act1`` (PReLU), then the first bottleneck ``blocks.0.0`` (ghost modules ``ghost1``,
  ``ghost2`` of ``primary_conv`` and ``cheap_operation``; V2's first ghost module adds the DFC attention
  ``short_conv``, from ``blocks.2``) and the ``ModifiedGDC`` classifier (``conv_dw``, ``bn1``, ``conv``, ``bn2``).
  Only these parts of the real layout are reproduced (the refusal reads no more).
"""

from collections import OrderedDict
from math import ceil

import numpy as np


def _zeros(*shape):
    return np.zeros(shape, np.float32)


def _norm(sd, key, c):
    sd[f"{key}.weight"], sd[f"{key}.bias"] = _zeros(c), _zeros(c)


def _bn(sd, key, c):
    _norm(sd, key, c)
    sd[f"{key}.running_mean"], sd[f"{key}.running_var"] = _zeros(c), _zeros(c)
    sd[f"{key}.num_batches_tracked"] = np.zeros((), np.int64)


def _ghost_module(sd, key, cin, cout, prelu, dfc):
    init = ceil(cout / 2)
    sd[f"{key}.primary_conv.0.weight"] = _zeros(init, cin, 1, 1)
    _bn(sd, f"{key}.primary_conv.1", init)
    if prelu:
        sd[f"{key}.primary_conv.2.weight"] = _zeros(1)
    sd[f"{key}.cheap_operation.0.weight"] = _zeros(init, 1, 3, 3)
    _bn(sd, f"{key}.cheap_operation.1", init)
    if prelu:
        sd[f"{key}.cheap_operation.2.weight"] = _zeros(1)
    if dfc:
        sd[f"{key}.short_conv.0.weight"] = _zeros(cout, cin, 1, 1)
        _bn(sd, f"{key}.short_conv.1", cout)
        sd[f"{key}.short_conv.2.weight"] = _zeros(cout, 1, 1, 5)
        _bn(sd, f"{key}.short_conv.3", cout)
        sd[f"{key}.short_conv.4.weight"] = _zeros(cout, 1, 5, 1)
        _bn(sd, f"{key}.short_conv.5", cout)


def _divisible(v: float, divisor: int = 4) -> int:
    """GhostNet's ``_make_divisible``: the nearest multiple of ``divisor``, never below 90 % of ``v``."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


def ghostfacenet(version: int = 1, width: float = 1.3) -> OrderedDict:
    """The stem, first bottleneck and classifier of GhostFaceNets' ``GhostFaceNetsV{version}`` at ``width`` for
    112x112 input (the classifier's depthwise kernel is 112 // 32 + 1 = 4 over the last 960 * width channels), and
    for V2 the first ghost module with DFC attention (``blocks.2.0.ghost1``: 24 * width in, 72 * width out)."""
    stem, last = _divisible(16 * width), _divisible(960 * width)
    sd = OrderedDict()
    sd["conv_stem.weight"] = _zeros(stem, 3, 3, 3)
    _bn(sd, "bn1", stem)
    sd["act1.weight"] = _zeros(1)
    _ghost_module(sd, "blocks.0.0.ghost1", stem, stem, prelu=True, dfc=False)
    _ghost_module(sd, "blocks.0.0.ghost2", stem, stem, prelu=False, dfc=False)
    if version == 2:
        _ghost_module(sd, "blocks.2.0.ghost1", _divisible(24 * width), _divisible(72 * width), prelu=True, dfc=True)
    sd["classifier.conv_dw.weight"] = _zeros(last, 1, 4, 4)
    _bn(sd, "classifier.bn1", last)
    sd["classifier.conv.weight"] = _zeros(512, last, 1, 1)
    _bn(sd, "classifier.bn2", 512)
    return sd
