"""``python -m converters.import_mxnet --params model-0000.params [--symbol model-symbol.json] --out DIR``:
insightface's MXNet model zoo (no mxnet needed) as a jsphere checkpoint.

Networks (insightface ``src/symbols`` / ``recognition/symbol``, operator names as they appear in the files):

* ``fmobilefacenet`` with the GDC output: ``conv_1``, ``conv_2_dw`` (or, with ``net_blocks[0] > 1``, the
  Residual ``res_2_block{i}``), ``dconv_23``, ``res_3_block{i}``, ``dconv_34``, ``res_4_block{i}``, ``dconv_45``,
  ``res_5_block{i}``, ``conv_6sep``, ``conv_6dw7_7``, ``pre_fc1``, ``fc1`` -> ``mobilefacenet`` with ``scale=1``
  (64/128 channels) and the blocks counted in the file: ``model-y1-test2`` (blocks (1, 4, 6, 2), 128-d) and y2
  (blocks (2, 8, 16, 4), 256-d; its ``res_2`` blocks are 64 channels wide inside where arcface_torch's layout has
  128: the extra channels are padded with exact zeros);
* ``fresnet`` LResNet-IR with the ``E`` output: ``conv0``, ``bn0``, ``relu0``,
  ``stage{s}_unit{u}_{bn1,conv1,bn2,relu1,conv2,bn3,conv1sc,sc}``, ``bn1``, ``pre_fc1``, ``fc1`` ->
  ``iresnet{18,34,50,100,200}`` (``model-r34-amf``, ``model-r50-am-lfw``, ``model-r100-ii``).

Each operator's parameters are the variables the symbol's graph feeds it, whatever their names: the original
``fmobilefacenet.py`` of ``model-y1-test2`` feeds ``pre_fc1`` a variable named ``fc1_weight`` (bias
``pre_fc1_bias``). Without a symbol JSON the names insightface's symbol code gives are used
(``<operator>_<argument>``, and ``fc1_weight`` for y1's ``pre_fc1``). A symbol whose embedding uses an operator
jsphere has no layer for (GNAP attention, SE gates, plain ReLU) is refused naming it.

What MXNet computes differently is folded into the weights, exactly up to float32 rounding:

* BatchNorm ``eps`` (1e-3 MXNet default in fmobilefacenet, 2e-5 in fresnet and every ``fc1``; jsphere uses 1e-5):
  ``running_var += eps - 1e-5`` (an ``eps`` below 1e-5 rescales gamma instead);
* ``fix_gamma=True`` BatchNorm (``fc1``): gamma is taken as 1 whatever the file holds;
* the ``pre_fc1`` bias of the MobileFaceNet, whose jsphere Linear has none: moved into ``fc1``'s mean
  (``BN(Wx + b) = BN'(Wx)`` with ``mean' = mean - b``);
* the input: the symbols compute ``(x - 127.5) * 0.0078125`` on 0-255 RGB pixels inside the graph, jsphere feeds
  ``(x - 127.5) / 127.5``; the ratio 127.5 / 128 multiplies the first convolution's weights (exact with its zero
  padding because the offset cancels). Read from the symbol JSON (default: that map when no JSON is given).

``eps``/``fix_gamma`` come from ``<prefix>-symbol.json`` beside the params (or ``--symbol``); without one the
values of insightface's symbol files are used and the command says so. Classifier weights (``fc7``) are ignored.
"""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from converters.core import arguments, backbone_import, folding
from converters.mxnet_format import model_files
from jsphere import cli, outputs

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
    """(MXNet operator, torch module, kind) for insightface's fmobilefacenet with the GDC output: ``conv_2_dw``
    (y1, blocks[0] = 1) or a ``res_2`` Residual (``net_blocks[0] > 1``, e.g. y2's (2, 8, 16, 4))."""
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


def _check_operators(symbol: model_files.Symbol, network: str, where: str) -> None:
    """Refuse a symbol whose embedding uses an operator none of jsphere's layers computes, naming it."""
    for name, op in symbol.embedding_ops:
        prelu = op == "LeakyReLU" and str(symbol.operators[name].attrs.get("act_type", "leaky")) == "prelu"
        if op not in KNOWN_OPS and not prelu:
            raise ValueError(f"{where}: the symbol computes the embedding with operator {name!r} ({op}), which "
                             f"insightface's {network} has no counterpart for in jsphere (a GNAP, SE or ReLU "
                             "variant?)")


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
    if symbol is not None:
        _check_operators(symbol, network, where)
    _, layers, defaults = NETWORKS[network]
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
            attrs = {**(FC1_DEFAULTS if mx == "fc1" else defaults), **(symbol.bn(mx) if symbol else {})}
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


def symbol_path_for(params: Path) -> Path:
    """``model-0000.params`` -> ``model-symbol.json``."""
    return params.with_name(re.sub(r"-\d+\.params$", "", params.name) + "-symbol.json")


def import_params(params: str, out: str, *, symbol: str | None = None, arch: str = backbone_import.AUTO,
                  kwargs: dict | None = None, report=None, overwrite: bool = False) -> Path:
    outputs.check_free(out, overwrite=overwrite)
    params_path = Path(params)
    if not params_path.exists():
        raise FileNotFoundError(f"{params_path} does not exist")
    symbol_file = Path(symbol) if symbol else symbol_path_for(params_path)
    if symbol and not symbol_file.exists():
        raise FileNotFoundError(f"{symbol_file} does not exist")
    arrays = model_files.read_params(params_path)
    sym = model_files.read_symbol(symbol_file) if symbol_file.exists() else None
    sd, network = to_torch_state_dict(arrays, sym, str(params_path))
    if sym is None:
        print(f"converters.import_mxnet: no {symbol_file.name} beside the params: using insightface's symbol "
              "definitions for BatchNorm eps/fix_gamma and the input map (x - 127.5) * 0.0078125", file=sys.stderr)
    layout = "insightface-mxnet"
    found = backbone_import.resolve(sd, layout, str(params_path), arch=arch, kwargs=kwargs)
    if report:
        report(found, f"{network}, {layout}")
    pure = backbone_import.backbone_to_pure(found.arch, sd, found.embed_dim, found.kwargs, str(params_path))
    source = {"converter": "converters.import_mxnet", "file": str(params_path), "layout": layout,
              "network": network, "symbol": str(symbol_file) if sym else None}
    match = re.search(r"-(\d+)\.params$", params_path.name)
    return backbone_import.save(out, found=found, pure=pure, source=source, step=int(match.group(1)) if match else 0,
                             overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.import_mxnet", description=__doc__)
    p.add_argument("--params", required=True, help="model-XXXX.params")
    p.add_argument("--symbol", default=None, help="model-symbol.json (default: beside the params)")
    arguments.add_model_arguments(p)
    p.add_argument("--out", required=True)
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    path = import_params(a.params, a.out, symbol=a.symbol, arch=a.arch,
                         kwargs=arguments.parse_json_object(a.model_kwargs, "--model-kwargs"),
                         report=arguments.print_found, overwrite=a.overwrite)
    print(f"wrote {path} (input: RGB, (x - 127.5) / 127.5 as everywhere in jsphere)")
    return 0


if __name__ == "__main__":
    cli.run("converters.import_mxnet", main)
