"""OpenSphere v1: VGGFace2, sfnet64 (deprecated, w/o BN), gasoftmax."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet64_deprecated", "gasoftmax", clip=5.0)
