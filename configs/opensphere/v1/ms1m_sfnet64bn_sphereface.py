"""OpenSphere v1's ``config/train/ms1m_sfnet64bn_sphereface.yml`` (branch OpenSphere_v0), kept faithful to what
it runs.

Its ``norm_layer`` is unset, so OpenSphere builds SFNet-64 *without* BN despite the name; this recipe does the
same (use ``--config.model.name=sfnet64_bn`` for the BN network).
"""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.ms1m_v1("sfnet64", "sphereface", dict(s=32.0, m=1.7), (100_000, 180_000, 220_000, 240_000))
