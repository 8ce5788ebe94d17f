"""A released PyTorch checkpoint (``.pth``, ``.pt``, ``.ckpt``, ``.safetensors``; read without torch) as a jsphere
checkpoint directory: its layout recognised (``converters.core.layouts``), its backbone resolved and converted
(``converters.core.backbone_import``), the input the model was trained on recorded (``with_input``), and an
OpenSphere head imported with it when named. ``python -m converters.import_torch`` is its command.
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
from jsphere.input_convention import JSPHERE, InputConvention


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
    found = backbone_import.resolve(bkb_sd, layout, str(backbone), arch=arch, kwargs=kwargs, embed_dim=embed_dim)
    found = with_input(found, backbone, input_convention)
    if report:
        report(found, layout)
    pure = backbone_import.backbone_to_pure(found.arch, bkb_sd, found.embed_dim, found.kwargs, str(backbone))
    head_entry, head_meta = None, None
    if head_sd and head_name:
        head_entry, head_meta = _head_entry(head_sd, head_layout, head_name, head_hparams, found.embed_dim,
                                            num_classes, str(head or backbone))
    elif head_sd and not head_name:
        print("converters.import_torch: the checkpoint has a head; pass --head-name (and --head-hparams) to import "
              "it too", file=sys.stderr)
    source = {"converter": "converters.import_torch", "file": str(backbone), "layout": layout,
              "head_file": str(head) if head else None}
    return backbone_import.save(out, found=found, pure=pure, source=source, step=layouts.step_from_name(backbone),
                                head=head_entry, head_meta=head_meta, overwrite=overwrite)


def with_input(found: Found, file: str, override: InputConvention | None = None) -> Found:
    """``found`` with the input convention of its origin (or ``override``), said in its description."""
    convention, why = conventions.for_origin(found.origin, file)
    if override is not None:
        convention, why = override, "--input-convention"
    if convention == JSPHERE and not why:
        return found
    return replace(found, input=None if convention == JSPHERE else convention.to_meta(),
                   description=f"{found.description}; input {convention.describe()} ({why})")
