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

A backbone of your own (``jsphere.models.register``) is exported through the PyTorch definition registered
under its name (``converters.torch_reference.backbones.register``); ``--import MODULE`` imports the module
that registers both. Without it, or without a PyTorch definition, the export is refused saying which is
missing and how to add it.

Every variant the importer recognises (MobileFaceNet ``scale``/``blocks``, ``mobilefacenet_large``, any embedding
size, IResNet with a trained ``features`` scale) is written with the keyword arguments recorded in the checkpoint.
Files are written under a temporary name and renamed when complete; an existing ``--out`` is replaced only with
``--overwrite`` (the rule of :mod:`jsphere.outputs`).
"""

from __future__ import annotations

from converters.core import arguments, layouts
from converters.pth_format import pth_export
from jsphere import checkpoint, cli, outputs


def main(argv: list[str] | None = None) -> int:
    arguments.import_requested(argv)
    p = cli.ArgumentParser(prog="converters.export_torch", description=__doc__)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--layout", required=True, choices=layouts.LAYOUTS)
    p.add_argument("--out", required=True)
    p.add_argument("--step", type=int, default=None)
    outputs.add_overwrite_argument(p)
    arguments.add_import_argument(p)
    a = p.parse_args(argv)
    for path in pth_export.export(a.ckpt, a.layout, a.out, a.step, overwrite=a.overwrite):
        print(f"wrote {path}")
    note = pth_export.input_note(checkpoint.load_meta(a.ckpt, a.step), a.layout)
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    cli.run("converters.export_torch", main)
