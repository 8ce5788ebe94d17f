"""The input a released model was trained on, decided at import and recorded in the checkpoint
(``meta['input']``, ``jsphere.input_convention.InputConvention``), so that ``jsphere.embed`` and ``--mode=eval`` feed it
what it expects.

* AdaFace: BGR, ``(x / 255 - 0.5) / 0.5`` (its README and ``inference.py``: "our pretrained model takes the input in
  BGR color channel").
* TreB1eN's InsightFace_Pytorch (``model_ir_se50.pth``, ``model_mobilefacenet.pth``): BGR, ``(x - 127.5) / 127.5``:
  its ``load_mx_rec`` writes cv2's BGR training crops through PIL unchanged and ``load_bin`` turns the RGB ``.bin``
  images to BGR. Its files have face.evoLVe's keys, so they are told apart by TreB1eN's file names.
* face.evoLVe and CurricularFace: RGB (PIL) with mean = std = 0.5, i.e. jsphere's own convention.
* foamliu/MobileFaceNet: RGB (PIL) with ImageNet's mean and std.

``--input-convention`` (``rgb``, ``bgr``, ``imagenet`` or a JSON object ``{"channels", "mean", "std"}``) overrides.
For ONNX export, ``torch_input_adapter`` makes the reference model take jsphere's input (RGB, (x - 127.5) / 127.5):
a channel swap is folded exactly into the first convolution's weights, any other normalisation becomes an
in-graph per-channel multiply-add.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jsphere.input_convention import CONVENTIONS, JSPHERE, InputConvention

if TYPE_CHECKING:
    from torch import nn

TREB1EN_NAMES = re.compile(r"^model_(ir_se\d+|ir\d+|mobilefacenet)\.pth$|^model_.*_accuracy:.*_step:", re.IGNORECASE)


def for_origin(origin: str, file: str | Path) -> tuple[InputConvention, str]:
    """The convention of a model of ``origin`` (``converters.core.found.Found.origin``) read from ``file``, and why."""
    if origin == "adaface":
        return CONVENTIONS["bgr"], "AdaFace's models take BGR"
    if origin == "evolve":
        if TREB1EN_NAMES.search(Path(file).name):
            return CONVENTIONS["bgr"], ("a TreB1eN InsightFace_Pytorch file name: its models are trained on BGR "
                                        "(--input-convention rgb for face.evoLVe's)")
        return JSPHERE, ("face.evoLVe's convention; TreB1eN's InsightFace_Pytorch models have the same keys but take "
                         "BGR: --input-convention bgr")
    if origin == "foamliu":
        return CONVENTIONS["imagenet"], "foamliu's MobileFaceNet is trained on ImageNet-normalised RGB"
    return JSPHERE, ""


def parse(text: str, flag: str = "--input-convention") -> InputConvention:
    """A preset name (``rgb``, ``bgr``, ``imagenet``) or a JSON object ``{"channels", "mean", "std"}``."""
    if text.lower() in CONVENTIONS:
        return CONVENTIONS[text.lower()]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} {text!r}: expected one of {', '.join(CONVENTIONS)} or a JSON object such as "
                         '\'{"channels": "BGR", "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}\'')
    try:
        return InputConvention.from_meta({**JSPHERE.to_meta(), **value})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{flag} {text!r}: {e}") from None


def add_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """The ``--input-convention`` option of every importer; ``default`` says what applies when it is absent."""
    parser.add_argument("--input-convention", default=None, metavar="CONVENTION",
                        help="what the model takes: rgb (jsphere, insightface, face.evoLVe), bgr (AdaFace, TreB1eN), "
                             'imagenet (foamliu), or JSON {"channels": "BGR", "mean": [...], "std": [...]} in 0-255 '
                             f"units; default: {default}")


def from_argument(text: str | None) -> InputConvention | None:
    """The ``--input-convention`` given, or None (the importer decides)."""
    return parse(text) if text else None


def torch_input_adapter(model: nn.Module, convention: InputConvention) -> nn.Module:
    """``model`` (a torch reference model taking ``convention``) as a module taking jsphere's input; the model
    itself when the conventions agree."""
    # torch is optional (jsphere[torch]): only the ONNX export calls this; the importers use this module without it
    import torch
    from torch import nn

    if convention == JSPHERE:
        return model
    if convention.channels == "BGR":
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        with torch.no_grad():
            first.weight.copy_(first.weight.flip(1))  # conv(BGR image, w) == conv(RGB image, w[:, ::-1])
    rgb_mean = np.array(convention.mean[::-1] if convention.channels == "BGR" else convention.mean, np.float32)
    rgb_std = np.array(convention.std[::-1] if convention.channels == "BGR" else convention.std, np.float32)
    if np.all(rgb_mean == 127.5) and np.all(rgb_std == 127.5):
        return model
    scale, shift = 127.5 / rgb_std, (127.5 - rgb_mean) / rgb_std  # ((x * 127.5 + 127.5) - mean) / std

    class Normalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("scale", torch.from_numpy(scale).reshape(1, 3, 1, 1))
            self.register_buffer("shift", torch.from_numpy(shift).reshape(1, 3, 1, 1))

        def forward(self, x):
            return self.model(x * self.scale + self.shift)

    return Normalised().eval()
