"""Released face-recognition models whose architecture jsphere does not have, recognised by their layouts and
refused naming exactly what is missing, instead of "fits no jsphere backbone":

* GhostFaceNet (the PyTorch port of GhostFaceNets, ``GhostFaceNetsV1``/``V2``: ``conv_stem``,
  ``blocks.N.M.ghost1.primary_conv``, ``classifier.conv_dw``; V2's DFC attention ``short_conv``);
* a MobileFaceNet trained on 112x96 crops (its GDC kernel is 7x6: the final map of a 112x96 input).
"""

from __future__ import annotations

import re

from converters.core import keys


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
    if "conv_stem.weight" in sd and "classifier.conv_dw.weight" in sd and any(
            re.match(r"blocks\.\d+\.\d+\.ghost1\.primary_conv\.", k) for k in sd):
        _ghostfacenet(sd, where)
    gdc = "features.layers.0.layers.0.weight"
    if "conv_sep.layers.0.weight" in sd and gdc in sd and keys.shape(sd, gdc)[2:] == (7, 6):
        raise ValueError(f"{where}: a MobileFaceNet trained on 112x96 crops (its GDC kernel is 7x6, the final map of "
                         "a 112x96 input): jsphere's models take 112x112 faces aligned to the ArcFace template, whose "
                         "final 7x7 map this kernel does not fit")
