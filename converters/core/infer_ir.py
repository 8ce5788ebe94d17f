"""Which IR / IR-SE model, in which toolkit's layout, a state_dict holds; and foamliu's ReLU6 MobileFaceNet.

IR family (``input_layer``, ``body.N``, ``output_layer``; ``jsphere.models.ir``): the units per stage from the
output width of every unit (the last BN of its ``res_layer``: stages are runs of one width), hence the depth;
bottleneck units from ``res_layer.8`` (AdaFace's 152/200); the BN after the first conv (``res_layer.2`` with
running statistics: AdaFace) or not (face.evoLVe, TreB1eN, CurricularFace); SE from ``fc1`` under ``res_layer.5``
or ``res_layer.se_block``; an affine output BN1d (``output_layer.4.weight``: face.evoLVe, TreB1eN) or not (AdaFace,
CurricularFace); the embedding size from ``output_layer.3`` (the Linear). The layout names the toolkit (``origin``),
which decides the input convention (``converters.core.conventions``).
"""

from __future__ import annotations

from converters.core import keys
from converters.core.found import Found, depth_of
from jsphere.models import ir
from jsphere.models.mobilefacenet_relu6 import SETTING

ORIGINS = {
    "adaface": "AdaFace layout (BN after the unit's first conv, BatchNorm1d without affine)",
    "curricularface": "CurricularFace layout (bottleneck_IR units, BatchNorm1d without affine)",
    "evolve": "face.evoLVe / TreB1eN InsightFace_Pytorch layout (bottleneck_IR units, affine BatchNorm1d)",
}


def _stages(widths: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(channels, units) of the runs of equal width."""
    channels, units = [], []
    for width in widths:
        if channels and channels[-1] == width:
            units[-1] += 1
        else:
            channels.append(width)
            units.append(1)
    return tuple(channels), tuple(units)


def ir_family(sd: dict, where: str) -> list[Found]:
    bottleneck = "body.0.res_layer.8.running_mean" in sd
    unit_bn = bottleneck or "body.0.res_layer.2.running_mean" in sd
    se_named, se_indexed = "body.0.res_layer.se_block.fc1.weight" in sd, "body.0.res_layer.5.fc1.weight" in sd
    if (se_named and not unit_bn) or (se_indexed and unit_bn):
        raise ValueError(f"{where}: an IR-SE whose SE position (res_layer.{'se_block' if se_named else '5'}) does not "
                         f"fit its units ({'with' if unit_bn else 'without'} a BN after the first conv)")
    last = 8 if bottleneck else 5 if unit_bn else 4
    widths = []
    for i in range(keys.count(sd, "body.{}.res_layer.0.weight")):
        key = f"body.{i}.res_layer.{last}.running_mean"
        if key not in sd:
            raise ValueError(f"{where}: IR unit body.{i} has no {key} (the units of one file must all be alike)")
        widths.append(keys.shape(sd, key)[0])
    channels, units = _stages(widths)
    expected = ir.BOTTLENECK_CHANNELS if bottleneck else ir.BASIC_CHANNELS
    if channels != expected:
        kind = "bottleneck" if bottleneck else "basic"
        raise ValueError(f"{where}: an IR whose stages have {channels} channels; IR {kind} units have {expected}")
    depth = depth_of(units, ir.DEPTHS, "ir_", where)
    if "output_layer.3.weight" not in sd:
        raise ValueError(f"{where}: an IR without output_layer.3 (the Linear of the embedding)")
    dim = keys.shape(sd, "output_layer.3.weight")[0]
    affine = "output_layer.4.weight" in sd
    kwargs = {}
    if not unit_bn:
        kwargs["unit_bn"] = False
    if bottleneck != ir.default_bottleneck(depth):
        kwargs["bottleneck"] = bottleneck
    if affine:
        kwargs["features_affine"] = True
    origin = "adaface" if unit_bn else "evolve" if affine else "curricularface"
    se = se_named or se_indexed
    return [Found(f"ir_se_{depth}" if se else f"ir_{depth}", dim, kwargs,
                  f"IR{'-SE' if se else ''}-{depth} ({'bottleneck' if bottleneck else 'basic'} units), {dim}-d "
                  f"embedding, {ORIGINS[origin]}", origin=origin)]


def mobilefacenet_relu6(sd: dict, where: str) -> list[Found]:
    blocks, expected = keys.count(sd, "features.{}.conv.0.0.weight"), sum(n for _, _, n, _ in SETTING)
    if blocks != expected or "conv3.weight" not in sd:
        raise ValueError(f"{where}: looks like foamliu's MobileFaceNet (dw_conv, gdconv) but has {blocks} inverted "
                         f"residuals (features.N; the released model has {expected}) "
                         f"{'and' if 'conv3.weight' in sd else 'and no'} conv3")
    dim = keys.shape(sd, "conv3.weight")[0]
    text = f"MobileFaceNet with ReLU6 inverted residuals (foamliu/MobileFaceNet), {dim}-d embedding"
    return [Found("mobilefacenet_relu6", dim, {}, text, origin="foamliu")]
