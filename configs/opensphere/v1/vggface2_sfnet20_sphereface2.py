"""OpenSphere v1's ``config/train/vggface2_sfnet20_sphereface2.yml`` (branch OpenSphere_v0): VGGFace2, SFNet-20
(deprecated, w/o BN), SphereFace2, 100k steps (the paper's ``sec31`` recipe runs 70k)."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet20_deprecated", "sphereface2", milestones=(50_000, 78_000, 94_000, 100_000))
