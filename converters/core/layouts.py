"""Recognising the checkpoint layouts of OpenSphere v1/v2 and insightface, and their head orientations.

* OpenSphere v1: ``backbone_<iter>.pth`` / ``head_<iter>.pth``, state_dicts with ``module.`` prefixes; head ``w``
  is [feat_dim, num_classes] (SphereFace2 ``b`` [1], SoftmaxLoss ``b`` [1, C]).
* OpenSphere v2: ``model_<step>.pth`` = ``{'backbone': sd, 'head': sd}``; ``ckpt_<step>.pth`` holds it under
  ``'model'``; head ``w`` is [num_classes, feat_dim] (SimPLE ``bias`` [1]).
* insightface: ``backbone.pth`` / ``model.pt``, a plain state_dict; ``checkpoint_gpu_<rank>.pt`` holds it under
  ``state_dict_backbone``. face.evoLVe's, CurricularFace's and TreB1eN's files are plain state_dicts too.
* adaface: AdaFace's PyTorch Lightning ``.ckpt``: ``{'epoch', 'global_step', 'pytorch-lightning_version',
  'state_dict': {'model.<backbone key>', 'head.kernel', 'head.t', 'head.batch_mean', 'head.batch_std'},
  'optimizer_states', 'lr_schedulers', 'callbacks', 'loops', 'hyper_parameters', ...}``; the backbone is
  ``state_dict`` under ``model.``, the head (AdaFace's own parameters) is left out.
* treb1en: TreB1eN's / face.evoLVe's MobileFaceNet names, renamed to arcface_torch's (``converters.core.renames``).
* Other wrappers: the backbone's tensors are found at the top level or under ``state_dict``, ``net_state_dict``
  (``{'epoch', 'net_state_dict'}``), ``model_state_dict``, ``model`` or ``net`` (nested up to two levels), with a
  DDP ``module.`` prefix stripped; when none holds tensors the error names the top-level keys and tensor count.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from converters.core import renames

LAYOUTS = ("opensphere-v1", "opensphere-v2", "insightface", "adaface")
WRAPPER_KEYS = ("state_dict", "net_state_dict", "model_state_dict", "model", "net")
BACKBONE_PREFIXES = ("model.", "backbone.")  # PyTorch Lightning modules' backbone attribute (AdaFace: model)
HEAD_PREFIXES = ("head.",)


def strip_prefix(state_dict: dict, prefix: str = "module.") -> tuple[OrderedDict, bool]:
    keys = list(state_dict)
    if keys and all(k.startswith(prefix) for k in keys):
        return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()), True
    return OrderedDict(state_dict), False


STEP_NAMES = {  # the file names that are a training step, in the layout whose trainer writes them
    "opensphere-v1": re.compile(r"^(backbone|head)_(\d+)\.pth$"),
    "opensphere-v2": re.compile(r"^(model|ckpt)_(\d+)\.pth$"),
}


def step_from_name(path: str | Path, layout: str) -> int:
    """The training step a file's name gives, for the names OpenSphere's trainers write (``backbone_<iter>.pth``,
    ``model_<step>.pth``, ``ckpt_<step>.pth``) in their own layout; 0 for any other name, whatever digits it holds
    (TreB1eN's ``model_ir_se50.pth`` is a depth, face.evoLVe's ``..._Epoch_120.pth`` an epoch)."""
    pattern = STEP_NAMES.get(layout)
    match = pattern.match(Path(path).name) if pattern else None
    return int(match.group(2)) if match else 0


def split_checkpoint(obj: object, where: str) -> tuple[OrderedDict, OrderedDict | None, str]:
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
    tensors = _tensors(obj)
    if tensors:
        state_dict, prefixed = strip_prefix(tensors)
        layout = "opensphere-v1" if prefixed else "insightface"
    else:
        tensors = _wrapped(obj, depth=2)
        if not tensors:
            raise ValueError(f"{where}: no state_dict found: the top-level keys are {_keys(obj)}, with "
                             f"{_count_tensors(obj)} tensors in the whole file; jsphere looks for the backbone's "
                             f"tensors at the top level or under {', '.join(repr(k) for k in WRAPPER_KEYS)}")
        state_dict, layout = _backbone_part(tensors)
    if renames.is_treb1en_mobilefacenet(state_dict):
        return renames.treb1en_mobilefacenet_to_mbf(state_dict), None, "treb1en"
    return state_dict, None, layout


def _tensors(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}


def _wrapped(obj: dict, depth: int) -> dict | None:
    """The first dict of tensors under a wrapper key (searched breadth-first, ``depth`` levels)."""
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, dict) and _tensors(inner):
            return _tensors(inner)
    if depth > 1:
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and (found := _wrapped(inner, depth - 1)):
                return found
    return None


def _backbone_part(tensors: dict) -> tuple[OrderedDict, str]:
    """A wrapped state_dict's backbone: a Lightning module's ``model.`` / ``backbone.`` tensors (its ``head.``
    ones left out; AdaFace's layout when the prefix is ``model.``), else all of it; a DDP prefix stripped."""
    for prefix in BACKBONE_PREFIXES:
        mine = [k for k in tensors if k.startswith(prefix)]
        if mine and all(k.startswith((prefix, *HEAD_PREFIXES)) for k in tensors):
            inner = OrderedDict((k[len(prefix):], tensors[k]) for k in mine)
            return strip_prefix(inner)[0], "adaface" if prefix == "model." else "insightface"
    return strip_prefix(tensors)[0], "insightface"


def _keys(obj: dict, n: int = 8) -> str:
    keys = [str(k) for k in obj]
    return "[" + ", ".join(repr(k) for k in keys[:n]) + (", ..." if len(keys) > n else "") + "]"


def _count_tensors(obj, depth: int = 0) -> int:
    if isinstance(obj, np.ndarray):
        return 1
    if depth > 8:
        return 0
    if isinstance(obj, dict):
        return sum(_count_tensors(v, depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_count_tensors(v, depth + 1) for v in obj)
    return 0


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
