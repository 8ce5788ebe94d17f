"""OpenSphere v1's ``config/train/vggface2_sfnet20_sphereface.yml`` (branch OpenSphere_v0; the same recipe as its
``config/papers/SphereFace2/sec31/vggface2_sfnet20_sphereface.yml``): VGGFace2, SFNet-20 (deprecated, w/o BN),
SphereFace."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet20_deprecated", "sphereface")
