"""``python -m converters.import_torch --backbone FILE --out DIR [--arch auto|NAME] [--model-kwargs JSON]
[--head FILE --head-name NAME --head-hparams JSON]``: a released PyTorch model as a jsphere checkpoint directory.

The layout (OpenSphere v1 ``backbone_<iter>.pth``, OpenSphere v2 ``model_<step>.pth`` / ``ckpt_<step>.pth``,
insightface ``backbone.pth``, ``.safetensors``) and the model are recognised from the file: the architecture, its
depth, embedding size, MobileFaceNet ``scale``/``blocks`` (arcface_torch ``get_mbf``, ``mbf_large``), whether an
IResNet's ``features`` scale was trained (``--arch auto``, the default, prints what it found). ``sfnet*`` and
``sfnet*_deprecated`` have the same keys but compute different functions: for such a file name one with ``--arch``;
``python -m converters.check`` shows which one reproduces PyTorch and verifies faces. ``--model-kwargs`` overrides
keyword arguments of the model (e.g. ``'{"scale": 1}'``). Nothing is left in ``--out`` when the import fails.
The input the model was trained on is recorded with it (``converters.core.conventions``: AdaFace and TreB1eN feed BGR,
foamliu's MobileFaceNet ImageNet-normalised RGB); ``--input-convention rgb|bgr|imagenet|JSON`` overrides it.
The output directory works with ``jsphere.embed``, ``--mode=eval`` and ``config.init_from``.
"""

from __future__ import annotations

from converters.core import arguments, conventions
from converters.pth_format import pth_import
from jsphere import cli, errors, outputs


def main(argv: list[str] | None = None) -> int:
    arguments.import_requested(argv)  # a backbone of one's own, for --arch
    p = cli.ArgumentParser(prog="converters.import_torch", description=__doc__)
    p.add_argument("--backbone", required=True, help=".pth / .pt / .safetensors")
    arguments.add_model_arguments(p)
    arguments.add_import_argument(p)
    p.add_argument("--head", default=None, help="OpenSphere v1 head_<iter>.pth (v2 model files carry their head)")
    p.add_argument("--head-name", default=None, help="jsphere head name, e.g. sphereface2")
    p.add_argument("--head-hparams", default="{}", help='JSON, e.g. \'{"magn_type": "C", "alpha": 0.7}\'')
    p.add_argument("--embed-dim", type=int, default=None, help="check the embedding size (default: read from the file)")
    p.add_argument("--num-classes", type=int, default=None, help="check the head's class count")
    p.add_argument("--out", required=True)
    conventions.add_argument(p, "decided from the file")
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    for flag, value in (("--embed-dim", a.embed_dim), ("--num-classes", a.num_classes)):
        if value is not None and value < 1:
            raise errors.UserError(f"{flag} {value}: must be >= 1 (or left out: the file says it)")
    convention = conventions.from_argument(a.input_convention)
    path = pth_import.import_checkpoint(
        a.arch, a.backbone, a.out, head=a.head, head_name=a.head_name,
        head_hparams=arguments.parse_json_object(a.head_hparams, "--head-hparams"), embed_dim=a.embed_dim,
        num_classes=a.num_classes, kwargs=arguments.parse_json_object(a.model_kwargs, "--model-kwargs"),
        report=arguments.print_found, overwrite=a.overwrite, input_convention=convention)
    print(arguments.wrote(path))
    return 0


if __name__ == "__main__":
    cli.run("converters.import_torch", main)
