"""Test config lfw: pair verification, both protocols: ``configs/test/lfw.py[:opensphere|pairs|bin]``.

Default: OpenSphere's ``lfw_ann.txt``; ``:pairs`` the original ``pairs.txt`` (scored on its own 10 folds);
``:bin`` insightface's ``lfw.bin``. The set's ``format`` field is ``auto``, so either LFW form is recognised
from the file itself: ``--config.eval.sets[0].path=.../pairs.txt`` works with the default too (set
``--config.eval.sets[0].format=lfw`` to insist). Paths are in ``configs/test/common.py``.
"""

from configs.test.common import pair_set_config


def get_config(arg=None):
    return pair_set_config("lfw", arg)
