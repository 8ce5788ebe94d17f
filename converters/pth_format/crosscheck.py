"""A ``.pth`` cross-checked: the file loaded into our PyTorch reference definition of its model
(``converters.torch_reference.backbones``) and into the converted jsphere model, both run on the same images
(``compare``). ``python -m converters.check`` is its command. Needs torch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from converters.core import agreement, backbone_import, infer
from converters.core.found import Found
from converters.torch_reference import backbones as torch_backbones
from jsphere import models, observe
from jsphere.data.inputs import load_inputs
from jsphere.eval.evaluators import PairEvaluator
from jsphere.inference import Embedder

AGREE_COSINE = 0.9999
BATCH = 16


def _torch_embed(reference: torch.nn.Module, images: np.ndarray, label: str, progress: bool) -> np.ndarray:
    out = []
    with observe.ImageProgress(len(images), label, enabled=progress) as bar, torch.no_grad():
        for start in range(0, len(images), BATCH):
            chunk = images[start:start + BATCH].astype(np.float32)
            x = torch.from_numpy(((chunk - 127.5) / 127.5).transpose(0, 3, 1, 2).copy())
            out.append(reference(x).numpy())
            bar.advance(len(chunk))
    return np.concatenate(out)


def compare(found: Found, state_dict: dict, file: str, images: np.ndarray, *, progress: bool = False) -> dict:
    """Embeddings of both frameworks (no flip) for the model ``found`` and their agreement."""
    pure = backbone_import.backbone_to_pure(found.arch, state_dict, found.embed_dim, found.kwargs, file)
    model = models.build(found.arch, embed_dim=found.embed_dim, **found.kwargs)
    models.load_pure_state(model, pure, source=file)
    ours = Embedder(model, batch_size=BATCH).embed(images, flip="none", label=f"jsphere {found.arch}",
                                                   progress=progress)
    reference = torch_backbones.build(found.arch, found.embed_dim, **found.kwargs)
    reference.load_state_dict({k: torch.from_numpy(np.array(v, np.float32 if np.asarray(v).dtype.kind == "f"
                                                            else np.asarray(v).dtype))
                               for k, v in state_dict.items()})
    theirs = _torch_embed(reference.eval(), images, f"torch {found.arch}", progress)
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


def choose(state_dict: dict, layout: str, where: str, *, arch: str, kwargs: dict) -> tuple[Found, list[Found]]:
    """The model to check and, when ``arch`` is ``auto`` and the keys fit several (``sfnet*`` and
    ``sfnet*_deprecated``), the others to compare it with."""
    fits = infer.infer(state_dict, layout, where) if arch == backbone_import.AUTO else []
    if len(fits) > 1:  # the keys cannot tell: check the first, compare with the others
        return replace(fits[0], kwargs={**fits[0].kwargs, **kwargs}), fits[1:]
    return backbone_import.resolve(state_dict, layout, where, arch=arch, kwargs=kwargs), []


def other_fits(found: Found, state_dict: dict, layout: str, where: str) -> list[Found]:
    """The backbones other than ``found`` whose keys the file fits too (none when it fits no family)."""
    try:
        fits = infer.infer(state_dict, layout, where)
    except ValueError:
        return []
    return [f for f in fits if f.arch != found.arch]
