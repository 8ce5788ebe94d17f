"""ONNX recognition models (needs the ``onnx`` package)."""
