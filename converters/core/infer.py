"""Which jsphere backbone a PyTorch-layout state_dict holds, with every shape hyper-parameter read from the tensors.

* MobileFaceNet (arcface_torch ``get_mbf(fp16, num_features, blocks, scale)``): ``scale`` = width of
  ``layers.0`` / 64; ``blocks[0]`` = 1 when ``layers.1`` is a single ConvBlock, else the number of its DepthWise
  blocks; ``blocks[1..3]`` = the DepthWise blocks of ``layers.3/5/7``; embedding size from ``features.layers.3``
  (GDC), or ``features.fc1`` with insightface's GNAP output (``features.bn6f``: ``output='gnap'``).
  ``blocks=(2, 8, 12, 4), scale=4`` is ``mobilefacenet_large`` (``mbf_large``).
* IResNet: the depth from the blocks per stage (``layer{s}.{b}.conv1``); ``features_scale='trainable'`` when the
  ``features`` scale is not all ones or the file is an OpenSphere v2 one (OpenSphere v2 trains it).
* SFNet: the depth from the blocks per stage, BatchNorm from ``bn1`` keys. Without BN, ``sfnet*`` and
  ``sfnet*_deprecated`` have the same keys but compute different functions: only OpenSphere v2 files are
  decided (v2 has no ``_deprecated``); for the others both names are returned and the caller must choose.

``infer`` returns every model that fits (one, or the two SFNet variants); a layout that fits no family raises a
``ValueError`` naming what was found and what would fit.
"""

from __future__ import annotations

import re

import numpy as np

from converters.core import keys
from converters.core.found import Found, depth_of, mobilefacenet_name, sfnet_width
from converters.core.infer_edgeface import edgeface_found
from converters.core.infer_ir import ir_family, mobilefacenet_relu6
from converters.core.infer_registered import registered
from converters.core.infer_unsupported import refuse_unsupported
from jsphere.models import iresnet, sfnet


def _mobilefacenet(sd: dict, layout: str, where: str) -> list[Found]:
    width = keys.shape(sd, "layers.0.layers.0.weight")[0]
    if width % 64:
        raise ValueError(f"{where}: a MobileFaceNet whose first layer has {width} channels, not a multiple of 64 "
                         "(arcface_torch's widths are 64 * scale)")
    scale = width // 64
    first = 1 if "layers.1.layers.0.weight" in sd else keys.count(sd, "layers.1.layers.{}.layers.0.layers.0.weight")
    blocks = (first, *(keys.count(sd, f"layers.{i}.layers.{{}}.layers.0.layers.0.weight") for i in (3, 5, 7)))
    gnap = "features.bn6f.running_mean" in sd
    head = "features.fc1.running_mean" if gnap else "features.layers.3.weight"
    if head not in sd or 0 in blocks:
        raise ValueError(f"{where}: looks like a MobileFaceNet (layers.N / conv_sep) but lacks "
                         f"{f'{head} (its output layer)' if head not in sd else 'blocks'}"
                         f" (blocks seen: {blocks}); first keys: {keys.first_keys(sd)}")
    dim = keys.shape(sd, head)[0]
    arch, kwargs = mobilefacenet_name(blocks, scale)
    if gnap:
        kwargs = {**kwargs, "output": "gnap"}
        return [Found(arch, dim, kwargs, f"MobileFaceNet scale {scale}, blocks {blocks}, with insightface's GNAP "
                                         f"output (each image's own mean norm), {dim}-d embedding")]
    if layout == "treb1en":
        text = (f"MobileFaceNet of TreB1eN's InsightFace_Pytorch / face.evoLVe (arcface_torch get_mbf scale {scale}, "
                f"blocks {blocks} under other names), {dim}-d embedding")
        return [Found(arch, dim, kwargs, text, origin="evolve")]
    return [Found(arch, dim, kwargs, f"MobileFaceNet (arcface_torch get_mbf) scale {scale}, blocks {blocks}, "
                                     f"{dim}-d embedding")]


def _stage_blocks(sd: dict) -> tuple[int, ...]:
    return tuple(keys.count(sd, f"layer{s}.{{}}.conv1.weight") for s in (1, 2, 3, 4))


def _iresnet(sd: dict, layout: str, where: str) -> list[Found]:
    depth = depth_of(_stage_blocks(sd), iresnet.DEPTHS, "iresnet", where)
    dim = keys.shape(sd, "fc.weight")[0]
    kwargs = {}
    trained = False
    if "features.weight" in sd:
        trained = layout == "opensphere-v2" or not np.allclose(np.asarray(sd["features.weight"], np.float32), 1.0)
        if trained:
            kwargs["features_scale"] = "trainable"
    scale = "trained (OpenSphere v2)" if trained else "frozen at 1 (insightface)"
    return [Found(f"iresnet{depth}", dim, kwargs, f"IResNet-{depth}, {dim}-d embedding, features scale {scale}")]


def _sfnet(sd: dict, layout: str, where: str) -> list[Found]:
    blocks = tuple(n - 1 for n in _stage_blocks(sd))
    depth = depth_of(blocks, sfnet.DEPTHS, "sfnet", where)
    dim = keys.shape(sd, "fc.weight")[0]
    channels = tuple(keys.shape(sd, f"layer{s}.0.conv1.weight")[0] for s in range(1, 5))
    width = sfnet_width(channels, where)
    kwargs = {} if width == 1 else {"width": width}
    size = f", {channels[0]}-channel stem" if kwargs else ""
    if "layer1.0.bn1.weight" in sd:
        return [Found(f"sfnet{depth}_bn", dim, kwargs, f"SFNet-{depth} with BatchNorm, {dim}-d embedding{size}")]
    plain = Found(f"sfnet{depth}", dim, kwargs, f"SFNet-{depth} without BatchNorm (ReLU after the residual add), "
                                                f"{dim}-d embedding{size}")
    if layout == "opensphere-v2":
        return [plain]
    return [plain, Found(f"sfnet{depth}_deprecated", dim, kwargs,
                         f"SFNet-{depth} of OpenSphere v1's sfnet_deprecated.py (ReLU before the residual add), "
                         f"{dim}-d embedding{size}")]


FAMILIES = (
    "IResNet (conv1, prelu, layer1-4.N.{bn1,conv1,bn2,prelu,conv2,bn3}, fc, features)",
    "IR / IR-SE of AdaFace, CurricularFace, face.evoLVe, TreB1eN (input_layer, body.N.{shortcut_layer,res_layer}, "
    "output_layer)",
    "MobileFaceNet (layers.0-7, conv_sep, features.layers.{0,2,3}; TreB1eN's conv1, conv_23, ..., conv_6_dw, linear, "
    "bn)",
    "foamliu's ReLU6 MobileFaceNet (conv1, dw_conv, features.N.conv, conv2, gdconv, conv3, bn)",
    "SFNet (layer1-4.N.conv1/conv2 [+ bn1/bn2], fc [+ features])",
    "EdgeFace (model.stem, model.stages.N.blocks.M, model.head)",
)


def infer(state_dict: dict, layout: str, where: str) -> list[Found]:
    """Every backbone whose layout matches ``state_dict`` (a torch-named, prefix-free state_dict)."""
    sd = state_dict
    refuse_unsupported(sd, where)
    if any(k.endswith("stages.0.blocks.0.conv_dw.weight") for k in sd):
        return [edgeface_found(sd, where)]
    if "layers.0.layers.0.weight" in sd and "conv_sep.layers.0.weight" in sd:
        return _mobilefacenet(sd, layout, where)
    if "input_layer.0.weight" in sd and "body.0.res_layer.0.weight" in sd:
        return ir_family(sd, where)
    if "dw_conv.depthwise.weight" in sd and "gdconv.depthwise.weight" in sd:
        return mobilefacenet_relu6(sd, where)
    if "dw_conv1.conv.weight" in sd and "linear7.conv.weight" in sd:
        raise ValueError(f"{where}: Xiaoccer/MobileFaceNet_Pytorch's MobileFaceNet (conv1, dw_conv1, blocks.N, "
                         f"linear7 {keys.shape(sd, 'linear7.conv.weight')[2:]}, linear1) for 112x96 crops; jsphere's "
                         "models take 112x112 faces aligned to the ArcFace template")
    if "layer1.0.conv1.weight" in sd and "fc.weight" in sd:
        if "prelu.weight" in sd and "conv1.weight" in sd:
            return _iresnet(sd, layout, where)
        if not any(re.match(r"layer\d\.\d+\.prelu\.", k) for k in sd):
            return _sfnet(sd, layout, where)
    if "patch_embed.proj.weight" in sd:
        raise ValueError(f"{where}: an arcface_torch ViT (patch_embed, blocks.N.attn ...); jsphere has no ViT backbone "
                         f"yet. Backbones it reads: {'; '.join(FAMILIES)}")
    own = registered(sd)
    if own:
        return own
    raise ValueError(f"{where}: the keys fit no jsphere backbone: {len(sd)} tensors, first keys {keys.first_keys(sd)}. "
                     f"Backbones jsphere reads: {'; '.join(FAMILIES)}, and those registered with "
                     "@jsphere.models.register (--import MODULE). If it is one of them with other key names or a "
                     "prefix, re-save its state_dict with the reference names.")
