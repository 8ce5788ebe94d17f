"""Which jsphere backbone an ONNX graph's layers describe, with every shape hyper-parameter read from the graph.

The depth of the residual families is the number of residual sums at each spatial size (56, 28, 14, 7): blocks
for IResNet and IR, the blocks after each stage's first convolution for SFNet. Widths come from the layers:
SFNet's four stride-2 stage convolutions give its ``width``, MobileFaceNet's stem gives ``scale`` and its
stride-2 depthwise convolutions split the blocks per stage. The embedding is the output size of the last layer.

* grouped convolutions: MobileFaceNet — with ``Clip(0, 6)`` activations foamliu's ``mobilefacenet_relu6``, else
  insightface's (PReLU) ``mobilefacenet`` / ``mobilefacenet_large``;
* PReLU with squeeze-excitation gates, 1x1 MaxPool shortcuts or stride-1 1x1 convolutions in the trunk: IR /
  IR-SE (``ir_*``, ``ir_se_*``: basic or bottleneck units, with or without the BN inside the unit, the output
  BN's affine parameters); other PReLU networks: IResNet (a trained ``features`` scale when it is not 1);
* otherwise SFNet: with BatchNorm when the embedding ends in one, ``_deprecated`` when the ReLU comes before
  the residual sum; since every graph without grouped convolutions or PReLU reaches this case, its layers are
  checked against SFNet's (``mismatch``);
* backbones registered with ``jsphere.models.register`` are tried (with their default keyword arguments) when
  none of jsphere's families fits.

A graph that fits none is refused: "no registered architecture matches", naming what the graph holds and why the
nearest family does not fit, never forced into the nearest one.
"""

from __future__ import annotations

import numpy as np

from converters.core import layer_order
from converters.core.found import Found, depth_of, mobilefacenet_name, sfnet_width
from converters.onnx_format.graph_reader import Graph, Op
from jsphere import models
from jsphere.models import edgeface, ir, iresnet, sfnet

STAGE_SIZES = (56, 28, 14, 7)
# Backbones whose ONNX graphs jsphere cannot read back, and why (``importable``): their exports still work.
NOT_IMPORTABLE = {name: "EdgeNeXt's LayerNorm, GELU and channel attention have no counterpart in jsphere's ONNX reader "
                        "(import its .pt file with converters.import_torch)" for name in edgeface.VARIANTS}


def importable(name: str) -> bool:
    """Whether an ONNX graph of backbone ``name`` can be read back (``NOT_IMPORTABLE`` says why not)."""
    return name not in NOT_IMPORTABLE


def embed_dim(graph: Graph) -> int:
    return int(graph.ops[-1].weight.shape[0])


def _blocks_by_size(graph: Graph) -> tuple[int, ...]:
    return tuple(sum(s == size for s in graph.residual_sizes) for size in STAGE_SIZES)


def _mobilefacenet(graph: Graph, convs: list[Op], dim: int, where: str) -> Found:
    if graph.relu6:
        if "mobilefacenet_relu6" not in models.names():
            raise ValueError(f"{where}: a MobileFaceNet with ReLU6 (Clip) activations; this jsphere has no such "
                             "backbone")
        return Found("mobilefacenet_relu6", dim, {}, f"foamliu's MobileFaceNet (ReLU6), {dim}-d embedding",
                     origin="foamliu")
    if any(c.groups > 1 and tuple(c.weight.shape[2:]) == (7, 6) for c in convs):
        raise ValueError(f"{where}: a MobileFaceNet trained on 112x96 crops (its GDC kernel is 7x6, the final map of a "
                         "112x96 input): jsphere's models take 112x112 faces aligned to the ArcFace template")
    width = convs[0].weight.shape[0]
    blocks, count = [], 0
    for conv in convs[1:]:
        if conv.weight.shape[2:] != (3, 3):
            continue
        if conv.stride == 2:
            blocks.append(count)
            count = 0
        else:
            count += 1
    blocks.append(count)
    if width % 64 or len(blocks) != 4:
        raise ValueError(f"{where}: grouped convolutions as in a MobileFaceNet, but {width} stem channels and "
                         f"{len(blocks) - 1} stride-2 3x3 convolutions (arcface_torch's: 64 * scale and 3)")
    arch, kwargs = mobilefacenet_name(tuple(blocks), width // 64)
    return Found(arch, dim, kwargs, f"MobileFaceNet scale {width // 64}, blocks {tuple(blocks)}, {dim}-d")


def _is_ir(graph: Graph, convs: list[Op]) -> bool:
    bottleneck = any(c.weight.shape[2:] == (1, 1) and c.stride == 1 and c.in_size not in (None, 1) for c in convs)
    return bool(graph.gates or graph.subsamples or bottleneck)


def _ir(graph: Graph, convs: list[Op], dim: int, where: str) -> Found:
    depth = depth_of(_blocks_by_size(graph), ir.DEPTHS, "IR", where)
    se = graph.gates > 0
    bottleneck = any(c.weight.shape[2:] == (1, 1) and c.stride == 1 and c.in_size not in (None, 1) for c in convs)
    kwargs: dict = {}
    if bottleneck != ir.default_bottleneck(depth):
        kwargs["bottleneck"] = bottleneck
    if not bottleneck:  # the unit's first conv is followed by a BN (AdaFace) or directly by the PReLU
        ops = graph.ops
        first = ops.index(convs[1])
        unit_bn = ops[first + 1].kind == "bn" or convs[1].bias is not None
        if not unit_bn:
            kwargs["unit_bn"] = False
    last = graph.ops[-1]
    if last.kind == "bn" and not (np.allclose(last.weight, 1.0) and np.allclose(last.bias, 0.0)):
        kwargs["features_affine"] = True
    name = f"ir_se_{depth}" if se else f"ir_{depth}"
    return Found(name, dim, kwargs, f"IR{'-SE' if se else ''}-{depth}, {dim}-d embedding")


def _sfnet(graph: Graph, convs: list[Op], dim: int, where: str) -> Found:
    depth = depth_of(_blocks_by_size(graph), sfnet.DEPTHS, "sfnet", where)
    channels = tuple(int(c.weight.shape[0]) for c in convs if c.stride == 2)
    if len(channels) != 4:
        raise ValueError(f"{where}: an SFNet-like graph with {len(channels)} stride-2 convolutions (SFNet has 4)")
    width = sfnet_width(channels, where)
    kwargs = {} if width == 1 else {"width": width}
    size = f", {channels[0]}-channel stem" if kwargs else ""
    if graph.ops[-1].kind == "bn":
        return Found(f"sfnet{depth}_bn", dim, kwargs, f"SFNet-{depth} with BatchNorm, {dim}-d embedding{size}")
    if graph.residual_adds and not graph.relu_after_add:
        return Found(f"sfnet{depth}_deprecated", dim, kwargs,
                           f"SFNet-{depth}, ReLU before the residual add (OpenSphere v1 sfnet_deprecated), "
                           f"{dim}-d embedding{size}")
    return Found(f"sfnet{depth}", dim, kwargs,
                       f"SFNet-{depth}, ReLU after the residual add, {dim}-d embedding{size}")


def _family(graph: Graph, convs: list[Op], dim: int, where: str) -> tuple[Found, bool]:
    """The jsphere family the graph's operators point to, and whether its layers still need checking (the SFNet
    case, which every graph without grouped convolutions or PReLU reaches)."""
    if any(c.groups > 1 for c in convs):
        return _mobilefacenet(graph, convs, dim, where), False
    if any(op.kind == "prelu" for op in graph.ops):
        if _is_ir(graph, convs):
            return _ir(graph, convs, dim, where), False
        depth = depth_of(_blocks_by_size(graph), iresnet.DEPTHS, "iresnet", where)
        last = graph.ops[-1]
        trained = last.kind == "bn" and not np.allclose(last.weight, 1.0)
        return Found(f"iresnet{depth}", dim, {"features_scale": "trainable"} if trained else {},
                     f"IResNet-{depth}, {dim}-d embedding"), False
    return _sfnet(graph, convs, dim, where), True


def _weighted_shapes(graph: Graph) -> list[tuple[int, int]]:
    """(outputs, weights per output) of every Conv and Gemm/MatMul of the graph: a 1x1 convolution over a 1x1
    map and a Linear layer read alike."""
    return [(int(op.weight.shape[0]), int(op.weight.size // op.weight.shape[0]))
            for op in graph.ops if op.kind in ("conv", "linear")]


def mismatch(graph: Graph, found: Found) -> str | None:
    """Why ``found``'s convolution and linear layers are not the graph's (None when they are): their counts and
    weight shapes, compared as multisets (exporters may list a shortcut before its residual branch)."""
    layers = layer_order.call_order(found.arch, found.embed_dim, found.kwargs)
    expected = sorted((layer.shape[0], int(np.prod(layer.shape[1:]))) for layer in layers
                      if layer.kind in ("conv", "linear"))
    seen = sorted(_weighted_shapes(graph))
    if len(expected) != len(seen):
        return f"{found.arch} has {len(expected)} Conv/Linear layers, the graph {len(seen)}"
    for shape in seen:
        if shape not in expected:
            return (f"the graph has a layer of {shape[0]} outputs x {shape[1]} weights each, which {found.arch} "
                    "has not")
        expected.remove(shape)
    return None


def _registered(graph: Graph, dim: int) -> Found | None:
    """The first backbone registered with ``jsphere.models.register`` whose layers are the graph's."""
    for name in models.names():
        if models.is_built_in(name):
            continue
        candidate = Found(name, dim, {}, f"{name} (registered backbone), {dim}-d embedding")
        try:
            if mismatch(graph, candidate) is None:
                return candidate
        except (TypeError, ValueError):  # it cannot be built at this embedding size with its defaults
            continue
    return None


def describe_graph(graph: Graph) -> str:
    """What the graph holds, for a refusal: its weighted layers by kind and its first convolutions' shapes."""
    counts = {kind: sum(op.kind == kind for op in graph.ops) for kind in ("conv", "bn", "prelu", "linear")}
    convs = [op for op in graph.ops if op.kind == "conv"]
    first = ", ".join(f"{op.weight.shape[1] * op.groups}->{op.weight.shape[0]} {op.weight.shape[2]}x"
                      f"{op.weight.shape[3]}/{op.stride}" + (f" g{op.groups}" if op.groups > 1 else "")
                      for op in convs[:4])
    return (f"{counts['conv']} Conv ({first}{' ...' if len(convs) > 4 else ''}), {counts['bn']} BatchNorm, "
            f"{counts['prelu']} PRelu, {counts['linear']} Gemm/MatMul, {len(graph.residual_sizes)} residual sums, "
            f"{graph.gates} gates, a {embed_dim(graph)}-d output")


def infer_model(graph: Graph, where: str) -> Found:
    """The registered backbone whose layers the graph's weighted nodes describe."""
    convs = [op for op in graph.ops if op.kind == "conv"]
    embedding = [op for op in graph.ops[-3:] if op.kind == "linear" or op.pointwise_on_one_pixel]
    if not convs or not embedding:
        linears = sum(op.kind == "linear" for op in graph.ops)
        raise ValueError(f"{where}: {len(convs)} Conv and {linears} Gemm/MatMul nodes and no embedding layer (a "
                         "Gemm/MatMul, or a 1x1 Conv over the 1x1 map, near the output): no registered "
                         "architecture matches (IResNet, IR, MobileFaceNet, SFNet, or yours); name one with --arch")
    dim = embed_dim(graph)
    try:
        found, check = _family(graph, convs, dim, where)
        problem, nearest = (mismatch(graph, found) if check else None), found.arch
    except ValueError as e:
        problem, nearest = str(e).removeprefix(f"{where}: "), None
    if problem is None:
        return found
    registered = _registered(graph, dim)
    if registered is not None:
        return registered
    own = [n for n in models.names() if not models.is_built_in(n)]
    tried = "jsphere's IResNet, IR, MobileFaceNet and SFNet families" + (f" and {', '.join(own)}" if own else "")
    why = f"the nearest, {nearest}, does not fit: {problem}" if nearest else problem
    raise ValueError(f"{where}: no registered architecture matches the graph ({describe_graph(graph)}); {why}. "
                     f"Tried {tried}. A backbone of your own is matched once registered (@jsphere.models.register, "
                     "imported with --import MODULE); --arch NAME names one")
