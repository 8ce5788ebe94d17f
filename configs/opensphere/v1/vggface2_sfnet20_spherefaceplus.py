"""OpenSphere v1's ``config/train/vggface2_sfnet20_spherefaceplus.yml`` (branch OpenSphere_v0): VGGFace2, SFNet-20
(deprecated, w/o BN), SphereFace+."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet20_deprecated", "spherefaceplus")
