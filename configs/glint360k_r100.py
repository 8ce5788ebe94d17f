"""arcface_torch glint360k_r100: IResNet-100, CosFace (1, 0, 0.4) s=64, Glint360K, weight decay 1e-4."""

from configs.arcface_torch_recipes import arcface_torch


def get_config(arg=None):
    return arcface_torch("glint360k", "iresnet100", "cosface", weight_decay=1e-4)
