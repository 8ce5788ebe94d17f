"""A state_dict of a backbone registered with ``jsphere.models.register``: its PyTorch names and shapes are those of
the module tree (``converters.core.mapping``), so it is recognised when its keys are exactly the registered
backbone's (built with its default keyword arguments) and every shape fits one embedding size, which is read off
the tensors whose shape follows it."""

from __future__ import annotations

from flax import nnx

from converters.core import keys, mapping
from converters.core.found import Found
from jsphere import models

PROBE_DIMS = (16, 17)  # two embedding sizes: the tensors whose shape differs between them carry the embedding size


def _torch_shapes(arch: str, embed_dim: int) -> dict[str, tuple[int, ...]]:
    model = nnx.eval_shape(lambda: models.build(arch, embed_dim=embed_dim, rngs=nnx.Rngs(0)))
    state = dict(nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, models.FrozenParam, nnx.BatchStat))))
    shapes = {}
    for path, key, kind in mapping.leaf_table(model):
        shape = tuple(state[path].shape)
        if path[-1] == "kernel":  # mapping.to_torch's transposes: conv HWIO -> OIHW, linear [in, out] -> [out, in]
            shape = (shape[3], shape[2], shape[0], shape[1]) if kind is nnx.Conv else shape[::-1]
        shapes[key] = shape
    return shapes


def _embed_dim(state_dict: dict, arch: str) -> int | None:
    """The embedding size at which ``arch``'s PyTorch names and shapes are exactly the state_dict's, or None."""
    a, b = (_torch_shapes(arch, d) for d in PROBE_DIMS)
    given = {k for k in state_dict if not k.endswith("num_batches_tracked")}
    if set(a) != given:
        return None
    dim = None
    for key, shape in a.items():
        axes = [i for i, (x, y) in enumerate(zip(shape, b[key], strict=True)) if x != y]
        if axes:
            dim = keys.shape(state_dict, key)[axes[0]] - shape[axes[0]] + PROBE_DIMS[0]
            break
    dim = dim or PROBE_DIMS[0]
    if dim < 1:
        return None
    expected = a if dim == PROBE_DIMS[0] else _torch_shapes(arch, dim)
    return dim if all(keys.shape(state_dict, k) == s for k, s in expected.items()) else None


def registered(state_dict: dict) -> list[Found]:
    """The registered backbones (not jsphere's own) whose names and shapes are exactly the state_dict's."""
    found = []
    for name in models.names():
        if models.is_built_in(name):
            continue
        try:
            dim = _embed_dim(state_dict, name)
        except (TypeError, ValueError, KeyError):  # it cannot be built or mapped with its defaults
            continue
        if dim is not None:
            found.append(Found(name, dim, {}, f"{name} (registered backbone), {dim}-d embedding"))
    return found
