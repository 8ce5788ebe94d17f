"""Test config cplfw: pair verification, both protocols: ``configs/test/cplfw.py[:opensphere|pairs|bin]``.

Default: OpenSphere's pair list. ``:pairs`` reads the pair file as its authors publish it (LFW's ``pairs.txt``
with its own 10 folds; CALFW/CPLFW's two-lines-per-pair files), ``:bin`` insightface's ``.bin``. Paths are in
``configs/test/common.py``.
"""

from configs.test.common import pair_set_config


def get_config(arg=None):
    return pair_set_config("cplfw", arg)
