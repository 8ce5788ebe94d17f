"""What every importer and exporter shares: shape inference, PyTorch name mapping, exact rewrites (BN folding,
input scaling), input conventions and checkpoint layouts."""
