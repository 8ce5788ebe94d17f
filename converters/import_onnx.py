"""``python -m converters.import_onnx --onnx model.onnx --out DIR [--arch auto|NAME] [--model-kwargs JSON]``:
an ONNX recognition model as a jsphere checkpoint (needs ``pip install 'jsphere[onnx]'``).

Made for insightface's released models — ``buffalo_l/w600k_r50.onnx`` (iresnet50), ``antelopev2/glintr100.onnx``
(iresnet100), ``buffalo_s/w600k_mbf.onnx`` (mobilefacenet) — and for what ``converters.export_onnx`` writes. ONNX
initializer names are arbitrary, so the graph's weighted layers are matched, in execution order, to the layers
of the jsphere backbone that the graph's shapes describe (read like ``converters.import_torch`` reads a .pth:
MobileFaceNet scale/blocks, IResNet/SFNet depth, embedding size; the graph also tells ``sfnet*`` from
``sfnet*_deprecated`` by where its ReLU sits). ``--arch``/``--model-kwargs`` override what was read. What exporters
change is undone exactly:

* a BatchNorm folded into the preceding Conv/Gemm (PyTorch's exporter does this in eval mode) becomes that
  layer's weights plus a BatchNorm computing ``x + bias`` (scale 1, mean 0, ``var + 1e-5 = 1``);
* BatchNorm epsilons other than 1e-5 are folded into the running variance;
* an in-graph input normalisation (``Sub``/``Mul`` on 0-255 pixels, as in MXNet-converted models) is folded into
  the first convolution; without one the graph is taken to expect jsphere's (and insightface's)
  ``(x - 127.5) / 127.5`` RGB input.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from converters import folding, import_torch, infer, layer_order, onnx_graph, staging
from jsphere import cli
from jsphere.models import iresnet, sfnet

LAYOUT = "onnx"


def _three_by_three(convs: list[onnx_graph.Op]) -> list[onnx_graph.Op]:
    return [c for c in convs if c.weight.shape[2:] == (3, 3)]


def infer_model(graph: onnx_graph.Graph, where: str) -> infer.Found:
    """The jsphere backbone whose layers the graph's weighted nodes describe."""
    convs = [op for op in graph.ops if op.kind == "conv"]
    linears = [op for op in graph.ops if op.kind == "linear"]
    if not convs or not linears:
        raise ValueError(f"{where}: {len(convs)} Conv and {len(linears)} Gemm/MatMul nodes: not a face-recognition "
                         "backbone jsphere knows (IResNet, MobileFaceNet, SFNet)")
    last = graph.ops[-1]
    dim = int(last.weight.shape[0])
    if any(c.groups > 1 for c in convs):
        width = convs[0].weight.shape[0]
        blocks, count = [], 0
        for conv in _three_by_three(convs[1:]):
            if conv.stride == 2:
                blocks.append(count)
                count = 0
            else:
                count += 1
        blocks.append(count)
        if width % 64 or len(blocks) != 4:
            raise ValueError(f"{where}: grouped convolutions as in a MobileFaceNet, but {width} stem channels and "
                             f"{len(blocks) - 1} stride-2 3x3 convolutions (arcface_torch's: 64 * scale and 3)")
        arch, kwargs = infer.mobilefacenet_name(tuple(blocks), width // 64)
        return infer.Found(arch, dim, kwargs, f"MobileFaceNet scale {width // 64}, blocks {tuple(blocks)}, {dim}-d")
    body = _three_by_three(convs[1:])
    if any(op.kind == "prelu" for op in graph.ops):
        blocks = tuple(sum(c.weight.shape[0] == p for c in body) // 2 for p in iresnet.PLANES)
        depth = infer.depth_of(blocks, iresnet.DEPTHS, "iresnet", where)
        trained = last.kind == "bn" and not np.allclose(last.weight, 1.0)
        return infer.Found(f"iresnet{depth}", dim, {"features_scale": "trainable"} if trained else {},
                           f"IResNet-{depth}, {dim}-d embedding")
    stage_convs = [sum(c.weight.shape[0] == ch for c in _three_by_three(convs)) for ch in sfnet.CHANNELS]
    depth = infer.depth_of(tuple((n - 1) // 2 for n in stage_convs), sfnet.DEPTHS, "sfnet", where)
    if last.kind == "bn":
        return infer.Found(f"sfnet{depth}_bn", dim, {}, f"SFNet-{depth} with BatchNorm, {dim}-d embedding")
    if graph.residual_adds and not graph.relu_after_add:
        return infer.Found(f"sfnet{depth}_deprecated", dim, {}, f"SFNet-{depth}, ReLU before the residual add "
                                                                 f"(OpenSphere v1 sfnet_deprecated), {dim}-d embedding")
    return infer.Found(f"sfnet{depth}", dim, {}, f"SFNet-{depth}, ReLU after the residual add, {dim}-d embedding")


def _put(sd: dict, key: str, tensors: dict) -> None:
    for leaf, value in tensors.items():
        sd[f"{key}.{leaf}"] = np.asarray(value, np.float32)


def to_torch_state_dict(graph: onnx_graph.Graph, found: infer.Found, where: str) -> OrderedDict:
    """Torch-named tensors of ``found`` computing what the graph computes (for jsphere's input convention)."""
    expected = layer_order.call_order(found.arch, found.embed_dim, found.kwargs)
    ops = graph.ops
    sd: OrderedDict[str, np.ndarray] = OrderedDict()

    def fail(message: str):
        raise ValueError(f"{where}: the graph does not match {found.arch} ({found.description}): {message}")

    i = j = 0
    while i < len(expected):
        e = expected[i]
        if j >= len(ops):
            fail(f"it ends before layer {e.key} ({e.kind})")
        op = ops[j]
        if op.kind != e.kind:
            fail(f"layer {e.key} is a {e.kind}, the graph's node {op.node} is a {op.kind}")
        if e.kind in ("conv", "linear"):
            if tuple(op.weight.shape) != e.shape:
                fail(f"node {op.node} has weight {tuple(op.weight.shape)}, layer {e.key} needs {e.shape}")
            if e.kind == "conv" and (op.stride, op.groups, op.padding) != (e.stride, e.groups, e.padding):
                fail(f"node {op.node} has stride/groups/padding {(op.stride, op.groups, op.padding)}, layer {e.key} "
                     f"{(e.stride, e.groups, e.padding)}")
            sd[f"{e.key}.weight"] = np.asarray(op.weight, np.float32)
            bias = np.zeros(e.shape[0], np.float32) if op.bias is None else np.asarray(op.bias, np.float32)
            following = ops[j + 1] if j + 1 < len(ops) else None
            has_own_bn = following is not None and following.kind == "bn" and following.input == op.output
            if i + 1 < len(expected) and expected[i + 1].kind == "bn" and not has_own_bn:  # folded by the exporter
                if e.bias:
                    sd[f"{e.key}.bias"], bias = bias, np.zeros_like(bias)
                _put(sd, expected[i + 1].key, folding.identity_batchnorm(bias))
                i += 2
                j += 1
                continue
            if e.bias:
                sd[f"{e.key}.bias"] = bias
            elif np.any(bias != 0):
                fail(f"node {op.node} has a bias that layer {e.key} has no place for")
        elif e.kind == "bn":
            if op.weight.size != e.shape[0]:
                fail(f"BatchNormalization {op.node} has {op.weight.size} channels, layer {e.key} {e.shape[0]}")
            _put(sd, e.key, folding.batchnorm(op.weight, op.bias, op.mean, op.var, op.eps))
        else:
            slope = np.asarray(op.weight, np.float32).reshape(-1)
            if slope.size == 1:
                slope = np.full(e.shape, slope[0], np.float32)
            if slope.shape != e.shape:
                fail(f"PRelu {op.node} has {slope.size} slopes, layer {e.key} {e.shape[0]}")
            sd[f"{e.key}.weight"] = slope
        i += 1
        j += 1
    if j < len(ops):
        fail(f"{len(ops) - j} weighted nodes are left after the last layer (first: {ops[j].node})")
    if graph.normalises_input:
        first = f"{expected[0].key}.weight"
        sd[first] = folding.input_scale(sd[first], graph.input_scale, graph.input_offset, where)
    return sd


def import_onnx(path: str, out: str, *, arch: str = import_torch.AUTO, kwargs: dict | None = None,
                report=None) -> Path:
    staging.check_free(out)
    where = str(path)
    graph = onnx_graph.read(path)
    inferred = infer_model(graph, where)
    sd = to_torch_state_dict(graph, inferred, where)
    found = import_torch.resolve(sd, LAYOUT, where, arch=inferred.arch if arch == import_torch.AUTO else arch,
                                 kwargs=kwargs)
    found = replace(found, description=inferred.description)
    if report:
        report(found, LAYOUT + (", input normalisation folded into the first conv" if graph.normalises_input else ""))
    pure = import_torch.backbone_to_pure(found.arch, sd, found.embed_dim, found.kwargs, where)
    source = {"converter": "converters.import_onnx", "file": where, "layout": LAYOUT,
              "input_normalisation_folded": graph.normalises_input}
    return import_torch.save(out, found=found, pure=pure, source=source)


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.import_onnx", description=__doc__)
    p.add_argument("--onnx", required=True, help="model.onnx")
    import_torch.add_model_arguments(p)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    path = import_onnx(a.onnx, a.out, arch=a.arch, kwargs=import_torch.parse_json_object(a.model_kwargs,
                                                                                        "--model-kwargs"),
                       report=import_torch.print_found)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    cli.run("converters.import_onnx", main)
