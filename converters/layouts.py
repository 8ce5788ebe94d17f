"""Recognising the checkpoint layouts of OpenSphere v1/v2 and insightface, and their head orientations.

* OpenSphere v1: ``backbone_<iter>.pth`` / ``head_<iter>.pth``, state_dicts with ``module.`` prefixes; head ``w``
  is [feat_dim, num_classes] (SphereFace2 ``b`` [1], SoftmaxLoss ``b`` [1, C]).
* OpenSphere v2: ``model_<step>.pth`` = ``{'backbone': sd, 'head': sd}``; ``ckpt_<step>.pth`` holds it under
  ``'model'``; head ``w`` is [num_classes, feat_dim] (SimPLE ``bias`` [1]).
* insightface: ``backbone.pth`` / ``model.pt``, a plain state_dict; ``checkpoint_gpu_<rank>.pt`` holds it under
  ``state_dict_backbone``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

LAYOUTS = ("opensphere-v1", "opensphere-v2", "insightface")


def strip_prefix(state_dict: dict, prefix: str = "module.") -> tuple[OrderedDict, bool]:
    keys = list(state_dict)
    if keys and all(k.startswith(prefix) for k in keys):
        return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()), True
    return OrderedDict(state_dict), False


def step_from_name(path: str | Path) -> int:
    match = re.search(r"(\d+)\.(pth|pt|safetensors)$", Path(path).name)
    return int(match.group(1)) if match else 0


def split_checkpoint(obj, where: str) -> tuple[OrderedDict, OrderedDict | None, str]:
    """(backbone state_dict, head state_dict or None, layout) of a loaded checkpoint object."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a state_dict or a dict of state_dicts, got {type(obj).__name__}")
    if isinstance(obj.get("model"), dict) and "backbone" in obj["model"]:
        obj = obj["model"]
    if isinstance(obj.get("backbone"), dict):
        head = obj.get("head")
        return strip_prefix(obj["backbone"])[0], strip_prefix(head)[0] if head else None, "opensphere-v2"
    if isinstance(obj.get("state_dict_backbone"), dict):
        return strip_prefix(obj["state_dict_backbone"])[0], None, "insightface"
    tensors = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise ValueError(f"{where}: no tensors found (keys: {list(obj)[:8]})")
    state_dict, prefixed = strip_prefix(tensors)
    return state_dict, None, "opensphere-v1" if prefixed else "insightface"


def head_to_jsphere(head_sd: dict, layout: str, feat_dim: int, where: str) -> dict[str, np.ndarray]:
    """jsphere head params ({'w': [C, D], 'b'/'bias': ...}) from a torch head state_dict."""
    head_sd, _ = strip_prefix(head_sd)
    params = {}
    for key, value in head_sd.items():
        value = np.asarray(value)
        if value.dtype.name in ("float16", "bfloat16", "float64"):
            value = value.astype(np.float32)
        if key in ("w", "weight"):
            if layout == "opensphere-v1":
                if value.shape[0] != feat_dim:
                    raise ValueError(f"{where}: OpenSphere v1 head 'w' should be [feat_dim={feat_dim}, C], got "
                                     f"{value.shape}")
                value = value.T
            elif value.shape[1] != feat_dim:
                raise ValueError(f"{where}: head weight should be [C, feat_dim={feat_dim}], got {value.shape}")
            params["w"] = np.ascontiguousarray(value)
        elif key == "b":
            params["b"] = value.reshape(-1)
        elif key == "bias":
            params["bias"] = value.reshape(-1)
        else:
            raise ValueError(f"{where}: unexpected head parameter {key!r} (expected w, b or bias)")
    return params


def head_to_torch(params: dict, layout: str) -> OrderedDict:
    out = OrderedDict()
    for key, value in params.items():
        value = np.asarray(value)
        if key == "w" and layout == "opensphere-v1":
            value = value.T
        elif key == "b" and layout == "opensphere-v1" and value.shape[0] > 1:
            value = value.reshape(1, -1)  # v1 SoftmaxLoss bias [1, C]
        out[key] = np.ascontiguousarray(value)
    return out
