"""A ``.pth`` cross-checked: the file loaded into our PyTorch reference definition of its model
(``converters.torch_reference.backbones``) and into the converted jsphere model, both run on the same images
(``compare``), each fed the input convention the import would record (``converters.core.conventions``).
``python -m converters.check`` is its command. Needs torch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from converters.core import agreement, backbone_import, conventions, infer
from converters.core.found import Found
from converters.torch_reference import backbones as torch_backbones
from jsphere import models, observe
from jsphere.data.inputs import load_inputs
from jsphere.eval.evaluators import PairEvaluator
from jsphere.inference import Embedder
from jsphere.input_convention import InputConvention

AGREE_COSINE = 0.9999
BATCH = 16


def _torch_embed(reference: torch.nn.Module, images: np.ndarray, label: str, progress: bool,
                 convention: InputConvention) -> np.ndarray:
    out = []
    with observe.ImageProgress(len(images), label, enabled=progress) as bar, torch.no_grad():
        for start in range(0, len(images), BATCH):
            chunk = convention.apply(images[start:start + BATCH])
            x = torch.from_numpy(chunk.transpose(0, 3, 1, 2).copy())
            out.append(reference(x).numpy())
            bar.advance(len(chunk))
    return np.concatenate(out)


def compare(found: Found, state_dict: dict, file: str, images: np.ndarray, *, progress: bool = False) -> dict:
    """Embeddings of both frameworks (no flip) for the model ``found`` and their agreement; both are fed the
    input convention ``found.input`` records (the one an import would record)."""
    convention = InputConvention.from_meta(found.input)
    pure = backbone_import.backbone_to_pure(found.arch, state_dict, found.embed_dim, found.kwargs, file)
    model = models.build(found.arch, embed_dim=found.embed_dim, **found.kwargs)
    models.load_pure_state(model, pure, source=file)
    ours = Embedder(model, batch_size=BATCH, input_convention=convention).embed(
        images, flip="none", label=f"jsphere {found.arch}", progress=progress)
    reference = torch_backbones.build(found.arch, found.embed_dim, **found.kwargs)
    reference.load_state_dict({k: torch.from_numpy(np.array(v, np.float32 if np.asarray(v).dtype.kind == "f"
                                                            else np.asarray(v).dtype))
                               for k, v in state_dict.items()})
    theirs = _torch_embed(reference.eval(), images, f"torch {found.arch}", progress, convention)
    return {"jsphere": ours, "torch": theirs, "max_abs_diff": float(np.max(np.abs(ours - theirs))),
            "min_cosine": agreement.min_cosine(ours, theirs)}


def load_images(pairs: str | None, images: str | None, data_dir: str | None = None) -> tuple[np.ndarray, object]:
    """The images to embed: a pair list's (with the evaluator that scores them, the one of ``--mode=eval``), the
    given ``--images``, or rendered faces."""
    if pairs:
        evaluator = PairEvaluator({"name": Path(pairs).name, "type": "pairs", "path": pairs, "data_dir": data_dir})
        return evaluator.pairs.images, evaluator
    if images:
        return load_inputs(images, flag="--images"), None
    return agreement.synthetic_faces(), None


def choose(state_dict: dict, layout: str, where: str, *, arch: str, kwargs: dict,
           input_convention: InputConvention | None = None) -> tuple[Found, list[Found], conventions.Decision]:
    """The model to check and, when ``arch`` is ``auto`` and the keys fit several (``sfnet*`` and
    ``sfnet*_deprecated``), the others to compare it with (each with the input convention an import records:
    ``input_convention`` over the one of the file's origin and layout), and that convention's decision."""
    fits = infer.infer(state_dict, layout, where) if arch == backbone_import.AUTO else []
    if len(fits) > 1:  # the keys cannot tell: check the first, compare with the others
        found, others = replace(fits[0], kwargs={**fits[0].kwargs, **kwargs}), fits[1:]
    else:
        found, others = backbone_import.resolve(state_dict, layout, where, arch=arch, kwargs=kwargs), []
    decision = conventions.decide(found.origin, layout, where, arch=found.arch, override=input_convention)
    recorded = decision.convention.to_meta()
    return replace(found, input=recorded), [replace(o, input=recorded) for o in others], decision


def other_fits(found: Found, state_dict: dict, layout: str, where: str) -> list[Found]:
    """The backbones other than ``found`` whose keys the file fits too (none when it fits no family)."""
    try:
        fits = infer.infer(state_dict, layout, where)
    except ValueError:
        return []
    return [replace(f, input=found.input) for f in fits if f.arch != found.arch]
