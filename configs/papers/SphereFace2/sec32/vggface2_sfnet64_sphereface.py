"""SphereFace2 paper §3.2: SFNet-64, sphereface."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet64_deprecated", "sphereface")
