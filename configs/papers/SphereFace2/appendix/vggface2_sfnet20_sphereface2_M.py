"""SphereFace2 paper appendix: magnitude type M (m=1.7)."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    hparams = dict(recipes.SPHEREFACE2_V1, magn_type="M", m=1.7)
    return recipes.vggface2_v1("sfnet20_deprecated", "sphereface2", hparams=hparams)
