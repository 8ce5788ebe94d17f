"""Not an OpenSphere file: OpenSphere v2's MS1M-refine recipe (``config/train/ms1m_iresnet100_simple.yml``) on
SFNet-64 with BN, simple."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.ms1m_v2("sfnet64_bn", "simple")
