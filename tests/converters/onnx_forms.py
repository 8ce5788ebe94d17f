"""ONNX graphs as other toolkits write them, for the importer tests.

* ``PaddleMobileFaceNet``: insightface's ``recognition/arcface_paddle`` MobileFaceNet (``MobileFaceNet_128``:
  ``conv1``, ``dw_conv1``, ``blocks`` of ``BottleNeck(inp, oup, stride, expansion)`` from the setting
  (2, 64, 5, 2) (4, 128, 1, 2) (2, 128, 6, 1) (4, 128, 1, 2) (2, 128, 2, 1), ``conv2``, ``linear7`` (depthwise
  7x7 + BN), ``linear1`` (a 1x1 conv 512 -> 128 + BN2d on the 1x1 map) and ``x.reshape([N, C * H * W])``),
  re-expressed in PyTorch. paddle2onnx keeps the BatchNormalization nodes, writes PRelu slopes as [C, 1, 1] or
  [1, C, 1, 1] and the reshape from ``Shape``/``Gather``/``Mul``/``Concat``: ``export_unfolded`` keeps the
  BatchNorms and ``set_prelu_slopes`` rewrites the slopes.
* ``shortcut_first``: the unit forward of AdaFace's, TreB1eN's and face.evoLVe's IR code, which computes the
  shortcut before the residual branch (PyTorch's exporter then lists the shortcut convolution first).
"""

import warnings

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from converters.core import backbone_import
from converters.onnx_format import graph_reader, onnx_import
from converters.torch_reference import backbones as torch_backbones

SETTING = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def _conv_block(cin, cout, k, s, p, dw=False, linear=False):
    layers = [nn.Conv2d(cin, cout, k, s, p, groups=cin if dw else 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([] if linear else [nn.PReLU(cout)]))


class BottleNeck(nn.Module):
    def __init__(self, inp, oup, stride, expansion):
        super().__init__()
        self.connect = stride == 1 and inp == oup
        hidden = inp * expansion
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x):
        return x + self.conv(x) if self.connect else self.conv(x)


class PaddleMobileFaceNet(nn.Module):
    def __init__(self, feature_dim=128):
        super().__init__()
        self.conv1 = _conv_block(3, 64, 3, 2, 1)
        self.dw_conv1 = _conv_block(64, 64, 3, 1, 1, dw=True)
        blocks, cin = [], 64
        for t, c, n, s in SETTING:
            for i in range(n):
                blocks.append(BottleNeck(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = _conv_block(128, 512, 1, 1, 0)
        self.linear7 = _conv_block(512, 512, 7, 1, 0, dw=True, linear=True)
        self.linear1 = _conv_block(512, feature_dim, 1, 1, 0, linear=True)

    def forward(self, x):
        x = self.linear1(self.linear7(self.conv2(self.blocks(self.dw_conv1(self.conv1(x))))))
        return x.reshape([x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]])


def export(model, path, fold=True, input_name="input.1", opset=13):
    """PyTorch's TorchScript exporter; ``fold=False`` keeps the BatchNormalization nodes (as paddle2onnx)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False, opset_version=opset,
                          input_names=[input_name], output_names=["output"], do_constant_folding=fold,
                          dynamic_axes={input_name: {0: "batch"}, "output": {0: "batch"}})


def set_prelu_slopes(path):
    """Every PRelu slope as an initializer of its own, [C, 1, 1] and [1, C, 1, 1] in turn."""
    model = onnx.load(str(path))
    reader = graph_reader.Reader(model, str(path))
    for i, node in enumerate(n for n in model.graph.node if n.op_type == "PRelu"):
        slope = reader.const(node.input[1], node).reshape(-1)
        name = f"prelu_slope_{i}"
        shape = (len(slope), 1, 1) if i % 2 else (1, len(slope), 1, 1)
        model.graph.initializer.append(numpy_helper.from_array(slope.reshape(shape).astype(np.float32), name))
        node.input[1] = name
    onnx.save(model, str(path))


def imported_reference(path, arch=backbone_import.AUTO, kwargs=None):
    """The graph, what import_onnx recognises in it, and the reference model holding the tensors it imports
    (everything import_onnx does before writing the checkpoint)."""
    graph = graph_reader.read(path)
    found = onnx_import.resolve(graph, str(path), arch, kwargs)
    back = torch_backbones.build(found.arch, found.embed_dim, **found.kwargs)
    sd = onnx_import.to_torch_state_dict(graph, found, str(path))
    missing, unexpected = back.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()},
                                               strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return graph, found, back.eval()


def shortcut_first(self, x):
    """``bottleneck_IR(_SE).forward`` of TreB1eN / face.evoLVe and AdaFace's ``BasicBlockIR.forward``."""
    shortcut = self.shortcut_layer(x)
    res = self.res_layer(x)
    return res + shortcut


class L2Normalised(nn.Module):
    """TreB1eN's ``l2_norm(output)`` at the end of the forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return torch.div(out, torch.norm(out, 2, 1, True))
