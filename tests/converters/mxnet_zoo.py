"""insightface's MXNet recognition networks as their released files lay them out, computed with MXNet semantics.

Learned from insightface's symbol code (``src/symbols/fmobilefacenet.py`` of April 2018, which released
``model-y1-test2``; ``recognition/symbol/fmobilefacenet.py`` + ``symbol_utils.get_fc1('GDC')`` of 2019, which
trained y2 with ``net_blocks=[2, 8, 16, 4]``; ``src/symbols/fresnet.py`` unit v3, input v1, output E, which
trained ``model-r34-amf``, ``model-r50-am-lfw`` and ``model-r100-ii``) and from public ``model-symbol.json``
files of those networks:

* the graph is a list of nodes; a parameter is a variable node (``"op": "null"``) placed just before the
  operator that reads it, and an operator lists what it reads as ``[node, output, version]`` (BatchNorm's moving
  statistics with version 1); variables carry their operator's attributes;
* names: ``<op>_conv2d`` / ``_batchnorm`` / ``_relu`` (LeakyReLU prelu) in fmobilefacenet, ``conv0``, ``bn0``,
  ``relu0``, ``stage{s}_unit{u}_{bn1,conv1,bn2,relu1,conv2,bn3,conv1sc,sc}``, ``bn1``, ``dropout0`` in fresnet;
  residual sums are ``elemwise_add`` nodes ``_plus{n}``;
* **y1's** ``pre_fc1`` FullyConnected reads ``Variable("fc1_weight", shape=(128, 512), lr_mult=1.0,
  wd_mult=10.0)`` and gets an automatic ``pre_fc1_bias``; y2 (symbol_utils) reads ``pre_fc1_weight``;
* y2's first stage is ``Residual(num_group=64, name="res_2")`` (arcface_torch uses 128 there);
* the input chain is ``data -> _minusscalar0 (127.5) -> _mulscalar0 (0.0078125)`` (fresnet: ``identity`` ``id``
  first); fmobilefacenet BatchNorms leave ``eps`` at MXNet's 1e-3, fresnet's and ``fc1`` set 2e-5, ``fc1`` has
  ``fix_gamma=True``.

``Net(rng)`` draws random parameters and evaluates the network with PyTorch functional ops straight from the
MXNet parameter names while it records the symbol; ``Net(None)`` records names and shapes only (for the deep
networks). BatchNorm statistics are measured on random images (``calibrate``) so activations keep a realistic
scale.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MXNET_BN_DEFAULT_EPS = 1e-3
RESNET_EPS = 2e-5
BN_OUTPUTS = 3  # BatchNorm: output, mean, var (node_row_ptr counts them)


def write_params(path, arrays):
    """``mx.nd.save`` layout, written from MXNet's NDArray::Save (V2 magic, dense, CPU context, float32)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<QQ", 0x112, 0))
        f.write(struct.pack("<Q", len(arrays)))
        for value in arrays.values():
            a = np.ascontiguousarray(value, np.float32)
            f.write(struct.pack("<Ii", 0xF993FAC9, 0))
            f.write(struct.pack("<i", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape))
            f.write(struct.pack("<iii", 1, 0, 0))  # cpu(0), float32
            f.write(a.tobytes())
        f.write(struct.pack("<Q", len(arrays)))
        for name in arrays:
            f.write(struct.pack("<Q", len(name)) + name.encode())


@dataclass
class Sym:
    """A value flowing through the network: its tensor (None when only recording), graph node and shape."""

    value: torch.Tensor | None
    node: int | None
    shape: tuple


def _tuple(values) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


class Net:
    """An insightface recognition symbol: parameters by MXNet name (``arg:``/``aux:``), the symbol graph, and
    its output computed the way MXNet computes it."""

    def __init__(self, rng: np.random.Generator | None):
        self.rng, self.p, self.nodes = rng, {}, []
        self.recording, self.calibrating = True, False
        self.names = getattr(self, "names", {})  # (operator, role) -> variable name, where not <operator>_<role>
        self.head = self.forward(Sym(None, self._node("null", "data"), (3, 112, 112))).node
        self.recording = False

    # ---- the symbol graph
    def _node(self, op, name, inputs=(), attrs=None):
        if not self.recording:
            return None
        node = {"op": op, "name": name}
        if attrs:
            node["attrs"] = {k: str(v) for k, v in attrs.items()}
        node["inputs"] = [list(i) for i in inputs]
        self.nodes.append(node)
        return len(self.nodes) - 1

    def symbol(self, attr_key="attrs"):
        """``mx.sym.save``'s JSON; ``attr_key="param"`` gives the MXNet 0.x form (``param`` dicts, 2-entry inputs)."""
        nodes = []
        for node in self.nodes:
            node = dict(node)
            if attr_key != "attrs" and "attrs" in node:
                node[attr_key] = node.pop("attrs")
            if attr_key == "param":
                node["inputs"] = [i[:2] for i in node["inputs"]]
            nodes.append(node)
        row_ptr = [0]
        for node in nodes:
            row_ptr.append(row_ptr[-1] + (BN_OUTPUTS if node["op"] == "BatchNorm" else 1))
        return {"nodes": nodes, "arg_nodes": [i for i, n in enumerate(nodes) if n["op"] == "null"],
                "node_row_ptr": row_ptr, "heads": [[self.head, 0, 0]], "attrs": {"mxnet_version": ["int", 10100]}}

    def write_symbol(self, path, attr_key="attrs"):
        path.write_text(json.dumps(self.symbol(attr_key), indent=2))

    # ---- parameters
    def _param(self, op, role, shape, attrs, aux=False):
        name = self.names.get((op, role), f"{op}_{role}")
        key = f"{'aux' if aux else 'arg'}:{name}"
        if key not in self.p:
            self.p[key] = self._init(role, shape)
        return self._node("null", name, attrs=attrs), key

    def _init(self, role, shape):
        if self.rng is None:
            return np.broadcast_to(np.float32(0), shape)
        if role == "weight" and len(shape) == 4:
            return self.rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        if role == "weight":
            return self.rng.normal(0, np.sqrt(1.0 / shape[1]), shape)
        if role == "bias":
            return self.rng.normal(0, 0.3, shape)
        if role == "beta":
            return self.rng.normal(0, 0.1, shape)
        if role == "moving_mean":
            return np.zeros(shape)
        if role == "moving_var":
            return np.ones(shape)
        return self.rng.uniform(0.5, 1.5, shape) if role == "gamma" else self.rng.uniform(0.0, 0.5, shape)

    def t(self, key):
        return torch.from_numpy(np.asarray(self.p[key], np.float32))

    # ---- MXNet operators
    def scalar(self, x, op, name, value=None):
        node = self._node(op, name, [(x.node, 0, 0)], None if value is None else {"scalar": value})
        if x.value is None:
            return Sym(None, node, x.shape)
        y = {"_minus_scalar": lambda v: v - value, "_mul_scalar": lambda v: v * value,
             "identity": lambda v: v}[op](x.value)
        return Sym(y, node, x.shape)

    def conv(self, x, name, cout, kernel, stride=1, pad=0, groups=1):
        cin, h, _ = x.shape
        attrs = {"kernel": _tuple((kernel, kernel)), "no_bias": "True", "num_filter": cout, "num_group": groups,
                 "pad": _tuple((pad, pad)), "stride": _tuple((stride, stride))}
        w_node, w = self._param(name, "weight", (cout, cin // groups, kernel, kernel), attrs)
        node = self._node("Convolution", name, [(x.node, 0, 0), (w_node, 0, 0)], attrs)
        size = (h + 2 * pad - kernel) // stride + 1
        y = None if x.value is None else F.conv2d(x.value, self.t(w), stride=stride, padding=pad, groups=groups)
        return Sym(y, node, (cout, size, size))

    def bn(self, x, name, eps=None, fix_gamma=False):
        attrs = {"fix_gamma": str(fix_gamma), "momentum": 0.9, **({} if eps is None else {"eps": eps})}
        c = x.shape[0]
        params = [self._param(name, role, (c,), attrs, aux=role.startswith("moving"))
                  for role in ("gamma", "beta", "moving_mean", "moving_var")]
        inputs = [(x.node, 0, 0)] + [(n, 0, 1 if i >= 2 else 0) for i, (n, _) in enumerate(params)]
        node = self._node("BatchNorm", name, inputs, attrs)
        if x.value is None:
            return Sym(None, node, x.shape)
        gamma_key, beta_key, mean_key, var_key = (key for _, key in params)
        v = x.value
        axes, view = ((0, 2, 3), (1, -1, 1, 1)) if v.ndim == 4 else ((0,), (1, -1))
        if self.calibrating:  # moving statistics = this batch's (unbiased variance, as MXNet keeps)
            self.p[mean_key] = v.mean(axes).numpy().astype(np.float64)
            self.p[var_key] = v.var(axes, unbiased=True).numpy().astype(np.float64)
        gamma = torch.ones(c) if fix_gamma else self.t(gamma_key)
        eps = MXNET_BN_DEFAULT_EPS if eps is None else eps
        y = ((v - self.t(mean_key).view(view)) / torch.sqrt(self.t(var_key).view(view) + eps) * gamma.view(view)
             + self.t(beta_key).view(view))
        return Sym(y, node, x.shape)

    def prelu(self, x, name):
        attrs = {"act_type": "prelu"}
        g_node, g = self._param(name, "gamma", (x.shape[0],), {"__init__": '["Constant", {"value": 0.25}]', **attrs})
        node = self._node("LeakyReLU", name, [(x.node, 0, 0), (g_node, 0, 0)], attrs)
        y = None if x.value is None else torch.where(x.value > 0, x.value, self.t(g).view(1, -1, 1, 1) * x.value)
        return Sym(y, node, x.shape)

    def fc(self, x, name, num_hidden):
        attrs = {"num_hidden": num_hidden}
        fan_in = int(np.prod(x.shape))
        weight_attrs = ({"__lr_mult__": "1.0", "__shape__": _tuple((num_hidden, fan_in)), "__wd_mult__": "10.0"}
                        if (name, "weight") in self.names else attrs)  # an explicit mx.symbol.Variable
        w_node, w = self._param(name, "weight", (num_hidden, fan_in), weight_attrs)
        b_node, b = self._param(name, "bias", (num_hidden,), attrs)
        node = self._node("FullyConnected", name, [(x.node, 0, 0), (w_node, 0, 0), (b_node, 0, 0)], attrs)
        y = None if x.value is None else x.value.flatten(1) @ self.t(w).T + self.t(b)
        return Sym(y, node, (num_hidden,))

    def add(self, a, b, index):
        node = self._node("elemwise_add", f"_plus{index}", [(a.node, 0, 0), (b.node, 0, 0)])
        return Sym(None if a.value is None else a.value + b.value, node, a.shape)

    def op(self, op, name, args, fn, shape, attrs=None):
        """Any other operator: ``fn`` computes it on the values of ``args``."""
        node = self._node(op, name, [(a.node, 0, 0) for a in args], attrs)
        return Sym(None if args[0].value is None else fn(*(a.value for a in args)), node, shape)

    def dropout(self, x, name):
        return Sym(x.value, self._node("Dropout", name, [(x.node, 0, 0)], {"p": 0.4}), x.shape)

    # ---- running it
    def embed(self, images):
        x = torch.from_numpy(images.astype(np.float32).transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            return self.forward(Sym(x, None, (3, 112, 112))).value.numpy()

    def calibrate(self, images):
        self.calibrating = True
        self.embed(images)
        self.calibrating = False


class FMobileFaceNet(Net):
    """fmobilefacenet, GDC output. ``original=True``: the April 2018 file of ``model-y1-test2`` (pre_fc1 reads
    ``fc1_weight``); else the 2019 ``recognition/`` one (``symbol_utils``, ``pre_fc1_weight``). ``output="GNAP"``:
    ``symbol_utils.get_fc1``'s GNAP output instead (2019 names), whose ``mean`` runs over the whole batch as
    MXNet's ``mx.sym.mean`` without an axis does."""

    def __init__(self, rng, blocks=(1, 4, 6, 2), emb=128, original=True, output="GDC"):
        self.blocks, self.emb, self.plus, self.output = blocks, emb, 0, output
        self.names = {("pre_fc1", "weight"): "fc1_weight"} if original else {}
        super().__init__(rng)

    def block(self, x, name, cout, kernel=1, stride=1, pad=0, groups=1, act=True):
        x = self.bn(self.conv(x, f"{name}_conv2d", cout, kernel, stride, pad, groups), f"{name}_batchnorm")
        return self.prelu(x, f"{name}_relu") if act else x

    def dresidual(self, x, name, cout, groups, stride):
        y = self.block(x, f"{name}_conv_sep", groups)
        y = self.block(y, f"{name}_conv_dw", groups, 3, stride, 1, groups)
        return self.block(y, f"{name}_conv_proj", cout, act=False)

    def residual(self, x, name, n, groups):
        for i in range(n):
            x = self._plus(self.dresidual(x, f"{name}_block{i}", x.shape[0], groups, 1), x)
        return x

    def _plus(self, a, b):
        self.plus += 1
        return self.add(a, b, self.plus - 1)

    def forward(self, x):
        self.plus = 0
        x = self.scalar(self.scalar(x, "_minus_scalar", "_minusscalar0", 127.5), "_mul_scalar", "_mulscalar0",
                        0.0078125)
        x = self.block(x, "conv_1", 64, 3, 2, 1)
        if self.blocks[0] == 1:
            x = self.block(x, "conv_2_dw", 64, 3, 1, 1, 64)
        else:
            x = self.residual(x, "res_2", self.blocks[0], 64)
        x = self.residual(self.dresidual(x, "dconv_23", 64, 128, 2), "res_3", self.blocks[1], 128)
        x = self.residual(self.dresidual(x, "dconv_34", 128, 256, 2), "res_4", self.blocks[2], 256)
        x = self.residual(self.dresidual(x, "dconv_45", 128, 512, 2), "res_5", self.blocks[3], 256)
        x = self.block(x, "conv_6sep", 512)
        if self.output == "GNAP":
            return self.gnap(x)
        x = self.block(x, "conv_6dw7_7", 512, 7, groups=512, act=False)
        return self.bn(self.fc(x, "pre_fc1", self.emb), "fc1", RESNET_EPS, fix_gamma=True)


    def gnap(self, x):
        """get_fc1(fc_type='GNAP') for emb <= 512: bn6f, the norm-aware attention, average pooling, then
        bn6w + pre_fc1 (emb < 512) or Flatten, and fc1."""
        body = self.bn(x, "bn6f", RESNET_EPS, fix_gamma=True)
        c, h, w = body.shape
        square = self.op("elemwise_mul", "_mul0", [body, body], lambda a, b: a * b, body.shape)
        total = self.op("sum", "sum0", [square], lambda v: v.sum(1, keepdim=True), (1, h, w),
                        {"axis": 1, "keepdims": True})
        root = self.op("sqrt", "sqrt0", [total], torch.sqrt, (1, h, w))
        mean = self.op("mean", "mean0", [root], lambda v: v.mean().reshape(1), (1,))  # over the whole batch
        inverse = self.op("broadcast_div", "broadcast_div0", [mean, root], lambda m, r: m / r, (1, h, w))
        tiled = self.op("tile", "tile0", [inverse], lambda v: v.repeat(1, c, 1, 1), (c, h, w),
                        {"reps": (1, c, 1, 1)})
        body = self.op("elemwise_mul", "_mul1", [body, tiled], lambda a, b: a * b, (c, h, w))
        pooled = self.op("Pooling", "pooling0", [body], lambda v: v.mean((2, 3), keepdim=True), (c, 1, 1),
                         {"global_pool": True, "kernel": (7, 7), "pool_type": "avg"})
        if self.emb < 512:
            flat = self.fc(self.bn(pooled, "bn6w", RESNET_EPS, fix_gamma=True), "pre_fc1", self.emb)
        else:
            flat = self.op("Flatten", "flatten0", [pooled], lambda v: v.flatten(1), (c,))
        return self.bn(flat, "fc1", RESNET_EPS, fix_gamma=True)


class FResNet(Net):
    """fresnet LResNet-IR: unit v3, input v1 (conv0 3x3 stride 1), output E."""

    UNITS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}

    def __init__(self, rng, depth=18, emb=512):
        self.units, self.emb, self.plus = self.UNITS[depth], emb, 0
        super().__init__(rng)

    def forward(self, x):
        self.plus, eps = 0, RESNET_EPS
        x = self.scalar(x, "identity", "id")
        x = self.scalar(self.scalar(x, "_minus_scalar", "_minusscalar0", 127.5), "_mul_scalar", "_mulscalar0",
                        0.0078125)
        x = self.prelu(self.bn(self.conv(x, "conv0", 64, 3, 1, 1), "bn0", eps), "relu0")
        for s, (n, c) in enumerate(zip(self.units, (64, 128, 256, 512), strict=True), start=1):
            for u in range(1, n + 1):
                base, stride = f"stage{s}_unit{u}", 2 if u == 1 else 1
                y = self.conv(self.bn(x, f"{base}_bn1", eps), f"{base}_conv1", c, 3, 1, 1)
                y = self.prelu(self.bn(y, f"{base}_bn2", eps), f"{base}_relu1")
                y = self.bn(self.conv(y, f"{base}_conv2", c, 3, stride, 1), f"{base}_bn3", eps)
                shortcut = self.bn(self.conv(x, f"{base}_conv1sc", c, 1, stride), f"{base}_sc", eps) if u == 1 else x
                x = self.add(y, shortcut, self.plus)
                self.plus += 1
        x = self.dropout(self.bn(x, "bn1", eps), "dropout0")
        return self.bn(self.fc(x, "pre_fc1", self.emb), "fc1", eps, fix_gamma=True)


def faces(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)
