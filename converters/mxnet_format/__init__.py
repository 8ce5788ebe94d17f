"""insightface's MXNet model zoo without mxnet: ``.params`` and ``-symbol.json`` files read (``model_files``), the
fmobilefacenet and fresnet networks rewritten as torch-named state_dicts of jsphere's backbones (``networks``),
and imported (``mxnet_import``)."""
