"""SphereFace2 paper appendix: magnitude type C (m=0.4)."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    hparams = dict(recipes.SPHEREFACE2_V1, magn_type="C", m=0.4)
    return recipes.vggface2_v1("sfnet20_deprecated", "sphereface2", hparams=hparams)
