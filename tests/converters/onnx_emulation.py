"""The layers PyTorch's ONNX exporter writes for a reference model, without exporting: for the deep backbones,
whose real export takes minutes on two cores.

The reference model (``converters.torch_reference.backbones``) runs on the ``meta`` device (shapes only, no weights, no
arithmetic) under a ``TorchFunctionMode`` that records every operator with the tensors it reads and writes. What
the TorchScript exporter does in eval mode is then applied: a BatchNorm that reads a convolution's output is
folded into it (the convolution gains a bias), PReLU slopes become [C, 1, 1], Dropout disappears, ReLU6 is a
``Clip(0, 6)``. The result is the ``converters.onnx_format.graph_reader.Graph`` that ``graph_reader.read``
returns for the real export — checked against real exports of the shallow members of every family in
``test_onnx_roundtrip`` — with all weights zero-strided zeros (BatchNorm scales ones).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from converters.onnx_format import graph_reader
from converters.torch_reference import backbones as torch_backbones

SIZE = 112


def _zeros(shape) -> np.ndarray:
    return np.broadcast_to(np.float32(0), tuple(shape))


class _Recorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.events = []  # (name, args, kwargs, result)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        self.events.append((getattr(func, "__name__", ""), args, kwargs, result))
        return result


def _tensors(args) -> list[torch.Tensor]:
    return [a for a in args if isinstance(a, torch.Tensor) and not isinstance(a, torch.nn.Parameter)]


def emulate(name: str, embed_dim: int, **kwargs) -> graph_reader.Graph:
    """The graph ``graph_reader.read`` would return for ``export_onnx``'s file of backbone ``name``."""
    with torch.device("meta"):
        model = torch_backbones.build(name, embed_dim, **kwargs).eval()
    params = {id(p) for p in model.parameters()} | {id(b) for b in model.buffers()}
    recorder = _Recorder()
    with torch.no_grad(), recorder:
        model(torch.zeros(1, 3, SIZE, SIZE, device="meta"))
    graph = graph_reader.Graph([])
    made_by: dict[int, tuple[str, graph_reader.Op | None]] = {}  # tensor id -> (operator, its weighted op)
    for index, (fname, args, kwargs_, result) in enumerate(recorder.events):
        if not isinstance(result, torch.Tensor):
            continue
        inputs = [t for t in _tensors(args) if id(t) not in params]
        source = made_by.get(id(inputs[0]), ("input", None)) if inputs else ("input", None)
        op = None
        if fname == "conv2d":
            weight, x = args[1], args[0]
            bias = args[2] if len(args) > 2 else kwargs_.get("bias")
            stride, padding = args[3] if len(args) > 3 else 1, args[4] if len(args) > 4 else 0
            groups = args[6] if len(args) > 6 else 1
            first = lambda v: v[0] if isinstance(v, (tuple, list)) else v  # noqa: E731
            op = graph_reader.Op("conv", f"Conv_{index}", "", "", _zeros(weight.shape),
                               None if bias is None else _zeros(bias.shape), stride=int(first(stride)),
                               groups=int(groups), padding=int(first(padding)), in_size=int(x.shape[2]))
        elif fname == "batch_norm":
            c = args[0].shape[1]
            previous = source[1]
            if previous is not None and previous.kind == "conv" and source[0] == "conv2d":  # folded
                previous.bias = _zeros((c,))
                made_by[id(result)] = ("conv2d", previous)
                continue
            op = graph_reader.Op("bn", f"BatchNormalization_{index}", "", "", np.ones(c, np.float32),
                               np.zeros(c, np.float32), np.zeros(c, np.float32), np.ones(c, np.float32))
        elif fname == "prelu":
            op = graph_reader.Op("prelu", f"PRelu_{index}", "", "", _zeros((args[1].shape[0], 1, 1)))
        elif fname == "linear":
            op = graph_reader.Op("linear", f"Gemm_{index}", "", "", _zeros(args[1].shape),
                               None if len(args) < 3 or args[2] is None else _zeros(args[2].shape))
        elif fname in ("add", "__add__", "__iadd__", "add_") and len(inputs) == 2:
            graph.residual_sizes.append(int(result.shape[2]) if result.dim() == 4 else None)
        elif fname in ("relu", "relu_"):
            graph.relu_after_add |= source[0] in ("add", "__add__", "__iadd__", "add_")
        elif fname in ("hardtanh", "hardtanh_", "relu6"):
            graph.relu6 += 1
        elif fname in ("mul", "__mul__") and len(inputs) == 2:
            graph.gates += 1
        elif fname == "max_pool2d":
            graph.subsamples += 1
        elif fname in ("dropout", "dropout_"):
            made_by[id(result)] = source
            continue
        if op is not None:
            graph.ops.append(op)
        made_by[id(result)] = (fname, op if op is not None else None)
    return graph


def signature(graph: graph_reader.Graph) -> dict:
    """What the importer reads off a graph, for comparing an emulated graph with a real one."""
    return {
        "ops": [(op.kind, tuple(op.weight.shape), op.bias is None, op.stride, op.groups, op.padding, op.in_size)
                for op in graph.ops],
        "residual_sizes": list(graph.residual_sizes), "relu_after_add": graph.relu_after_add,
        "relu6": graph.relu6, "gates": graph.gates, "subsamples": graph.subsamples,
    }
