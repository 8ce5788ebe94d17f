"""PyTorch checkpoints: ``.pth`` (zip or legacy) and ``.safetensors`` files read as hostile input without torch
(``torch_pickle``: the restricted unpickler and checked tensor views; ``pth_file.load``; ``safetensors_file``),
imported into jsphere (``pth_import``), exported back in OpenSphere's, insightface's and AdaFace's layouts
(``pth_export``, needs torch), and cross-checked against the PyTorch reference models (``crosscheck``, needs
torch)."""
