"""A backbone's state as a nested dict of arrays, the layout checkpoints hold: ``pure_state`` (weights and
BatchNorm statistics) and ``load_pure_state`` (written back, every key and shape checked), and ``param_count`` (as
PyTorch counts parameters)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jsphere.models.layers import FrozenParam


def param_count(model: nnx.Module) -> int:
    """Number of parameters as PyTorch counts them (trainable and frozen weights, no running statistics)."""
    state = nnx.state(model, nnx.Any(nnx.Param, FrozenParam))
    return sum(int(x.size) for x in jax.tree.leaves(state))


def pure_state(model: nnx.Module) -> dict:
    """The model's weights and BatchNorm statistics as a nested dict of arrays (the checkpoint layout)."""
    return nnx.to_pure_dict(nnx.state(model, nnx.Any(nnx.Param, FrozenParam, nnx.BatchStat)))


def load_pure_state(model: nnx.Module, pure: dict, *, source: str = "checkpoint") -> None:
    """Write a ``pure_state`` dict into ``model`` in place; every key and shape must match. The arrays take the
    model's dtypes (a float32 checkpoint in a float64 model, and back)."""
    state = nnx.state(model, nnx.Any(nnx.Param, FrozenParam, nnx.BatchStat))
    expected = {k: v.shape for k, v in nnx.to_flat_state(state)}
    dtypes = {k: v.dtype for k, v in nnx.to_flat_state(state)}
    got = {k: np.shape(v) for k, v in _flatten(pure)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [(k, got[k], expected[k]) for k in expected if k in got and tuple(got[k]) != tuple(expected[k])]
    if missing or unexpected or shapes:
        def fmt(keys):
            return ", ".join(".".join(map(str, k)) for k in keys[:5]) + (" ..." if len(keys) > 5 else "")
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (first: {fmt(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (first: {fmt(unexpected)})")
        if shapes:
            problems.append("shape mismatches: " + "; ".join(
                f"{'.'.join(map(str, k))} {tuple(g)} vs model {tuple(e)}" for k, g, e in shapes[:5]))
        raise ValueError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems))
    nnx.replace_by_pure_dict(state, _unflatten({k: jnp.asarray(v, dtypes[k]) for k, v in _flatten(pure)}))
    nnx.update(model, state)


def _unflatten(flat: dict[tuple, object]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return tree


def _flatten(tree: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for k, v in tree.items():
        key = prefix + (int(k) if isinstance(k, str) and k.isdigit() else k,)
        if isinstance(v, dict):
            out += _flatten(v, key)
        else:
            out.append((key, v))
    return out
