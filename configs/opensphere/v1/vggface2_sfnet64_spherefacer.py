"""OpenSphere v1: VGGFace2, sfnet64 (deprecated, w/o BN), sphereface_r_h."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet64_deprecated", "sphereface_r_h")
