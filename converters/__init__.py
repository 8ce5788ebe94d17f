"""Released models in and out of jsphere: read ``.pth``/``.safetensors`` without torch, insightface's MXNet
``.params`` without mxnet and ONNX graphs (``import_torch``, ``import_mxnet``, ``import_onnx``, every shape
hyper-parameter read from the file); write PyTorch and ONNX files (``export_torch``, ``export_onnx``); cross-check
against PyTorch reference definitions of every backbone (``check``, ``torch_reference``)."""
