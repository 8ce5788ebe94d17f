"""``python -m converters.import_mxnet --params model-0000.params [--symbol model-symbol.json] --out DIR``:
insightface's MXNet model zoo (no mxnet needed) as a jsphere checkpoint.

Networks (insightface ``src/symbols`` / ``recognition/symbol``, operator names as they appear in the files):

* ``fmobilefacenet`` with the GDC output: ``conv_1``, ``conv_2_dw`` (or, with ``net_blocks[0] > 1``, the
  Residual ``res_2_block{i}``), ``dconv_23``, ``res_3_block{i}``, ``dconv_34``, ``res_4_block{i}``, ``dconv_45``,
  ``res_5_block{i}``, ``conv_6sep``, ``conv_6dw7_7``, ``pre_fc1``, ``fc1`` -> ``mobilefacenet`` with ``scale=1``
  (64/128 channels) and the blocks counted in the file: ``model-y1-test2`` (blocks (1, 4, 6, 2), 128-d) and y2
  (blocks (2, 8, 16, 4), 256-d; its ``res_2`` blocks are 64 channels wide inside where arcface_torch's layout has
  128: the extra channels are padded with exact zeros);
* ``fmobilefacenet`` with the GNAP output (``symbol_utils.get_fc1(fc_type='GNAP')``, embeddings of 512 or fewer):
  the same trunk, then ``bn6f``, the norm-aware pooling (``sum``, ``sqrt``, ``mean``, ``broadcast_div``, ``tile``,
  products, ``Pooling``), ``bn6w`` and ``pre_fc1`` (below 512-d), ``fc1`` -> ``mobilefacenet`` with ``scale=1`` and
  ``output='gnap'``, whose mean norm is each image's (MXNet's runs over the batch: equal at batch size 1);
* ``fresnet`` LResNet-IR with the ``E`` output: ``conv0``, ``bn0``, ``relu0``,
  ``stage{s}_unit{u}_{bn1,conv1,bn2,relu1,conv2,bn3,conv1sc,sc}``, ``bn1``, ``pre_fc1``, ``fc1`` ->
  ``iresnet{18,34,50,100,200}`` (``model-r34-amf``, ``model-r50-am-lfw``, ``model-r100-ii``).

Each operator's parameters are the variables the symbol's graph feeds it, whatever their names: the original
``fmobilefacenet.py`` of ``model-y1-test2`` feeds ``pre_fc1`` a variable named ``fc1_weight`` (bias
``pre_fc1_bias``). Without a symbol JSON the names insightface's symbol code gives are used
(``<operator>_<argument>``, and ``fc1_weight`` for y1's ``pre_fc1``). A symbol whose embedding uses an operator
jsphere has no layer for (SE gates, plain ReLU) is refused naming it.

What MXNet computes differently is folded into the weights, exactly up to float32 rounding:

* BatchNorm ``eps`` (1e-3 MXNet default in fmobilefacenet, 2e-5 in fresnet and every ``fc1``; jsphere uses 1e-5):
  ``running_var += eps - 1e-5`` (an ``eps`` below 1e-5 rescales gamma instead);
* ``fix_gamma=True`` BatchNorm (``fc1``): gamma is taken as 1 whatever the file holds;
* the ``pre_fc1`` bias of the MobileFaceNet, whose jsphere Linear has none: moved into ``fc1``'s mean
  (``BN(Wx + b) = BN'(Wx)`` with ``mean' = mean - b``);
* the input: the symbols compute ``(x - 127.5) * 0.0078125`` on 0-255 RGB pixels inside the graph, jsphere feeds
  ``(x - 127.5) / 127.5``; the ratio 127.5 / 128 multiplies the first convolution's weights (exact with its zero
  padding because the offset cancels). Read from the symbol JSON (default: that map when no JSON is given).

``eps``/``fix_gamma`` come from ``<prefix>-symbol.json`` beside the params (or ``--symbol``); without one the
values of insightface's symbol files are used and the command says so. Classifier weights (``fc7``) are ignored.
"""

from __future__ import annotations

from converters.core import arguments
from converters.mxnet_format import mxnet_import
from jsphere import cli, outputs


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.import_mxnet", description=__doc__)
    p.add_argument("--params", required=True, help="model-XXXX.params")
    p.add_argument("--symbol", default=None, help="model-symbol.json (default: beside the params)")
    arguments.add_model_arguments(p)
    p.add_argument("--out", required=True)
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    path = mxnet_import.import_params(a.params, a.out, symbol=a.symbol, arch=a.arch,
                                     kwargs=arguments.parse_json_object(a.model_kwargs, "--model-kwargs"),
                                     report=arguments.print_found, overwrite=a.overwrite)
    print(arguments.wrote(path))
    return 0


if __name__ == "__main__":
    cli.run("converters.import_mxnet", main)
