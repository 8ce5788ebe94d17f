"""The table between PyTorch state_dict keys and jsphere's NNX state, derived from the module tree.

A jsphere leaf at ``('layer1', 0, 'bn1', 'scale')`` is the torch key ``layer1.0.bn1.weight``: the path is the
same (a module's ``torch_names`` may rename a child), the leaf name and layout depend on the module type:

    nnx.Conv       kernel [kh, kw, I/g, O] <-> weight [O, I/g, kh, kw];  bias <-> bias
    nnx.Linear     kernel [in, out]        <-> weight [out, in];         bias <-> bias
    BatchNorm      scale, bias, mean, var  <-> weight, bias, running_mean, running_var (+ num_batches_tracked)
    ChannelPReLU   slope                   <-> weight
    LayerNorm      scale, bias             <-> weight, bias
    a module's own parameters named in its ``torch_params`` (EdgeNeXt's layer scale ``gamma``) keep their name

Running variances are copied as they are: both sides store the unbiased estimate. ``fc`` needs no row
permutation because jsphere's models flatten channel-major, like ``torch.flatten`` on NCHW.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from flax import nnx

from jsphere import models
from jsphere.models.layers import BatchNorm, ChannelPReLU, LayerNorm

LEAF_NAMES = {
    nnx.Conv: {"kernel": "weight", "bias": "bias"},
    nnx.Linear: {"kernel": "weight", "bias": "bias"},
    BatchNorm: {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"},
    ChannelPReLU: {"slope": "weight"},
    LayerNorm: {"scale": "weight", "bias": "bias"},
}


def to_torch(module_type: type, leaf: str, value: np.ndarray) -> np.ndarray:
    """A jsphere leaf of a ``module_type`` layer in torch's layout (kernels transposed, every other leaf as is)."""
    if leaf == "kernel" and module_type is nnx.Conv:
        return np.ascontiguousarray(np.transpose(value, (3, 2, 0, 1)))
    if leaf == "kernel" and module_type is nnx.Linear:
        return np.ascontiguousarray(value.T)
    return value


def to_jsphere(module_type: type, leaf: str, value: np.ndarray) -> np.ndarray:
    """A torch tensor of a ``module_type`` layer in jsphere's layout: the inverse of ``to_torch``."""
    if leaf == "kernel" and module_type is nnx.Conv:
        return np.ascontiguousarray(np.transpose(value, (2, 3, 1, 0)))
    if leaf == "kernel" and module_type is nnx.Linear:
        return np.ascontiguousarray(value.T)
    return value


def leaf_table(model: nnx.Module) -> list[tuple[tuple, str, type]]:
    """(jsphere path, torch key, module type) for every weight and BatchNorm statistic of ``model``."""
    modules = {tuple(path): node for path, node in nnx.iter_graph(model) if isinstance(node, nnx.Module)}
    state = nnx.state(model, nnx.Any(nnx.Param, models.FrozenParam, nnx.BatchStat))
    rows = []
    for path, _ in nnx.to_flat_state(state):
        module = modules[tuple(path[:-1])]
        names = LEAF_NAMES.get(type(module)) or {n: n for n in getattr(module, "torch_params", ())}
        if names is None or path[-1] not in names:
            raise KeyError(f"no PyTorch name for {'.'.join(map(str, path))} ({type(module).__name__})")
        key = ".".join((*torch_names(modules, path[:-1]), names[path[-1]]))
        rows.append((tuple(path), key, type(module)))
    return rows


def torch_names(modules: dict, path: tuple) -> list[str]:
    """The torch names of a module path: a module's ``torch_names`` renames its children (an IR unit's
    ``se_block`` is AdaFace's ``res_layer.se_block``); every other name is kept."""
    names = []
    for i, part in enumerate(path):
        renames = getattr(modules[tuple(path[:i])], "torch_names", None) or {}
        names.append(renames.get(part, str(part)))
    return names


def torch_to_pure(model: nnx.Module, state_dict: dict[str, np.ndarray]) -> tuple[dict, list[str], list[str]]:
    """(jsphere pure dict, missing torch keys, unexpected torch keys) for a torch state_dict (no prefixes)."""
    pure: dict = {}
    used, missing = set(), []
    for path, key, module_type in leaf_table(model):
        if key not in state_dict:
            missing.append(key)
            continue
        used.add(key)
        value = np.asarray(state_dict[key])
        if value.dtype.name in ("float16", "bfloat16", "float64"):
            value = value.astype(np.float32)  # fp16 / bf16 / fp64 checkpoints are brought to float32
        node = pure
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = to_jsphere(module_type, path[-1], value)
    unexpected = [k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")]
    return pure, missing, unexpected


def pure_to_torch(model: nnx.Module, pure: dict) -> OrderedDict:
    """torch-named numpy arrays (torch layouts) for a jsphere pure dict; without num_batches_tracked."""
    out = OrderedDict()
    for path, key, module_type in leaf_table(model):
        node = pure
        for p in path:
            node = node[p] if p in node else node[str(p)]
        out[key] = to_torch(module_type, path[-1], np.asarray(node))
    return out
