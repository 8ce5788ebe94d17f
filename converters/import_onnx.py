"""``python -m converters.import_onnx --onnx model.onnx --out DIR [--arch auto|NAME] [--model-kwargs JSON]``:
an ONNX recognition model as a jsphere checkpoint (needs ``pip install 'jsphere[onnx]'``).

Made for the models people deploy — insightface's ``buffalo_l/w600k_r50.onnx`` (iresnet50),
``antelopev2/glintr100.onnx`` (iresnet100), ``buffalo_s/w600k_mbf.onnx`` (mobilefacenet), MXNet-converted zoo
models, paddle2onnx exports of arcface_paddle's MobileFaceNet, torch.onnx exports of AdaFace / TreB1eN /
face.evoLVe IR and IR-SE models and of foamliu's MobileFaceNet — and for what ``converters.export_onnx`` writes.
ONNX initializer names are arbitrary, so the graph's weighted layers are matched, in data-flow order, to the
layers of the jsphere backbone that the graph's shapes describe (``converters.onnx_format.architecture``).
``--arch`` names the backbone instead (detection is then only used for the shape knobs of that family),
``--model-kwargs`` overrides what was read. Backbones registered with ``jsphere.models.register`` (``--import
MODULE``) are detected too; a graph no registered architecture matches is refused naming what it holds.
Equivalent forms are accepted and what exporters change is undone exactly:

* a 1x1 ``Conv`` over a 1x1 map is a Linear layer (and a ``Gemm`` a 1x1 convolution where the model has one);
* a BatchNorm folded into the preceding Conv/Gemm (PyTorch's exporter does this in eval mode) becomes that
  layer's weights plus a BatchNorm computing ``x + bias``; BatchNorms kept as nodes keep their statistics, with
  epsilons other than 1e-5 folded into the running variance; a bias the jsphere layer has no place for moves
  into the BatchNorm after it (``BN(Wx + b)`` = ``BN'(Wx)``);
* PRelu slopes of any exporter's shape; ``Clip(0, 6)`` as ReLU6; ``Flatten`` or ``Reshape`` before the
  embedding; a trailing L2 normalisation of the output (dropped: cosines do not change);
* in-graph input preprocessing (``Transpose`` from NHWC, ``Sub``/``Mul``/``Div``/``Add`` by per-channel
  constants): on 0-255 pixels when its scale is that of a pixel normalisation (|scale| <= 0.1, as in
  MXNet-converted models), else on jsphere's ``(x - 127.5) / 127.5`` (the convention of insightface's
  ``ArcFaceONNX`` for graphs that do not subtract and multiply, and of ``export_onnx``). A pure rescaling of
  jsphere's input is folded into the first convolution; any other map is recorded as the checkpoint's input
  convention (``meta['input']``), which ``jsphere.embed`` and ``--mode=eval`` apply. Without preprocessing the
  graph is taken to expect jsphere's (and insightface's) ``(x - 127.5) / 127.5`` RGB input; a graph does not
  say its channel order: ``--input-convention bgr`` records it for AdaFace's and TreB1eN's models.
"""

from __future__ import annotations

from converters.core import arguments, conventions
from converters.onnx_format import onnx_import
from jsphere import cli, outputs


def main(argv: list[str] | None = None) -> int:
    arguments.import_requested(argv)  # a backbone of one's own, for --arch
    p = cli.ArgumentParser(prog="converters.import_onnx", description=__doc__)
    p.add_argument("--onnx", required=True, help="model.onnx")
    arguments.add_model_arguments(p)
    arguments.add_import_argument(p)
    p.add_argument("--out", required=True)
    conventions.add_argument(p, "the graph's own preprocessing, else rgb (a graph does not say its channel "
                                "order)")
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    path = onnx_import.import_onnx(a.onnx, a.out, arch=a.arch,
                                   kwargs=arguments.parse_json_object(a.model_kwargs, "--model-kwargs"),
                                   report=arguments.print_found, overwrite=a.overwrite,
                                   convention_override=conventions.from_argument(a.input_convention))
    print(arguments.wrote(path))
    return 0


if __name__ == "__main__":
    cli.run("converters.import_onnx", main)
