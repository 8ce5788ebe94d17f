"""The input a released model was trained on, decided at import and recorded in the checkpoint
(``meta['input']``, ``jsphere.input_convention.InputConvention``), so that ``jsphere.embed`` and ``--mode=eval`` feed it
what it expects, and ``jsphere.embed --detect`` / ``jsphere.align --ckpt`` crop faces as its training faces were.

Pixels, by the toolkit whose layout or names the file has (``for_origin``):

* AdaFace: BGR, ``(x / 255 - 0.5) / 0.5`` (its README and ``inference.py``: "our pretrained model takes the input in
  BGR color channel").
* TreB1eN's InsightFace_Pytorch (``model_ir_se50.pth``, ``model_mobilefacenet.pth``): BGR, ``(x - 127.5) / 127.5``:
  its ``load_mx_rec`` writes cv2's BGR training crops through PIL unchanged and ``load_bin`` turns the RGB ``.bin``
  images to BGR. Its files have face.evoLVe's keys, so they are told apart by TreB1eN's file names.
* face.evoLVe and CurricularFace: RGB (PIL) with mean = std = 0.5, i.e. jsphere's own convention.
* foamliu/MobileFaceNet: RGB (PIL) with ImageNet's mean and std (in a ``.pt`` or a ``torch.onnx`` export of it:
  its ReLU6 layers name it).

Alignment, by the source layout (``alignment_for``): OpenSphere's v1/v2 files are trained on faces aligned by its
own ``face_alignment`` (``opensphere``); insightface's and arcface_torch's releases (``backbone.pth``, the MXNet
and ONNX zoos) on insightface's alignment (``arcface``), as are AdaFace's, CurricularFace's, face.evoLVe's,
TreB1eN's and foamliu's released models, all trained on insightface's aligned MS1M (or WebFace) crops. An ONNX graph
of another origin says neither its channel order nor its alignment: the convention of its architecture's toolkit
is assumed (insightface's for IResNet / MobileFaceNet / IR, OpenSphere's for SFNet) and the importer says so;
one ``converters.export_onnx`` wrote says both in its metadata (``ONNX_INPUT_KEY``), and they are taken from there.

``--input-convention`` (``rgb``, ``bgr``, ``imagenet`` or a JSON object ``{"channels", "mean", "std",
"alignment"}``) overrides: its pixels replace the decided ones (a JSON object's missing ones are jsphere's), its
alignment, when given, the decided alignment. For ONNX export, ``torch_input_adapter`` makes the reference model
take jsphere's input (RGB, (x - 127.5) / 127.5): a channel swap is folded exactly into the first convolution's
weights, any other normalisation becomes an in-graph per-channel multiply-add.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
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


ONNX_INPUT_KEY = "jsphere.input"  # converters.export_onnx's metadata_props entry: the InputConvention it takes
RECORDED_WHY = "the file's own record (converters.export_onnx)"
OPENSPHERE_LAYOUTS = ("opensphere-v1", "opensphere-v2")
TRAINED_ON_INSIGHTFACE_CROPS = ("adaface", "curricularface", "evolve", "foamliu")
OPENSPHERE_ARCHS = re.compile(r"^sfnet")  # OpenSphere's own backbones (an ONNX graph of one: OpenSphere's input)
CHANGE = ("if the model was trained otherwise, import it again with --input-convention (rgb, bgr, imagenet, or JSON "
          'such as \'{"alignment": "opensphere"}\')')


@dataclass(frozen=True)
class Decision:
    """The input convention recorded for an imported model, why, and whether it is assumed (nothing in the file
    tells it)."""

    convention: InputConvention
    why: str
    assumed: bool = False

    def source_meta(self) -> dict:
        """What the checkpoint's ``meta['source']`` keeps of the decision."""
        return {"input_reason": self.why, "input_assumed": self.assumed}


def alignment_for(origin: str, layout: str, arch: str = "") -> tuple[str, str, bool]:
    """(alignment, why, assumed) of a model of ``origin`` (``Found.origin``) in ``layout`` (``arch`` decides for a
    layout that says nothing, an ONNX graph)."""
    if layout in OPENSPHERE_LAYOUTS:
        return "opensphere", "OpenSphere's layout: trained on faces aligned by its face_alignment", False
    if origin in TRAINED_ON_INSIGHTFACE_CROPS:
        return "arcface", "trained on insightface's aligned MS1M / WebFace crops", False
    if layout == "onnx":
        if OPENSPHERE_ARCHS.match(arch):
            return "opensphere", f"an ONNX graph does not say; {arch} is OpenSphere's backbone", True
        return "arcface", f"an ONNX graph does not say; {arch} is insightface's family (its zoo's models)", True
    return "arcface", f"{layout} layout: insightface / arcface_torch releases are trained on its aligned crops", False


def decide(origin: str, layout: str, file: str | Path, *, arch: str = "", pixels: InputConvention | None = None,
           pixels_why: str = "", recorded: InputConvention | None = None,
           override: InputConvention | None = None) -> Decision:
    """The convention to record: ``pixels`` (what an ONNX graph's own preprocessing asks for, with
    ``pixels_why``), else those the file ``recorded`` (``converters.export_onnx``'s metadata), else those of
    ``origin``; the alignment ``recorded``, else that of the source layout; ``override`` (``--input-convention``)
    over all."""
    if pixels is None and recorded is not None:
        pixels, pixels_why = recorded.with_alignment(None), RECORDED_WHY
    if pixels is None:
        pixels, origin_why = for_origin(origin, file)
        pixels_why = pixels_why or origin_why
    alignment, alignment_why, assumed = alignment_for(origin, layout, arch)
    if recorded is not None and recorded.alignment is not None:
        alignment, alignment_why, assumed = recorded.alignment, RECORDED_WHY, False
    pixels_assumed = layout == "onnx" and not pixels_why and recorded is None
    if pixels_assumed:
        pixels_why = "an ONNX graph does not say its channel order: RGB assumed"
    reasons = list(dict.fromkeys(r for r in (pixels_why, alignment_why) if r))
    decision = Decision(pixels.with_alignment(alignment), "; ".join(reasons), assumed or pixels_assumed)
    if override is None:
        return decision
    chosen = override if override.alignment is not None else override.with_alignment(alignment)
    return Decision(chosen, "--input-convention" + ("" if override.alignment else f"; {alignment_why}"),
                    assumed and override.alignment is None)


def summary(convention: InputConvention, why: str, assumed: bool) -> str:
    """The input part of an importer's last line."""
    if assumed:
        return f"input assumed: {convention.describe()} ({why}); {CHANGE}"
    return f"input: {convention.describe()} ({why})"


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
                         '\'{"channels": "BGR", "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5], '
                         '"alignment": "arcface"}\'')
    try:
        return InputConvention.from_meta({**JSPHERE.to_meta(), **value})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{flag} {text!r}: {e}") from None


def add_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """The ``--input-convention`` option of every importer; ``default`` says what applies when it is absent."""
    parser.add_argument("--input-convention", default=None, metavar="CONVENTION",
                        help="what the model takes: rgb (jsphere, insightface, face.evoLVe), bgr (AdaFace, TreB1eN), "
                             'imagenet (foamliu), or JSON {"channels": "BGR", "mean": [...], "std": [...], '
                             f'"alignment": "arcface"|"opensphere"}} (pixels in 0-255 units); default: {default}')


def from_argument(text: str | None) -> InputConvention | None:
    """The ``--input-convention`` given, or None (the importer decides)."""
    return parse(text) if text else None


def torch_input_adapter(model: nn.Module, convention: InputConvention) -> nn.Module:
    """``model`` (a torch reference model taking ``convention``) as a module taking jsphere's input; the model
    itself when the conventions agree."""
    # torch is optional (jsphere[torch]): only the ONNX export calls this; the importers use this module without it
    import torch
    from torch import nn

    if convention.pixels == JSPHERE.pixels:
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
