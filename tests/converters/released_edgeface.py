"""EdgeFace's released state_dicts as its code lays them out (github otroshi/edgeface, ``backbones/timmfr.py``):
timm's ``EdgeNeXt`` under a wrapper's ``model.`` attribute, ``reset_classifier(512)``, and for the ``_gamma_``
models every Linear (the head's ``fc`` included) replaced by ``LoRaLin`` (``linear1`` [rank, in] without bias,
``linear2`` [out, rank]), rank = max(2, int(min(in, out) * ratio)). EdgeNeXt: a 4x4/4 stem conv + LayerNorm2d; four
stages of conv encoder blocks (``gamma``, depthwise ``conv_dw`` k = 3, 5, 7, 9, ``norm``, ``mlp.fc1``/``fc2``)
ending in ``global_block_counts`` (0, 1, 1, 1) split-depthwise transposed attention blocks (``gamma_xca``,
``gamma``, ``convs.N`` over ceil(dim / scales) channels, scales (2, 2, 3, 4), a Fourier ``pos_embd`` in stage 1,
``norm_xca``, ``xca.temperature`` [heads, 1, 1], ``xca.qkv``, ``xca.proj``, ``norm``, ``mlp``); stages 1-3 open
with ``downsample`` = LayerNorm2d + 2x2/2 conv; ``head.norm`` + ``head.fc``.

Written from that structure, independently of ``converters.torch_reference.edgeface``, and checked outside the
suite against the authors' ``get_model(name).state_dict()`` (timm 1.0.31): the same keys, order and shapes for all
four released variants. The values are zeros (names and shapes are what the tests compare).
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


def _linear(sd, key, cin, cout, ratio):
    if ratio is None:
        sd[f"{key}.weight"], sd[f"{key}.bias"] = _zeros(cout, cin), _zeros(cout)
        return
    rank = max(2, int(min(cin, cout) * ratio))
    sd[f"{key}.linear1.weight"] = _zeros(rank, cin)
    sd[f"{key}.linear2.weight"], sd[f"{key}.linear2.bias"] = _zeros(cout, rank), _zeros(cout)


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




def _zeros(*shape):
    return np.zeros(shape, np.float32)


def _norm(sd, key, c):
    sd[f"{key}.weight"], sd[f"{key}.bias"] = _zeros(c), _zeros(c)
