"""SphereFace2 paper appendix: magnitude type A (m=0.5)."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    hparams = dict(recipes.SPHEREFACE2_V1, magn_type="A", m=0.5)
    return recipes.vggface2_v1("sfnet20_deprecated", "sphereface2", hparams=hparams)
