"""Read MXNet model files without mxnet: ``<prefix>-<epoch>.params`` (NDArray list) and ``<prefix>-symbol.json``.

``.params`` (``mx.nd.save`` / ``mx.model.save_checkpoint``; MXNet ``NDArray::Save`` over a dmlc stream), all
little-endian::

    u64 0x112 (list magic) | u64 reserved
    u64 n | n x NDArray
    u64 k | k x (u64 length | UTF-8 name)          k is n, or 0 for an unnamed list

    NDArray, version 2/3 (magic 0xF993FAC9 / 0xF993FACA):
        u32 magic | i32 storage type (0 dense) | shape | [dense, known shape:] context | i32 dtype | raw data
    NDArray, version 1 (magic 0xF993FAC8): the same without the storage type.
    NDArray, legacy (no magic: the first u32 is ndim): u32 dims | context | i32 dtype | raw data
    shape = i32 ndim | ndim x i64 (versions 1-3); context = i32 device type | i32 device id

An empty shape (ndim 0 before version 3, -1 in version 3) is an empty array with nothing after it. dtype flags
(mshadow): 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64. Names are ``arg:<name>`` (weights)
and ``aux:<name>`` (BatchNorm moving statistics). Sparse arrays are refused.

The symbol JSON (``{"nodes": [{"op", "name", "attrs" (older files: "attr" or "param"), "inputs"}], "arg_nodes",
"heads", ...}``) is a graph: each operator lists the nodes it reads, ``[node index, output index, version]``, and
its parameters are variable nodes (``"op": "null"``) among them, in the operator's argument order
(``Convolution``: data, weight, bias; ``BatchNorm``: data, gamma, beta, moving_mean, moving_var; ``LeakyReLU``
prelu: data, gamma; ``FullyConnected``: data, weight, bias). A variable's name is usually ``<operator>_<argument>``
but need not be: insightface's original ``fmobilefacenet`` (``model-y1-test2``) gives its ``pre_fc1``
FullyConnected a variable named ``fc1_weight`` (bias ``pre_fc1_bias``), so names are read off the graph. The JSON
also gives each BatchNorm's ``eps`` and ``fix_gamma`` and the scalar operators applied to ``data`` before the
first layer.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}
BATCHNORM_DEFAULTS = {"eps": 1e-3, "fix_gamma": True}  # MXNet's own defaults for mx.sym.BatchNorm


class _Stream:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"{self.where}: truncated MXNet .params file: {what} needs {n} bytes at offset "
                             f"{self.pos}, the file has {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _read_array(s: _Stream, index: int) -> np.ndarray:
    what = f"array {index}"
    (magic,) = s.unpack("I", what)
    if magic in (V2_MAGIC, V3_MAGIC):
        (stype,) = s.unpack("i", what)
        if stype != 0:
            raise ValueError(f"{s.where}: {what} is a sparse MXNet array (storage type {stype}); only dense arrays "
                             "are supported")
    if magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        (ndim,) = s.unpack("i", what)
        if ndim < 0 or (ndim == 0 and magic != V3_MAGIC):
            return np.zeros((0,), np.float32)
        shape = s.unpack(f"{ndim}q", what)
        if any(d < 0 for d in shape):
            raise ValueError(f"{s.where}: {what} has shape {tuple(shape)}: a negative dimension, which no MXNet array "
                             "has; a corrupt .params file")
    else:  # legacy: the first word is ndim, dims are u32
        ndim = magic
        if ndim > 32:
            raise ValueError(f"{s.where}: {what} starts with 0x{magic:08x}, which is no MXNet NDArray header")
        if ndim == 0:
            return np.zeros((0,), np.float32)
        shape = s.unpack(f"{ndim}I", what)
    s.unpack("ii", what)  # context: device type, device id (arrays are read to the CPU)
    (flag,) = s.unpack("i", what)
    if flag not in DTYPES:
        raise ValueError(f"{s.where}: {what} has MXNet dtype flag {flag}, which is not supported "
                         f"(known: {sorted(DTYPES)})")
    dtype = np.dtype(DTYPES[flag]).newbyteorder("<")
    count = math.prod(shape)
    if count * dtype.itemsize > len(s.data) - s.pos:
        raise ValueError(f"{s.where}: truncated MXNet .params file: {what} has shape {tuple(shape)} of {dtype.name} "
                         f"({count * dtype.itemsize:,} bytes), the file has {len(s.data) - s.pos:,} left")
    return np.frombuffer(s.take(count * dtype.itemsize, what), dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_params(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """The named arrays of a ``.params`` file, names as stored (``arg:...`` / ``aux:...``)."""
    path = Path(path)
    s = _Stream(path.read_bytes(), str(path))
    if len(s.data) < 16 or struct.unpack("<Q", s.data[:8])[0] != LIST_MAGIC:
        raise ValueError(f"{path} is not an MXNet .params file (it does not start with the NDArray-list magic "
                         "0x112); expected model-XXXX.params from mx.model.save_checkpoint")
    s.unpack("QQ", "header")
    (count,) = s.unpack("Q", "array count")
    if count > len(s.data):
        raise ValueError(f"{path}: corrupt MXNet .params header (claims {count} arrays)")
    arrays = [_read_array(s, i) for i in range(count)]
    (named,) = s.unpack("Q", "name count")
    if named not in (0, count):
        raise ValueError(f"{path}: corrupt MXNet .params file: {count} arrays but {named} names")
    names = []
    for i in range(named):
        (length,) = s.unpack("Q", f"name {i}")
        names.append(s.take(length, f"name {i}").decode("utf-8", errors="replace"))
    if s.pos != len(s.data):
        raise ValueError(f"{path}: {len(s.data) - s.pos} unexpected bytes after the last name; corrupt file?")
    return OrderedDict(zip(names or [str(i) for i in range(count)], arrays, strict=True))


ROLES = {  # the positional inputs after ``data`` of the operators whose parameters jsphere reads
    "Convolution": ("weight", "bias"),
    "BatchNorm": ("gamma", "beta", "moving_mean", "moving_var"),
    "LeakyReLU": ("gamma",),
    "FullyConnected": ("weight", "bias"),
}


@dataclass(frozen=True)
class Operator:
    """One operator node: its type, attributes and the variable nodes that feed it, by role."""

    op: str
    attrs: dict
    params: dict[str, str]


@dataclass(frozen=True)
class Symbol:
    """What the importer needs from a symbol JSON: the operators by name (with the names of the variables each
    one reads), the operators the embedding is computed with, and the input's affine map."""

    operators: dict[str, Operator]
    embedding_ops: tuple[tuple[str, str], ...]  # (name, op) of every operator the output depends on
    input_scale: float
    input_offset: float

    def has(self, name: str) -> bool:
        return name in self.operators

    def param(self, name: str, role: str) -> str | None:
        """The variable that operator ``name`` reads as ``role`` (e.g. ``pre_fc1``'s ``weight``), if any."""
        operator = self.operators.get(name)
        return operator.params.get(role) if operator else None

    def bn(self, name: str) -> dict:
        """``eps``/``fix_gamma`` of BatchNorm ``name`` (MXNet's defaults where the JSON omits them)."""
        operator = self.operators.get(name)
        if operator is None or operator.op != "BatchNorm":
            return {}
        eps = operator.attrs.get("eps", BATCHNORM_DEFAULTS["eps"])
        try:
            eps = float(eps)
        except (TypeError, ValueError):
            raise ValueError(f"the symbol's BatchNorm {name!r} has eps {eps!r}, which is no number") from None
        if not eps >= 0:
            raise ValueError(f"the symbol's BatchNorm {name!r} has eps {eps!r}; a BatchNorm eps is >= 0")
        return {"eps": eps, "fix_gamma": _true(operator.attrs.get("fix_gamma", BATCHNORM_DEFAULTS["fix_gamma"]))}


def _attrs(node: dict) -> dict:
    for key in ("attrs", "attr", "param"):
        if isinstance(node.get(key), dict):
            return node[key]
    return {}


def _true(text) -> bool:
    return str(text).strip().lower() in ("true", "1")


SCALAR_OPS = {"_minus_scalar", "_plus_scalar", "_mul_scalar", "_div_scalar", "_rminus_scalar", "identity", "_copy"}


def _sources(nodes: list, index: int, path: Path) -> list[int]:
    """The node indices that node ``index`` reads, checked against the graph (entries are ``[node, output, ...]``)."""
    entries = nodes[index].get("inputs", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: node {index} ({nodes[index].get('name')!r}) has malformed inputs")
    sources = []
    for entry in entries:
        if not (isinstance(entry, list) and entry and isinstance(entry[0], int) and 0 <= entry[0] < len(nodes)):
            raise ValueError(f"{path}: node {index} ({nodes[index].get('name')!r}) reads {entry!r}, which is no node "
                             f"of the {len(nodes)} in the graph")
        sources.append(entry[0])
    return sources


def _embedding_ops(nodes: list, inputs: list[list[int]], heads) -> tuple[tuple[str, str], ...]:
    """Every operator the embedding depends on: the ancestors of ``fc1`` (the embedding of every insightface
    recognition symbol), or of the graph's outputs when there is no ``fc1``."""
    roots = [i for i, n in enumerate(nodes) if n.get("name") == "fc1" and n.get("op") != "null"]
    if not roots and isinstance(heads, list):
        roots = [h[0] for h in heads if isinstance(h, list) and h and isinstance(h[0], int) and 0 <= h[0] < len(nodes)]
    seen, stack = set(), list(roots)
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(inputs[i])
    return tuple((nodes[i]["name"], nodes[i]["op"]) for i in sorted(seen) if nodes[i].get("op") != "null")


def read_symbol(path: str | os.PathLike) -> Symbol:
    """Every operator of the symbol with the variables it reads, and ``data -> a * data + b`` before the first
    layer."""
    path = Path(path)
    try:
        graph = json.loads(path.read_text())
        nodes = graph["nodes"]
        if not isinstance(nodes, list) or not all(isinstance(n, dict) and isinstance(n.get("name"), str)
                                                  and isinstance(n.get("op"), str) for n in nodes):
            raise TypeError("'nodes' is not a list of {op, name, inputs} objects")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not an MXNet symbol JSON ({type(e).__name__}: {e})") from None
    inputs = [_sources(nodes, i, path) for i in range(len(nodes))]
    operators = {}
    for node, sources in zip(nodes, inputs, strict=True):
        if node["op"] == "null":
            continue
        roles = ROLES.get(node["op"], ())
        params = {role: nodes[s]["name"] for role, s in zip(roles, sources[1:], strict=False)
                  if nodes[s]["op"] == "null"}
        operators[node["name"]] = Operator(node["op"], _attrs(node), params)
    consumers: dict[int, list[int]] = {}
    for i, sources in enumerate(inputs):
        for source in sources:
            consumers.setdefault(source, []).append(i)
    current = next((i for i, n in enumerate(nodes) if n["op"] == "null" and n["name"] == "data"), None)
    scale, offset = 1.0, 0.0
    while current is not None and len(consumers.get(current, [])) == 1:
        node = nodes[consumers[current][0]]
        op = node["op"]
        if op not in SCALAR_OPS:
            break
        try:
            value = float(_attrs(node).get("scalar", 0.0))
        except (TypeError, ValueError):
            raise ValueError(f"{path}: {op} node {node['name']!r} has scalar {_attrs(node).get('scalar')!r}, "
                             "which is no number") from None
        if op == "_minus_scalar":
            offset -= value
        elif op == "_plus_scalar":
            offset += value
        elif op == "_mul_scalar":
            scale, offset = scale * value, offset * value
        elif op == "_div_scalar":
            scale, offset = scale / value, offset / value
        elif op == "_rminus_scalar":
            scale, offset = -scale, value - offset
        current = consumers[current][0]
    return Symbol(operators, _embedding_ops(nodes, inputs, graph.get("heads")), scale, offset)
