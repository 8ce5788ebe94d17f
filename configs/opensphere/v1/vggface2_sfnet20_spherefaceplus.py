"""OpenSphere v1: VGGFace2, sfnet20 (deprecated, w/o BN), spherefaceplus."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet20_deprecated", "spherefaceplus")
