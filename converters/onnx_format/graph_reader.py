"""An ONNX recognition model as the sequence of its weighted layers (needs the ``onnx`` package: ``jsphere[onnx]``).

The graph is followed from its single image input. Weighted nodes become ``Op`` records: ``Conv`` (weight,
optional bias — a BatchNorm folded in by the exporter shows up as a bias — and the spatial size it reads),
``BatchNormalization`` (with its epsilon), ``PRelu`` (any slope shape: [C], [C, 1, 1], [1, C, 1, 1], [1]),
``Gemm`` / ``MatMul`` (+ a following constant ``Add`` as bias) as ``linear`` with a torch-layout [out, in] weight.
The layers are listed in data-flow order with, at every residual sum or gate, the branch holding more weighted
layers first (jsphere's order; exporters may list a shortcut convolution first, as AdaFace's and TreB1eN's IR
models compute it first).

What the graph does around its layers is read, not guessed:

* input preprocessing before the first convolution: a ``Transpose`` from NHWC, ``Cast``, and ``Sub``/``Add``/
  ``Mul``/``Div`` by constants, returned as one per-channel affine map of the graph's input;
* structure without weights: ``Relu``, ``Clip`` (0, 6) as ReLU6, residual ``Add``, squeeze-excitation gates
  (``GlobalAveragePool``/``ReduceMean`` -> ... -> ``Sigmoid`` -> ``Mul``), 1x1 ``MaxPool`` subsampling,
  ``Flatten``/``Reshape``/``Squeeze``/``Unsqueeze``, ``Dropout``, ``Identity``, shape side branches;
* an L2 normalisation of the output (``ReduceL2``/``LpNormalization``/``Pow``+``ReduceSum``+``Sqrt``, ``Div``):
  dropped (it does not change cosine similarities) and reported.

Any other operator on the image path is refused, naming the node.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from converters.onnx_format import model_file

if TYPE_CHECKING:
    import onnx

PASS_THROUGH = {"Identity", "Dropout", "Cast"}
FLATTEN = {"Flatten", "Reshape", "Squeeze", "Unsqueeze"}
SHAPE_OPS = {"Shape", "Size"}
ARITHMETIC = {"Sub", "Add", "Mul", "Div"}
OUTPUT_NORM = {"ReduceL2", "LpNormalization", "Pow", "ReduceSum", "ReduceSumSquare", "Sqrt", "Max", "Expand",
               "Reciprocal"}
POOL_TO_ONE = {"GlobalAveragePool", "ReduceMean"}
DEFAULT_SIZE = 112  # jsphere's (and every recognition model's) input size, for graphs with dynamic dims


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
    in_size: int | None = None  # the spatial size a Conv reads

    @property
    def pointwise_on_one_pixel(self) -> bool:
        """A 1x1 convolution over a 1x1 map: the same computation as a Linear layer (Paddle's MobileFaceNet
        embedding)."""
        return (self.kind == "conv" and tuple(self.weight.shape[2:]) == (1, 1) and self.in_size == 1
                and self.groups == 1 and self.padding == 0)


@dataclass
class Graph:
    ops: list[Op]
    input_scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    input_offset: np.ndarray = field(default_factory=lambda: np.zeros(1))
    normalises_input: bool = False  # an affine map of the input precedes the first convolution
    input_layout: str = "NCHW"
    residual_sizes: list[int | None] = field(default_factory=list)  # the spatial size of each residual sum
    relu_after_add: bool = False  # SFNet: ReLU(x + f(x)); sfnet_deprecated adds after the ReLU
    relu6: int = 0  # Clip(0, 6) activations
    gates: int = 0  # squeeze-excitation products x * sigmoid(...)
    subsamples: int = 0  # 1x1 stride-s MaxPool shortcuts (IR units whose width does not change)
    output_normalised: bool = False
    metadata: dict[str, str] = field(default_factory=dict)  # the model's metadata_props (converters.export_onnx's)

    @property
    def residual_adds(self) -> int:
        return len(self.residual_sizes)


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
    onnx = model_file.onnx_module()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _input_size(value_info) -> int:
    """The spatial size a static NCHW / NHWC image input declares (112 when it is dynamic)."""
    dims = [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]
    if len(dims) == 4 and dims[1] == 3 and dims[2]:
        return int(dims[2])
    if len(dims) == 4 and dims[3] == 3 and dims[1]:
        return int(dims[1])
    return DEFAULT_SIZE


class Reader:
    """A model's constants (initializers, ``Constant`` nodes and shape-only nodes over them, folded), its single
    image input with the size it declares, and its nodes."""

    def __init__(self, model: onnx.ModelProto, where: str):
        numpy_helper = model_file.onnx_module().numpy_helper
        self.where = where
        graph = model.graph
        self.consts = {}
        for t in graph.initializer:
            self.consts[t.name] = self._array(numpy_helper, t)
        for node in graph.node:
            if node.op_type == "Constant":
                value = _attributes(node).get("value")
                if value is not None:
                    self.consts[node.output[0]] = self._array(numpy_helper, value)
            elif node.op_type in CONSTANT_FOLDABLE and node.input and all(n in self.consts for n in node.input if n):
                try:
                    self.consts[node.output[0]] = _fold_constant(node, [self.consts[n] for n in node.input if n])
                except (ValueError, TypeError, IndexError) as e:
                    raise ValueError(f"{where}: node {node.name or node.op_type} ({node.op_type}) over constants "
                                     f"fails: {e}") from None
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ValueError(f"{where}: expected one image input, the graph has {len(inputs)}: "
                             f"{[i.name for i in inputs]}")
        self.image = inputs[0].name
        self.size = _input_size(inputs[0])
        self.nodes = list(graph.node)
        self.output = graph.output[0].name if graph.output else None

    def _array(self, numpy_helper, tensor) -> np.ndarray:
        try:
            return numpy_helper.to_array(tensor)
        except Exception as e:  # a shape that its data does not fill, an unknown type ...
            raise ValueError(f"{self.where}: tensor {tensor.name!r} (shape {list(tensor.dims)}) cannot be read: "
                             f"{type(e).__name__}: {e}") from None

    def const(self, name: str, node: onnx.NodeProto) -> np.ndarray:
        if name not in self.consts:
            raise ValueError(f"{self.where}: node {node.name or node.op_type} ({node.op_type}) takes {name!r} as a "
                             "weight, but it is not a constant of the graph")
        return np.asarray(self.consts[name])


def _conv(r: Reader, node, source: str, in_size: int | None) -> Op:
    attrs = _attributes(node)
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", "NOTSET") or any(d != 1 for d in attrs.get("dilations", [1])):
        raise ValueError(f"{r.where}: Conv {node.name} uses auto_pad/dilations, which no jsphere backbone has")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    strides = list(attrs.get("strides", [1, 1]))
    if len(set(pads)) > 1 or len(set(strides)) > 1:
        raise ValueError(f"{r.where}: Conv {node.name} has asymmetric pads {pads} or strides {strides}")
    weight = r.const(node.input[1], node)
    if weight.ndim != 4:
        raise ValueError(f"{r.where}: Conv {node.name} has a {weight.ndim}-d weight; jsphere's convolutions are 2-d")
    bias = r.const(node.input[2], node) if len(node.input) > 2 and node.input[2] else None
    return Op("conv", node.name, source, node.output[0], weight, bias, stride=int(strides[0]),
              groups=int(attrs.get("group", 1)), padding=int(pads[0]), in_size=in_size)


def _batchnorm(r: Reader, node, source: str) -> Op:
    attrs = _attributes(node)
    if attrs.get("training_mode", 0):
        raise ValueError(f"{r.where}: BatchNormalization {node.name} is in training mode; export it in eval mode")
    scale, bias, mean, var = (r.const(n, node).reshape(-1) for n in node.input[1:5])
    return Op("bn", node.name, source, node.output[0], scale, bias, mean, var, eps=float(attrs.get("epsilon", 1e-5)))


def _linear(r: Reader, node, source: str) -> Op:
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


def _scalar(r: Reader, name: str, node) -> float:
    value = r.const(name, node).reshape(-1)
    if value.size != 1:
        raise ValueError(f"{r.where}: node {node.name or node.op_type} ({node.op_type}) takes {value.size} values "
                         f"in {name!r} where a single bound belongs")
    return float(value[0])


def _clip_range(r: Reader, node) -> tuple[float, float]:
    """(min, max) of a Clip: attributes before opset 11, constant inputs after."""
    attrs = _attributes(node)
    low, high = attrs.get("min", -math.inf), attrs.get("max", math.inf)
    if len(node.input) > 1 and node.input[1]:
        low = _scalar(r, node.input[1], node)
    if len(node.input) > 2 and node.input[2]:
        high = _scalar(r, node.input[2], node)
    return float(low), float(high)


def _pool_size(r: Reader, node, size: int | None) -> int | None:
    """The output size of a 1x1 MaxPool (stride-s subsampling); any other pooling is refused."""
    attrs = _attributes(node)
    kernel, strides = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1, 1]))
    if kernel != [1, 1] or any(attrs.get("pads", [0, 0, 0, 0])) or len(set(strides)) != 1:
        raise ValueError(f"{r.where}: node {node.name or node.op_type} (MaxPool) has no counterpart in jsphere's "
                         f"backbones (only a 1x1 MaxPool shortcut, kernel {kernel} given)")
    return None if size is None else (size - 1) // int(strides[0]) + 1


@dataclass
class _Step:
    """A node on the image path: the image tensors it reads, its output, its weighted layer if it has one."""

    index: int
    inputs: list[str]
    output: str
    op: Op | None = None


def _data_flow_order(steps: dict[str, _Step], output: str) -> list[Op]:
    """The weighted layers that the output depends on, in depth-first order from the input, at every
    multi-input node the branch with the longer chain of weighted layers first."""
    depth: dict[str, int] = {}  # weighted layers on the longest path from the input (steps are in node order)
    for tensor, step in steps.items():
        depth[tensor] = max((depth.get(t, 0) for t in step.inputs), default=0) + (step.op is not None)
    ordered, done = [], set()
    stack = [(output, False)]
    while stack:
        tensor, expanded = stack.pop()
        step = steps.get(tensor)
        if step is None or tensor in done:
            continue
        if expanded:
            done.add(tensor)
            if step.op is not None:
                ordered.append(step.op)
            continue
        stack.append((tensor, True))
        branches = sorted(step.inputs, key=lambda t: -depth.get(t, 0))
        stack.extend((t, False) for t in reversed(branches))
    return ordered


def read(path: str | os.PathLike) -> Graph:
    """The weighted layers of an ONNX model in data-flow order, its input preprocessing and structure facts."""
    where = str(path)
    model = model_file.load(path)
    r = Reader(model, where)
    alias = {}  # tensor -> the tensor it passes through unchanged
    image = {r.image}  # tensors computed from the image (shape side branches excluded)
    sizes: dict[str, int | None] = {r.image: r.size}
    steps: dict[str, _Step] = {}
    producer: dict[str, str] = {}
    graph = Graph([], metadata={entry.key: entry.value for entry in model.metadata_props})
    affine_head = r.image
    scale, offset = np.ones(1), np.zeros(1)
    weighted_seen = norm_started = False

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for index, node in enumerate(r.nodes):
        sources = [resolve(n) for n in node.input if n in image]
        if not sources or node.op_type == "Constant" or node.op_type in SHAPE_OPS:
            continue
        image.update(node.output)
        op, out, source = node.op_type, node.output[0], sources[0]
        size = sizes.get(source)
        producer[out] = op
        at_head = not weighted_seen and source == affine_head
        weighted = None
        if op in PASS_THROUGH or (op == "Transpose" and at_head
                                  and list(_attributes(node).get("perm", [])) == [0, 3, 1, 2]):
            graph.input_layout = "NHWC" if op == "Transpose" else graph.input_layout
            alias[out] = source  # later nodes read ``source`` (the affine head stays where it is)
            continue
        if norm_started and (op in OUTPUT_NORM or op in ARITHMETIC or op == "Clip"):
            pass  # the output's L2 normalisation, epsilon included
        elif op in ARITHMETIC and len(sources) == 1:
            constant = r.const(next(n for n in node.input if n not in image), node).astype(np.float64)
            if at_head:
                c = constant.reshape(-1)
                if c.size not in (1, 3):
                    raise ValueError(f"{where}: node {node.name or op} ({op}) preprocesses the input with {c.size} "
                                     "constants; jsphere folds or records one per channel (3) or one for all")
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
                    raise ValueError(f"{where}: node {node.name} divides a constant by the image")
                affine_head = out
                sizes[out] = size
                graph.normalises_input = True
                continue
            last = steps.get(source)
            if op == "Add" and last and last.op and last.op.kind == "linear" and last.op.bias is None:
                last.op.bias = constant.reshape(-1).astype(np.float32)
                alias[out] = source
                continue
            raise ValueError(f"{where}: node {node.name} ({op} by a constant) sits inside the network; no jsphere "
                             "backbone has such a layer")
        elif op == "Conv":
            if not weighted_seen and source != affine_head:
                raise ValueError(f"{where}: the first Conv {node.name} does not read the image (or its "
                                 "normalisation) directly")
            weighted = _conv(r, node, source, size)
            k = weighted.weight.shape[2]
            size = None if size is None else (size + 2 * weighted.padding - k) // weighted.stride + 1
        elif op == "BatchNormalization":
            weighted = _batchnorm(r, node, source)
        elif op == "PRelu":
            weighted = Op("prelu", node.name, source, out, r.const(node.input[1], node))
        elif op in ("Gemm", "MatMul"):
            weighted, size = _linear(r, node, source), None
        elif op == "Add":
            graph.residual_sizes.append(size)
        elif op == "Mul" and len(sources) == 2:
            graph.gates += 1
        elif op == "Relu":
            graph.relu_after_add |= producer.get(source) == "Add"
        elif op == "Clip":
            low, high = _clip_range(r, node)
            if (low, high) == (0.0, 6.0):
                graph.relu6 += 1
            elif not (low == 0.0 and high == math.inf):
                raise ValueError(f"{where}: node {node.name or op} clips to [{low}, {high}]; jsphere's backbones "
                                 "clip only as ReLU6 [0, 6]")
        elif op in POOL_TO_ONE:
            size = 1
        elif op == "MaxPool":
            size = _pool_size(r, node, size)
            graph.subsamples += 1
        elif op in FLATTEN:
            size = None
        elif op == "Sigmoid":
            pass
        elif weighted_seen and (op in OUTPUT_NORM or op == "Div"):
            norm_started = graph.output_normalised = True
        else:
            raise ValueError(f"{where}: node {node.name or op} ({op}) has no counterpart in jsphere's backbones "
                             "(IResNet, IR, MobileFaceNet, SFNet)")
        if weighted is not None:
            if norm_started:
                raise ValueError(f"{where}: node {node.name} ({op}) follows the output's L2 normalisation")
            weighted_seen = True
        sizes[out] = size
        steps[out] = _Step(index, sources, out, weighted)
    graph.ops = _data_flow_order(steps, resolve(r.output) if r.output else max(steps, key=lambda t: steps[t].index))
    if not graph.ops:
        raise ValueError(f"{where}: no weighted layers found on the image path")
    graph.input_scale, graph.input_offset = scale, offset
    return graph
