"""OpenSphere v2: MS1M-refine, sfnet64_bn, sphereface (v2 hyper-parameters)."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.ms1m_v2("sfnet64_bn", "sphereface")
