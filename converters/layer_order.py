"""The weighted layers of a jsphere backbone in the order its forward pass calls them, with their PyTorch names.

Graph formats without layer names (ONNX exports, whose initializers are often renamed) are matched to a backbone
layer by layer in execution order; the order is read by tracing the model abstractly (no weights, no compute)
and recording each Conv / Linear / BatchNorm / PReLU call.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere import models
from jsphere.models.layers import BatchNorm, ChannelPReLU

KINDS = {nnx.Conv: "conv", nnx.Linear: "linear", BatchNorm: "bn", ChannelPReLU: "prelu"}  # = mapping.LEAF_NAMES


@dataclass(frozen=True)
class Layer:
    """One weighted layer: torch module name, kind, torch-layout weight shape and (convs) geometry."""

    key: str
    kind: str
    shape: tuple[int, ...]
    bias: bool = False
    stride: int = 1
    groups: int = 1
    padding: int = 0


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
    size = module.slope.shape[0] if kind == "prelu" else module.num_features
    return Layer(key, kind, (size,))


def call_order(arch: str, embed_dim: int, kwargs: dict | None = None) -> list[Layer]:
    """The layers of ``models.build(arch, embed_dim=embed_dim, **kwargs)`` in forward-call order."""
    abstract = nnx.eval_shape(lambda: models.build(arch, embed_dim=embed_dim, rngs=nnx.Rngs(0), **(kwargs or {})))
    graphdef, state = nnx.split(abstract)
    order: list[Layer] = []
    originals = {cls: cls.__call__ for cls in KINDS}

    def forward(state):
        model = nnx.merge(graphdef, state)
        model.eval()
        keys = {id(node): ".".join(map(str, path)) for path, node in nnx.iter_graph(model)}

        def recording(cls):
            def call(self, *args, **kw):
                order.append(_describe(self, keys[id(self)]))
                return originals[cls](self, *args, **kw)
            return call

        for cls in KINDS:
            cls.__call__ = recording(cls)
        try:
            return model(jnp.zeros((1, *models.INPUT_SHAPE), jnp.float32))
        finally:
            for cls, original in originals.items():
                cls.__call__ = original

    jax.eval_shape(forward, state)
    return order
