"""An ONNX recognition model as the sequence of its weighted layers (needs the ``onnx`` package: ``jsphere[onnx]``).

The graph is walked in node order from its single image input. Weighted nodes become ``Op`` records: ``Conv``
(weight, optional bias — a BatchNorm folded in by the exporter shows up as a bias), ``BatchNormalization``
(with its epsilon), ``PRelu``, ``Gemm`` / ``MatMul`` (+ a following constant ``Add`` as bias) as ``linear`` with a
torch-layout [out, in] weight. ``Sub``/``Add``/``Mul``/``Div`` by constants before the first convolution are the
in-graph input normalisation of MXNet-converted models and are returned as one affine map of the input.
Shape-computing side branches, ``Relu``, residual ``Add``, ``Flatten``/``Reshape``, ``Dropout`` and ``Identity``
carry no weights. Any other operator on the image path is refused, naming the node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PASS_THROUGH = {"Identity", "Dropout"}
STRUCTURE = {"Relu", "Add", "Flatten", "Reshape", "Squeeze", "Unsqueeze", *PASS_THROUGH}
SHAPE_OPS = {"Shape", "Size"}
ARITHMETIC = {"Sub": "sub", "Add": "add", "Mul": "mul", "Div": "div"}


@dataclass
class Op:
    """One weighted node: kind ('conv', 'bn', 'prelu', 'linear'), node name, input/output tensors, parameters."""

    kind: str
    node: str
    input: str
    output: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    mean: np.ndarray | None = None
    var: np.ndarray | None = None
    eps: float = 1e-5
    stride: int = 1
    groups: int = 1
    padding: int = 0


@dataclass
class Graph:
    ops: list[Op]
    input_scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    input_offset: np.ndarray = field(default_factory=lambda: np.zeros(1))
    normalises_input: bool = False
    residual_adds: int = 0
    relu_after_add: bool = False  # SFNet: ReLU(x + f(x)); sfnet_deprecated adds after the ReLU


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ValueError("reading ONNX files needs the onnx package: pip install 'jsphere[onnx]'") from None
    return onnx, numpy_helper


CONSTANT_FOLDABLE = {"Identity", "Unsqueeze", "Squeeze", "Reshape", "Cast"}


def _fold_constant(node, values: list[np.ndarray]) -> np.ndarray:
    """The value of a shape-only node over constants (e.g. a PRelu slope unsqueezed at run time)."""
    x = np.asarray(values[0])
    if node.op_type in ("Identity", "Cast"):
        return x
    if node.op_type == "Reshape":
        shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(values[1])]
        return x.reshape(shape)
    axes = values[1] if len(values) > 1 else _attributes(node).get("axes")
    if node.op_type == "Squeeze":
        return np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes))
    for axis in sorted(int(a) % (x.ndim + len(axes)) for a in axes):
        x = np.expand_dims(x, axis)
    return x


def _attributes(node) -> dict:
    onnx, _ = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Reader:
    def __init__(self, model, where: str):
        _, numpy_helper = _onnx()
        self.where = where
        graph = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                value = _attributes(node).get("value")
                if value is not None:
                    self.consts[node.output[0]] = numpy_helper.to_array(value)
            elif node.op_type in CONSTANT_FOLDABLE and node.input and all(n in self.consts for n in node.input if n):
                self.consts[node.output[0]] = _fold_constant(node, [self.consts[n] for n in node.input if n])
        inputs = [i.name for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ValueError(f"{where}: expected one image input, the graph has {len(inputs)}: {inputs}")
        self.image = inputs[0]
        self.nodes = list(graph.node)

    def const(self, name: str, node) -> np.ndarray:
        if name not in self.consts:
            raise ValueError(f"{self.where}: node {node.name or node.op_type} ({node.op_type}) takes {name!r} as a "
                             "weight, but it is not a constant of the graph")
        return np.asarray(self.consts[name])


def _conv(r: _Reader, node, source: str) -> Op:
    attrs = _attributes(node)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", "NOTSET") or any(d != 1 for d in attrs.get("dilations", [1])):
        raise ValueError(f"{r.where}: Conv {node.name} uses auto_pad/dilations, which no jsphere backbone has")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    strides = list(attrs.get("strides", [1, 1]))
    if len(set(pads)) > 1 or len(set(strides)) > 1:
        raise ValueError(f"{r.where}: Conv {node.name} has asymmetric pads {pads} or strides {strides}")
    bias = r.const(node.input[2], node) if len(node.input) > 2 and node.input[2] else None
    return Op("conv", node.name, source, node.output[0], r.const(node.input[1], node), bias,
              stride=int(strides[0]), groups=int(attrs.get("group", 1)), padding=int(pads[0]))


def _batchnorm(r: _Reader, node, source: str) -> Op:
    attrs = _attributes(node)
    if attrs.get("training_mode", 0):
        raise ValueError(f"{r.where}: BatchNormalization {node.name} is in training mode; export it in eval mode")
    scale, bias, mean, var = (r.const(n, node) for n in node.input[1:5])
    return Op("bn", node.name, source, node.output[0], scale, bias, mean, var, eps=float(attrs.get("epsilon", 1e-5)))


def _linear(r: _Reader, node, source: str) -> Op:
    if node.op_type == "MatMul":
        return Op("linear", node.name, source, node.output[0], r.const(node.input[1], node).T)
    attrs = _attributes(node)
    if attrs.get("transA", 0):
        raise ValueError(f"{r.where}: Gemm {node.name} transposes its input (transA=1)")
    weight = r.const(node.input[1], node) * float(attrs.get("alpha", 1.0))
    weight = weight if attrs.get("transB", 0) else weight.T
    bias = (r.const(node.input[2], node) * float(attrs.get("beta", 1.0))).reshape(-1) \
        if len(node.input) > 2 and node.input[2] else None
    return Op("linear", node.name, source, node.output[0], weight, bias)


def read(path: str | os.PathLike) -> Graph:
    """The weighted layers of an ONNX model in execution order, its input normalisation and structure facts."""
    onnx, _ = _onnx()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError and friends: not an ONNX file
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from None
    r = _Reader(model, str(path))
    alias = {}  # tensor -> the tensor it passes through unchanged
    image = {r.image}  # tensors computed from the image (shape side branches excluded)
    producer: dict[str, str] = {}
    graph = Graph([])
    affine_head = r.image
    scale, offset = np.ones(1), np.zeros(1)

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for node in r.nodes:
        sources = [n for n in node.input if n in image]
        if not sources or node.op_type == "Constant":
            continue
        if node.op_type in SHAPE_OPS:
            continue
        image.update(node.output)
        source = resolve(sources[0])
        producer[node.output[0]] = node.op_type
        op = node.op_type
        if op in ARITHMETIC and len(sources) == 1:
            constant = r.const(next(n for n in node.input if n not in image), node).astype(np.float64)
            if not graph.ops and source == affine_head:
                c = constant.reshape(-1)
                if op == "Sub" and node.input[0] in image:
                    offset = offset - c
                elif op == "Sub":
                    scale, offset = -scale, c - offset
                elif op == "Add":
                    offset = offset + c
                elif op == "Mul":
                    scale, offset = scale * c, offset * c
                elif node.input[0] in image:
                    scale, offset = scale / c, offset / c
                else:
                    raise ValueError(f"{r.where}: node {node.name} divides a constant by the image")
                affine_head = node.output[0]
                graph.normalises_input = True
                continue
            last = graph.ops[-1] if graph.ops else None
            if op == "Add" and last and last.kind == "linear" and last.bias is None and source == last.output:
                last.bias = constant.reshape(-1).astype(np.float32)
                last.output = node.output[0]
                continue
            raise ValueError(f"{r.where}: node {node.name} ({op} by a constant) sits inside the network; no jsphere "
                             "backbone has such a layer")
        if op == "Conv":
            if not graph.ops and source != affine_head:
                raise ValueError(f"{r.where}: the first Conv {node.name} does not read the image (or its "
                                 "normalisation) directly")
            graph.ops.append(_conv(r, node, source))
        elif op == "BatchNormalization":
            graph.ops.append(_batchnorm(r, node, source))
        elif op == "PRelu":
            graph.ops.append(Op("prelu", node.name, source, node.output[0], r.const(node.input[1], node)))
        elif op in ("Gemm", "MatMul"):
            graph.ops.append(_linear(r, node, source))
        elif op in PASS_THROUGH:
            alias[node.output[0]] = source
        elif op in STRUCTURE:
            graph.residual_adds += op == "Add"
            graph.relu_after_add |= op == "Relu" and producer.get(source) == "Add"
        else:
            raise ValueError(f"{r.where}: node {node.name or op} ({op}) has no counterpart in jsphere's backbones "
                             "(IResNet, MobileFaceNet, SFNet)")
    if not graph.ops:
        raise ValueError(f"{r.where}: no weighted layers found on the image path")
    graph.input_scale, graph.input_offset = scale, offset
    return graph
