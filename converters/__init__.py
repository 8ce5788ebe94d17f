"""The PyTorch bridge: read ``.pth``/``.safetensors`` without torch, import to and export from jsphere
checkpoints, and cross-check against PyTorch reference definitions of every backbone."""
