"""``python -m converters.export_onnx --ckpt DIR --out model.onnx [--step N] [--opset 17] [--no-verify]``:
any jsphere backbone as an ONNX model that runs where insightface's released ones do.

The checkpoint's weights fill our PyTorch reference definition of the model
(``converters.torch_reference.backbones``, the same tensors ``converters.export_torch`` writes), which PyTorch's
TorchScript-based exporter writes in eval mode: input ``input`` float32 [N, 3, 112, 112] RGB in ``(x - 127.5) /
127.5`` (insightface's ``ArcFaceONNX`` uses mean = std = 127.5 for graphs without in-graph normalisation, so it
needs no setting), output ``embedding`` [N, D] (not normalised), dynamic batch size; BatchNorms after convolutions
are folded into them by the exporter. A model imported with another input convention takes this input too: a BGR
model's channel swap is folded into its first convolution, another normalisation becomes an in-graph multiply-add
(``converters.core.conventions``). With onnxruntime installed the file is checked after writing: onnxruntime and jsphere
embed the same rendered faces and must agree (min cosine >= 0.99999). Needs ``pip install 'jsphere[torch,onnx]'``.

A backbone of your own (``jsphere.models.register``) is exported through the PyTorch definition registered
under its name (``converters.torch_reference.backbones.register``); ``--import MODULE`` imports the module
that registers both. Without it, or without a PyTorch definition, the export is refused saying which is
missing and how to add it.
"""

from __future__ import annotations

from converters.core import arguments
from converters.onnx_format import onnx_export
from jsphere import cli, outputs


def main(argv: list[str] | None = None) -> int:
    arguments.import_requested(argv)
    p = cli.ArgumentParser(prog="converters.export_onnx", description=__doc__)
    p.add_argument("--ckpt", required=True, help="jsphere checkpoint (workdir, converted model)")
    p.add_argument("--out", required=True, help="model.onnx")
    p.add_argument("--step", type=int, default=None)
    p.add_argument("--opset", type=int, default=17,
                   help=f"ONNX opset, {onnx_export.OPSETS[0]} to {onnx_export.OPSETS[-1]} (default 17)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    outputs.add_overwrite_argument(p)
    arguments.add_import_argument(p)
    a = p.parse_args(argv)
    figures = onnx_export.export(a.ckpt, a.out, step=a.step, opset=a.opset, check=not a.no_verify,
                                 overwrite=a.overwrite)
    print(f"wrote {a.out}")
    if figures:
        print(f"onnxruntime vs jsphere on rendered faces: max |Δ| = {figures['max_abs_diff']:.3e}, "
              f"min cosine = {figures['min_cosine']:.7f}")
    return 0


if __name__ == "__main__":
    cli.run("converters.export_onnx", main)
