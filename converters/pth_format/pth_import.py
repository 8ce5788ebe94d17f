"""A released PyTorch checkpoint (``.pth``, ``.pt``, ``.ckpt``, ``.safetensors``; read without torch) as a jsphere
checkpoint directory: its layout recognised (``converters.core.layouts``), its backbone resolved and converted
(``converters.core.backbone_import``), the input the model was trained on recorded (``converters.core.conventions``),
and an OpenSphere head imported with it when named. ``python -m converters.import_torch`` is its command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from converters.core import backbone_import, conventions, layouts
from converters.core.found import Found
from converters.pth_format import pth_file
from jsphere import heads, outputs
from jsphere.input_convention import InputConvention


def _head_entry(head_sd: dict, head_layout: str, head_name: str, head_hparams: dict | None, dim: int,
                num_classes: int | None, where: str) -> tuple[dict, dict]:
    params = layouts.head_to_jsphere(head_sd, head_layout, dim, where)
    built = heads.build(head_name, **(head_hparams or {}))
    classes = params["w"].shape[0] if "w" in params else None
    if head_name == "subcenter_arcface":
        classes = classes // int(built.k)
    if num_classes is not None and classes != num_classes:
        raise ValueError(f"{where}: the head has {classes} classes but --num-classes is {num_classes}")
    template, state = built.init(jax.random.key(0), dim, classes or 2)
    for key, value in template.items():
        if key not in params:
            raise ValueError(f"{where}: head {head_name!r} needs parameter {key!r}, the file has {sorted(params)}")
        if tuple(np.shape(value)) != tuple(params[key].shape):
            raise ValueError(f"{where}: head parameter {key!r} has shape {params[key].shape}, "
                             f"{head_name!r} expects {np.shape(value)}")
    entry = {"params": params, "state": {k: np.asarray(v) for k, v in state.items()}}
    return entry, {"name": head_name, "hparams": head_hparams or {}, "num_classes": classes, "feat_dim": dim}


def import_checkpoint(arch: str, backbone: str, out: str, *, head: str | None = None, head_name: str | None = None,
                      head_hparams: dict | None = None, embed_dim: int | None = None,
                      num_classes: int | None = None, kwargs: dict | None = None,
                      report: Callable[[Found, str], None] | None = None, overwrite: bool = False,
                      input_convention: InputConvention | None = None) -> Path:
    """Import ``backbone`` (and an OpenSphere head) into a checkpoint at ``out``; ``arch`` may be ``'auto'``.
    ``report(found, layout)`` is called with what was recognised before anything is written; ``input_convention``
    replaces the one the file's origin implies."""
    outputs.check_free(out, overwrite=overwrite)
    bkb_sd, head_sd, layout = layouts.split_checkpoint(pth_file.load(backbone), str(backbone))
    head_layout = layout
    if head:
        head_sd, _, head_layout = layouts.split_checkpoint(pth_file.load(head), str(head))
    _check_head_options(head_sd, backbone, head_name=head_name, head_hparams=head_hparams, num_classes=num_classes)
    found = backbone_import.resolve(bkb_sd, layout, str(backbone), arch=arch, kwargs=kwargs, embed_dim=embed_dim)
    decision = conventions.decide(found.origin, layout, backbone, arch=found.arch, override=input_convention)
    found = replace(found, input=decision.convention.to_meta())
    if report:
        report(found, layout)
    pure = backbone_import.backbone_to_pure(found.arch, bkb_sd, found.embed_dim, found.kwargs, str(backbone))
    head_entry, head_meta = None, None
    if head_sd and head_name:
        head_entry, head_meta = _head_entry(head_sd, head_layout, head_name, head_hparams, found.embed_dim,
                                            num_classes, str(head or backbone))
    elif head_sd:
        print("converters.import_torch: the checkpoint has a head; pass --head-name (and --head-hparams) to import "
              "it too", file=sys.stderr)
    source = {"converter": "converters.import_torch", "file": str(backbone), "layout": layout,
              "head_file": str(head) if head else None, **decision.source_meta()}
    return backbone_import.save(out, found=found, pure=pure, source=source,
                                step=layouts.step_from_name(backbone, layout), head=head_entry, head_meta=head_meta,
                                overwrite=overwrite)


def _check_head_options(head_sd: dict | None, backbone: str, *, head_name: str | None, head_hparams: dict | None,
                        num_classes: int | None) -> None:
    """The head options apply to a head that is there and named: none of them is ignored silently."""
    given = [flag for flag, value in (("--head-name", head_name), ("--head-hparams", head_hparams),
                                      ("--num-classes", num_classes)) if value not in (None, {})]
    if given and not head_sd:
        raise ValueError(f"{' and '.join(given)} given, but {backbone} holds no head (only OpenSphere v2's "
                         "model_<step>.pth does): add --head head_<iter>.pth, or leave out the head options")
    if (head_hparams or num_classes is not None) and not head_name:
        raise ValueError(f"{' and '.join(given)} given without --head-name: name the head to import "
                         f"(e.g. --head-name sphereface2; valid: {', '.join(heads.names())})")
