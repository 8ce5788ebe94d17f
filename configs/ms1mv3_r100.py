"""arcface_torch ms1mv3_r100: IResNet-100, ArcFace (1, 0.5, 0) s=64, MS1MV3, 20 epochs of global batch 1024."""

from configs.arcface_torch_recipes import arcface_torch


def get_config(arg=None):
    return arcface_torch("ms1mv3", "iresnet100", "arcface")
