"""Backbones by name: ``build('iresnet100', embed_dim=512, rngs=nnx.Rngs(0), dtype=jnp.float32)``, ``names()``,
and ``summary()`` (every backbone's parameter count and output shape, computed without allocating it)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import ir, iresnet, mobilefacenet, mobilefacenet_relu6, sfnet
from jsphere.models.base import INPUT_SHAPE, Backbone
from jsphere.models.pure_state import param_count

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


def summary(embed_dim: int = 512) -> Iterator[tuple[str, int, tuple[int, ...]]]:
    """``(name, parameter count, output shape for one image)`` of every backbone, built abstractly, one at a time
    (each takes seconds to trace on a small machine: a caller shows each row as it comes)."""
    x = jax.ShapeDtypeStruct((1,) + INPUT_SHAPE, jnp.float32)
    for name in names():
        model = nnx.eval_shape(lambda n=name: build(n, embed_dim=embed_dim, rngs=nnx.Rngs(0)))
        out = nnx.eval_shape(lambda m, x: m(x), model, x)
        yield name, param_count(model), tuple(out.shape)
