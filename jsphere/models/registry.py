"""Backbones by name: ``build('iresnet100', embed_dim=512, rngs=nnx.Rngs(0), dtype=jnp.float32)``, ``names()``,
``summary()`` (every backbone's parameter count and output shape, computed without allocating it), and
``register(name)``, the decorator that makes a backbone of one's own buildable by name (training, evaluation,
``jsphere.embed`` and the converters all build through ``build``)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import edgeface, ir, iresnet, mobilefacenet, mobilefacenet_relu6, sfnet
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
for _name, (*_, _ratio) in edgeface.VARIANTS.items():
    _REGISTRY[_name] = functools.partial(edgeface.EdgeFace, _name, rank_ratio=_ratio)
BUILT_IN = frozenset(_REGISTRY)
RESERVED = frozenset({"auto"})  # the converters' --arch auto
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
Factory = TypeVar("Factory", bound=Callable[..., Backbone])


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make ``build(name, ...)`` call the decorated class (or function) as
    ``factory(embed_dim=..., dtype=..., rngs=..., **kwargs)``; it must return a ``Backbone`` (NHWC [N, 112, 112, 3]
    in [-1, 1] -> [N, embed_dim]).

    ``name`` is lowercase (letters, digits, ``_``); a built-in name cannot be replaced, and registering a name
    again replaces the earlier definition (a module imported twice). The backbone is then known to every part of
    jsphere in this process: a config file that imports its module trains and evaluates it
    (``--config.model.name=<name>``). For the exporters, register its PyTorch twin too
    (``converters.torch_reference.backbones.register``) and pass ``--import MODULE``.
    """
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED:
        raise ValueError(f"backbone name {name!r}: use lowercase letters, digits and _ (starting with a "
                         f"letter), other than {', '.join(sorted(RESERVED))}")
    if name in BUILT_IN:
        raise ValueError(f"backbone name {name!r} is one of jsphere's own backbones; choose another name")

    def decorator(factory: Factory) -> Factory:
        if not callable(factory):
            raise TypeError(f"register({name!r}) decorates a class or function building the backbone, got "
                            f"{type(factory).__name__}")
        _REGISTRY[name] = factory
        return factory

    return decorator


def names() -> list[str]:
    """Every backbone name ``build`` accepts: jsphere's own, then the registered ones."""
    return list(_REGISTRY)


def is_built_in(name: str) -> bool:
    """Whether ``name`` is one of jsphere's own backbones (not one registered with ``register``)."""
    return name in BUILT_IN


def build(name: str, *, embed_dim: int = 512, rngs: nnx.Rngs | None = None, dtype=jnp.float32,
          **kwargs) -> Backbone:
    """Build backbone ``name`` (NHWC [N,112,112,3] in [-1, 1] -> [N, embed_dim], not normalised).

    ``dtype`` is the compute dtype of the trunk (e.g. ``jnp.bfloat16``); parameters stay float32 and the
    embedding tail (fc, features) computes in float32, except for ``jnp.float64`` (64-bit JAX), where both are
    float64 (``layers.param_dtype``). Extra keyword arguments go to the model class
    (e.g. ``features_scale='trainable'`` for OpenSphere v2's IResNet, ``dropout=0.4``).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(names())}. A backbone of your own is "
                         "known once the module that registers it (@jsphere.models.register) is imported: import "
                         "it in your config file, or pass --import MODULE to the converters")
    if rngs is None:
        rngs = nnx.Rngs(0)
    try:
        model = _REGISTRY[name](embed_dim=embed_dim, dtype=dtype, rngs=rngs, **kwargs)
    except TypeError as e:
        raise TypeError(f"model {name!r}: {e}") from None
    if not isinstance(model, Backbone):
        raise TypeError(f"model {name!r}: its registered factory returned a {type(model).__name__}, not a "
                        "jsphere.models.Backbone (subclass it: set embed_dim, write forward(x))")
    return model


def summary(embed_dim: int = 512) -> Iterator[tuple[str, int, tuple[int, ...]]]:
    """``(name, parameter count, output shape for one image)`` of every backbone, built abstractly, one at a time
    (each takes seconds to trace on a small machine: a caller shows each row as it comes)."""
    x = jax.ShapeDtypeStruct((1,) + INPUT_SHAPE, jnp.float32)
    for name in names():
        model = nnx.eval_shape(lambda n=name: build(n, embed_dim=embed_dim, rngs=nnx.Rngs(0)))
        out = nnx.eval_shape(lambda m, x: m(x), model, x)
        yield name, param_count(model), tuple(out.shape)
