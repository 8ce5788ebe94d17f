"""PyTorch reference models with realistic random weights (random BN affines and PReLU slopes, BN statistics
measured on random images) and the faces fed to them: shared by the converter tests and ``benchmarks.gpu_check``."""

import numpy as np
import torch

from converters.torch_reference import backbones

D = 32


def random_torch_model(name, seed=0, embed_dim=D, **kwargs):
    """A reference model with random weights, random BN affine parameters and PReLU slopes, and BN running
    statistics measured on random images (so activations keep a realistic scale)."""
    torch.manual_seed(seed)
    return calibrate(backbones.build(name, embed_dim, **kwargs))


def calibrate(model):
    """Randomise ``model``'s BN affine parameters, PReLU slopes and biases; measure its BN statistics."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                if module.affine:  # affine=False (AdaFace's, CurricularFace's output BN1d) has statistics only
                    module.bias.normal_(0, 0.1)
                if module.affine and module.weight.requires_grad:
                    module.weight.uniform_(0.5, 1.5)
                module.momentum = None  # cumulative average over the calibration batches
            elif isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.0, 0.5)
            elif isinstance(module, torch.nn.Conv2d | torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0, 0.05)
        model.train()
        for i in range(2):
            model(torch.rand(8, 3, 112, 112, generator=torch.Generator().manual_seed(i)) * 2 - 1)
    return model.eval()


def images(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, 112, 112, 3), dtype=np.uint8)


def normalised_nchw(faces):
    return ((faces.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()


def torch_embed(model, faces):
    with torch.no_grad():
        return model(torch.from_numpy(normalised_nchw(faces))).numpy()
