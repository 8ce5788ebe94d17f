"""Released face-recognition models whose architecture jsphere does not have, recognised by their layouts and
refused naming exactly what is missing, instead of "fits no jsphere backbone":

* EdgeFace (github otroshi/edgeface; ``model.stem.0``, ``model.stages.N.blocks.M.{conv_dw,norm,mlp}``,
  ``...xca.temperature``, ``model.head.fc``, with ``linear1``/``linear2`` pairs in the ``_gamma_`` models): timm's
  EdgeNeXt whose Linear layers are LoRaLin low-rank pairs; the variant is read from the stem width, the rank ratio
  from the head;
* GhostFaceNet (the PyTorch port of GhostFaceNets, ``GhostFaceNetsV1``/``V2``: ``conv_stem``,
  ``blocks.N.M.ghost1.primary_conv``, ``classifier.conv_dw``; V2's DFC attention ``short_conv``);
* a MobileFaceNet trained on 112x96 crops (its GDC kernel is 7x6: the final map of a 112x96 input).
"""

from __future__ import annotations

import re

from converters.core import keys

EDGENEXT_STEMS = {24: ("EdgeFace-XXS", "edgenext_xx_small"), 32: ("EdgeFace-XS", "edgenext_x_small"),
                  48: ("EdgeFace-S", "edgenext_small"), 80: ("EdgeFace-Base", "edgenext_base")}
EDGENEXT_MISSING = ("jsphere has no EdgeNeXt: missing its LayerNorm layers (channels-last and 2-d), the conv encoder "
                    "blocks (depthwise 3x3-9x9 convolution, GELU MLP, layer scale), the split depth-wise transposed "
                    "attention blocks (cross-covariance attention with a learned temperature, Fourier positional "
                    "encoding) and the LayerNorm + Linear head")


def _prefix(sd: dict, suffix: str) -> str | None:
    """The prefix under which ``suffix`` is a key (``model.`` for EdgeFace's wrapper, or none)."""
    return next((k[: -len(suffix)] for k in sd if k.endswith(suffix)), None)


def _edgeface(sd: dict, p: str, where: str) -> None:
    stem = keys.shape(sd, f"{p}stem.0.weight")[0]
    name, timm_name = EDGENEXT_STEMS.get(stem, (f"an EdgeNeXt with a {stem}-channel stem", "edgenext_*"))
    low_rank = f"{p}head.fc.linear1.weight" in sd
    if low_rank:
        rank, width = keys.shape(sd, f"{p}head.fc.linear1.weight")
        out = keys.shape(sd, f"{p}head.fc.linear2.weight")[0]
        what = (f"{name} (timm {timm_name} with every Linear a LoRaLin low-rank pair, rank ratio gamma ~ "
                f"{rank / min(width, out):.2f})")
        missing = f"{EDGENEXT_MISSING}, and LoRaLin layers (linear1 [rank, in] then linear2 [out, rank])"
    else:
        what, missing = f"{name} (timm {timm_name})", EDGENEXT_MISSING
    raise ValueError(f"{where}: {what} is not a jsphere architecture: {missing}. Run it with the authors' code "
                     "(github otroshi/edgeface, which builds on timm)")


def _ghostfacenet(sd: dict, where: str) -> None:
    version = 2 if any(".short_conv." in k for k in sd) else 1
    stem = keys.shape(sd, "conv_stem.weight")[0]
    dfc = ", the DFC attention branch (1x1, 1x5 and 5x1 convolutions gating the output)" if version == 2 else ""
    raise ValueError(f"{where}: GhostFaceNetV{version} (the PyTorch port of GhostFaceNets, {stem}-channel stem, width "
                     f"~{stem / 16:g}) is not a jsphere architecture: jsphere has no GhostNet: missing its ghost "
                     "modules (a 1x1 primary convolution and a cheap depthwise one, concatenated), squeeze-excitation "
                     f"with hard-sigmoid gates{dfc} and the ModifiedGDC head (depthwise conv, 1x1 conv, BatchNorm1d). "
                     "GhostFaceNets' own releases are Keras .h5 files, whose weights jsphere cannot read")


def refuse_unsupported(sd: dict, where: str) -> None:
    """Raise the refusal of a released architecture jsphere does not have; return when ``sd`` is none of them."""
    p = _prefix(sd, "stem.0.weight")
    if p is not None and f"{p}stages.0.blocks.0.conv_dw.weight" in sd:
        _edgeface(sd, p, where)
    if "conv_stem.weight" in sd and "classifier.conv_dw.weight" in sd and any(
            re.match(r"blocks\.\d+\.\d+\.ghost1\.primary_conv\.", k) for k in sd):
        _ghostfacenet(sd, where)
    gdc = "features.layers.0.layers.0.weight"
    if "conv_sep.layers.0.weight" in sd and gdc in sd and keys.shape(sd, gdc)[2:] == (7, 6):
        raise ValueError(f"{where}: a MobileFaceNet trained on 112x96 crops (its GDC kernel is 7x6, the final map of "
                         "a 112x96 input): jsphere's models take 112x112 faces aligned to the ArcFace template, and "
                         "this kernel computes nothing on their 7x7 map")
