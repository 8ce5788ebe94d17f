"""Not an OpenSphere file: OpenSphere v1's VGGFace2 recipe on SFNet-64 (deprecated, w/o BN) with SphereFace-R
(HFN, v2) and the hyper-parameters of its SFNet-20 recipe (OpenSphere ships SFNet-64 recipes for SphereFace2
and, in ``config/papers/SphereFace2/sec32``, ArcFace, CosFace and SphereFace)."""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.vggface2_v1("sfnet64_deprecated", "sphereface_r_h")
