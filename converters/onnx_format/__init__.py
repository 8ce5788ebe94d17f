"""ONNX recognition models (needs the ``onnx`` package, ``jsphere[onnx]``): a file loaded as hostile input
(``model_file``), its graph read as a sequence of weighted layers (``graph_reader``), the jsphere backbone those
layers describe (``architecture``), the import (``onnx_import``) and the export through PyTorch's exporter, checked
with onnxruntime (``onnx_export``, needs torch too)."""
