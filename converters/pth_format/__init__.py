"""PyTorch checkpoints: ``.pth`` and ``.safetensors`` read without torch."""
