"""Test config calfw: pair verification, both protocols: ``configs/test/calfw.py[:opensphere|pairs|bin]``.

Default: OpenSphere's ``calfw_ann.txt``; ``:pairs`` the authors' ``pairs_CALFW.txt`` (scored on its 10 folds
of 300 + 300 pairs); ``:bin`` insightface's ``calfw.bin``. The set's ``format`` is ``auto`` (detected from the
file). Paths are in ``configs/test/common.py``.
"""

from configs.test.common import pair_set_config


def get_config(arg=None):
    return pair_set_config("calfw", arg)
