"""SphereFace2 paper §3.1 (OpenSphere config/papers/SphereFace2/sec31): SFNet-20, cosface."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet20_deprecated", "cosface")
