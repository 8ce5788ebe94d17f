"""A jsphere checkpoint as the state_dict of its PyTorch reference model (``converters.torch_reference.backbones``:
the reference key names and order, float32, ``num_batches_tracked``), filled with the checkpoint's weights: what
both exporters start from. Needs torch. A backbone this process does not know, or one without a PyTorch definition,
is refused saying which of the two is missing and how to add it (``exportable``).
"""

from __future__ import annotations

from collections import OrderedDict

from flax import nnx

from converters.core import mapping
from jsphere import checkpoint, models


def torch_state_dicts(ckpt: str, step: int | None = None) -> tuple[OrderedDict, dict | None, checkpoint.Weights]:
    """(backbone state_dict of torch tensors in reference order, head params as numpy or None, weights)."""
    # torch is optional (jsphere[torch]): imported where an export needs it, so the commands load without it
    import torch

    from converters.torch_reference import backbones as torch_backbones

    weights = checkpoint.load_weights(ckpt, step)
    spec = weights.meta["model"]
    exportable(spec["name"], ckpt)
    model = nnx.eval_shape(lambda: models.build(spec["name"], embed_dim=int(spec["embed_dim"]), rngs=nnx.Rngs(0),
                                                **spec.get("kwargs", {})))  # the module tree only
    tensors = mapping.pure_to_torch(model, weights.backbone)
    reference = torch_backbones.build(spec["name"], int(spec["embed_dim"]), **spec.get("kwargs", {}))
    result = reference.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=False)
    unexpected_missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if unexpected_missing or result.unexpected_keys:
        raise ValueError(f"{ckpt}: cannot fill the PyTorch {spec['name']}: missing {unexpected_missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    state = OrderedDict((k, v.detach().clone()) for k, v in reference.state_dict().items())
    head = weights.head["params"] if weights.head else None
    return state, head, weights


def exportable(name: str, ckpt: str) -> None:
    """Refuse a checkpoint whose backbone cannot be exported in this process, saying what is missing: the
    backbone itself (a registered one whose module was not imported) or its PyTorch definition."""
    from converters.torch_reference import backbones as torch_backbones  # needs torch, as the exports do

    if name not in models.names():
        raise ValueError(f"{ckpt}: the checkpoint's backbone {name!r} is not known to this process: a backbone of "
                         "your own is registered when the module defining it is imported; pass --import MODULE (the "
                         "module with its @jsphere.models.register and its PyTorch definition)")
    if not torch_backbones.has_definition(name):
        raise ValueError(f"{ckpt}: {torch_backbones.missing_definition(name)}")
