"""OpenSphere v1: VGGFace2, sfnet20 (deprecated, w/o BN), sphereface2."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet20_deprecated", "sphereface2", milestones=(50_000, 78_000, 94_000, 100_000))
