"""State_dicts laid out as released files of architectures jsphere does not have, for the refusal tests: every key
and shape as the authors' code names them (checked, outside the suite, against their classes built with random
weights), the values zeros.

* ``edgeface``: EdgeFace (github otroshi/edgeface, ``backbones/timmfr.py``): timm's ``EdgeNeXt`` under a wrapper's
  ``model.`` attribute, ``reset_classifier(512)``, and for the ``_gamma_`` models every Linear (the head's ``fc``
  included) replaced by ``LoRaLin`` (``linear1`` [rank, in] without bias, ``linear2`` [out, rank]), rank =
  max(2, int(min(in, out) * ratio)). EdgeNeXt: a 4x4/4 stem conv + LayerNorm2d; four stages of conv encoder blocks
  (``gamma``, depthwise ``conv_dw`` k = 3, 5, 7, 9, ``norm``, ``mlp.fc1``/``fc2``) ending in ``global_block_counts``
  (0, 1, 1, 1) split-depthwise transposed attention blocks (``gamma_xca``, ``gamma``, ``convs.N`` over
  ceil(dim / scales) channels, scales (2, 2, 3, 4), a Fourier ``pos_embd`` in stage 1, ``norm_xca``,
  ``xca.temperature`` [heads, 1, 1], ``xca.qkv``, ``xca.proj``, ``norm``, ``mlp``); stages 1-3 open with
  ``downsample`` = LayerNorm2d + 2x2/2 conv; ``head.norm`` + ``head.fc``.
* ``ghostfacenet``: GhostFaceNets' PyTorch port (github Hazqeel09/ellzaf_ml, ``GhostFaceNetsV1``/``V2``): stem
  ``conv_stem``/``bn1``/``act1`` (PReLU), then the first bottleneck ``blocks.0.0`` (ghost modules ``ghost1``,
  ``ghost2`` of ``primary_conv`` and ``cheap_operation``; V2's first ghost module adds the DFC attention
  ``short_conv``, from ``blocks.2``) and the ``ModifiedGDC`` classifier (``conv_dw``, ``bn1``, ``conv``, ``bn2``).
  Only these parts of the real layout are reproduced (the refusal reads no more).
"""

from collections import OrderedDict
from math import ceil

import numpy as np

EDGENEXT = {  # timm's edgenext_* model_args: depths, dims, heads
    "edgeface_xxs": ((2, 2, 6, 2), (24, 48, 88, 168), 4),
    "edgeface_xs_gamma_06": ((3, 3, 9, 3), (32, 64, 100, 192), 4),
    "edgeface_s_gamma_05": ((3, 3, 9, 3), (48, 96, 160, 304), 8),
    "edgeface_base": ((3, 3, 9, 3), (80, 160, 288, 584), 8),
}
RANK_RATIO = {"edgeface_xs_gamma_06": 0.6, "edgeface_s_gamma_05": 0.5}


def _zeros(*shape):
    return np.zeros(shape, np.float32)


def _linear(sd, key, cin, cout, ratio):
    if ratio is None:
        sd[f"{key}.weight"], sd[f"{key}.bias"] = _zeros(cout, cin), _zeros(cout)
        return
    rank = max(2, int(min(cin, cout) * ratio))
    sd[f"{key}.linear1.weight"] = _zeros(rank, cin)
    sd[f"{key}.linear2.weight"], sd[f"{key}.linear2.bias"] = _zeros(cout, rank), _zeros(cout)


def _norm(sd, key, c):
    sd[f"{key}.weight"], sd[f"{key}.bias"] = _zeros(c), _zeros(c)


def edgeface(name: str = "edgeface_xs_gamma_06") -> OrderedDict:
    """The state_dict of EdgeFace model ``name`` (an ``EDGENEXT`` key)."""
    depths, dims, heads = EDGENEXT[name]
    ratio = RANK_RATIO.get(name)
    sd = OrderedDict()
    sd["model.stem.0.weight"], sd["model.stem.0.bias"] = _zeros(dims[0], 3, 4, 4), _zeros(dims[0])
    _norm(sd, "model.stem.1", dims[0])
    for s, (depth, dim, kernel, scales) in enumerate(zip(depths, dims, (3, 5, 7, 9), (2, 2, 3, 4), strict=True)):
        stage = f"model.stages.{s}"
        if s:
            _norm(sd, f"{stage}.downsample.0", dims[s - 1])
            sd[f"{stage}.downsample.1.weight"] = _zeros(dim, dims[s - 1], 2, 2)
            sd[f"{stage}.downsample.1.bias"] = _zeros(dim)
        for b in range(depth):
            block = f"{stage}.blocks.{b}"
            if s and b == depth - 1:  # the split depth-wise transposed attention block
                sd[f"{block}.gamma_xca"], sd[f"{block}.gamma"] = _zeros(dim), _zeros(dim)
                width = ceil(dim / scales)
                for i in range(max(1, scales - 1)):
                    sd[f"{block}.convs.{i}.weight"] = _zeros(width, 1, 3, 3)
                    sd[f"{block}.convs.{i}.bias"] = _zeros(width)
                if s == 1:
                    sd[f"{block}.pos_embd.token_projection.weight"] = _zeros(dim, 64, 1, 1)
                    sd[f"{block}.pos_embd.token_projection.bias"] = _zeros(dim)
                _norm(sd, f"{block}.norm_xca", dim)
                sd[f"{block}.xca.temperature"] = _zeros(heads, 1, 1)
                _linear(sd, f"{block}.xca.qkv", dim, 3 * dim, ratio)
                _linear(sd, f"{block}.xca.proj", dim, dim, ratio)
            else:
                sd[f"{block}.gamma"] = _zeros(dim)
                sd[f"{block}.conv_dw.weight"], sd[f"{block}.conv_dw.bias"] = _zeros(dim, 1, kernel, kernel), _zeros(dim)
            _norm(sd, f"{block}.norm", dim)
            _linear(sd, f"{block}.mlp.fc1", dim, 4 * dim, ratio)
            _linear(sd, f"{block}.mlp.fc2", 4 * dim, dim, ratio)
    _norm(sd, "model.head.norm", dims[-1])
    _linear(sd, "model.head.fc", dims[-1], 512, ratio)
    return sd


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
