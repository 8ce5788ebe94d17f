"""``python -m converters.import_torch --backbone FILE --out DIR [--arch auto|NAME] [--model-kwargs JSON]
[--head FILE --head-name NAME --head-hparams JSON]``: a released PyTorch model as a jsphere checkpoint directory.

The layout (OpenSphere v1 ``backbone_<iter>.pth``, OpenSphere v2 ``model_<step>.pth`` / ``ckpt_<step>.pth``,
insightface ``backbone.pth``, ``.safetensors``) and the model are recognised from the file: the architecture, its
depth, embedding size, MobileFaceNet ``scale``/``blocks`` (arcface_torch ``get_mbf``, ``mbf_large``), whether an
IResNet's ``features`` scale was trained (``--arch auto``, the default, prints what it found). ``sfnet*`` and
``sfnet*_deprecated`` have the same keys but compute different functions: for such a file name one with ``--arch``;
``python -m converters.check`` shows which one reproduces PyTorch and verifies faces. ``--model-kwargs`` overrides
keyword arguments of the model (e.g. ``'{"scale": 1}'``). Nothing is left in ``--out`` when the import fails.
The input the model was trained on is recorded with it (``converters.conventions``: AdaFace and TreB1eN feed BGR,
foamliu's MobileFaceNet ImageNet-normalised RGB); ``--input-convention rgb|bgr|imagenet|JSON`` overrides it.
The output directory works with ``jsphere.embed``, ``--mode=eval`` and ``config.init_from``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from converters import conventions, infer, layouts, mapping, pth
from jsphere import checkpoint, cli, models, outputs
from jsphere.input_convention import JSPHERE, InputConvention
from jsphere.models import mobilefacenet

AUTO = "auto"


def embed_dim_of(state_dict: dict) -> int:
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


def _as_arch(arch: str, fits: list[infer.Found], state_dict: dict, layout: str) -> infer.Found:
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
            return replace(fit, arch=arch, kwargs=kwargs)
    try:
        dim = embed_dim_of(state_dict)
    except ValueError:
        dim = 512
    return infer.Found(arch, dim, model_kwargs(arch, state_dict, layout), f"{arch} as asked (--arch)")


def resolve(state_dict: dict, layout: str, where: str, *, arch: str = AUTO, kwargs: dict | None = None,
            embed_dim: int | None = None) -> infer.Found:
    """The backbone to build for ``state_dict``: inferred (``arch='auto'``) or the named one, with explicit
    ``kwargs`` overriding what the file shows."""
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
    merged = {**found.kwargs, **(kwargs or {})}
    return replace(found, kwargs=merged, embed_dim=int(embed_dim or found.embed_dim))


def describe(found: infer.Found) -> str:
    kwargs = f" {json.dumps(found.kwargs)}" if found.kwargs else ""
    return f"{found.arch}{kwargs}: {found.description}"


def backbone_to_pure(arch: str, state_dict: dict, embed_dim: int, kwargs: dict, where: str) -> dict:
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


def save(out: str, *, found: infer.Found, pure: dict, source: dict, step: int = 0, head: dict | None = None,
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


def _head_entry(head_sd: dict, head_layout: str, head_name: str, head_hparams: dict | None, dim: int,
                num_classes: int | None, where: str) -> tuple[dict, dict]:
    from jsphere import heads

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
                      report=None, overwrite: bool = False, input_convention: InputConvention | None = None) -> Path:
    """Import ``backbone`` (and an OpenSphere head) into a checkpoint at ``out``; ``arch`` may be ``'auto'``.
    ``report(found, layout)`` is called with what was recognised before anything is written; ``input_convention``
    replaces the one the file's origin implies."""
    outputs.check_free(out, overwrite=overwrite)
    bkb_sd, head_sd, layout = layouts.split_checkpoint(pth.load(backbone), str(backbone))
    head_layout = layout
    if head:
        head_sd, _, head_layout = layouts.split_checkpoint(pth.load(head), str(head))
    found = resolve(bkb_sd, layout, str(backbone), arch=arch, kwargs=kwargs, embed_dim=embed_dim)
    found = with_input(found, backbone, input_convention)
    if report:
        report(found, layout)
    pure = backbone_to_pure(found.arch, bkb_sd, found.embed_dim, found.kwargs, str(backbone))
    head_entry, head_meta = None, None
    if head_sd and head_name:
        head_entry, head_meta = _head_entry(head_sd, head_layout, head_name, head_hparams, found.embed_dim,
                                            num_classes, str(head or backbone))
    elif head_sd and not head_name:
        print("converters.import_torch: the checkpoint has a head; pass --head-name (and --head-hparams) to import "
              "it too", file=sys.stderr)
    source = {"converter": "converters.import_torch", "file": str(backbone), "layout": layout,
              "head_file": str(head) if head else None}
    return save(out, found=found, pure=pure, source=source, step=layouts.step_from_name(backbone), head=head_entry,
                head_meta=head_meta, overwrite=overwrite)


def with_input(found: infer.Found, file: str, override: InputConvention | None = None) -> infer.Found:
    """``found`` with the input convention of its origin (or ``override``), said in its description."""
    convention, why = conventions.for_origin(found.origin, file)
    if override is not None:
        convention, why = override, "--input-convention"
    if convention == JSPHERE and not why:
        return found
    return replace(found, input=None if convention == JSPHERE else convention.to_meta(),
                   description=f"{found.description}; input {convention.describe()} ({why})")


def parse_json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag} {text!r} is not valid JSON ({e.msg}); e.g. {flag} '{{\"scale\": 1}}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, e.g. '{{\"scale\": 1}}', got {text!r}")
    return value


def print_found(found: infer.Found, layout: str) -> None:
    print(f"found {describe(found)} ({layout} layout)")


def add_model_arguments(parser, names: list[str] | None = None) -> None:
    """The ``--arch`` (default ``auto``: read from the file) and ``--model-kwargs`` options of every importer."""
    names = names or models.names()
    parser.add_argument("--arch", default=AUTO, choices=[AUTO, *names], metavar="ARCH",
                        help=f"'{AUTO}' (default: read from the file) or one of {', '.join(names)}")
    parser.add_argument("--model-kwargs", default="{}",
                        help='JSON keyword arguments of the model, e.g. \'{"scale": 1}\'')


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.import_torch", description=__doc__)
    p.add_argument("--backbone", required=True, help=".pth / .pt / .safetensors")
    add_model_arguments(p)
    p.add_argument("--head", default=None, help="OpenSphere v1 head_<iter>.pth (v2 model files carry their head)")
    p.add_argument("--head-name", default=None, help="jsphere head name, e.g. sphereface2")
    p.add_argument("--head-hparams", default="{}", help='JSON, e.g. \'{"magn_type": "C", "alpha": 0.7}\'')
    p.add_argument("--embed-dim", type=int, default=None)
    p.add_argument("--num-classes", type=int, default=None, help="check the head's class count")
    p.add_argument("--out", required=True)
    conventions.add_argument(p, "decided from the file")
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    convention = conventions.from_argument(a.input_convention)
    path = import_checkpoint(a.arch, a.backbone, a.out, head=a.head, head_name=a.head_name,
                             head_hparams=parse_json_object(a.head_hparams, "--head-hparams"),
                             embed_dim=a.embed_dim, num_classes=a.num_classes,
                             kwargs=parse_json_object(a.model_kwargs, "--model-kwargs"), report=print_found,
                             overwrite=a.overwrite, input_convention=convention)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    cli.run("converters.import_torch", main)
