"""OpenSphere v2's ``config/train/ms1m_iresnet100_simple.yml``: MS1M-refine, IResNet-100, simple."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.ms1m_v2("iresnet100", "simple")
