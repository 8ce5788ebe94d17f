"""``python -m converters.import_torch --arch ARCH --backbone FILE [--head FILE --head-name NAME
--head-hparams JSON] --out DIR``: a released PyTorch model as a jsphere checkpoint directory.

The layout (OpenSphere v1 ``backbone_<iter>.pth``, OpenSphere v2 ``model_<step>.pth`` / ``ckpt_<step>.pth``,
insightface ``backbone.pth``, ``.safetensors``) is recognised from the file. ``--arch`` is required:
``sfnet*_deprecated`` and ``sfnet*`` have the same keys but compute different functions — run
``python -m converters.check`` to see which one reproduces the PyTorch outputs. The output directory works
with ``jsphere.embed``, ``--mode=eval`` and ``config.init_from``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from converters import layouts, mapping, pth
from jsphere import checkpoint, models


def embed_dim_of(state_dict: dict) -> int:
    for key in ("fc.bias", "features.layers.3.weight", "features.weight", "fc.weight"):
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


def suggest_arch(state_dict: dict, embed_dim: int) -> list[str]:
    """Backbone names whose keys and shapes all match ``state_dict``."""
    shapes = {k: tuple(np.shape(v)) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    fits = []
    for name in models.names():
        model = _abstract(name, embed_dim)
        rows = mapping.leaf_table(model)
        if {k for _, k, _ in rows} != set(shapes):
            continue
        state = dict(nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, models.FrozenParam, nnx.BatchStat))))
        if all(len(shapes[k]) == len(state[tuple(p)].shape) and sorted(shapes[k]) == sorted(state[tuple(p)].shape)
               for p, k, _ in rows):
            fits.append(name)
    return fits


def backbone_to_pure(arch: str, state_dict: dict, embed_dim: int, kwargs: dict, where: str) -> dict:
    model = _abstract(arch, embed_dim, kwargs)
    pure, missing, unexpected = mapping.torch_to_pure(model, state_dict)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
    if not problems:
        try:
            concrete = models.build(arch, embed_dim=embed_dim, **kwargs)
            models.load_pure_state(concrete, pure, source=where)
            return pure
        except ValueError as e:
            problems.append(str(e))
    hint = suggest_arch(state_dict, embed_dim)
    suggestion = f"; the keys and shapes fit: {', '.join(hint)}" if hint else ""
    raise ValueError(f"{where} is not a {arch} state_dict: {'; '.join(problems)}{suggestion}")


def import_checkpoint(arch: str, backbone: str, out: str, *, head: str | None = None, head_name: str | None = None,
                      head_hparams: dict | None = None, embed_dim: int | None = None,
                      num_classes: int | None = None) -> Path:
    obj = pth.load(backbone)
    bkb_sd, head_sd, layout = layouts.split_checkpoint(obj, str(backbone))
    head_layout = layout
    if head:
        head_sd, _, head_layout = layouts.split_checkpoint(pth.load(head), str(head))
    dim = embed_dim or embed_dim_of(bkb_sd)
    kwargs = model_kwargs(arch, bkb_sd, layout)
    pure = backbone_to_pure(arch, bkb_sd, dim, kwargs, str(backbone))
    head_entry, head_meta = None, None
    if head_sd and head_name:
        params = layouts.head_to_jsphere(head_sd, head_layout, dim, str(head or backbone))
        from jsphere import heads

        built = heads.build(head_name, **(head_hparams or {}))
        classes = params["w"].shape[0] if "w" in params else None
        if head_name == "subcenter_arcface":
            classes = classes // int(built.k)
        if num_classes is not None and classes != num_classes:
            raise ValueError(f"{head or backbone}: the head has {classes} classes but --num-classes is {num_classes}")
        template, state = built.init(jax.random.key(0), dim, classes or 2)
        for key, value in template.items():
            if key not in params:
                raise ValueError(f"{head or backbone}: head {head_name!r} needs parameter {key!r}, "
                                 f"the file has {sorted(params)}")
            if tuple(np.shape(value)) != tuple(params[key].shape):
                raise ValueError(f"{head or backbone}: head parameter {key!r} has shape {params[key].shape}, "
                                 f"{head_name!r} expects {np.shape(value)}")
        head_entry = {"params": params, "state": {k: np.asarray(v) for k, v in state.items()}}
        head_meta = {"name": head_name, "hparams": head_hparams or {}, "num_classes": classes, "feat_dim": dim}
    elif head_sd and not head_name:
        print("import_torch: the checkpoint has a head; pass --head-name (and --head-hparams) to import it too",
              file=sys.stderr)
    meta = {"model": {"name": arch, "embed_dim": dim, "kwargs": kwargs}, "head": head_meta,
            "source": {"converter": "converters.import_torch", "file": str(backbone), "layout": layout,
                       "head_file": str(head) if head else None}}
    return checkpoint.save_weights(out, step=layouts.step_from_name(backbone), backbone=pure, head=head_entry,
                                   meta=meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=models.names())
    p.add_argument("--backbone", required=True, help=".pth / .pt / .safetensors")
    p.add_argument("--head", default=None, help="OpenSphere v1 head_<iter>.pth (v2 model files carry their head)")
    p.add_argument("--head-name", default=None, help="jsphere head name, e.g. sphereface2")
    p.add_argument("--head-hparams", default="{}", help='JSON, e.g. \'{"magn_type": "C", "alpha": 0.7}\'')
    p.add_argument("--embed-dim", type=int, default=None)
    p.add_argument("--num-classes", type=int, default=None, help="check the head's class count")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    path = import_checkpoint(a.arch, a.backbone, a.out, head=a.head, head_name=a.head_name,
                             head_hparams=json.loads(a.head_hparams), embed_dim=a.embed_dim,
                             num_classes=a.num_classes)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
