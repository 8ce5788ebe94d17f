"""An ONNX recognition model as a jsphere checkpoint directory: the graph read as its weighted layers
(``graph_reader``), the backbone they describe detected (``architecture``) or named, the graph's layers matched to
that backbone's in call order and rewritten as a torch-named state_dict (``to_torch_state_dict``: folded
BatchNorms, biases with no place of their own and the input preprocessing undone exactly), the preprocessing that
cannot be folded recorded as the input convention (``input_convention``), or what ``converters.export_onnx`` says
the graph takes in its metadata (``exported_input``). ``python -m converters.import_onnx`` is its command; its help
lists the equivalent forms accepted.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from converters.core import backbone_import, conventions, folding, layer_order
from converters.core.found import Found
from converters.onnx_format import architecture, graph_reader
from jsphere import models, outputs
from jsphere.input_convention import InputConvention

LAYOUT = "onnx"
PIXEL_SCALE_LIMIT = 0.1  # |scale| of a map meant for 0-255 pixels ((x - 127.5) / 128 has 1 / 128)
FAMILIES = (("sfnet", r"sfnet\d+"), ("iresnet", r"iresnet\d+$"), ("ir", r"ir_(se_)?\d+$"),
            ("mobilefacenet", r"mobilefacenet(_large)?$"))


def family(arch: str) -> str:
    """Backbones whose shape keyword arguments are the same (``sfnet20`` and ``sfnet20_bn``: ``width``)."""
    return next((name for name, pattern in FAMILIES if re.match(pattern, arch)), arch)


def _put(sd: dict, key: str, tensors: dict) -> None:
    for leaf, value in tensors.items():
        sd[f"{key}.{leaf}"] = np.asarray(value, np.float32)


def _put_batchnorm(sd: dict, layer: layer_order.Layer, tensors: dict, fail) -> None:
    """A BatchNorm's torch tensors; for a statistics-only BatchNorm (``affine=False``) its scale is folded into
    the variance and a shift is refused."""
    if layer.affine:
        _put(sd, layer.key, tensors)
        return
    weight, bias = (np.asarray(tensors[k], np.float64) for k in ("weight", "bias"))
    if np.any(bias != 0) or np.any(weight <= 0):
        fail(f"layer {layer.key} is a BatchNorm without scale and shift, the graph's scales it by "
             f"{weight[:3].tolist()}... and shifts it by {bias[:3].tolist()}... (features_affine=True?)")
    var = (np.asarray(tensors["running_var"], np.float64) + folding.TORCH_EPS) / weight**2 - folding.TORCH_EPS
    _put(sd, layer.key, {"running_mean": tensors["running_mean"], "running_var": np.maximum(var, 0.0)})


def _weight_as(op: graph_reader.Op, layer: layer_order.Layer) -> np.ndarray | None:
    """``op``'s weight in ``layer``'s torch layout when they compute the same thing, else None."""
    if op.kind == layer.kind:
        return np.asarray(op.weight, np.float32)
    if layer.kind == "linear" and op.pointwise_on_one_pixel:
        return np.asarray(op.weight, np.float32).reshape(op.weight.shape[:2])
    if layer.kind == "conv" and op.kind == "linear" and layer.shape[2:] == (1, 1) and layer.groups == 1:
        return np.asarray(op.weight, np.float32).reshape(*op.weight.shape, 1, 1)
    return None


def to_torch_state_dict(graph: graph_reader.Graph, found: Found, where: str,
                        fold_input: bool | None = None) -> OrderedDict:
    """Torch-named tensors of ``found`` computing what the graph computes; the input preprocessing is folded into
    the first convolution when ``fold_input`` (default: whenever the graph has one)."""
    expected = layer_order.call_order(found.arch, found.embed_dim, found.kwargs)
    ops = graph.ops
    sd: OrderedDict[str, np.ndarray] = OrderedDict()

    def fail(message: str):
        raise ValueError(f"{where}: the graph does not match {found.arch} ({found.description}): {message}")

    i = j = 0
    shift = None  # a bias with no place in its layer, for the BatchNorm that follows
    while i < len(expected):
        e = expected[i]
        if j >= len(ops):
            fail(f"it ends before layer {e.key} ({e.kind})")
        op = ops[j]
        if e.kind in ("conv", "linear"):
            weight = _weight_as(op, e)
            if weight is None:
                fail(f"layer {e.key} is a {e.kind}, the graph's node {op.node} is a {op.kind}")
            if tuple(weight.shape) != e.shape:
                fail(f"node {op.node} has weight {tuple(weight.shape)}, layer {e.key} needs {e.shape}")
            if e.kind == "conv" and op.kind == "conv" and (op.stride, op.groups, op.padding) != (
                    e.stride, e.groups, e.padding):
                fail(f"node {op.node} has stride/groups/padding {(op.stride, op.groups, op.padding)}, layer {e.key} "
                     f"{(e.stride, e.groups, e.padding)}")
            sd[f"{e.key}.weight"] = weight
            bias = np.zeros(e.shape[0], np.float32) if op.bias is None else np.asarray(op.bias, np.float32)
            following = ops[j + 1] if j + 1 < len(ops) else None
            has_own_bn = following is not None and following.kind == "bn" and following.input == op.output
            next_is_bn = i + 1 < len(expected) and expected[i + 1].kind == "bn" and expected[i + 1].follows
            if next_is_bn and not has_own_bn:  # folded by the exporter
                if e.bias:
                    sd[f"{e.key}.bias"], bias = bias, np.zeros_like(bias)
                _put_batchnorm(sd, expected[i + 1], folding.identity_batchnorm(bias), fail)
                i += 2
                j += 1
                continue
            if e.bias:
                sd[f"{e.key}.bias"] = bias
            elif np.any(bias != 0) and next_is_bn:
                shift = bias
            elif np.any(bias != 0):
                fail(f"node {op.node} has a bias that layer {e.key} has no place for")
        elif op.kind != e.kind:
            fail(f"layer {e.key} is a {e.kind}, the graph's node {op.node} is a {op.kind}")
        elif e.kind == "bn":
            if op.weight.size != e.shape[0]:
                fail(f"BatchNormalization {op.node} has {op.weight.size} channels, layer {e.key} {e.shape[0]}")
            _put_batchnorm(sd, e, folding.batchnorm(op.weight, op.bias, op.mean, op.var, op.eps, shift=shift), fail)
            shift = None
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
    if graph.normalises_input and (fold_input is None or fold_input):
        first = f"{expected[0].key}.weight"
        scale, offset = pixel_map(graph)
        sd[first] = folding.input_scale(sd[first], scale, offset, where)
    return sd


def pixel_map(graph: graph_reader.Graph) -> tuple[np.ndarray, np.ndarray]:
    """The graph's preprocessing as ``scale * pixels + offset`` on 0-255 pixels (the graph's own map when it takes
    pixels, else its map composed with jsphere's ``(p - 127.5) / 127.5``)."""
    scale, offset = (np.asarray(v, np.float64).reshape(-1) for v in (graph.input_scale, graph.input_offset))
    if np.max(np.abs(scale)) <= PIXEL_SCALE_LIMIT:
        return scale, offset
    return scale / folding.PIXEL_STD, offset - scale * folding.PIXEL_MEAN / folding.PIXEL_STD


def input_convention(graph: graph_reader.Graph, where: str) -> InputConvention | None:
    """The input the graph's preprocessing asks for when it cannot be folded into the first convolution (an
    offset other than jsphere's), as an ``InputConvention``; None when it folds (or there is none)."""
    if not graph.normalises_input:
        return None
    scale, offset = pixel_map(graph)
    if np.all(np.abs(scale * folding.PIXEL_MEAN + offset) <= 1e-6 * np.abs(scale * folding.PIXEL_STD)):
        return None
    if np.any(scale <= 0):
        raise ValueError(f"{where}: the graph maps pixels x to {scale.tolist()} * x + {offset.tolist()}, a "
                         "decreasing map no input convention describes")
    scale, offset = np.broadcast_to(scale, (3,)), np.broadcast_to(offset, (3,))
    return InputConvention("RGB", tuple(-offset / scale), tuple(1.0 / scale))


def exported_input(graph: graph_reader.Graph, where: str) -> InputConvention | None:
    """What a graph ``converters.export_onnx`` wrote says it takes (its ``metadata_props``), None for others."""
    text = graph.metadata.get(conventions.ONNX_INPUT_KEY)
    if text is None:
        return None
    try:
        return InputConvention.from_meta(json.loads(text))
    except (TypeError, ValueError, RecursionError) as e:
        raise ValueError(f"{where}: its metadata {conventions.ONNX_INPUT_KEY!r} is not an input convention "
                         f"({e})") from None


def resolve(graph: graph_reader.Graph, where: str, arch: str = backbone_import.AUTO,
            kwargs: dict | None = None) -> Found:
    """The backbone to build: detected, or ``arch`` (with the shape knobs detection reads when it recognises the
    same family); explicit ``kwargs`` win."""
    if arch == backbone_import.AUTO:
        found = architecture.infer_model(graph, where)
    else:
        if arch not in models.names():
            raise ValueError(f"unknown --arch {arch!r}; valid: {backbone_import.AUTO}, {', '.join(models.names())}")
        try:
            detected = architecture.infer_model(graph, where)
        except ValueError:
            detected = None
        same = detected is not None and family(detected.arch) == family(arch)
        found = Found(arch, architecture.embed_dim(graph), detected.kwargs if same else {}, f"--arch {arch}",
                      origin=detected.origin if same else "")
    return replace(found, kwargs={**found.kwargs, **(kwargs or {})})


def import_onnx(path: str, out: str, *, arch: str = backbone_import.AUTO, kwargs: dict | None = None,
                report: Callable[[Found, str], None] | None = None, overwrite: bool = False,
                convention_override: InputConvention | None = None) -> Path:
    """Import ``path`` into a checkpoint at ``out``; ``convention_override`` is what the graph's input is (its
    channel order and normalisation, e.g. BGR for AdaFace's models), for graphs that do not normalise it
    themselves."""
    outputs.check_free(out, overwrite=overwrite)
    where = str(path)
    graph = graph_reader.read(path)
    found = resolve(graph, where, arch, kwargs)
    recorded = input_convention(graph, where)  # the graph's own preprocessing, when it cannot be folded
    if convention_override is not None and recorded is not None:
        raise ValueError(f"{where}: the graph normalises its input itself ({recorded.describe_pixels()}); "
                         "--input-convention applies to graphs that do not")
    fold = graph.normalises_input and recorded is None
    sd = to_torch_state_dict(graph, found, where, fold_input=fold)
    notes = ["input normalisation folded into the first conv"] if fold else []
    if graph.output_normalised:
        notes.append("output L2 normalisation dropped")
    decision = conventions.decide(found.origin, LAYOUT, where, arch=found.arch, pixels=recorded,
                                  pixels_why="the graph's own preprocessing" if recorded else "",
                                  recorded=exported_input(graph, where), override=convention_override)
    found = replace(found, input=decision.convention.to_meta())
    if report:
        report(found, ", ".join([LAYOUT, *notes]))
    pure = backbone_import.backbone_to_pure(found.arch, sd, found.embed_dim, found.kwargs, where)
    source = {"converter": "converters.import_onnx", "file": where, "layout": LAYOUT,
              "input_normalisation_folded": fold,
              "output_normalisation_dropped": graph.output_normalised, "input_layout": graph.input_layout,
              **decision.source_meta()}
    return backbone_import.save(out, found=found, pure=pure, source=source, overwrite=overwrite)
