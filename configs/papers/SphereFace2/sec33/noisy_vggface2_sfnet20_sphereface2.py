"""SphereFace2 paper §3.3: 60% label noise (seed 10086), SFNet-20, SphereFace2."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet20_deprecated", "sphereface2", label_noise=0.6, noise_seed=10086)
