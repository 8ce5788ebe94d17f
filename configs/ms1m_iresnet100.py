"""IResNet-100 on MS1M-refine with OpenSphere v2's recipe; the ``:arg`` picks the loss.

    python -m jsphere.main --config=configs/ms1m_iresnet100.py:sphereface2 --workdir=runs/r100_sf2

``arg`` is one of arcface (default), cosface, sphereface, sphereface2, simple.
"""

from configs import opensphere_recipes as recipes


def get_config(arg=None):
    return recipes.ms1m_v2("iresnet100", arg or "arcface")
