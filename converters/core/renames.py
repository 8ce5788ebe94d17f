"""State_dicts that name the same computation differently from jsphere's reference classes, renamed to them.

TreB1eN's InsightFace_Pytorch ``MobileFaceNet`` (``model_mobilefacenet.pth``) and face.evoLVe's copy of it compute
arcface_torch's ``mbf`` at ``scale=1``, ``blocks=(1, 4, 6, 2)`` (the block count read from the file), under other
names: ``conv1`` / ``conv2_dw`` / ``conv_6_sep`` are ``Conv_block`` {conv, bn, prelu}, ``conv_23`` / ``conv_34`` /
``conv_45`` are ``Depth_Wise`` {conv, conv_dw, project}, ``conv_3`` / ``conv_4`` / ``conv_5`` are ``Residual``
{model.N}, ``conv_6_dw`` a ``Linear_block`` {conv, bn}, then ``linear`` (bias-free) and ``bn`` (BatchNorm1d).
"""

from __future__ import annotations

from collections import OrderedDict

MBF_STAGES = {"conv1": 0, "conv2_dw": 1, "conv_23": 2, "conv_3": 3, "conv_34": 4, "conv_4": 5, "conv_45": 6,
              "conv_5": 7}
BLOCK_PARTS = {"conv": "0", "bn": "1", "prelu": "2"}
DEPTHWISE_PARTS = {"conv": "0", "conv_dw": "1", "project": "2"}
TREB1EN_MBF_MARKERS = ("conv_6_sep.conv.weight", "conv_23.conv.conv.weight", "conv_6_dw.conv.weight")


def is_treb1en_mobilefacenet(state_dict: dict) -> bool:
    return all(k in state_dict for k in TREB1EN_MBF_MARKERS)


def _block(rest: str) -> str | None:
    part, _, leaf = rest.partition(".")
    return f"layers.{BLOCK_PARTS[part]}.{leaf}" if part in BLOCK_PARTS and leaf else None


def _depthwise(rest: str) -> str | None:
    part, _, inner = rest.partition(".")
    block = _block(inner) if part in DEPTHWISE_PARTS else None
    return f"layers.{DEPTHWISE_PARTS[part]}.{block}" if block else None


def _mbf_key(key: str) -> str | None:
    head, _, rest = key.partition(".")
    if head in ("conv1", "conv2_dw"):
        inner = _block(rest)
    elif head in ("conv_23", "conv_34", "conv_45"):
        inner = _depthwise(rest)
    elif head in ("conv_3", "conv_4", "conv_5"):
        model, index, dw = (rest.split(".", 2) + ["", ""])[:3]
        inner = f"layers.{index}.{_depthwise(dw)}" if model == "model" and index.isdigit() and _depthwise(dw) \
            else None
    elif head == "conv_6_sep":
        return f"conv_sep.{_block(rest)}" if _block(rest) else None
    elif head == "conv_6_dw":
        return f"features.layers.0.{_block(rest)}" if _block(rest) else None
    elif head == "linear":
        return f"features.layers.2.{rest}"
    elif head == "bn":
        return f"features.layers.3.{rest}"
    else:
        return None
    return f"layers.{MBF_STAGES[head]}.{inner}" if inner else None


def treb1en_mobilefacenet_to_mbf(state_dict: dict) -> OrderedDict:
    """The state_dict under arcface_torch ``mbf`` names; keys of no known part keep their name (and are then
    reported as unexpected)."""
    out = OrderedDict()
    for key, value in state_dict.items():
        out[_mbf_key(key) or key] = value
    return out
