"""OpenSphere v1's ``config/train/ms1m_iresnet100_sphereface.yml`` (branch OpenSphere_v0): MS1M-refine,
IResNet-100, SphereFace s=32 m=1.7."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.ms1m_v1("iresnet100", "sphereface", dict(s=32.0, m=1.7), (150_000, 270_000, 320_000, 360_000))
