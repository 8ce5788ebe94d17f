"""Backbones by name: ``build('iresnet100', embed_dim=512, rngs=nnx.Rngs(0), dtype=jnp.float32)``."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jsphere.models import ir, iresnet, mobilefacenet, mobilefacenet_relu6, sfnet
from jsphere.models.base import Backbone
from jsphere.models.layers import FrozenParam

_REGISTRY: dict[str, Callable[..., Backbone]] = {}
for _d in sorted(sfnet.DEPTHS):
    _REGISTRY[f"sfnet{_d}"] = functools.partial(sfnet.SFNet, _d, variant="plain")
    _REGISTRY[f"sfnet{_d}_bn"] = functools.partial(sfnet.SFNet, _d, variant="bn")
    _REGISTRY[f"sfnet{_d}_deprecated"] = functools.partial(sfnet.SFNet, _d, variant="deprecated")
for _d in sorted(iresnet.DEPTHS):
    _REGISTRY[f"iresnet{_d}"] = functools.partial(iresnet.IResNet, _d)
for _name, _variant in mobilefacenet.VARIANTS.items():
    _REGISTRY[_name] = functools.partial(mobilefacenet.MobileFaceNet, **_variant)
_REGISTRY["mobilefacenet_relu6"] = mobilefacenet_relu6.MobileFaceNetReLU6
for _d in sorted(ir.DEPTHS):
    _REGISTRY[f"ir_{_d}"] = functools.partial(ir.IR, _d, se=False)
for _d in sorted(ir.DEPTHS):
    _REGISTRY[f"ir_se_{_d}"] = functools.partial(ir.IR, _d, se=True)


def names() -> list[str]:
    """Every backbone name ``build`` accepts."""
    return list(_REGISTRY)


def build(name: str, *, embed_dim: int = 512, rngs: nnx.Rngs | None = None, dtype=jnp.float32,
          **kwargs) -> Backbone:
    """Build backbone ``name`` (NHWC [N,112,112,3] in [-1, 1] -> [N, embed_dim], not normalised).

    ``dtype`` is the compute dtype of the trunk (e.g. ``jnp.bfloat16``); parameters stay float32 and the
    embedding tail (fc, features) computes in float32, except for ``jnp.float64`` (64-bit JAX), where both are
    float64 (``layers.param_dtype``). Extra keyword arguments go to the model class
    (e.g. ``features_scale='trainable'`` for OpenSphere v2's IResNet, ``dropout=0.4``).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(names())}")
    if rngs is None:
        rngs = nnx.Rngs(0)
    try:
        return _REGISTRY[name](embed_dim=embed_dim, dtype=dtype, rngs=rngs, **kwargs)
    except TypeError as e:
        raise TypeError(f"model {name!r}: {e}") from None


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
