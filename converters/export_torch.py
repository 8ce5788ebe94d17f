"""``python -m converters.export_torch --ckpt DIR --layout opensphere-v1|opensphere-v2|insightface --out PATH``

Writes what OpenSphere's and insightface's own model classes load with ``strict=True``: the state_dict of
``converters.torch_reference.backbones`` (the reference key names and order, float32, ``num_batches_tracked``),
filled with the checkpoint's weights.

* ``insightface``: PATH is the ``backbone.pth`` file (plain state_dict).
* ``opensphere-v2``: PATH is the ``model_<step>.pth`` file, ``{'backbone': sd, 'head': sd}`` (head ``w`` [C, D]).
* ``opensphere-v1``: PATH is a new folder receiving ``backbone_<step>.pth`` and ``head_<step>.pth`` (keys prefixed
  ``module.``, head ``w`` [D, C]).
* ``adaface``: PATH is a ``.ckpt`` holding ``{'state_dict': {'model.<key>': ...}}``, what AdaFace's
  ``load_pretrained_model`` reads (IR / IR-SE models; ``insightface`` writes the plain state_dict that face.evoLVe,
  CurricularFace and TreB1eN load).

The weights are written as they are: a model imported with another input convention (AdaFace's BGR, foamliu's
ImageNet normalisation) still takes it, and the export says so.

Every variant the importer recognises (MobileFaceNet ``scale``/``blocks``, ``mobilefacenet_large``, any embedding
size, IResNet with a trained ``features`` scale) is written with the keyword arguments recorded in the checkpoint.
Files are written under a temporary name and renamed when complete; an existing ``--out`` is replaced only with
``--overwrite`` (the rule of :mod:`jsphere.outputs`).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
from flax import nnx

from converters import layouts, mapping
from jsphere import checkpoint, cli, models, outputs


def torch_state_dicts(ckpt: str, step: int | None = None):
    """(backbone state_dict of torch tensors in reference order, head params as numpy or None, weights)."""
    import torch

    from converters.torch_reference import backbones as torch_backbones

    weights = checkpoint.load_weights(ckpt, step)
    spec = weights.meta["model"]
    model = nnx.eval_shape(lambda: models.build(spec["name"], embed_dim=int(spec["embed_dim"]), rngs=nnx.Rngs(0),
                                                **spec.get("kwargs", {})))  # the module tree only
    tensors = mapping.pure_to_torch(model, weights.backbone)
    reference = torch_backbones.build(spec["name"], int(spec["embed_dim"]), **spec.get("kwargs", {}))
    result = reference.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=False)
    unexpected_missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if unexpected_missing or result.unexpected_keys:
        raise ValueError(f"{ckpt}: cannot fill the PyTorch {spec['name']}: missing {unexpected_missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    state = OrderedDict((k, v.detach().clone()) for k, v in reference.state_dict().items())
    head = weights.head["params"] if weights.head else None
    return state, head, weights


def export(ckpt: str, layout: str, out: str, step: int | None = None, *, overwrite: bool = False) -> list[Path]:
    """Write the checkpoint as ``layout`` at ``out`` (all-or-nothing, under ``jsphere.outputs``' rule); returns
    the files written."""
    import torch

    if layout not in layouts.LAYOUTS:
        raise ValueError(f"--layout must be one of {layouts.LAYOUTS}, got {layout!r}")
    outputs.check_free(out, overwrite=overwrite, folder=layout == "opensphere-v1")
    backbone, head, weights = torch_state_dicts(ckpt, step)

    def tensors(params):
        return OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in layouts.head_to_torch(params, layout).items())

    out = Path(out).expanduser()
    if layout in ("insightface", "opensphere-v2", "adaface"):
        obj = backbone if layout == "insightface" else {"backbone": backbone,
                                                         "head": tensors(head) if head else OrderedDict()}
        if layout == "adaface":
            obj = {"state_dict": OrderedDict((f"model.{k}", v) for k, v in backbone.items())}
        with outputs.staged_file(out, overwrite=overwrite) as tmp:
            torch.save(obj, tmp)
        return [out]
    files = {f"backbone_{weights.step}.pth": OrderedDict((f"module.{k}", v) for k, v in backbone.items())}
    if head:
        files[f"head_{weights.step}.pth"] = OrderedDict((f"module.{k}", v) for k, v in tensors(head).items())
    with outputs.staged_dir(out, overwrite=overwrite) as tmp:
        for name, state in files.items():
            torch.save(state, tmp / name)
    return [out / name for name in files]


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.export_torch", description=__doc__)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--layout", required=True, choices=layouts.LAYOUTS)
    p.add_argument("--out", required=True)
    p.add_argument("--step", type=int, default=None)
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    for path in export(a.ckpt, a.layout, a.out, a.step, overwrite=a.overwrite):
        print(f"wrote {path}")
    note = input_note(checkpoint.load_meta(a.ckpt, a.step), a.layout)
    if note:
        print(note)
    return 0


def input_note(meta: dict, layout: str) -> str:
    """What input the exported model takes when it is not what the layout's own code feeds (RGB, mean = std = 127.5;
    AdaFace: BGR)."""
    from jsphere.input_convention import CONVENTIONS, InputConvention

    convention = InputConvention.from_meta(meta.get("input"))
    expected = CONVENTIONS["bgr" if layout == "adaface" else "rgb"]
    if convention == expected:
        return ""
    return (f"NOTE: this model takes {convention.describe()} (recorded at import); {layout} code feeds "
            f"{expected.describe()}: convert the input accordingly")


if __name__ == "__main__":
    cli.run("converters.export_torch", main)
