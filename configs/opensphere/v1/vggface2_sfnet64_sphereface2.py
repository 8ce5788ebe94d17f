"""OpenSphere v1's ``config/train/vggface2_sfnet64_sphereface2.yml`` (branch OpenSphere_v0; the same recipe as its
``config/papers/SphereFace2/sec32/vggface2_sfnet64_sphereface2.yml``): VGGFace2, SFNet-64 (deprecated, w/o BN),
SphereFace2."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet64_deprecated", "sphereface2")
