"""What every importer does once it holds a torch-named state_dict (``.pth``, MXNet and ONNX files are all brought
to one): decide the backbone (``resolve``: inferred from the tensors with ``arch='auto'``, or the named one with
the shape hyper-parameters the file shows), turn its tensors into jsphere's pure dict with every key and shape
checked (``backbone_to_pure``), and write the checkpoint, all or nothing (``save``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from flax import nnx

from converters.core import infer, mapping
from converters.core.found import Found
from jsphere import checkpoint, models, outputs
from jsphere.models import mobilefacenet

AUTO = "auto"


def embed_dim_of(state_dict: dict) -> int:
    """The embedding size, read off the last layer of any backbone family jsphere reads."""
    for key in ("fc.bias", "features.layers.3.weight", "features.weight", "fc.weight", "output_layer.3.weight",
                "conv3.weight"):
        if key in state_dict:
            return int(np.shape(state_dict[key])[0])
    raise ValueError("cannot tell the embedding size from the state_dict; pass --embed-dim")


def model_kwargs(arch: str, state_dict: dict, layout: str) -> dict:
    """IResNet: a ``features.weight`` that is not all ones (OpenSphere v2 trains it) makes it trainable."""
    if arch.startswith("iresnet") and "features.weight" in state_dict:
        scale = np.asarray(state_dict["features.weight"], np.float32)
        if layout == "opensphere-v2" or not np.allclose(scale, 1.0):
            return {"features_scale": "trainable"}
    return {}


def _abstract(arch: str, embed_dim: int, kwargs: dict | None = None):
    return nnx.eval_shape(lambda: models.build(arch, embed_dim=embed_dim, rngs=nnx.Rngs(0), **(kwargs or {})))


def suggest_arch(state_dict: dict) -> list[str]:
    """Backbones (with their keyword arguments) whose layout matches ``state_dict``."""
    try:
        return [f.arch + (f" {json.dumps(f.kwargs)}" if f.kwargs else "")
                for f in infer.infer(state_dict, "unknown", "the file")]
    except ValueError:
        return []


def _as_arch(arch: str, fits: list[Found], state_dict: dict, layout: str) -> Found:
    """The model ``arch`` with the shape hyper-parameters the file shows (when it is of the same family)."""
    for fit in fits:
        if fit.arch == arch:
            return fit
    for fit in fits:
        if arch in mobilefacenet.VARIANTS and fit.arch in mobilefacenet.VARIANTS:
            full = {**mobilefacenet.VARIANTS[fit.arch], **fit.kwargs}
            blocks, scale = tuple(full["blocks"]), full["scale"]
            kwargs = {}
            if scale != mobilefacenet.VARIANTS[arch]["scale"]:
                kwargs["scale"] = scale
            if blocks != tuple(mobilefacenet.VARIANTS[arch]["blocks"]):
                kwargs["blocks"] = list(blocks)
            if "output" in fit.kwargs:
                kwargs["output"] = fit.kwargs["output"]
            return replace(fit, arch=arch, kwargs=kwargs)
    try:
        dim = embed_dim_of(state_dict)
    except ValueError:
        dim = 512
    return Found(arch, dim, model_kwargs(arch, state_dict, layout), f"{arch} as asked (--arch)")


def resolve(state_dict: dict, layout: str, where: str, *, arch: str = AUTO, kwargs: dict | None = None,
            embed_dim: int | None = None) -> Found:
    """The backbone to build for ``state_dict``: inferred (``arch='auto'``) or the named one, with explicit
    ``kwargs`` overriding what the file shows; ``embed_dim``, when given, must be the file's."""
    if arch == AUTO:
        fits = infer.infer(state_dict, layout, where)
        if len(fits) > 1:
            names = " and ".join(f"{f.arch} ({f.description})" for f in fits)
            raise ValueError(
                f"{where}: the keys fit {names}, which compute different functions; choose with --arch "
                f"{fits[0].arch} or --arch {fits[-1].arch}. To see which one reproduces PyTorch and verifies faces: "
                f"python -m converters.check --pth {where} --arch {fits[-1].arch} --pairs PAIR_LIST --data-dir DIR "
                f"(OpenSphere v1's released VGGFace2 SFNets are {fits[-1].arch})")
        found = fits[0]
    else:
        if arch not in models.names():
            raise ValueError(f"unknown --arch {arch!r}; valid: {AUTO}, {', '.join(models.names())}")
        try:
            fits = infer.infer(state_dict, layout, where)
        except ValueError:
            fits = []
        found = _as_arch(arch, fits, state_dict, layout)
    if embed_dim is not None and embed_dim != found.embed_dim:
        raise ValueError(f"--embed-dim {embed_dim}: {where} holds a {found.embed_dim}-d embedding; leave --embed-dim "
                         "out (the file says it)")
    return replace(found, kwargs={**found.kwargs, **(kwargs or {})})


def describe(found: Found) -> str:
    """``found`` in one line: the name, its keyword arguments, what was seen."""
    kwargs = f" {json.dumps(found.kwargs)}" if found.kwargs else ""
    return f"{found.arch}{kwargs}: {found.description}"


def backbone_to_pure(arch: str, state_dict: dict, embed_dim: int, kwargs: dict, where: str) -> dict:
    """jsphere's pure dict of ``arch`` filled from the torch-named ``state_dict``; a missing or unexpected key, or
    a shape that differs, is an error naming the backbones the keys do fit."""
    try:
        model = _abstract(arch, embed_dim, kwargs)
    except TypeError as e:
        raise ValueError(f"{where}: cannot build {arch} with keyword arguments {json.dumps(kwargs)} ({e})") from None
    pure, missing, unexpected = mapping.torch_to_pure(model, state_dict)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
    if not problems:
        try:
            models.load_pure_state(model, pure, source=where)  # every shape checked, no weights initialised
            return pure
        except ValueError as e:
            problems.append(str(e))
    hint = suggest_arch(state_dict)
    suggestion = f"; the keys and shapes fit: {', '.join(hint)}" if hint else ""
    raise ValueError(f"{where} is not a {arch} state_dict: {'; '.join(problems)}{suggestion}")


def save(out: str, *, found: Found, pure: dict, source: dict, step: int = 0, head: dict | None = None,
         head_meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write a jsphere checkpoint for an imported backbone (all-or-nothing); returns ``<out>/checkpoints/<step>``."""
    meta = {"model": {"name": found.arch, "embed_dim": found.embed_dim, "kwargs": found.kwargs}, "head": head_meta,
            "source": source}
    if found.input is not None:
        meta["input"] = found.input
    with outputs.staged_dir(out, overwrite=overwrite) as tmp:
        written = checkpoint.save_weights(tmp, step=step, backbone=pure, head=head, meta=meta)
        relative = written.relative_to(tmp.resolve())
    return Path(out).expanduser().resolve() / relative


