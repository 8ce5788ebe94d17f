"""insightface's MXNet recognition networks (``fmobilefacenet`` with the GDC or GNAP output, ``fresnet`` LResNet-IR with
the ``E`` output) as torch-named state_dicts of jsphere's backbones (``to_torch_state_dict``): the jsphere layer each
MXNet operator is (``mobilefacenet_layers``, ``iresnet_layers``), the variables each operator reads (``ParamNames``:
off the symbol's graph, or the names insightface's symbol code gives), and what MXNet computes differently folded
into the weights exactly (BatchNorm ``eps`` and ``fix_gamma``, ``pre_fc1``'s bias, the input map, y2's narrower
``res_2`` blocks). The help of ``python -m converters.import_mxnet`` lists the networks and the rewrites in full.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from converters.core import folding
from converters.mxnet_format import model_files

INSIGHTFACE_INPUT = (0.0078125, -127.5 * 0.0078125)  # data = (data - 127.5) * 0.0078125 in every recognition symbol
CLASSIFIER = re.compile(r"^fc7(_|$)")
ROLES = {"conv": ("weight",), "prelu": ("gamma",), "fc": ("weight", "bias"),
         "bn": ("gamma", "beta", "moving_mean", "moving_var")}
# Without a symbol JSON the variables are named as insightface's symbol code names them: ``<operator>_<argument>``,
# except the original fmobilefacenet.py (model-y1-test2), whose pre_fc1 reads Variable("fc1_weight").
UNNAMED_DEFAULTS = {("pre_fc1", "weight"): ("pre_fc1_weight", "fc1_weight")}
# Operators an insightface fmobilefacenet (GDC) / fresnet (E) embedding is computed with; any other one (GNAP's
# attention, SE's sigmoid gates, plain ReLU) means a variant jsphere has no layer for.
KNOWN_OPS = {"Convolution", "BatchNorm", "FullyConnected", "elemwise_add", "_Plus", "_plus", "Dropout", "Flatten",
             *model_files.SCALAR_OPS}
# insightface's symbol_utils.get_fc1(fc_type='GNAP'), "mobilefacenet++": the operators of its norm-aware pooling
# (body * body, sum over channels, sqrt, mean, broadcast_div, tile, the product, global average Pooling).
GNAP_OPS = {"elemwise_mul", "_mul", "_Mul", "broadcast_mul", "sum", "sqrt", "mean", "broadcast_div", "tile", "Pooling"}
GNAP_BNS = ("bn6f", "bn6w", "fc1")  # BatchNorm(fix_gamma=True, eps=2e-5) in get_fc1
MBF_STAGE1_GROUPS = 128  # arcface_torch's (and jsphere's) first Residual; insightface's y2 symbol uses 64


def _conv_block(mx: str, torch: str, act: bool = True) -> list[tuple[str, str, str]]:
    """fmobilefacenet ``Conv``/``Linear`` -> arcface_torch ``ConvBlock``/``LinearBlock``."""
    rows = [(f"{mx}_conv2d", f"{torch}.layers.0", "conv"), (f"{mx}_batchnorm", f"{torch}.layers.1", "bn")]
    return rows + ([(f"{mx}_relu", f"{torch}.layers.2", "prelu")] if act else [])


def _depthwise(mx: str, torch: str) -> list[tuple[str, str, str]]:
    """fmobilefacenet ``DResidual`` -> arcface_torch ``DepthWise``."""
    return (_conv_block(f"{mx}_conv_sep", f"{torch}.layers.0") + _conv_block(f"{mx}_conv_dw", f"{torch}.layers.1")
            + _conv_block(f"{mx}_conv_proj", f"{torch}.layers.2", act=False))


def _count(has: Callable[[str], bool], pattern: str, start: int = 0) -> int:
    """Number of consecutive indices from ``start`` for which ``pattern.format(i)`` is an operator."""
    i = start
    while has(pattern.format(i)):
        i += 1
    return i - start


def mobilefacenet_layers(has: Callable[[str], bool]) -> list[tuple[str, str, str]]:
    """(MXNet operator, torch module, kind) for insightface's fmobilefacenet with the GDC or GNAP output:
    ``conv_2_dw`` (y1, blocks[0] = 1) or a ``res_2`` Residual (``net_blocks[0] > 1``, e.g. y2's (2, 8, 16, 4))."""
    rows = _conv_block("conv_1", "layers.0")
    if has("conv_2_dw_conv2d"):
        rows += _conv_block("conv_2_dw", "layers.1")
    for i in range(_count(has, "res_2_block{}_conv_sep_conv2d")):
        rows += _depthwise(f"res_2_block{i}", f"layers.1.layers.{i}")
    for mx_stage, torch_index in (("dconv_23", 2), ("res_3", 3), ("dconv_34", 4), ("res_4", 5), ("dconv_45", 6),
                                  ("res_5", 7)):
        if mx_stage.startswith("dconv"):
            rows += _depthwise(mx_stage, f"layers.{torch_index}")
            continue
        for i in range(_count(has, f"{mx_stage}_block{{}}_conv_sep_conv2d")):
            rows += _depthwise(f"{mx_stage}_block{i}", f"layers.{torch_index}.layers.{i}")
    rows += _conv_block("conv_6sep", "conv_sep")
    if has("bn6f"):  # the GNAP output (symbol_utils.get_fc1 'GNAP'): pre_fc1 and bn6w below 512-d only
        narrow = [("bn6w", "features.bn6w", "bn"), ("pre_fc1", "features.pre_fc1", "fc")] if has("bn6w") else []
        return rows + [("bn6f", "features.bn6f", "bn"), *narrow, ("fc1", "features.fc1", "bn")]
    rows += _conv_block("conv_6dw7_7", "features.layers.0", act=False)
    return rows + [("pre_fc1", "features.layers.2", "fc"), ("fc1", "features.layers.3", "bn")]


def iresnet_layers(has: Callable[[str], bool]) -> list[tuple[str, str, str]]:
    """(MXNet operator, torch module, kind) for insightface's fresnet LResNet-IR (unit v3, output E)."""
    rows = [("conv0", "conv1", "conv"), ("bn0", "bn1", "bn"), ("relu0", "prelu", "prelu")]
    for s in (1, 2, 3, 4):
        for u in range(1, _count(has, f"stage{s}_unit{{}}_conv1", start=1) + 1):
            base, t = f"stage{s}_unit{u}", f"layer{s}.{u - 1}"
            rows += [(f"{base}_bn1", f"{t}.bn1", "bn"), (f"{base}_conv1", f"{t}.conv1", "conv"),
                     (f"{base}_bn2", f"{t}.bn2", "bn"), (f"{base}_relu1", f"{t}.prelu", "prelu"),
                     (f"{base}_conv2", f"{t}.conv2", "conv"), (f"{base}_bn3", f"{t}.bn3", "bn")]
            if u == 1:
                rows += [(f"{base}_conv1sc", f"{t}.downsample.0", "conv"), (f"{base}_sc", f"{t}.downsample.1", "bn")]
    return rows + [("bn1", "bn2", "bn"), ("pre_fc1", "fc", "fc"), ("fc1", "features", "bn")]


NETWORKS = {
    "fmobilefacenet (GDC)": ("conv_1_conv2d", mobilefacenet_layers, {"eps": 1e-3, "fix_gamma": False}),
    "fresnet LResNet-IR (E)": ("conv0", iresnet_layers, {"eps": 2e-5, "fix_gamma": False}),
}
FC1_DEFAULTS = {"eps": 2e-5, "fix_gamma": True}  # symbol_utils.get_fc1: fc1 = BatchNorm(fix_gamma=True, eps=2e-5)


class ParamNames:
    """Which variable holds each operator argument: read off the symbol's graph (the variables each operator
    reads), or, with no symbol, the names insightface's symbol code gives them."""

    def __init__(self, params: set[str], symbol: model_files.Symbol | None, where: str):
        self.params, self.symbol, self.where = params, symbol, where

    def has(self, op: str) -> bool:
        if self.symbol is not None:
            return self.symbol.has(op)
        return any(f"{op}_{role}" in self.params for role in ("weight", "gamma"))

    def name(self, op: str, role: str) -> str | None:
        """The variable operator ``op`` reads as ``role``; None when it reads none (an optional bias)."""
        if self.symbol is not None:
            return self.symbol.param(op, role)
        candidates = UNNAMED_DEFAULTS.get((op, role), (f"{op}_{role}",))
        return next((c for c in candidates if c in self.params), None)


def _check_operators(symbol: model_files.Symbol, network: str, where: str, also: set[str]) -> None:
    """Refuse a symbol whose embedding uses an operator none of jsphere's layers computes (beyond ``also``, the
    output's own), naming it."""
    for name, op in symbol.embedding_ops:
        prelu = op == "LeakyReLU" and str(symbol.operators[name].attrs.get("act_type", "leaky")) == "prelu"
        if op not in KNOWN_OPS | also and not prelu:
            raise ValueError(f"{where}: the symbol computes the embedding with operator {name!r} ({op}), which "
                             f"insightface's {network} has no counterpart for in jsphere (an SE or ReLU variant?)")


def _widen_depthwise(sd: dict, prefix: str, groups: int) -> None:
    """Pad a DepthWise block's inner width (its groups) with channels that stay exactly 0: zero filters in, BN
    scale and shift 0, zero filters out. Exact: the block computes the same values with ``groups`` inner
    channels (insightface's y2 has 64 where arcface_torch's layout has 128)."""
    width = sd[f"{prefix}.layers.0.layers.0.weight"].shape[0]
    extra = groups - width
    if extra <= 0:
        return

    def pad(key: str, axis: int, value: float = 0.0) -> None:
        widths = [(0, 0)] * sd[key].ndim
        widths[axis] = (0, extra)
        sd[key] = np.pad(sd[key], widths, constant_values=value)

    for block in ("layers.0", "layers.1"):
        pad(f"{prefix}.{block}.layers.0.weight", 0)
        for leaf in ("weight", "bias", "running_mean"):
            pad(f"{prefix}.{block}.layers.1.{leaf}", 0)
        pad(f"{prefix}.{block}.layers.1.running_var", 0, 1.0)
        pad(f"{prefix}.{block}.layers.2.weight", 0)
    pad(f"{prefix}.layers.2.layers.0.weight", 1)


def to_torch_state_dict(params: dict[str, np.ndarray], symbol: model_files.Symbol | None,
                        where: str) -> tuple[OrderedDict, str]:
    """A torch-named state_dict (arcface_torch key names) computing what the MXNet network computes, with the
    jsphere input convention; returns it and the network's name."""
    stripped = {re.sub(r"^(arg|aux):", "", k): v for k, v in params.items()}
    names = ParamNames(set(stripped), symbol, where)
    network = next((n for n, (marker, _, _) in NETWORKS.items() if names.has(marker)), None)
    if network is None:
        shown = ", ".join(list(stripped)[:6])
        raise ValueError(f"{where}: unknown MXNet network (parameters {shown} ...); supported: insightface "
                         f"{' and '.join(NETWORKS)} (model-y1-test2, y2, model-r34-amf, model-r50-am-lfw, "
                         "model-r100-ii and their siblings)")
    _, layers, defaults = NETWORKS[network]
    gnap = network.startswith("fmobilefacenet") and names.has("bn6f")
    if gnap:
        network = "fmobilefacenet (GNAP)"
        if names.has("convx"):
            raise ValueError(f"{where}: an fmobilefacenet with the GNAP output widened above 512 channels (convx): "
                             "jsphere's GNAP takes embeddings of 512 or fewer dimensions")
    if symbol is not None:
        _check_operators(symbol, network, where, GNAP_OPS if gnap else set())
    used: set[str] = set()

    def take(op: str, role: str, required: bool = True) -> np.ndarray | None:
        name = names.name(op, role)
        if name is None:
            if not required:
                return None
            if symbol is not None and not symbol.has(op):
                raise ValueError(f"{where}: {network} operator {op!r} is missing from the symbol")
            if symbol is not None:
                raise ValueError(f"{where}: {network} operator {op!r} reads no {role} variable in the symbol")
            raise ValueError(f"{where}: {network} parameter {op}_{role!s} is missing from the file")
        if name not in stripped:
            raise ValueError(f"{where}: {network} parameter {name!r} (the {role} of {op}) is missing from the file")
        used.add(name)
        return np.asarray(stripped[name])

    sd: OrderedDict[str, np.ndarray] = OrderedDict()
    mobilefacenet = network.startswith("fmobilefacenet")
    fc_bias_to_fold = None
    for mx, torch, kind in layers(names.has):
        if kind == "conv":
            sd[f"{torch}.weight"] = take(mx, "weight")
        elif kind == "prelu":
            sd[f"{torch}.weight"] = take(mx, "gamma").reshape(-1)
        elif kind == "fc":
            sd[f"{torch}.weight"] = take(mx, "weight")
            bias = take(mx, "bias", required=False)
            if mobilefacenet:  # the GDC Linear has no bias: fold it into fc1
                fc_bias_to_fold = bias
            else:
                sd[f"{torch}.bias"] = np.zeros(sd[f"{torch}.weight"].shape[0], np.float32) if bias is None else bias
        else:
            attrs = {**(FC1_DEFAULTS if mx in GNAP_BNS else defaults), **(symbol.bn(mx) if symbol else {})}
            folded = folding.batchnorm(*(take(mx, role) for role in ROLES["bn"]), attrs["eps"],
                                       fix_gamma=attrs["fix_gamma"], shift=fc_bias_to_fold if mx == "fc1" else None)
            for leaf, value in folded.items():
                sd[f"{torch}.{leaf}"] = value
    leftover = sorted(n for n in set(stripped) - used if not CLASSIFIER.match(n))
    if leftover:
        raise ValueError(f"{where}: {len(leftover)} parameters the {network} mapping does not use (first: "
                         f"{', '.join(leftover[:5])}); is it another network variant?")
    block = 0
    while f"layers.1.layers.{block}.layers.0.layers.0.weight" in sd:  # a res_2 Residual (y2)
        _widen_depthwise(sd, f"layers.1.layers.{block}", MBF_STAGE1_GROUPS)
        block += 1
    first = "layers.0.layers.0.weight" if mobilefacenet else "conv1.weight"
    pixel_scale, pixel_offset = (symbol.input_scale, symbol.input_offset) if symbol else INSIGHTFACE_INPUT
    sd[first] = folding.input_scale(sd[first], pixel_scale, pixel_offset, where)
    return OrderedDict((k, np.ascontiguousarray(v, np.float32)) for k, v in sd.items()), network
