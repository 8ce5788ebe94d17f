"""The weighted layers of a jsphere backbone in the order its forward pass calls them, with their PyTorch names.

Graph formats without layer names (ONNX exports, whose initializers are often renamed) are matched to a backbone
layer by layer in execution order; the order is read by tracing the model abstractly (no weights, no compute)
and recording each Conv / Linear / BatchNorm / PReLU call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from converters.core import mapping
from jsphere import models
from jsphere.models.layers import BatchNorm, ChannelPReLU, FrozenParam

KINDS = {nnx.Conv: "conv", nnx.Linear: "linear", BatchNorm: "bn", ChannelPReLU: "prelu"}  # = mapping.LEAF_NAMES


@dataclass(frozen=True)
class Layer:
    """One weighted layer: torch module name (``mapping``'s, renames included), kind, torch-layout weight shape
    and (convs) geometry."""

    key: str
    kind: str
    shape: tuple[int, ...]
    bias: bool = False
    stride: int = 1
    groups: int = 1
    padding: int = 0
    affine: bool = True  # a BatchNorm with a (possibly frozen) scale and shift; False: running statistics only
    follows: bool = False  # it reads the output of the layer called just before it (a Conv's BatchNorm)


def _describe(module, key: str) -> Layer:
    kind = KINDS[type(module)]
    if kind == "conv":
        kh, kw, cin, cout = module.kernel.shape
        (pad, _), _ = module.padding
        return Layer(key, kind, (cout, cin, kh, kw), module.use_bias, module.strides[0], module.feature_group_count,
                     pad)
    if kind == "linear":
        cin, cout = module.kernel.shape
        return Layer(key, kind, (cout, cin), module.use_bias)
    if kind == "prelu":
        return Layer(key, kind, (module.slope.shape[0],))
    return Layer(key, kind, (module.num_features,), affine=isinstance(module.scale, nnx.Param | FrozenParam))


def _conv_output(module: nnx.Conv, x: jax.Array) -> jax.Array:
    """Zeros shaped like the convolution's output: the order is all that is recorded, so no convolution is traced
    (tracing jsphere's CPU convolution plans dominated the cost for deep models)."""
    (kh, kw, _, cout), (sh, sw) = module.kernel.shape, module.strides
    (top, bottom), (left, right) = module.padding
    n, h, w, _ = x.shape
    return jnp.zeros((n, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1, cout), x.dtype)


def call_order(arch: str, embed_dim: int, kwargs: dict | None = None) -> list[Layer]:
    """The layers of ``models.build(arch, embed_dim=embed_dim, **kwargs)`` in forward-call order (one abstract
    trace of building and calling the model: no weights are materialised, nothing is computed)."""
    order: list[Layer] = []
    originals = {cls: cls.__call__ for cls in KINDS}

    def build_and_call():
        model = models.build(arch, embed_dim=embed_dim, rngs=nnx.Rngs(0), **(kwargs or {}))
        model.eval()
        modules = {tuple(path): node for path, node in nnx.iter_graph(model) if isinstance(node, nnx.Module)}
        keys = {id(node): ".".join(mapping.torch_names(modules, path)) for path, node in modules.items()}

        last = [None]  # the output of the layer called last

        def recording(cls):
            def call(self, *args, **kw):
                layer = _describe(self, keys[id(self)])
                order.append(dataclasses.replace(layer, follows=args[0] is last[0]))
                last[0] = _conv_output(self, *args) if cls is nnx.Conv else originals[cls](self, *args, **kw)
                return last[0]
            return call

        for cls in KINDS:
            cls.__call__ = recording(cls)
        try:
            return model(jnp.zeros((1, *models.INPUT_SHAPE), jnp.float32))
        finally:
            for cls, original in originals.items():
                cls.__call__ = original

    jax.eval_shape(build_and_call)
    return order
