"""OpenSphere v2's ``config/train/ms1m_iresnet100_arcface.yml``: MS1M-refine, IResNet-100, arcface."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.ms1m_v2("iresnet100", "arcface")
